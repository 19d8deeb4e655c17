"""Offline evaluation of a fitted NBA policy on held-out decisions, against the logging policy, uniform
random and the best single action, with the ship rule.

Ship rule: the learned policy ships only if the lower bound of its doubly robust interval is above the
logging policy's estimated value on the same held-out decisions (a policy that may be no better than
what the brand already does is not rolled out).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from training.nba.ope import ESTIMATORS, Estimate, estimates_frame, evaluate_logging, evaluate_policy
from training.nba.policy import NBAPolicy

POLICIES: tuple[str, ...] = ("cxi", "logging", "uniform", "best_single")


@dataclass
class OfflineEvaluation:
    table: pd.DataFrame  # policy, estimator, value, low, high
    ship: bool
    reason: str
    best_action: str
    decision_ids: np.ndarray
    probabilities: dict[str, pd.DataFrame] = field(
        default_factory=dict
    )  # holdout pi per policy (not logging)

    def value(self, policy: str, estimator: str = "dr") -> float:
        row = self.table[(self.table.policy == policy) & (self.table.estimator == estimator)]
        return float(row["value"].iloc[0])

    def metrics(self) -> dict[str, float]:
        """Flat ``ope_<policy>_<estimator>[_low|_high]`` metrics for MLflow."""
        out: dict[str, float] = {}
        for r in self.table.itertuples(index=False):
            key = f"ope_{r.policy}_{r.estimator}"
            out |= {key: r.value, f"{key}_low": r.low, f"{key}_high": r.high}
        return out | {"ship": float(self.ship)}


def best_single_action(policy: NBAPolicy, train: pd.DataFrame) -> str:
    """The action with the highest self-normalised IPW value on the training decisions."""
    a = train["action"].astype(str).to_numpy()
    w = 1.0 / train["propensity"].to_numpy(float)
    r = train["reward"].to_numpy(float)
    values = {act: (w * r)[a == act].sum() / w[a == act].sum() for act in policy.actions_ if (a == act).any()}
    return max(values, key=values.__getitem__)


def evaluate_offline(
    policy: NBAPolicy,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    n_bootstrap: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> OfflineEvaluation:
    """IPW / SNIPW / DR with bootstrap intervals for each policy on ``holdout`` (rows the policy never saw)."""
    actions = policy.actions_
    logged = pd.Categorical(holdout["action"].astype(str), categories=actions).codes.astype(np.int64)
    keep = logged >= 0  # actions never seen in training cannot be scored by any policy here
    h = holdout.loc[keep].reset_index(drop=True)
    logged = logged[keep]
    p, r = h["propensity"].to_numpy(float), h["reward"].to_numpy(float)
    q = policy.expected_rewards(h).to_numpy()
    mask = policy.eligible(h)
    best = best_single_action(policy, train)
    single = np.zeros_like(q)
    single[:, actions.index(best)] = 1.0
    single = np.where(mask[:, [actions.index(best)]], single, mask / mask.sum(axis=1, keepdims=True))
    pis = {
        "cxi": policy.action_probabilities(h).to_numpy(),
        "uniform": mask / mask.sum(axis=1, keepdims=True),
        "best_single": single,
    }
    kw = {"n_bootstrap": n_bootstrap, "alpha": alpha, "seed": seed}
    estimates: list[Estimate] = evaluate_logging(r, **kw)
    for name, pi in pis.items():
        estimates += evaluate_policy(name, pi, logged, p, r, q, **kw)
    table = estimates_frame(estimates)
    ev = OfflineEvaluation(table, False, "", best, h["decision_id"].to_numpy(object))
    dr_low = float(table[(table.policy == "cxi") & (table.estimator == "dr")]["low"].iloc[0])
    logging_value = ev.value("logging")
    ev.ship = dr_low > logging_value
    ev.reason = (
        f"DR lower bound {dr_low:.4f} {'>' if ev.ship else '<='} logging policy value {logging_value:.4f}"
    )
    ev.probabilities = {
        k: pd.DataFrame(v, columns=actions).assign(decision_id=ev.decision_ids) for k, v in pis.items()
    }
    return ev


def interval_figure(table: pd.DataFrame) -> Figure:
    """Point estimates and intervals per policy (rows) and estimator (markers)."""
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    policies = [p for p in POLICIES if p in set(table.policy)]
    for j, est in enumerate(ESTIMATORS):
        t = table[table.estimator == est].set_index("policy").reindex(policies)
        y = np.arange(len(policies)) + (j - 1) * 0.2
        err = np.vstack([t["value"] - t["low"], t["high"] - t["value"]])
        ax.errorbar(t["value"], y, xerr=err, fmt="o", capsize=3, label=est.upper())
    ax.set_yticks(np.arange(len(policies)), policies)
    ax.set_xlabel("estimated value (mean reward per decision)")
    ax.set_title("Off-policy evaluation on held-out decisions (95% bootstrap intervals)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
