"""train_churn end to end on a real Feast store and a real MLflow registry (synthetic seeded log)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from churn_synthetic import churn_events, write_workspace

from contract import Settings, Workspace
from contract.errors import ContractError, WorkspaceError
from training.churn import NOT_MODEL_INPUTS, plan_as_of, train_churn
from training.model import ChurnModel
from training.registry import CHALLENGER, CHAMPION, Registry

START = datetime(2024, 1, 1, tzinfo=UTC)


def test_plan_keeps_training_windows_before_the_holdout() -> None:
    first, last = START, START + timedelta(days=120, hours=5)
    plan = plan_as_of(first, last, horizon_days=30)
    assert plan.holdout_as_of == datetime(
        2024, 3, 30, 23, 59, 59, tzinfo=UTC
    )  # 03-31 end + 30 d > 04-30 05:00
    assert plan.holdout_as_of + timedelta(days=30) <= last
    assert plan.train_as_of[-1] == plan.holdout_as_of - timedelta(days=30)
    assert all(t + timedelta(days=30) <= plan.holdout_as_of for t in plan.train_as_of)
    assert all(t >= first + timedelta(days=14) for t in plan.train_as_of)
    assert {b - a for a, b in zip(plan.train_as_of, plan.train_as_of[1:], strict=False)} == {
        timedelta(days=7)
    }


def test_plan_rejects_bad_as_of_and_short_logs() -> None:
    with pytest.raises(ContractError, match=r"^as_of: "):
        plan_as_of(START, START + timedelta(days=60), horizon_days=30, as_of=date(2024, 2, 15))
    with pytest.raises(WorkspaceError, match="event log too short"):
        plan_as_of(START, START + timedelta(days=40), horizon_days=30)


@pytest.mark.slow
@pytest.mark.integration
def test_train_register_and_challenge(make_settings: Callable[..., Settings]) -> None:
    from features.store import FeatureRepo

    settings = make_settings(churn_horizon_days=21)
    ws = Workspace(settings.workspace)
    write_workspace(ws, churn_events(customers=800, days=100, start=START, seed=3))
    repo = FeatureRepo(settings)
    repo.build(ws)
    repo.apply()

    first = train_churn(settings, ws, model=ChurnModel(num_threads=1))
    assert (first.version, first.alias, first.champion_before) == ("1", CHAMPION, None)
    assert first.metrics["holdout_roc_auc"] > 0.7, first.metrics
    assert 0 < first.metrics["holdout_brier"] < 0.25
    assert not set(first.feature_names) & NOT_MODEL_INPUTS
    assert all(t + timedelta(days=21) <= first.plan.holdout_as_of for t in first.plan.train_as_of)
    assert min(first.rows.values()) > 50

    # baselines in the same run, on the same holdout; calibration folded into the registered booster
    assert set(first.baselines) == {"recency", "logreg_rfm", "bgnbd"}
    for name in first.baselines:
        for metric in ("roc_auc", "pr_auc", "brier", "top_decile_lift"):
            assert np.isfinite(first.metrics[f"baseline_{name}_{metric}"])
    assert first.metrics["delta_roc_auc_vs_best_baseline"] == pytest.approx(
        first.metrics["holdout_roc_auc"] - first.metrics["best_baseline_roc_auc"]
    )
    assert first.calibration["calibration.method"] in ("none", "platt")
    assert first.metrics["holdout_ece"] < 0.1, first.metrics

    registry = Registry(settings)
    champ = registry.champion("churn")
    assert (champ.version, champ.feature_service, champ.feature_names) == (
        "1",
        "churn_v1",
        first.feature_names,
    )
    run = registry.client.get_run(first.run_id)
    assert run.data.metrics["baseline_bgnbd_roc_auc"] == pytest.approx(
        first.metrics["baseline_bgnbd_roc_auc"]
    )
    assert run.data.tags["calibration.method"] == first.calibration["calibration.method"]
    mv = registry.client.get_model_version("churn", "1")
    assert mv.tags["calibration.in_booster"] in ("true",) or mv.tags["calibration.method"] == "none"
    plots = {a.path for a in registry.client.list_artifacts(first.run_id, "plots")}
    assert {
        f"plots/{p}.png" for p in ("roc", "pr", "calibration", "lift_gain", "feature_importance")
    } <= plots

    # a model that cannot split scores 0.5 on the same holdout: registered, but only as challenger
    weak = ChurnModel(num_boost_round=2, min_data_in_leaf=10**6, num_threads=1)
    second = train_churn(settings, ws, model=weak)
    assert (second.version, second.alias, second.champion_before) == ("2", CHALLENGER, "1")
    assert second.champion_before_roc_auc == pytest.approx(first.metrics["holdout_roc_auc"])
    assert second.metrics["holdout_roc_auc"] < second.metrics["champion_holdout_roc_auc"]
    assert registry.champion_version("churn") == "1"
    assert registry.alias_version("churn", CHALLENGER) == "2"
    run = registry.client.get_run(second.run_id)
    assert run.data.tags["promotion"] == CHALLENGER
    assert np.isclose(run.data.metrics["champion_holdout_roc_auc"], first.metrics["holdout_roc_auc"])
