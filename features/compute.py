"""The one feature function: per-customer activity features as of any instant, in one DuckDB query.

Used by the batch job (a spine of customer × day) and, later, by the real-time path (a spine of one
customer × now): both get the very same numbers. Only events at or before each row's ``as_of`` count.

How it stays fast without a Python loop or a wide range join: events are rolled up per (customer, instant)
with running totals; a count over the window ``(as_of - N days, as_of]`` is then the running total at
``as_of`` minus the running total at ``as_of - N days``, each found with an ``ASOF`` join. Distinct categories
(not additive) use a range join over (customer, category, day) rows, which is exact for windows of a day or more.

Beyond windowed counts, the lifetime history in buy-till-you-die terms: active days (UTC days with an event,
counted on the day's first event), tenure, mean gap between active days / purchases and how overdue the
customer is against that gap, the share of recent activity in longer windows (trend), and the recency of
each engagement kind (email, cart, product view, support).
"""

from __future__ import annotations

import duckdb

from contract.errors import ContractError
from contract.schemas import PURCHASE_TYPES

#: A gap longer than this between two events of a customer starts a new session.
SESSION_GAP_MINUTES = 30

#: Columns `customer_features` needs in its events view.
EVENT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "occurred_at",
    "type",
    "category",
    "revenue",
    "price",
    "quantity",
)

_PURCHASES = ", ".join(f"'{t}'" for t in sorted(PURCHASE_TYPES))

# Additive counters kept as running totals: name -> SQL expression over one event row `e`.
_COUNTERS: dict[str, str] = {
    "events": "1",
    "purchases": f"CASE WHEN e.type IN ({_PURCHASES}) AND coalesce(e.amount, 0) >= 0 THEN 1 ELSE 0 END",
    "revenue": f"CASE WHEN e.type IN ({_PURCHASES}) THEN coalesce(e.amount, 0) ELSE 0 END",
    "product_views": "CASE WHEN e.type = 'product_view' THEN 1 ELSE 0 END",
    "cart_adds": "CASE WHEN e.type = 'add_to_cart' THEN 1 ELSE 0 END",
    "email_opens": "CASE WHEN e.type = 'email_open' THEN 1 ELSE 0 END",
    "email_clicks": "CASE WHEN e.type = 'email_click' THEN 1 ELSE 0 END",
    "support_tickets": "CASE WHEN e.type = 'support_ticket' THEN 1 ELSE 0 END",
}
_RUNNING = [*_COUNTERS, "sessions", "active_days"]

#: Event types whose latest instant is kept: feature suffix -> event type.
_LAST_OF: dict[str, str] = {
    "email_open": "email_open",
    "email_click": "email_click",
    "cart_add": "add_to_cart",
    "product_view": "product_view",
    "support_ticket": "support_ticket",
}


_WINDOWS: tuple[tuple[str, int, str], ...] = (
    *(("events", d, "BIGINT") for d in (7, 30, 90)),
    *(("sessions", d, "BIGINT") for d in (7, 30, 90)),
    *(("purchases", d, "BIGINT") for d in (7, 30, 90)),
    *(("revenue", d, "DOUBLE") for d in (7, 30, 90)),
    *(("product_views", d, "BIGINT") for d in (7, 30)),
    ("email_opens", 30, "BIGINT"),
    ("email_clicks", 30, "BIGINT"),
    *(("support_tickets", d, "BIGINT") for d in (30, 90)),
)

_DAY = 86400.0


def _days(expr: str) -> str:
    return f"epoch({expr}) / {_DAY}"


def _share(num: str, den: str) -> str:
    """num / den, null when den is 0 (no activity in the longer window)."""
    return f"CAST({num} AS DOUBLE) / nullif({den}, 0)"


def _gap(span: str, count: str) -> str:
    """Mean gap in days between `count` occurrences spanning `span` (null below two)."""
    return f"CASE WHEN {count} >= 2 THEN {_days(span)} / ({count} - 1) END"


def _derived() -> str:
    """Lifetime, gap, overdue, trend and per-kind recency columns over the `base` row b."""
    active_gap = _gap("b.last_ts - b.first_ts", "b.c_active_days")
    purchase_gap = _gap("b.last_purchase_ts - b.first_purchase_ts", "b.c_purchases")
    recency = _days("b.t - b.last_ts")
    buy_recency = _days("b.t - b.last_purchase_ts")
    cols = {
        "active_days_7d": _window_expr("active_days", 7, "BIGINT"),
        "active_days_30d": _window_expr("active_days", 30, "BIGINT"),
        "active_days_90d": _window_expr("active_days", 90, "BIGINT"),
        "active_days_total": "CAST(coalesce(b.c_active_days, 0) AS BIGINT)",
        "events_total": "CAST(coalesce(b.c_events, 0) AS BIGINT)",
        "purchases_total": "CAST(coalesce(b.c_purchases, 0) AS BIGINT)",
        "revenue_total": "CAST(coalesce(b.c_revenue, 0) AS DOUBLE)",
        "days_since_first_purchase": _days("b.t - b.first_purchase_ts"),
        **{f"days_since_last_{k}": _days(f"b.t - b.last_{k}_ts") for k in _LAST_OF if k != "support_ticket"},
        "days_since_support_ticket": _days("b.t - b.last_support_ticket_ts"),
        "active_gap_mean_days": active_gap,
        "overdue_ratio_active": f"{recency} / nullif({active_gap}, 0)",
        "purchase_gap_mean_days": purchase_gap,
        "overdue_ratio_purchase": f"{buy_recency} / nullif({purchase_gap}, 0)",
        "activity_rate_tenure": f"CAST(coalesce(b.c_active_days, 0) AS DOUBLE) / greatest({_days('b.t - b.first_ts')}, 1.0)",
        "share_events_7d_of_30d": _share("events_7d", "events_30d"),
        "share_events_30d_of_90d": _share("events_30d", "events_90d"),
        "share_active_days_30d_of_90d": _share("active_days_30d", "active_days_90d"),
        "share_purchases_30d_of_90d": _share("purchases_30d", "purchases_90d"),
    }
    return ",\n    ".join(f"{expr} AS {name}" for name, expr in cols.items())


def _window_expr(name: str, days: int, kind: str) -> str:
    return f"CAST(coalesce(b.c_{name}, 0) - coalesce(b.w{days}_{name}, 0) AS {kind})"


def _check_columns(con: duckdb.DuckDBPyConnection, view: str, needed: dict[str, str]) -> None:
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
    except duckdb.Error as exc:
        raise ContractError(view, f"not a readable table or view: {exc}") from exc
    types = {row[0]: str(row[1]) for row in described}
    for col, kind in needed.items():
        if col not in types:
            raise ContractError(f"{view}.{col}", "column is missing")
        if kind and types[col] != kind:
            raise ContractError(f"{view}.{col}", f"must be {kind}", types[col])


def feature_sql(events_view: str, spine_view: str) -> str:
    """The feature query (one statement) over an events view and a spine view (customer_id, as_of)."""
    sums = ",\n        ".join(f"sum({expr}) AS n_{name}" for name, expr in _COUNTERS.items())
    running = ",\n        ".join(
        f"sum(n_{name}) OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS c_{name}"
        for name in _RUNNING
    )
    windows = ",\n    ".join(f"{_window_expr(n, d, k)} AS {n}_{d}d" for n, d, k in _WINDOWS)
    last_of = ",\n        ".join(
        f"max(CASE WHEN e.type = '{t}' THEN e.ts END) AS {k}_ts" for k, t in _LAST_OF.items()
    )
    running_last = ",\n        ".join(
        f"max({k}_ts) OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS last_{k}_ts"
        for k in _LAST_OF
    )
    asof = "\n".join(
        f"ASOF LEFT JOIN running w{d} ON w{d}.customer_id = s.customer_id AND s.t{d} >= w{d}.ts"
        for d in (7, 30, 90)
    )
    return f"""
WITH ev AS (
    SELECT customer_id, timezone('UTC', occurred_at) AS ts, type, category,
           coalesce(revenue, price * coalesce(quantity, 1)) AS amount
    FROM {events_view}
    WHERE customer_id IS NOT NULL AND occurred_at IS NOT NULL
),
instants AS (  -- one row per (customer, instant): ties are summed so the ASOF match is unique
    SELECT e.customer_id, e.ts,
        {sums},
        max(CASE WHEN e.type IN ({_PURCHASES}) AND coalesce(e.amount, 0) >= 0 THEN e.ts END) AS purchase_ts,
        {last_of}
    FROM ev e GROUP BY e.customer_id, e.ts
),
gaps AS (
    SELECT *,
        CASE WHEN lag(ts) OVER (PARTITION BY customer_id ORDER BY ts) IS NULL
              OR ts - lag(ts) OVER (PARTITION BY customer_id ORDER BY ts) > INTERVAL {SESSION_GAP_MINUTES} MINUTE
             THEN 1 ELSE 0 END AS n_sessions,
        CASE WHEN lag(ts) OVER (PARTITION BY customer_id ORDER BY ts) IS NULL
              OR CAST(ts AS DATE) <> CAST(lag(ts) OVER (PARTITION BY customer_id ORDER BY ts) AS DATE)
             THEN 1 ELSE 0 END AS n_active_days
    FROM instants
),
running AS (
    SELECT customer_id, ts,
        {running},
        max(purchase_ts) OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS last_purchase_ts,
        min(purchase_ts) OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS first_purchase_ts,
        {running_last},
        min(ts) OVER (PARTITION BY customer_id) AS first_ts
    FROM gaps
),
spine AS (
    SELECT row_number() OVER () AS rid, customer_id, as_of, timezone('UTC', as_of) AS t,
           timezone('UTC', as_of) - INTERVAL 7 DAY AS t7,
           timezone('UTC', as_of) - INTERVAL 30 DAY AS t30,
           timezone('UTC', as_of) - INTERVAL 90 DAY AS t90
    FROM {spine_view}
),
base AS (
    SELECT s.*, a.ts AS last_ts, a.last_purchase_ts, a.first_purchase_ts, a.first_ts,
        {", ".join(f"a.last_{k}_ts" for k in _LAST_OF)},
        {", ".join(f"a.c_{n}" for n in _RUNNING)},
        {", ".join(f"w{d}.c_{n} AS w{d}_{n}" for d in (7, 30, 90) for n in _RUNNING)},
        greatest(s.t30, coalesce(a.last_purchase_ts, s.t30)) AS t_cart
    FROM spine s
    ASOF LEFT JOIN running a ON a.customer_id = s.customer_id AND s.t >= a.ts
    {asof}
),
cart AS (
    SELECT b.rid, coalesce(b.c_cart_adds, 0) - coalesce(r.c_cart_adds, 0) AS cart_adds_no_purchase_30d
    FROM base b ASOF LEFT JOIN running r ON r.customer_id = b.customer_id AND b.t_cart >= r.ts
),
cat_days AS (
    SELECT customer_id, category, min(ts) AS min_ts, max(ts) AS max_ts
    FROM ev WHERE category IS NOT NULL
    GROUP BY customer_id, category, date_trunc('day', ts)
),
cats AS (
    SELECT s.rid, count(DISTINCT c.category) AS distinct_categories_30d
    FROM spine s JOIN cat_days c
      ON c.customer_id = s.customer_id AND c.max_ts > s.t30 AND c.min_ts <= s.t
    GROUP BY s.rid
)
SELECT
    b.customer_id, b.as_of,
    epoch(b.t - b.last_ts) / 86400.0 AS days_since_last_event,
    epoch(b.t - b.last_purchase_ts) / 86400.0 AS days_since_last_purchase,
    epoch(b.t - b.first_ts) / 86400.0 AS days_since_first_seen,
    {windows},
    CASE WHEN purchases_90d > 0 THEN revenue_90d / purchases_90d END AS avg_order_value_90d,
    CAST(coalesce(k.cart_adds_no_purchase_30d, 0) AS BIGINT) AS cart_adds_no_purchase_30d,
    CAST(coalesce(c.distinct_categories_30d, 0) AS BIGINT) AS distinct_categories_30d,
    {_derived()},
    CAST(floor(epoch(b.as_of)) AS BIGINT) AS snapshot_at
FROM base b
LEFT JOIN cart k USING (rid)
LEFT JOIN cats c USING (rid)
ORDER BY b.rid
"""


def customer_features(
    con: duckdb.DuckDBPyConnection, events_view: str, spine_view: str
) -> duckdb.DuckDBPyRelation:
    """Features for each (customer_id, as_of) row of `spine_view`, from `events_view` rows at or before as_of.

    `events_view` needs EVENT_COLUMNS (occurred_at TIMESTAMPTZ); `spine_view` needs customer_id and
    as_of (TIMESTAMPTZ). Rows come back in spine order; customers without events get null recencies and zeros.
    """
    _check_columns(
        con,
        events_view,
        {c: "TIMESTAMP WITH TIME ZONE" if c == "occurred_at" else "" for c in EVENT_COLUMNS},
    )
    _check_columns(con, spine_view, {"customer_id": "", "as_of": "TIMESTAMP WITH TIME ZONE"})
    return con.sql(feature_sql(events_view, spine_view))
