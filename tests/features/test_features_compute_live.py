"""The NumPy engine of the feature definition gives the SQL engine's columns, types and numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.compute import customer_features
from features.compute_live import customer_features_now
from features.live_events import EVENTS_SCHEMA

T0 = datetime(2025, 1, 1, tzinfo=UTC)
WHO = ["a", "b", "c"]
TYPES = [
    "purchase",
    "store_purchase",
    "add_to_cart",
    "remove_from_cart",
    "product_view",
    "page_view",
    "email_open",
    "email_click",
    "support_ticket",
]
# instants that make ties, session and day edges, window edges; and any minute over ~4 months
MINUTE = st.one_of(
    st.sampled_from([0, 1, 29, 30, 31, 60, 24 * 60 - 1, 24 * 60, 7 * 24 * 60, 30 * 24 * 60, 90 * 24 * 60]),
    st.integers(0, 130 * 24 * 60),
)
EVENT = st.fixed_dictionaries(
    {
        "who": st.sampled_from(WHO),
        "minute": MINUTE,
        "second": st.sampled_from([0, 0, 0, 17]),
        "type": st.sampled_from(TYPES),
        "category": st.sampled_from([None, "shoes", "hats", "Bags"]),
        "revenue": st.sampled_from([None, 20.0, -5.0, 0.0, 0.1]),
        "price": st.sampled_from([None, 2.5]),
        "quantity": st.sampled_from([None, 1, 3]),
    }
)


def utc_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def engines(rows: list[dict], at: datetime, ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SQL engine, NumPy engine) over the same events, spine = ids × at."""
    events = pa.table(
        {
            "event_id": [f"e{i}" for i in range(len(rows))],
            "occurred_at": [T0 + timedelta(minutes=r["minute"], seconds=r["second"]) for r in rows],
            **{k: [r[k] for r in rows] for k in ("type", "category", "revenue", "price", "quantity")},
        },
        schema=EVENTS_SCHEMA,
    )
    con = utc_connection()
    con.register("ev", events.append_column("customer_id", pa.array([r["who"] for r in rows], pa.string())))
    con.register(
        "sp", pa.table({"customer_id": ids, "as_of": pa.array([at] * len(ids), EVENTS_SCHEMA[1].type)})
    )
    want = customer_features(con, "ev", "sp", live=True).df()
    owner = np.array([ids.index(r["who"]) for r in rows], dtype=np.int64)
    return want, customer_features_now(events, owner, ids, pd.Timestamp(at))


def assert_same(want: pd.DataFrame, got: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert dict(got.dtypes) == dict(want.dtypes)
    for name in want.columns:
        w, g = want[name], got[name]
        if w.dtype == object:
            assert w.isna().tolist() == g.isna().tolist(), name
            assert w.dropna().tolist() == g.dropna().tolist(), name
        elif pd.api.types.is_datetime64_any_dtype(w):
            assert (w == g).all(), name
        else:
            ok = np.isclose(g.to_numpy(float), w.to_numpy(float), rtol=1e-9, atol=1e-9, equal_nan=True)
            assert ok.all(), (name, w[~ok].tolist(), g[~ok].tolist())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(EVENT, min_size=1, max_size=40),
    st.one_of(MINUTE, st.integers(-60, 140 * 24 * 60)),
    st.sampled_from([0, 30, 59]),
)
def test_numpy_engine_equals_sql_engine(rows: list[dict], minute: int, second: int) -> None:
    """Any events (ties, returns, removals, events after as_of), at any instant, for customers with and
    without events: every column of both views, its type and value."""
    at = T0 + timedelta(minutes=minute, seconds=second)
    want, got = engines(rows, at, [*WHO, "nobody"])
    assert_same(want, got)


def test_no_events_at_all_gives_the_empty_rows() -> None:
    events = pa.table({f.name: pa.array([], f.type) for f in EVENTS_SCHEMA}, schema=EVENTS_SCHEMA)
    got = customer_features_now(events, np.array([], np.int64), ["x", "y"], pd.Timestamp(T0))
    con = utc_connection()
    con.register("ev", events.append_column("customer_id", pa.array([], pa.string())))
    con.register(
        "sp", pa.table({"customer_id": ["x", "y"], "as_of": pa.array([T0] * 2, EVENTS_SCHEMA[1].type)})
    )
    assert_same(customer_features(con, "ev", "sp", live=True).df(), got)
    assert got.events_90d.tolist() == [0, 0] and got.days_since_last_event.isna().all()


def test_a_known_history_reads_as_expected() -> None:
    """Hand-checked numbers: three purchases lines at one instant are one order; a cart left after it."""
    rows = [
        {
            "who": "a",
            "minute": 0,
            "second": 0,
            "type": "purchase",
            "category": "hats",
            "revenue": 10.0,
            "price": None,
            "quantity": None,
        },
        {
            "who": "a",
            "minute": 0,
            "second": 0,
            "type": "purchase",
            "category": "shoes",
            "revenue": 5.0,
            "price": None,
            "quantity": None,
        },
        {
            "who": "a",
            "minute": 10,
            "second": 0,
            "type": "add_to_cart",
            "category": None,
            "revenue": None,
            "price": 2.5,
            "quantity": 3,
        },
    ]
    want, got = engines(rows, T0 + timedelta(minutes=20), ["a"])
    assert_same(want, got)
    row = got.iloc[0]
    assert (row.purchases_7d, row.revenue_7d, row.cart_items, row.events_30m) == (1, 15.0, 3, 3)
    assert row.last_category == "shoes" and row.session_minutes == 20.0


def test_one_customers_revenue_never_carries_anothers_rounding() -> None:
    """Running totals restart per customer: a return that cancels a purchase nets to exactly zero even when
    another customer in the same batch has a large, non-round revenue."""
    big = {"who": "a", "second": 0, "type": "purchase", "category": None, "price": None, "quantity": None}
    rows = [{**big, "minute": m, "revenue": 1e9 / 3} for m in range(0, 600, 60)] + [
        {**big, "who": "b", "minute": 10, "revenue": 20.1},
        {**big, "who": "b", "minute": 20, "revenue": -20.1},
    ]
    for at, total in ((T0 + timedelta(minutes=15), 20.1), (T0 + timedelta(days=1), 0.0)):
        want, got = engines(rows, at, ["a", "b"])
        assert_same(want, got)
        assert got.set_index("customer_id").loc["b", "revenue_total"] == total


def test_the_overflow_fallback_finds_the_same_instants() -> None:
    """`_asof` (the lexsort path, for time spans too wide for one int64 key) agrees with the key search."""
    from features.compute_live import EventArrays, _asof, _Instants

    rng = np.random.default_rng(5)
    owner = np.sort(rng.integers(0, 4, 200))
    ts = rng.integers(0, 10**9, 200)
    rows = len(owner)
    env = {"e.type": _coded_types(rows), "e.amount": np.zeros(rows), "e.quantity": np.ones(rows)}
    inst = _Instants.build(EventArrays(owner, ts, env, _coded_categories(rows)))
    q_owner = rng.integers(0, 4, 500)
    q_ts = rng.integers(-10, 10**9 + 10, 500).astype(float)
    q_ts[::17] = np.nan
    for strict in (False, True):
        assert (inst.at(q_owner, q_ts, strict) == _asof(inst.owner, inst.ts, q_owner, q_ts, strict)).all()


def _coded_types(n: int):  # type: ignore[no-untyped-def]
    from features.expr import Coded

    return Coded(np.zeros(n, np.int64), np.asarray(["page_view"], dtype=object))


def _coded_categories(n: int):  # type: ignore[no-untyped-def]
    from features.expr import Coded

    return Coded(np.full(n, -1, np.int64), np.asarray([], dtype=object))
