"""Behavioural checks of the churn model through the one feature function: direction, not accuracy.

More recent activity never raises churn risk, all else equal; adding a purchase lowers it. Both with boosting
from a constant and from the buy-till-you-die prior (`training.prior`), which must keep both guarantees."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from churn_synthetic import churn_events

from features.compute import EVENT_COLUMNS, customer_features
from training.labels import churn_labels
from training.model import ChurnModel
from training.prior import BTYDPrior

START = datetime(2024, 1, 1, tzinfo=UTC)
NOT_INPUTS = ("customer_id", "as_of", "snapshot_at")


def _features(con: duckdb.DuckDBPyConnection, events: pd.DataFrame, spine: pd.DataFrame) -> pd.DataFrame:
    frame = events.reindex(columns=list(EVENT_COLUMNS))
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    for c in ("revenue", "price"):
        frame[c] = frame[c].astype("float64")
    frame["quantity"] = frame["quantity"].astype("float64")
    con.register("_ev", frame)
    con.register("_sp", spine.assign(as_of=pd.to_datetime(spine["as_of"], utc=True)))
    con.execute("CREATE OR REPLACE TEMP VIEW resolved_events AS SELECT * FROM _ev")
    con.execute(
        "CREATE OR REPLACE TEMP VIEW spine AS SELECT customer_id, as_of::TIMESTAMPTZ AS as_of FROM _sp"
    )
    return customer_features(con, "resolved_events", "spine").df()


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    yield c
    c.close()


@pytest.fixture(scope="module", params=[False, True], ids=["constant-start", "btyd-prior"])
def model(con: duckdb.DuckDBPyConnection, request: pytest.FixtureRequest) -> ChurnModel:
    events = churn_events(customers=1500, days=100, start=START, seed=5)
    as_of = [START + timedelta(days=d, hours=23, minutes=59, seconds=59) for d in (30, 45, 60)]
    _features(con, events, pd.DataFrame({"customer_id": ["x"], "as_of": [as_of[0]]}))
    labels = churn_labels(con, as_of, horizon_days=21)
    feats = _features(
        con, events, labels.rename(columns={"event_timestamp": "as_of"})[["customer_id", "as_of"]]
    )
    X = feats.drop(columns=list(NOT_INPUTS)).astype("float64")
    prior = BTYDPrior("any", 21) if request.param else None
    y = labels["churned"].to_numpy()
    calib = np.arange(len(X)) % 4 == 0  # calibrated, so the prior is served at the Platt slope, not at 1
    model = ChurnModel(num_boost_round=150, min_data_in_leaf=20, num_threads=1, prior=prior)
    return model.fit(X[~calib], y[~calib], calib_set=(X[calib], y[calib]))


def test_more_recent_activity_never_raises_churn_risk(model: ChurnModel) -> None:
    rng = np.random.default_rng(0)
    names = model.feature_names_
    base = pd.DataFrame(rng.uniform(0, 20, (200, len(names))), columns=names)
    for col in ("days_since_last_event", "days_since_last_purchase"):
        grid = np.linspace(0, 90, 31)
        rows = base.loc[base.index.repeat(len(grid))].reset_index(drop=True)
        rows[col] = np.tile(grid, len(base))
        p = model.predict_proba(rows)[:, 1].reshape(len(base), len(grid))
        assert (np.diff(p, axis=1) >= -1e-12).all(), col  # risk never falls as the last activity ages
    # and the constraint is not vacuous: recency moves the score
    assert (p[:, -1] - p[:, 0]).max() > 0.05


def test_a_purchase_lowers_churn_risk(con: duckdb.DuckDBPyConnection, model: ChurnModel) -> None:
    """One more purchase (at the customer's usual basket value) through the feature function never raises risk."""
    rng = np.random.default_rng(1)
    n = 60
    now = START + timedelta(days=80, hours=23, minutes=59, seconds=59)
    ids = np.char.add("k", np.arange(n).astype(str))
    ages = rng.uniform(1, 60, n)
    history = pd.DataFrame(
        {
            "customer_id": np.repeat(ids, 3),
            "occurred_at": np.repeat(now - pd.to_timedelta(ages, unit="D"), 3)
            - pd.to_timedelta(np.tile([0, 3, 9], n), unit="D"),
            "type": np.tile(["page_view", "purchase", "purchase"], n),
            "revenue": np.tile([np.nan, 40.0, 40.0], n),
        }
    )
    bought = pd.DataFrame(
        {
            "customer_id": ids,
            "occurred_at": now - pd.to_timedelta(rng.uniform(0.01, 0.9, n), unit="D"),
            "type": "purchase",
            "revenue": 40.0,  # the same basket value: average order value stays put
        }
    )
    spine = pd.DataFrame({"customer_id": ids, "as_of": now})
    before = _features(con, history, spine)
    after = _features(con, pd.concat([history, bought], ignore_index=True), spine)
    assert (after["purchases_7d"] == before["purchases_7d"] + 1).all()
    X0, X1 = (f.drop(columns=list(NOT_INPUTS)).astype("float64") for f in (before, after))
    p0, p1 = model.predict_proba(X0)[:, 1], model.predict_proba(X1)[:, 1]
    assert (p1 <= p0 + 1e-12).all()
    assert (p1 < p0).mean() > 0.5  # it lowers risk for most, not only ties
