"""Off-policy evaluation: IPW, self-normalised IPW and doubly robust estimates with bootstrap intervals.

Every estimator is a function of per-row terms, so the bootstrap only resamples row indices (in chunks of
replicates, vectorised with numpy) and re-aggregates. For a target policy pi and logged (x, a, p, r):

- IPW   = mean(w r),                    w = pi(a|x) / p
- SNIPW = sum(w r) / sum(w)
- DR    = mean(sum_b pi(b|x) q(x,b) + w (r - q(x,a)))   with q a reward model fitted on *other* rows.

The logging policy is evaluated on-policy (w = 1: every estimator is the mean logged reward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from contract.errors import ContractError

ESTIMATORS: tuple[str, ...] = ("ipw", "snipw", "dr")


@dataclass(frozen=True)
class Estimate:
    policy: str
    estimator: str
    value: float
    low: float
    high: float


def _terms(
    pi: np.ndarray, logged: np.ndarray, propensity: np.ndarray, reward: np.ndarray, q: np.ndarray | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per estimator: (numerator terms, denominator terms); the estimate is sum(num) / sum(den)."""
    n = len(reward)
    w = pi[np.arange(n), logged] / propensity
    ones = np.ones(n)
    out = {"ipw": (w * reward, ones), "snipw": (w * reward, w)}
    if q is not None:
        out["dr"] = ((pi * q).sum(axis=1) + w * (reward - q[np.arange(n), logged]), ones)
    return out


def bootstrap_ratio(
    num: np.ndarray,
    den: np.ndarray,
    *,
    n_bootstrap: int = 500,
    alpha: float = 0.05,
    rng: np.random.Generator | None = None,
    chunk: int = 64,
) -> tuple[float, float, float]:
    """(estimate, low, high): sum(num)/sum(den) with a percentile bootstrap interval over rows."""
    rng = rng or np.random.default_rng(0)
    n = len(num)
    point = float(num.sum() / den.sum())
    stats = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, n, size=(b, n))
        d = den[idx].sum(axis=1)
        stats[start : start + b] = np.divide(num[idx].sum(axis=1), d, out=np.full(b, np.nan), where=d > 0)
    low, high = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    return point, float(low), float(high)


def evaluate_policy(
    name: str,
    pi: np.ndarray,
    logged: np.ndarray,
    propensity: np.ndarray,
    reward: np.ndarray,
    q: np.ndarray | None = None,
    *,
    n_bootstrap: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[Estimate]:
    """IPW, SNIPW (and DR when a reward model's predictions ``q`` (n, K) are given) for policy ``pi`` (n, K)."""
    pi, logged = np.asarray(pi, float), np.asarray(logged, np.int64)
    propensity, reward = np.asarray(propensity, float), np.asarray(reward, float)
    n = len(reward)
    if pi.ndim != 2 or pi.shape[0] != n:
        raise ContractError("pi", f"must be (n_rows, n_actions) = ({n}, K); got {pi.shape}")
    if q is not None and np.shape(q) != pi.shape:
        raise ContractError("q", f"must have the policy's shape {pi.shape}; got {np.shape(q)}")
    if np.any(propensity <= 0):
        raise ContractError("propensity", "logged propensities must be > 0")
    out = []
    for i, (est, (num, den)) in enumerate(_terms(pi, logged, propensity, reward, q).items()):
        rng = np.random.default_rng([seed, i])
        v, lo, hi = bootstrap_ratio(num, den, n_bootstrap=n_bootstrap, alpha=alpha, rng=rng)
        out.append(Estimate(name, est, v, lo, hi))
    return out


def evaluate_logging(
    reward: np.ndarray, *, n_bootstrap: int = 500, alpha: float = 0.05, seed: int = 0
) -> list[Estimate]:
    """The logging policy on its own data: the mean logged reward (identical under every estimator)."""
    reward = np.asarray(reward, float)
    v, lo, hi = bootstrap_ratio(
        reward, np.ones(len(reward)), n_bootstrap=n_bootstrap, alpha=alpha, rng=np.random.default_rng(seed)
    )
    return [Estimate("logging", est, v, lo, hi) for est in ESTIMATORS]


def estimates_frame(estimates: list[Estimate]) -> pd.DataFrame:
    return pd.DataFrame([e.__dict__ for e in estimates])


def true_value(
    probabilities: pd.DataFrame, truth: pd.DataFrame, *, response: str = "true_response_probability"
) -> float:
    """The true expected reward of a policy from a simulator truth table (benchmarks and tests only).

    ``probabilities``: one row per decision, ``decision_id`` plus one column per action (pi(a|x));
    ``truth``: long (decision_id, action, <response>) rows. Value = mean over decisions of
    sum_a pi(a|x) * true response(x, a)."""
    wide = truth.pivot(index="decision_id", columns="action", values=response)
    actions = [c for c in probabilities.columns if c != "decision_id"]
    missing = sorted(set(actions) - set(wide.columns))
    if missing:
        raise ContractError("truth.action", f"no true response for actions {missing}")
    t = wide.reindex(probabilities["decision_id"].to_numpy())[actions].to_numpy(float)
    if np.isnan(t).any():
        raise ContractError("truth.decision_id", "some decisions have no true response")
    return float((probabilities[actions].to_numpy(float) * t).sum(axis=1).mean())
