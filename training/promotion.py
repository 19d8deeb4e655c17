"""Champion/challenger: a new model is promoted only if it is not worse than the champion on the same holdout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.evaluation import roc_auc
from training.registry import CHALLENGER, CHAMPION, Registry


@dataclass(frozen=True)
class Promotion:
    alias: str  # champion | challenger
    champion_before: str | None
    champion_roc_auc: float | None  # the old champion, scored on the new model's holdout
    reason: str


def decide(
    registry: Registry, name: str, holdout: pd.DataFrame, y: np.ndarray, new_roc_auc: float
) -> Promotion:
    """Score the current champion of ``name`` on ``holdout`` and compare ROC-AUC (ties promote the new model)."""
    before = registry.champion_version(name)
    if before is None:
        return Promotion(CHAMPION, None, None, "first model")
    champ = registry.champion(name)
    if not set(champ.feature_names) <= set(holdout.columns):
        missing = sorted(set(champ.feature_names) - set(holdout.columns))
        return Promotion(
            CHAMPION, before, None, f"champion v{before} needs features the holdout lacks: {missing}"
        )
    old = roc_auc(y, champ.predict(holdout))
    alias = CHAMPION if new_roc_auc >= old else CHALLENGER
    return Promotion(alias, before, old, f"holdout ROC-AUC {new_roc_auc:.4f} vs champion v{before} {old:.4f}")
