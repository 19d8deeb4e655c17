"""Model selection by off-policy evaluation: which way of learning the NBA policy (``dr``, ``direct``,
``pooled``) or which single action to fall back on, judged by the doubly robust value on the latest
``validation_fraction`` of the training decisions. Never looks at any truth; the holdout used to decide
whether to ship stays untouched."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.nba.data import time_split
from training.nba.ope import _terms

if TYPE_CHECKING:
    from training.nba.policy import NBAPolicy

CANDIDATES: tuple[str, ...] = ("dr", "direct", "pooled")


def dr_value(pi: np.ndarray, logged: np.ndarray, p: np.ndarray, r: np.ndarray, q: np.ndarray) -> float:
    """Doubly robust point estimate of policy ``pi`` (n, K) on logged rows."""
    num, den = _terms(pi, logged, p, r, q)["dr"]
    return float(num.sum() / den.sum())


def select_method(policy: NBAPolicy, decisions: pd.DataFrame) -> tuple[str, str | None, dict[str, float]]:
    """(method, single action or None, DR value per candidate): the best candidate on the validation slice.

    Each learned candidate is fitted on the earlier rows; the single-action candidates serve one action
    wherever it is eligible (epsilon-greedy, as served). A single action is chosen unless a learned policy
    has a strictly higher value. The reward model inside DR is the pooled candidate (it never saw the
    slice)."""
    from training.nba.policy import NBAPolicy

    fit_part, val = time_split(decisions, policy.validation_fraction)
    params = {**policy.get_params(), "control": policy.control_}  # warned about once, by the caller's fit
    fitted = {
        m: NBAPolicy(**{**params, "method": m}, eligibility=policy.eligibility).fit(fit_part)
        for m in CANDIDATES
        if fit_part["action"].nunique() == len(policy.actions_)
    }
    if not fitted:  # too few rows to see every action before the slice: no basis to choose, use the default
        return "dr", None, {}
    actions = policy.actions_
    logged = pd.Categorical(val["action"].astype(str), categories=actions).codes.astype(np.int64)
    p, r = val["propensity"].to_numpy(float), val["reward"].to_numpy(float)
    q = fitted["pooled"].expected_rewards(val).to_numpy()
    scores = {m: dr_value(c.action_probabilities(val).to_numpy(), logged, p, r, q) for m, c in fitted.items()}
    mask = fitted["pooled"].eligible(val)
    for k, action in enumerate(actions):  # served as the fallback would be: epsilon-greedy on one action
        prefer = np.zeros_like(q)
        prefer[:, k] = 1.0
        pi = NBAPolicy._probabilities(prefer, mask, policy.epsilon)
        scores[f"single:{action}"] = dr_value(pi, logged, p, r, q)
    learned = max((m for m in scores if m in fitted), key=scores.__getitem__)
    single = max((m for m in scores if m not in fitted), key=scores.__getitem__)
    if scores[single] >= scores[learned]:  # the simpler policy wins unless a learned one beats it
        return "pooled", single.removeprefix("single:"), scores
    return learned, None, scores
