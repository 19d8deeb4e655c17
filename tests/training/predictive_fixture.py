"""One shared workspace for intent, value and scoring tests: a seeded log, Feast snapshots, trained models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from churn_synthetic import churn_events, write_workspace

from contract import Settings, Workspace
from training.model import ChurnModel
from training.pipeline import PredictiveResult

START = datetime(2024, 1, 1, tzinfo=UTC)
VALUE_HORIZON = 21


@dataclass
class Trained:
    settings: Settings
    ws: Workspace
    intent: PredictiveResult
    value: PredictiveResult


_BUILT: list[Trained] = []


def shared(make_settings: Callable[..., Settings]) -> Trained:
    """Built once per test session, whichever test module asks first."""
    if not _BUILT:
        _BUILT.append(build(make_settings))
    return _BUILT[0]


def build(make_settings: Callable[..., Settings]) -> Trained:
    from features.store import FeatureRepo
    from training.intent import train_intent
    from training.value import ValueModel, train_value

    settings = make_settings()
    ws = Workspace(settings.workspace)
    write_workspace(ws, churn_events(customers=500, days=100, start=START, seed=5))
    repo = FeatureRepo(settings)
    repo.build(ws)
    repo.apply()
    intent = train_intent(
        settings, ws, model=ChurnModel(monotone=False, num_threads=1, min_data_in_leaf=20), max_train_dates=8
    )
    value = train_value(
        settings,
        ws,
        horizon_days=VALUE_HORIZON,
        max_train_dates=8,
        model=ValueModel(num_threads=1, min_data_in_leaf=20),
    )
    return Trained(settings, ws, intent, value)
