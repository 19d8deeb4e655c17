"""Intent and value labels (SQL on a hand-made log) and training end to end on real Feast + MLflow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from predictive_fixture import START, VALUE_HORIZON, Trained, shared

from contract import Settings
from contract.errors import ContractError
from training.registry import CHALLENGER, CHAMPION, Registry
from training.targets import intent_labels, value_labels
from training.value import ValueModel, carry_forward, regression_metrics, top_decile_capture, train_value

T = datetime(2024, 1, 10, 23, 59, 59, tzinfo=UTC)


@pytest.fixture(scope="session")
def predictive(make_settings: Callable[..., Settings]) -> Trained:
    return shared(make_settings)


def _log() -> duckdb.DuckDBPyConnection:
    day = timedelta(days=1)
    rows = [  # customer, when, type, revenue, price, quantity
        ("a", T - 2 * day, "page_view", None, None, None),
        ("a", T + 3 * day, "purchase", 50.0, None, None),
        ("a", T + 5 * day, "purchase", -20.0, None, None),  # a return
        ("b", T - 1 * day, "purchase", 10.0, None, None),
        ("b", T + 9 * day, "store_purchase", None, 5.0, 3),  # after 7 days, inside 30
        ("c", T - 1 * day, "page_view", None, None, None),
        ("c", T + 2 * day, "purchase", -30.0, None, None),  # only a return: no purchase, revenue floored
        ("d", T - 200 * day, "purchase", 99.0, None, None),  # outside the lookback: not in the population
        ("d", T + 1 * day, "purchase", 99.0, None, None),
        ("z", T + 40 * day, "page_view", None, None, None),  # extends the log
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "occurred_at", "type", "revenue", "price", "quantity"])
    con = duckdb.connect()
    con.register("_raw", frame)
    con.execute("CREATE VIEW resolved_events AS SELECT * FROM _raw")
    return con


def test_intent_and_value_labels() -> None:
    con = _log()
    intent = intent_labels(con, [T], horizon_days=7).set_index("customer_id")["purchased"].to_dict()
    assert intent == {"a": 1, "b": 0, "c": 0}
    value = value_labels(con, [T], horizon_days=30).set_index("customer_id")["revenue"].to_dict()
    assert value == {"a": 30.0, "b": 15.0, "c": 0.0}
    with pytest.raises(ContractError, match=r"^as_of: .*horizon runs past"):
        value_labels(con, [T], horizon_days=90)
    with pytest.raises(ContractError, match=r"^horizon_days: "):
        intent_labels(con, [T], horizon_days=0)


def test_regression_metrics_and_baseline() -> None:
    y = np.array([0.0, 0.0, 10.0, 90.0] * 5)
    assert top_decile_capture(y, y) == pytest.approx(180 / 500)  # top 2 of 20 rows: two 90s
    m = regression_metrics(y, y)
    assert (m["rmse"], m["mae"], m["spearman"], m["total_ratio"]) == (0.0, 0.0, pytest.approx(1.0), 1.0)
    frame = pd.DataFrame({"revenue_90d": [90.0, np.nan, -5.0]})
    assert carry_forward(frame, 30).tolist() == [30.0, 0.0, 0.0]


@pytest.mark.integration
def test_intent_trains_calibrated_and_registers(predictive: Trained) -> None:
    r, m = predictive.intent, predictive.intent.metrics
    assert (r.name, r.version, r.alias) == ("intent", "1", CHAMPION)
    assert all(t + timedelta(days=7) <= r.plan.holdout_as_of for t in r.plan.train_as_of)
    assert m["holdout_roc_auc"] > 0.6, m
    assert 0 < m["holdout_brier"] < m["holdout_base_rate"] * (1 - m["holdout_base_rate"]) + 0.01
    assert m["holdout_ece"] < 0.1, m
    assert {"baseline_recency_roc_auc", "baseline_logreg_rfm_roc_auc"} <= set(m)
    registry = Registry(predictive.settings)
    champ = registry.champion("intent")
    assert (champ.feature_service, champ.feature_names) == ("churn_v1", r.feature_names)
    assert "snapshot_at" not in champ.feature_names
    run = registry.client.get_run(r.run_id)
    assert run.data.params["horizon_days"] == "7"
    assert {a.path for a in registry.client.list_artifacts(r.run_id, "plots")} >= {
        "plots/roc.png",
        "plots/calibration.png",
    }


@pytest.mark.integration
def test_value_beats_nothing_silly_and_registers(predictive: Trained) -> None:
    r, m = predictive.value, predictive.value.metrics
    assert (r.name, r.alias, m["horizon_days"]) == ("value", CHAMPION, VALUE_HORIZON)
    for key in ("rmse", "mae", "spearman", "top_decile_capture"):
        assert np.isfinite(m[f"holdout_{key}"]) and np.isfinite(m[f"baseline_carry_forward_{key}"])
    assert m["holdout_spearman"] > 0.2, m
    assert m["holdout_top_decile_capture"] > 0.1, m  # better than a random tenth
    registry = Registry(predictive.settings)
    assert registry.champion("value").version == r.version
    assert "model_card.md" in {a.path for a in registry.client.list_artifacts(r.run_id)}


@pytest.mark.integration
def test_value_gate_and_short_log(predictive: Trained) -> None:
    weak = ValueModel(num_boost_round=1, min_data_in_leaf=10**6, num_threads=1)
    second = train_value(predictive.settings, predictive.ws, horizon_days=VALUE_HORIZON, model=weak)
    assert (second.alias, second.champion_before) == (CHALLENGER, predictive.value.version)
    assert second.metrics["holdout_rmse"] > second.metrics["champion_holdout_rmse"]
    assert Registry(predictive.settings).champion_version("value") == predictive.value.version
    with pytest.raises(ContractError, match=r"^as_of: no value training possible.*shorter --horizon-days"):
        train_value(predictive.settings, predictive.ws)  # 90 days on a 100-day log
    with pytest.raises(ContractError, match=r"^as_of: "):
        train_value(predictive.settings, predictive.ws, horizon_days=VALUE_HORIZON, as_of=date(2024, 4, 5))
    assert START.year == 2024
