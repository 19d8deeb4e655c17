"""A buy-till-you-die prior for the churn model: its margin is where LightGBM's boosting starts.

Trees learn a customer's stage of life only from the ages they saw in training, and a time-based holdout is
always older than the training rows; a structural model of purchase timing extrapolates in age. So the churn
booster is trained on top of one (LightGBM ``init_score``): the served log-odds are the trees' output plus
``scale`` × the MBG/NBD log-odds of no activity in the horizon, and the trees only learn what the structural
model misses (early stopping ends them when nothing does).

Inputs come from the Feast features every churn model already reads, so serving needs nothing new:

* x: repeat activity days (``active_days_total`` - 1, or ``purchase_days_total`` - 1 when activity means
  purchases: repeat buying counted per day, as buy-till-you-die models count it, so several orders on one
  day do not read as a frequent buyer);
* T: days since the first activity; t_x = T - days since the last one (continuous days);
* never active yet (no purchase so far): x = t_x = 0 with T the days since first seen, which scores at least
  as risky as the same customer buying now.

The MBG/NBD, not the BG/NBD, because its P(no activity) falls whenever activity happens now or the last
activity moves later (for every x), so the churn model's behavioural guarantees hold for the prior too.
Its parameters are fitted by maximum likelihood on the training rows (never on labels) and registered with
the model (`to_dict`), so batch scoring, serving and the MLflow pyfunc all compute the same margin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from contract.errors import ContractError
from training.btyd import BGNBD, BGNBDParams, prob_no_purchase

KIND = "mbgnbd"
#: Feature columns per mapping version and churn activity: (repeat count + 1, days since the first, days
#: since the last). The version is registered with the model: a version scored with another mapping would
#: silently move its margin, so `from_dict` refuses one it does not know. Mapping 1 counted purchases, not
#: purchase days; its registered versions still score with it.
MAPPINGS: dict[int, dict[str, tuple[str, str, str]]] = {
    1: {
        "any": ("active_days_total", "days_since_first_seen", "days_since_last_event"),
        "purchase": ("purchases_total", "days_since_first_purchase", "days_since_last_purchase"),
    },
    2: {
        "any": ("active_days_total", "days_since_first_seen", "days_since_last_event"),
        "purchase": ("purchase_days_total", "days_since_first_purchase", "days_since_last_purchase"),
    },
}
#: The mapping new priors are fitted with.
MAPPING = 2
COLUMNS = MAPPINGS[MAPPING]
#: The age of a customer who was never active (the prior's fallback T).
SEEN = "days_since_first_seen"
#: The name the prior's contribution goes by among a score's reasons.
REASON = "buying_rhythm"
_CLIP = 1e-6


class BTYDPrior:
    """MBG/NBD log-odds of no activity within ``horizon_days``, over the churn feature columns.

    ``fit(X)`` learns ``params_`` (on the rows with activity) and ``center_`` (the mean margin of X, so a
    reason says "riskier than usual" rather than "riskier than a coin"); ``scale`` is set by the churn model
    to its calibration slope, so ``scale * margin(X)`` is what it adds to the calibrated trees."""

    def __init__(
        self, activity: str = "any", horizon_days: int = 30, *, scale: float = 1.0, mapping: int = MAPPING
    ) -> None:
        if activity not in COLUMNS:
            raise ContractError("activity", f"must be one of {', '.join(COLUMNS)}", activity)
        if horizon_days < 1:
            raise ContractError("horizon_days", "must be at least 1 day", horizon_days)
        self.activity = activity
        self.horizon_days = horizon_days
        self.scale = scale
        self.mapping = _check_mapping(mapping)

    @property
    def columns(self) -> list[str]:
        """The feature columns the margin reads."""
        return list(dict.fromkeys((*MAPPINGS[self.mapping][self.activity], SEEN)))

    def summary(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x, t_x, T, active) per row of X."""
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ContractError("X", f"the {KIND} prior needs feature columns {missing}")
        return self.summary_of(*(X[c].to_numpy(dtype="float64", na_value=np.nan) for c in self.columns))

    def summary_of(
        self, count: np.ndarray, first: np.ndarray, last: np.ndarray, seen: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        seen = first if seen is None else seen
        active = (count >= 1) & np.isfinite(first) & np.isfinite(last)
        T = np.where(active, first, seen)
        T = np.clip(np.nan_to_num(T, nan=0.0), 0.0, None)
        rec = np.clip(np.nan_to_num(last, nan=0.0), 0.0, T)
        x = np.where(active, np.clip(np.nan_to_num(count, nan=1.0) - 1.0, 0.0, None), 0.0)
        # t_x is the time of the last *repeat* activity: none without one (several events on the first day)
        t_x = np.where(active & (x > 0), T - rec, 0.0)
        return x, t_x, T, active

    def fit(self, X: pd.DataFrame) -> BTYDPrior:
        """MBG/NBD parameters by maximum likelihood on the active rows of X; ``center_`` on all rows."""
        x, t_x, T, active = self.summary(X)
        # a repeat customer's last activity must come after their first (t_x > 0) for the likelihood
        ok = active & ((x == 0) | (t_x > 0))
        if ok.sum() < 10:
            raise ContractError("X", f"the {KIND} prior needs at least 10 active rows", int(ok.sum()))
        self.params_ = BGNBD(modified=True).fit(x[ok], t_x[ok], T[ok]).params_
        self.center_ = 0.0
        self.center_ = float(self.margin(X).mean())
        return self

    def _fitted(self) -> BGNBDParams:
        if not hasattr(self, "params_"):
            raise ContractError("prior", "is not fitted; call fit first")
        return self.params_

    def p_no_activity(self, X: pd.DataFrame) -> np.ndarray:
        """P(no activity in the horizon) per row."""
        x, t_x, T, _ = self.summary(X)
        return self._p(x, t_x, T)

    def _p(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        p = prob_no_purchase(self._fitted(), float(self.horizon_days), x, t_x, T, modified=True)
        return np.clip(p, _CLIP, 1.0 - _CLIP)

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Unscaled log-odds of no activity in the horizon, per row of X."""
        p = self.p_no_activity(X)
        return np.log(p) - np.log1p(-p)

    def margin_matrix(self, values: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(log-odds, P(no activity)) per row of a feature matrix whose columns are ``names``."""
        index = {n: i for i, n in enumerate(names)}
        missing = [c for c in self.columns if c not in index]
        if missing:
            raise ContractError("features", f"the {KIND} prior needs feature columns {missing}")
        x, t_x, T, _ = self.summary_of(*(values[:, index[c]] for c in self.columns))
        p = self._p(x, t_x, T)
        return np.log(p) - np.log1p(-p), p

    # --- persistence: registered with the model --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "mapping": self.mapping,
            "activity": self.activity,
            "horizon_days": self.horizon_days,
            "scale": self.scale,
            "center": self.center_ if hasattr(self, "center_") else 0.0,
            "params": self._fitted().as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BTYDPrior:
        if data.get("kind") != KIND:
            raise ContractError("prior.kind", f"must be {KIND!r}", data.get("kind"))
        prior = cls(
            str(data["activity"]),
            int(data["horizon_days"]),
            scale=float(data["scale"]),
            mapping=_check_mapping(data.get("mapping")),
        )
        prior.params_ = BGNBDParams(**{k: float(v) for k, v in data["params"].items()})
        prior.center_ = float(data.get("center", 0.0))
        return prior

    def reason_label(self) -> str:
        what = "activity" if self.activity == "any" else "purchase"
        return f"Chance of no {what} in the next {self.horizon_days} days, from the buying rhythm"


def _check_mapping(mapping: Any) -> int:
    if isinstance(mapping, bool) or mapping not in MAPPINGS:
        raise ContractError(
            "prior.mapping",
            f"this CXI scores prior mappings {sorted(MAPPINGS)}; retrain the model or use the CXI that trained it",
            mapping,
        )
    return int(mapping)


def boosted_margin(
    booster: Any, prior: BTYDPrior | None, values: np.ndarray, *, num_threads: int = 0
) -> np.ndarray:
    """The served log-odds of a feature matrix (columns in the booster's order): the booster's raw score,
    plus the scaled prior margin when the model was boosted from one. Every scoring path computes it here."""
    kwargs = {"num_threads": num_threads} if num_threads else {}
    raw = np.asarray(booster.predict(values, raw_score=True, **kwargs)).reshape(-1)
    if prior is None:
        return raw
    margin, _ = prior.margin_matrix(values, list(booster.feature_name()))
    return raw + prior.scale * margin


def boosted_predict(
    booster: Any, prior: BTYDPrior | None, values: np.ndarray, *, num_threads: int = 0
) -> np.ndarray:
    """The served scores of a feature matrix: the booster's own ``predict`` without a prior (a probability,
    or a value for a regression), the sigmoid of `boosted_margin` with one."""
    if prior is None:
        kwargs = {"num_threads": num_threads} if num_threads else {}
        return np.asarray(booster.predict(values, **kwargs)).reshape(-1)
    return 1.0 / (1.0 + np.exp(-boosted_margin(booster, prior, values, num_threads=num_threads)))


def boosted_contributions(
    booster: Any, prior: BTYDPrior | None, values: np.ndarray, *, num_threads: int = 0
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, values, contributions) of each row's served log-odds: the booster's ``pred_contrib`` (bias last)
    and, with a prior, one more column `REASON` whose value is P(no activity in the horizon) and whose
    contribution is the scaled prior margin minus its training mean (the mean goes to the bias)."""
    kwargs = {"num_threads": num_threads} if num_threads else {}
    names = list(booster.feature_name())
    contrib = np.asarray(booster.predict(values, pred_contrib=True, **kwargs)).reshape(len(values), -1)
    if prior is None:
        return names, values, contrib
    margin, p = prior.margin_matrix(values, names)
    center = prior.scale * prior.center_
    push = prior.scale * margin - center
    contrib = np.column_stack([contrib[:, :-1], push, contrib[:, -1] + center])
    return [*names, REASON], np.column_stack([values, p]), contrib
