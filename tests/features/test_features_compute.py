"""The feature function on hand-made logs: exact values, sessions, windows, bad input."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from features_testdata import synthetic_events

from contract.errors import ContractError
from features.compute import LIVE_COLUMNS, customer_features, customer_features_frame
from features.definitions import feature_names


def T(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def ev(
    customer: str, at: str, type_: str, category: str | None = None, revenue: float | None = None, **kw
) -> dict:
    return {"customer_id": customer, "occurred_at": T(at), "type": type_, "category": category,
            "revenue": revenue, "price": kw.get("price"), "quantity": kw.get("quantity")}  # fmt: skip


def run(events: list[dict] | pd.DataFrame, spine: list[tuple[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(events) if isinstance(events, list) else events
    frame = frame.astype({"price": "float64", "revenue": "float64", "category": "object"})
    frame["quantity"] = frame["quantity"].astype("Int64")
    con = duckdb.connect()
    con.register("resolved_events", frame)
    con.register(
        "spine", pd.DataFrame({"customer_id": [c for c, _ in spine], "as_of": [T(t) for _, t in spine]})
    )
    return customer_features(con, "resolved_events", "spine").df()


LOG = [
    ev("a", "2024-01-01 10:00", "page_view"),
    ev("a", "2024-01-01 10:20", "add_to_cart", "shoes", price=10.0),
    ev("a", "2024-01-01 11:00", "purchase", "shoes", 30.0),
    ev("a", "2024-01-05 09:00", "add_to_cart", "hats", price=5.0),
    ev("a", "2024-01-05 09:00", "product_view", "hats"),
    ev("a", "2024-01-06 09:00", "email_open"),
    ev("a", "2024-01-06 09:05", "support_ticket"),
    ev("b", "2024-01-03 09:00", "store_purchase", price=4.0, quantity=3),
    ev("b", "2024-01-04 09:00", "purchase", revenue=-4.0),  # a return: revenue, not a purchase
]


def test_exact_values_on_a_hand_made_log() -> None:
    out = run(
        LOG,
        [
            ("a", "2024-01-01 23:59:59"),
            ("a", "2024-01-10 00:00"),
            ("b", "2024-01-10 00:00"),
            ("z", "2024-01-10"),
        ],
    )
    a1, a2, b, z = (out.iloc[i] for i in range(4))
    assert a1.events_7d == 3 and a1.sessions_7d == 2 and a1.purchases_7d == 1 and a1.revenue_7d == 30.0
    assert a1.cart_adds_no_purchase_30d == 0 and a1.distinct_categories_30d == 1
    assert a1.days_since_last_purchase == pytest.approx(
        (T("2024-01-01 23:59:59") - T("2024-01-01 11:00")).total_seconds() / 86400
    )
    assert a2.events_30d == 7 and a2.sessions_30d == 4 and a2.events_7d == 4  # 7d window starts 01-03 00:00
    assert a2.purchases_7d == 0 and a2.revenue_30d == 30.0 and a2.avg_order_value_90d == 30.0
    assert a2.product_views_7d == 1 and a2.email_opens_30d == 1 and a2.support_tickets_30d == 1
    assert a2.cart_adds_no_purchase_30d == 1 and a2.distinct_categories_30d == 2
    assert a2.days_since_first_seen == pytest.approx(8 + 14 / 24)
    assert a2.days_since_last_event == pytest.approx(3 + 14 / 24 + (55 / 60) / 24)
    assert b.purchases_30d == 1 and b.revenue_30d == pytest.approx(8.0)  # 4 x 3 minus a 4.0 return
    assert np.isnan(z.days_since_last_event) and z.events_90d == 0 and np.isnan(z.avg_order_value_90d)
    assert list(out.columns) == ["customer_id", "as_of", *feature_names("churn_v1")]


def test_sessions_split_after_a_30_minute_gap() -> None:
    log = [ev("s", "2024-02-01 10:00", "page_view"), ev("s", "2024-02-01 10:30", "page_view"),  # gap = 30: same
           ev("s", "2024-02-01 11:00:01", "page_view"),  # gap 30m01s: new session
           ev("s", "2024-02-01 11:00:01", "product_view"),  # same instant: same session
           ev("s", "2024-02-01 13:00", "page_view")]  # fmt: skip
    out = run(log, [("s", "2024-02-01 10:45"), ("s", "2024-02-01 12:00"), ("s", "2024-02-02")])
    assert out["sessions_7d"].tolist() == [1, 2, 3]
    assert out["events_7d"].tolist() == [2, 4, 5]


def test_window_bounds_include_as_of_and_exclude_the_lower_edge() -> None:
    log = [ev("w", "2024-03-01 00:00", "page_view"), ev("w", "2024-03-08 00:00", "page_view")]
    out = run(log, [("w", "2024-03-08 00:00"), ("w", "2024-03-07 23:59:59")])
    assert out["events_7d"].tolist() == [1, 1]  # (as_of - 7d, as_of]: 03-01 00:00 drops out exactly at 03-08
    assert out["events_30d"].tolist() == [2, 1]


def test_the_lines_of_one_order_make_one_purchase() -> None:
    log = [
        ev("o", "2024-02-01 10:00", "purchase", "shoes", 20.0),
        ev("o", "2024-02-01 10:00", "purchase", "hats", 5.0),  # same invoice, another line
        ev("o", "2024-02-01 10:00", "purchase", "hats", 5.0),
        ev("o", "2024-02-03 10:00", "purchase", "bags", 10.0),
    ]
    row = run(log, [("o", "2024-02-04 00:00")]).iloc[0]
    assert row.purchases_7d == 2 and row.purchases_total == 2 and row.revenue_7d == 40.0
    assert row.avg_order_value_90d == 20.0 and row.purchase_gap_mean_days == pytest.approx(2.0)
    assert row.purchase_days_total == 2


def test_purchase_days_count_each_utc_day_with_a_purchase_once() -> None:
    log = [
        ev("d", "2024-02-01 09:00", "purchase", "shoes", 20.0),
        ev("d", "2024-02-01 23:30", "purchase", "hats", 5.0),  # another order, the same UTC day
        ev("d", "2024-02-02 00:10", "purchase", "hats", -5.0),  # a return is no purchase day
        ev("d", "2024-02-02 00:20", "page_view", "hats", None),
        ev("d", "2024-02-03 10:00", "purchase", "bags", 10.0),
    ]
    rows = run(log, [("d", "2024-02-01 12:00"), ("d", "2024-02-02 12:00"), ("d", "2024-02-04 00:00")])
    assert rows.purchases_total.tolist() == [1, 2, 3]
    assert rows.purchase_days_total.tolist() == [1, 1, 2]
    assert rows.active_days_total.tolist() == [1, 2, 3]


def naive(frame: pd.DataFrame, customer: str, as_of: pd.Timestamp) -> dict[str, float]:
    """Oracle: the definitions written directly, one spine row at a time (tests only)."""
    e = frame[(frame.customer_id == customer) & (frame.occurred_at <= as_of)].sort_values("occurred_at")
    w30 = e[e.occurred_at > as_of - pd.Timedelta(days=30)]
    buys = e[e.type.isin(["purchase", "store_purchase"]) & (e.revenue.fillna(0) >= 0)]
    last_buy = buys.occurred_at.max() if len(buys) else pd.NaT
    carts = w30[(w30.type == "add_to_cart") & ((w30.occurred_at > last_buy) if len(buys) else True)]
    starts = e.occurred_at.diff().isna() | (e.occurred_at.diff() > pd.Timedelta(minutes=30))
    days = e.occurred_at.dt.floor("D")
    first_of_day = e.groupby(days).occurred_at.min()
    day_s = pd.Timedelta(days=1).total_seconds()
    recency = (as_of - e.occurred_at.max()).total_seconds() / day_s if len(e) else np.nan
    gap = (
        (e.occurred_at.max() - e.occurred_at.min()).total_seconds() / day_s / (days.nunique() - 1)
        if days.nunique() >= 2
        else np.nan
    )
    opens = e[e.type == "email_open"].occurred_at
    return {
        "active_days_total": days.nunique(),
        "active_days_30d": int((first_of_day > as_of - pd.Timedelta(days=30)).sum()),
        "days_since_last_email_open": (as_of - opens.max()).total_seconds() / day_s if len(opens) else np.nan,
        "days_since_first_purchase": (as_of - buys.occurred_at.min()).total_seconds() / day_s
        if len(buys)
        else np.nan,
        "overdue_ratio_active": recency / gap if gap and gap > 0 else np.nan,
        "purchases_total": buys.occurred_at.nunique(),  # the lines of one order share its instant
        "purchase_days_total": buys.occurred_at.dt.floor("D").nunique(),
        "events_30d": len(w30),
        "revenue_7d": float(
            e[(e.occurred_at > as_of - pd.Timedelta(days=7)) & e.type.eq("purchase")].revenue.sum()
        ),
        "sessions_30d": int((starts & (e.occurred_at > as_of - pd.Timedelta(days=30))).sum()),
        "distinct_categories_30d": w30.category.dropna().nunique(),
        "cart_adds_no_purchase_30d": len(carts),
    }


def test_matches_a_naive_oracle_at_arbitrary_instants() -> None:
    frame = synthetic_events(
        customers=12, days=50, per_customer=40, start=T("2024-01-01").to_pydatetime(), seed=5
    )
    rng = np.random.default_rng(3)
    spine = [
        (f"c{rng.integers(12)}", str(T("2024-01-01") + pd.Timedelta(seconds=int(s))))
        for s in rng.integers(0, 55 * 86400, 60)
    ]
    out = run(frame, spine)
    for (customer, at), (_, row) in zip(spine, out.iterrows(), strict=True):
        expected = naive(frame, customer, T(at))
        got = {k: row[k] for k in expected}
        assert got == pytest.approx(expected, nan_ok=True), (customer, at)


def test_bad_input_names_the_field() -> None:
    con = duckdb.connect()
    con.execute("CREATE VIEW ev AS SELECT 'a' AS customer_id, TIMESTAMPTZ '2024-01-01' AS occurred_at")
    con.execute("CREATE VIEW sp AS SELECT 'a' AS customer_id, TIMESTAMPTZ '2024-01-01' AS as_of")
    with pytest.raises(ContractError, match=r"ev\.type: column is missing"):
        customer_features(con, "ev", "sp")
    con.execute("CREATE OR REPLACE VIEW ev AS SELECT 'a' AS customer_id, TIMESTAMP '2024-01-01' AS occurred_at,"
                " 'x' AS type, NULL AS category, 1.0 AS revenue, 1.0 AS price, 1 AS quantity")  # fmt: skip
    with pytest.raises(ContractError, match=r"ev\.occurred_at: must be TIMESTAMP WITH TIME ZONE"):
        customer_features(con, "ev", "sp")


def test_distinct_categories_count_only_events_inside_the_window_on_a_cut_day() -> None:
    log = [
        ev("k", "2024-04-01 10:00", "product_view", "hats"),
        ev("k", "2024-04-01 20:00", "product_view", "hats"),
        ev("k", "2024-04-02 08:00", "product_view", "bags"),
        ev("k", "2024-04-02 18:00", "product_view", "bags"),
    ]
    out = run(log, [("k", "2024-04-01 12:00"), ("k", "2024-05-01 19:00"), ("k", "2024-05-02 12:00")])
    # 05-01 19:00: window starts 04-01 19:00, so hats (20:00) and bags count; 05-02 12:00: only bags (18:00)
    assert out["distinct_categories_30d"].tolist() == [1, 2, 1]


def test_lifetime_gap_overdue_trend_and_kind_recency_exact_values() -> None:
    out = run(LOG, [("a", "2024-01-01 23:59:59"), ("a", "2024-01-10 00:00"), ("b", "2024-01-10 00:00")])
    a1, a2, b = (out.iloc[i] for i in range(3))
    assert (a1.active_days_total, a1.active_days_7d, a1.events_total, a1.purchases_total) == (1, 1, 3, 1)
    assert np.isnan(a1.active_gap_mean_days) and np.isnan(a1.overdue_ratio_active)
    assert (a2.active_days_total, a2.active_days_7d, a2.active_days_30d, a2.events_total) == (3, 2, 3, 7)
    assert a2.purchases_total == 1 and a2.revenue_total == 30.0
    assert a2.days_since_first_purchase == pytest.approx(8 + 13 / 24)
    assert a2.days_since_last_email_open == pytest.approx(3 + 15 / 24)
    assert np.isnan(a2.days_since_last_email_click)
    assert a2.days_since_last_cart_add == pytest.approx(4 + 15 / 24)
    assert a2.days_since_last_product_view == pytest.approx(4 + 15 / 24)
    assert a2.days_since_support_ticket == pytest.approx(3 + 14 / 24 + 55 / 1440)
    gap = (4 + 23 / 24 + 5 / 1440) / 2  # 01-01 10:00 .. 01-06 09:05 over 3 active days
    assert a2.active_gap_mean_days == pytest.approx(gap)
    assert a2.overdue_ratio_active == pytest.approx((3 + 14 / 24 + 55 / 1440) / gap)
    assert np.isnan(a2.purchase_gap_mean_days) and np.isnan(a2.overdue_ratio_purchase)
    assert a2.activity_rate_tenure == pytest.approx(3 / (8 + 14 / 24))
    assert a2.share_events_7d_of_30d == pytest.approx(4 / 7) and a2.share_events_30d_of_90d == 1.0
    assert a2.share_active_days_30d_of_90d == 1.0 and a2.share_purchases_30d_of_90d == 1.0
    assert (b.purchases_total, b.revenue_total, b.active_days_total) == (1, pytest.approx(8.0), 2)
    assert b.active_gap_mean_days == pytest.approx(1.0)
    assert b.overdue_ratio_active == pytest.approx(5 + 15 / 24)


def test_purchase_gap_and_first_purchase_see_only_the_past() -> None:
    log = [
        ev("p", "2024-01-01 05:00", "page_view"),
        ev("p", "2024-01-01 12:00", "purchase", "shoes", 10.0),
        ev("p", "2024-01-05 12:00", "purchase", "shoes", 20.0),
        ev("p", "2024-01-20 12:00", "purchase", "shoes", 40.0),  # after the as-ofs below: must not count
    ]
    out = run(log, [("p", "2024-01-01 06:00"), ("p", "2024-01-13 12:00")])
    early, late = out.iloc[0], out.iloc[1]
    assert np.isnan(early.days_since_first_purchase) and early.purchases_total == 0
    assert np.isnan(early.share_purchases_30d_of_90d) and np.isnan(early.purchase_gap_mean_days)
    assert late.purchases_total == 2 and late.revenue_total == 30.0
    assert late.purchase_gap_mean_days == pytest.approx(4.0)
    assert late.overdue_ratio_purchase == pytest.approx(2.0)
    assert late.days_since_first_purchase == pytest.approx(12.0)


def naive_live(frame: pd.DataFrame, customer: str, as_of: pd.Timestamp) -> dict[str, object]:
    """Oracle for the live windows, written directly (tests only)."""
    e = frame[(frame.customer_id == customer) & (frame.occurred_at <= as_of)].sort_values("occurred_at")
    if e.empty:
        return {"events_30m": 0, "events_today": 0, "session_minutes": 0.0, "cart_items": 0,
                "minutes_since_last_event": np.nan, "last_category": None}  # fmt: skip
    ts = e.occurred_at.tolist()
    start = len(ts) - 1
    while start > 0 and ts[start] - ts[start - 1] <= pd.Timedelta(minutes=30):
        start -= 1
    amount = e.revenue.fillna(e.price * e.quantity.fillna(1).astype(float))
    buys = e[e.type.isin(["purchase", "store_purchase"]) & (amount.fillna(0) >= 0)]
    after = e[e.occurred_at > buys.occurred_at.max()] if len(buys) else e
    qty = after.quantity.fillna(1).astype(int)
    cart = int(qty[after.type == "add_to_cart"].sum() - qty[after.type == "remove_from_cart"].sum())
    cats = e[e.category.notna()]
    last_cat = cats[cats.occurred_at == cats.occurred_at.max()].category.max() if len(cats) else None
    recent = as_of - ts[-1] <= pd.Timedelta(minutes=30)
    return {
        "events_30m": int((e.occurred_at > as_of - pd.Timedelta(minutes=30)).sum()),
        "events_today": int((e.occurred_at >= as_of.floor("D")).sum()),
        "session_minutes": (as_of - ts[start]).total_seconds() / 60 if recent else 0.0,
        "cart_items": max(cart, 0),
        "minutes_since_last_event": (as_of - ts[-1]).total_seconds() / 60,
        "last_category": last_cat,
    }


def test_live_windows_match_a_naive_oracle() -> None:
    frame = synthetic_events(
        customers=8, days=4, per_customer=60, start=T("2024-06-01").to_pydatetime(), seed=9
    )
    rng = np.random.default_rng(4)
    carts = frame.index[frame.type == "add_to_cart"]
    frame.loc[rng.choice(carts, len(carts) // 3, replace=False), "type"] = "remove_from_cart"
    frame["quantity"] = pd.array(rng.choice([1, 2, 5, -1], len(frame)), dtype="Int64")
    frame.loc[frame.quantity == -1, "quantity"] = pd.NA
    picks = frame.sample(80, random_state=1)
    spine = [
        (c, str(t + pd.Timedelta(seconds=int(s))))
        for c, t, s in zip(picks.customer_id, picks.occurred_at, rng.integers(0, 45 * 60, 80), strict=True)
    ] + [("c0", "2024-06-09"), ("nobody", "2024-06-02")]
    con = duckdb.connect()
    f = frame.astype({"price": "float64", "revenue": "float64", "category": "object"})
    con.register("resolved_events", f)
    con.register(
        "spine", pd.DataFrame({"customer_id": [c for c, _ in spine], "as_of": [T(t) for _, t in spine]})
    )
    out = customer_features(con, "resolved_events", "spine", live=True).df()
    assert list(out.columns) == ["customer_id", "as_of", *feature_names("churn_v1"), *LIVE_COLUMNS]
    assert (
        (out.events_30m > 0).sum() > 40
        and (out.session_minutes > 0).sum() > 20
        and (out.cart_items > 0).any()
    )
    for (customer, at), (_, row) in zip(spine, out.iterrows(), strict=True):
        expected = naive_live(f, customer, T(at))
        got = {k: row[k] for k in expected}
        assert got == pytest.approx(expected, nan_ok=True), (customer, at)


def test_the_eager_frame_is_the_same_statement() -> None:
    frame = pd.DataFrame(LOG).astype({"price": "float64", "revenue": "float64", "category": "object"})
    frame["quantity"] = frame["quantity"].astype("Int64")
    con = duckdb.connect()
    con.register("resolved_events", frame)
    con.register("spine", pd.DataFrame({"customer_id": ["a", "b"], "as_of": [T("2024-01-06 09:30")] * 2}))
    lazy = customer_features(con, "resolved_events", "spine", live=True).df()
    pd.testing.assert_frame_equal(customer_features_frame(con, "resolved_events", "spine", live=True), lazy)
    with pytest.raises(ContractError, match="column is missing"):
        customer_features_frame(con, "spine", "spine")
