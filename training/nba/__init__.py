"""Next-best-action: policy learning from logged decisions (`NBAPolicy`), off-policy evaluation
(`evaluate_offline`, IPW / SNIPW / DR with bootstrap intervals), eligibility rules as data
(`EligibilityRules`) and the training job (`train_nba`). Names are re-exported lazily."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.nba.eligibility import ActionRule, Condition, EligibilityRules
    from training.nba.evaluation import OfflineEvaluation, evaluate_offline
    from training.nba.ope import evaluate_policy, true_value
    from training.nba.policy import NBAPolicy
    from training.nba.train import NBAResult, load_policy, train_nba

_WHERE = {
    "ActionRule": "eligibility",
    "Condition": "eligibility",
    "EligibilityRules": "eligibility",
    "OfflineEvaluation": "evaluation",
    "evaluate_offline": "evaluation",
    "evaluate_policy": "ope",
    "true_value": "ope",
    "NBAPolicy": "policy",
    "NBAResult": "train",
    "load_policy": "train",
    "train_nba": "train",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'training.nba' has no attribute {name!r}")
    return getattr(import_module(f"training.nba.{_WHERE[name]}"), name)
