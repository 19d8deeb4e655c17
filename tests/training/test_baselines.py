"""Churn baselines: the (x, t_x, T) summary from the log, RFM baselines, and every baseline scored."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest

from contract.errors import ContractError
from training.baselines import BASELINES, activity_summary, churn_baselines, rfm_frame

AS_OF = datetime(2024, 3, 10, 23, 59, 59, tzinfo=UTC)
EVENTS = [
    ("a", "2024-03-01 10:00", "purchase"),  # three purchase days -> x = 2, t_x = 8, T = 10
    ("a", "2024-03-01 12:00", "purchase"),
    ("a", "2024-03-05 09:00", "page_view"),
    ("a", "2024-03-05 10:00", "store_purchase"),
    ("a", "2024-03-09 10:00", "purchase"),
    ("a", "2024-03-20 10:00", "purchase"),  # after as-of: ignored
    ("b", "2024-02-20 10:00", "page_view"),  # never bought: x = 0, T from first seen (20 days)
    ("c", "2024-03-10 08:00", "purchase"),  # one purchase today: x = 0, T = 1
]


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    frame = pd.DataFrame(EVENTS, columns=["customer_id", "occurred_at", "type"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    c = duckdb.connect()
    c.register("_ev", frame)
    c.execute("CREATE VIEW resolved_events AS SELECT * FROM _ev")
    return c


def test_activity_summary_purchase(con: duckdb.DuckDBPyConnection) -> None:
    s = activity_summary(con, AS_OF, activity="purchase").set_index("customer_id")
    assert s.loc["a", ["x", "t_x", "T"]].tolist() == [2.0, 8.0, 10.0]
    assert s.loc["b", ["active", "x", "t_x", "T"]].tolist() == [False, 0.0, 0.0, 20.0]
    assert s.loc["c", ["active", "x", "T"]].tolist() == [True, 0.0, 1.0]


def test_activity_summary_any(con: duckdb.DuckDBPyConnection) -> None:
    s = activity_summary(con, AS_OF, activity="any").set_index("customer_id")
    assert s.loc["a", ["x", "t_x", "T"]].tolist() == [2.0, 8.0, 10.0]
    assert s.loc["b", ["active", "x", "T"]].tolist() == [True, 0.0, 20.0]
    with pytest.raises(ContractError, match=r"^activity: "):
        activity_summary(con, AS_OF, activity="login")


def _features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    rec = rng.exponential(15, n)
    f = pd.DataFrame(
        {
            "customer_id": np.char.add("c", np.arange(n).astype(str)),
            "days_since_last_event": rec,
            "days_since_last_purchase": np.where(rng.random(n) < 0.3, np.nan, rec + 2),
            "days_since_first_seen": rec + rng.uniform(0, 60, n),
            "events_90d": rng.poisson(8, n),
            "purchases_90d": rng.poisson(1, n),
            "revenue_90d": rng.gamma(2, 30, n),
        }
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.1 * rec - 1.5)))).astype(int)
    return f, y


def test_rfm_frame_fills_never_active_with_first_seen() -> None:
    f, _ = _features(50, 0)
    rfm = rfm_frame(f, "purchase")
    never = f["days_since_last_purchase"].isna().to_numpy()
    np.testing.assert_allclose(rfm["recency"][never], f["days_since_first_seen"][never])
    with pytest.raises(ContractError, match=r"^features: missing columns .*revenue_90d"):
        rfm_frame(f.drop(columns="revenue_90d"), "any")


def test_every_baseline_scores_the_holdout() -> None:
    train, y = _features(3000, 1)
    holdout, _ = _features(1000, 2)
    rng = np.random.default_rng(3)
    summary = pd.DataFrame(
        {
            "customer_id": holdout["customer_id"],
            "active": True,
            "x": rng.poisson(2, 1000).astype(float),
            "T": 60.0,
        }
    )
    summary["t_x"] = np.where(summary["x"] > 0, rng.uniform(1, 60, 1000), 0.0)
    out = churn_baselines(train, y, holdout, summary, horizon_days=30, activity="any")
    assert tuple(out.scores) == BASELINES
    for name, s in out.scores.items():
        assert s.shape == (1000,) and ((s > 0) & (s < 1)).all(), name
    # recency-only ranks exactly like the raw recency
    order = np.argsort(holdout["days_since_last_event"].to_numpy())
    assert (np.diff(out.scores["recency"][order]) >= 0).all()
    assert {"bgnbd_r", "bgnbd_alpha", "bgnbd_a", "bgnbd_b"} <= set(out.info)
    missing = summary.iloc[1:]
    with pytest.raises(ContractError, match=r"^customer_ids: customers without history"):
        churn_baselines(train, y, holdout, missing, horizon_days=30, activity="any")
