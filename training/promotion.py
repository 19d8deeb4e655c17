"""Champion/challenger: a new model is promoted only if it is not worse than the champion on the same holdout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from contract.errors import CXIError, NotFoundError
from training.evaluation import binary_metrics, roc_auc
from training.pipeline import decide_by
from training.registry import CHALLENGER, CHAMPION, Registry


@dataclass(frozen=True)
class Promotion:
    alias: str  # champion | challenger
    champion_before: str | None
    champion_roc_auc: float | None  # the old champion, scored on the new model's holdout
    reason: str


def first_model_floor(metrics: dict[str, float]) -> str | None:
    """Why a first model must not become champion (None: it may): its holdout ROC-AUC is below chance, or
    surely below its best baseline's (the whole 95% interval of the difference under zero)."""
    auc = metrics.get("holdout_roc_auc")
    if auc is not None and auc < 0.5:
        return f"holdout ROC-AUC {auc:.4f} is below chance (0.5)"
    high = metrics.get("delta_roc_auc_vs_best_baseline_high")
    if high is not None and high < 0:
        return (
            f"holdout ROC-AUC {auc:.4f} is below the best baseline's {metrics['best_baseline_roc_auc']:.4f} "
            f"(95% interval of the difference up to {high:+.4f})"
        )
    return None


def decide(
    registry: Registry,
    name: str,
    holdout: pd.DataFrame,
    y: np.ndarray,
    new_roc_auc: float,
    *,
    floor: str | None = None,
) -> Promotion:
    """`training.pipeline.decide_by` with ROC-AUC on ``y``: the champion scored on ``holdout``, ties promote the
    new model, and a first model with a ``floor`` reason (`first_model_floor`) waits as challenger, so nothing
    serves a model worse than chance or than a plain baseline."""
    d = decide_by(
        registry, name, holdout, lambda s: roc_auc(y, s), new_roc_auc, metric_name="ROC-AUC", floor=floor
    )
    return Promotion(d.alias, d.champion_before, d.champion_value, d.reason)


# --- the promotion gate behind `cxi models promote` ---------------------------------------------------------
#: Run artifact holding a run's holdout rows: the model's feature columns plus ``HOLDOUT_LABEL`` (0/1).
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
HOLDOUT_LABEL = "label"
#: Compared on the holdout; the gate decides on the first (higher is better).
GATE_METRIC = "roc_auc"


class PromotionRefused(CXIError):
    """The challenger does not beat the champion (or cannot be compared with it)."""


@dataclass(frozen=True)
class Comparison:
    """Champion and challenger scored on the challenger's holdout rows."""

    name: str
    challenger: str
    champion: str | None
    rows: int
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    promote: bool
    reason: str


def record_holdout(registry: Registry, run_id: str, features: pd.DataFrame, y: np.ndarray) -> None:
    """Persist a run's holdout (features + label) so a later promotion re-scores models on the same rows."""
    frame = features.reset_index(drop=True).copy()
    frame[HOLDOUT_LABEL] = np.asarray(y).astype("int8")
    registry.log_frame(run_id, frame, HOLDOUT_ARTIFACT)


def compare(registry: Registry, name: str) -> Comparison:
    """Score the champion and the challenger of ``name`` on the challenger's logged holdout."""
    version = registry.alias_version(name, CHALLENGER)
    if version is None:
        raise NotFoundError(f"model: {name!r} has no {CHALLENGER!r} version to promote")
    challenger = registry.load(name, CHALLENGER)
    holdout = registry.load_frame(challenger.run_id, HOLDOUT_ARTIFACT)
    if holdout is None:
        raise PromotionRefused(
            f"holdout: run {challenger.run_id} of {name} v{version} logged no {HOLDOUT_ARTIFACT}; "
            "retrain so the holdout is recorded"
        )
    y = holdout[HOLDOUT_LABEL].to_numpy()
    new = binary_metrics(y, challenger.predict(holdout))
    before = registry.champion_version(name)
    if before is None:
        return Comparison(name, version, None, len(holdout), new, None, True, "no champion yet")
    champ = registry.champion(name)
    missing = sorted(set(champ.feature_names) - set(holdout.columns))
    if missing:
        return Comparison(
            name, version, before, len(holdout), new, None, True,
            f"champion v{before} needs features the holdout lacks ({missing}): it cannot be scored",
        )  # fmt: skip
    old = binary_metrics(y, champ.predict(holdout))
    better = new[GATE_METRIC] >= old[GATE_METRIC]
    verdict = "not below" if better else "below"
    reason = (
        f"challenger v{version} holdout {GATE_METRIC} {new[GATE_METRIC]:.4f} is {verdict} "
        f"champion v{before}'s {old[GATE_METRIC]:.4f} on the same {len(holdout)} rows"
    )
    return Comparison(name, version, before, len(holdout), new, old, better, reason)


def promote(registry: Registry, name: str, comparison: Comparison | None = None) -> Comparison:
    """Move ``champion`` to the challenger if it is not worse on its holdout; PromotionRefused otherwise.

    ``comparison``: a `compare` result already computed for ``name`` (it is not recomputed)."""
    result = comparison or compare(registry, name)
    if not result.promote:
        registry.set_tags(name, result.challenger, {"promotion_refused": result.reason})
        raise PromotionRefused(f"not promoted: {result.reason}")
    registry.set_alias(name, result.challenger, CHAMPION)
    registry.delete_alias(name, CHALLENGER)
    registry.set_tags(name, result.challenger, {"promotion": CHAMPION, "promotion_reason": result.reason})
    return result
