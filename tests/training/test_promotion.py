"""The promotion gate on a real MLflow store: a worse challenger is refused, a better one becomes champion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from contract import Settings
from contract.errors import NotFoundError
from cxi.commands.models import app
from training.model import ChurnModel
from training.promotion import (
    HOLDOUT_ARTIFACT,
    PromotionRefused,
    compare,
    decide,
    first_model_floor,
    promote,
    record_holdout,
)
from training.registry import CHALLENGER, CHAMPION, Registry, TrainingRecord

NAME = "churn"


def _data(seed: int, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"recency": rng.exponential(20, n), "events_30d": rng.poisson(4, n).astype(float)})
    logit = 0.1 * X["recency"] - 0.6 * X["events_30d"]
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()


def _register(
    registry: Registry, model: ChurnModel, holdout: tuple[pd.DataFrame, np.ndarray], alias: str
) -> str:
    X, y = holdout
    record = TrainingRecord(
        params={},
        metrics={"holdout_roc_auc": 0.5},
        feature_service="churn_v1",
        data_window={},
        row_counts={"holdout": len(X)},
        input_example=X.head(3),
    )
    reg = registry.log_training(NAME, model.booster_, record)
    record_holdout(registry, reg.run_id, X, y)
    registry.set_alias(NAME, reg.version, alias)
    return reg.version


def _fit(X: pd.DataFrame, y: np.ndarray, rounds: int) -> ChurnModel:
    return ChurnModel(num_boost_round=rounds, min_data_in_leaf=10, num_threads=1, monotone=False).fit(X, y)


def test_gate_refuses_worse_and_accepts_better(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(settings)
    holdout = _data(9, 600)
    X, y = _data(1, 800)
    good = _fit(X, y, 40)
    noise = np.random.default_rng(5).permutation(y)  # labels shuffled: a model that learned nothing real
    worse = _fit(X, noise, 40)

    with pytest.raises(NotFoundError, match="no 'challenger'"):
        compare(registry, NAME)
    v1 = _register(registry, good, holdout, CHAMPION)
    v2 = _register(registry, worse, holdout, CHALLENGER)

    # the CLI shows both metrics and exits 1 with the reason
    monkeypatch.setenv("CXI_MLFLOW_DIR", str(settings.mlflow_dir))
    out = CliRunner().invoke(app, ["promote", NAME, "--workspace", str(settings.workspace)])
    assert out.exit_code == 1, out.output
    assert f"champion v{v1}" in out.output and f"challenger v{v2}" in out.output
    assert "roc_auc (gate)" in out.output and "refused" in out.output and "below" in out.output
    assert registry.champion_version(NAME) == v1

    result = compare(registry, NAME)
    assert result.champion_metrics is not None
    assert result.challenger_metrics["roc_auc"] < result.champion_metrics["roc_auc"]
    with pytest.raises(PromotionRefused, match=f"challenger v{v2} holdout roc_auc"):
        promote(registry, NAME)
    assert (registry.champion_version(NAME), registry.alias_version(NAME, CHALLENGER)) == (v1, v2)

    # a challenger trained on more data beats the champion on its own holdout and is promoted
    Xb, yb = _data(2, 4000)
    v3 = _register(registry, _fit(Xb, yb, 80), holdout, CHALLENGER)
    better = promote(registry, NAME)
    assert better.promote and better.champion == v1 and better.challenger == v3
    assert better.challenger_metrics["roc_auc"] >= better.champion_metrics["roc_auc"]  # type: ignore[index]
    assert registry.champion_version(NAME) == v3
    assert registry.alias_version(NAME, CHALLENGER) is None

    listing = CliRunner().invoke(app, ["list", "--workspace", str(settings.workspace)])
    assert listing.exit_code == 0, listing.output
    assert "champion" in listing.output and "0.5000" in listing.output


def test_a_challenger_without_a_logged_holdout_is_refused(settings: Settings) -> None:
    registry = Registry(settings)
    X, y = _data(3, 300)
    record = TrainingRecord({}, {}, "churn_v1", {}, {}, X.head(3))
    reg = registry.log_training(NAME, _fit(X, y, 10).booster_, record)
    registry.set_alias(NAME, reg.version, CHALLENGER)
    with pytest.raises(PromotionRefused, match=f"holdout: .*{HOLDOUT_ARTIFACT}"):
        promote(registry, NAME)


def test_a_first_model_worse_than_chance_or_its_baseline_waits_as_challenger(settings: Settings) -> None:
    assert first_model_floor({"holdout_roc_auc": 0.71, "delta_roc_auc_vs_best_baseline_high": 0.004}) is None
    assert "chance" in str(first_model_floor({"holdout_roc_auc": 0.19}))
    worse = {
        "holdout_roc_auc": 0.70,
        "best_baseline_roc_auc": 0.75,
        "delta_roc_auc_vs_best_baseline_high": -0.01,
    }
    assert "best baseline" in str(first_model_floor(worse))
    registry = Registry(settings)
    X, y = _data(4, 50)
    kept = decide(registry, "first_of_its_kind", X, y, 0.70, floor=first_model_floor(worse))
    assert kept.alias == CHALLENGER and "not made champion" in kept.reason
    assert decide(registry, "first_of_its_kind", X, y, 0.80, floor=None).alias == CHAMPION
