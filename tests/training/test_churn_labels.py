"""Churn labels on a hand-made resolved event log: exact flags, configurable horizon and activity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pytest

from contract.errors import ContractError, WorkspaceError
from training.labels import churn_labels, log_bounds

T = datetime(2024, 3, 1, tzinfo=UTC)


def _d(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


# (customer, time, type)
EVENTS = [
    ("a", "2024-02-20", "page_view"),  # active before T, views again within 10 days -> retained (any)
    ("a", "2024-03-05", "page_view"),
    ("b", "2024-02-25", "purchase"),  # active before T, buys at day 20 -> retained at 30d, churned at 10d
    ("b", "2024-03-21", "purchase"),
    ("c", "2024-02-28", "page_view"),  # active before T, nothing after -> churned
    ("d", "2023-10-01", "page_view"),  # last seen > 90 days before T -> not in population
    ("d", "2024-03-03", "page_view"),
    ("e", "2024-03-02", "page_view"),  # first seen after T -> not in population
    ("f", "2024-03-01", "store_purchase"),  # event exactly at T counts as before; store purchase after
    ("f", "2024-03-04", "store_purchase"),
    ("g", "2024-02-10", "purchase"),  # only browses after T -> retained (any), churned (purchase)
    ("g", "2024-03-06", "page_view"),
    ("z", "2024-04-30", "page_view"),  # the log runs to 2024-04-30
]


@pytest.fixture()
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    frame = pd.DataFrame(EVENTS, columns=["customer_id", "occurred_at", "type"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    c = duckdb.connect()
    c.register("_ev", frame)
    c.execute("CREATE VIEW resolved_events AS SELECT * FROM _ev")
    yield c
    c.close()


def _flags(df: pd.DataFrame) -> dict[str, int]:
    return dict(zip(df["customer_id"], df["churned"].astype(int), strict=True))


def test_any_activity_30_days(con: duckdb.DuckDBPyConnection) -> None:
    out = churn_labels(con, [T], horizon_days=30)
    assert _flags(out) == {"a": 0, "b": 0, "c": 1, "f": 0, "g": 0}
    assert (out["event_timestamp"] == T).all()
    assert str(out["event_timestamp"].dt.tz) == "UTC"


def test_horizon_is_configurable(con: duckdb.DuckDBPyConnection) -> None:
    assert _flags(churn_labels(con, [T], horizon_days=10)) == {"a": 0, "b": 1, "c": 1, "f": 0, "g": 0}


def test_purchase_activity(con: duckdb.DuckDBPyConnection) -> None:
    out = churn_labels(con, [T], horizon_days=30, activity="purchase")
    assert _flags(out) == {"a": 1, "b": 0, "c": 1, "f": 0, "g": 1}


def test_lookback_is_configurable(con: duckdb.DuckDBPyConnection) -> None:
    out = churn_labels(con, [T], horizon_days=30, lookback_days=6)  # 2024-02-24 .. 03-01
    assert set(out["customer_id"]) == {"b", "c", "f"}


def test_several_as_of_dates(con: duckdb.DuckDBPyConnection) -> None:
    t2 = datetime(2024, 3, 10, tzinfo=UTC)
    out = churn_labels(con, [t2, T], horizon_days=30)
    assert list(out["event_timestamp"].drop_duplicates()) == [_d("2024-03-01"), _d("2024-03-10")]
    later = _flags(out[out["event_timestamp"] == _d("2024-03-10")])
    # at 03-10: d and e are now in the population; only b comes back within 30 days
    assert later == {"a": 1, "b": 0, "c": 1, "d": 1, "e": 1, "f": 1, "g": 1}


def test_horizon_past_end_of_log_is_rejected(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ContractError, match=r"as_of: .*past the end of the event log"):
        churn_labels(con, [datetime(2024, 4, 15, tzinfo=UTC)], horizon_days=30)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"horizon_days": 0}, "horizon_days"), ({"horizon_days": 30, "activity": "login"}, "activity")],
)
def test_bad_arguments_name_the_field(con: duckdb.DuckDBPyConnection, kwargs: dict, field: str) -> None:
    with pytest.raises(ContractError, match=rf"^{field}: "):
        churn_labels(con, [T], **kwargs)


def test_empty_log_is_a_workspace_error() -> None:
    c = duckdb.connect()
    c.execute(
        "CREATE VIEW resolved_events AS SELECT 'x' AS customer_id, now() AS occurred_at, 'a' AS type WHERE false"
    )
    with pytest.raises(WorkspaceError, match="no resolved events"):
        log_bounds(c)
