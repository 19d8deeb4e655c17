"""The feature definition's SQL engine: per-customer activity features as of any instant, in one DuckDB query.

Used by the batch job (a spine of customer × day) and for training; the statement is rendered from
`features.spec`, whose formulas the live path evaluates with NumPy (`features.compute_live`), so both get the
very same numbers. Only events at or before each row's ``as_of`` count.

How it stays fast without a Python loop or a wide range join: events are rolled up per (customer, instant)
with running totals; a count over the window ``(as_of - N days, as_of]`` is then the running total at
``as_of`` minus the running total at ``as_of - N days``, each found with an ``ASOF`` join. Distinct categories
(not additive) use a range join over (customer, category, day) rows, which is exact for windows of a day or more.

Short live windows (30 minutes, today, the current session, the cart since the last purchase, the last
category) come from the same running totals; they are selected with ``live=True`` (the `customer_live` view).

Beyond windowed counts, the lifetime history in buy-till-you-die terms: active days (UTC days with an event,
counted on the day's first event), tenure, mean gap between active days / purchases and how overdue the
customer is against that gap, the share of recent activity in longer windows (trend), and the recency of
each engagement kind (email, cart, product view, support).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import duckdb

from contract.errors import ContractError
from features.spec import (
    COUNTERS,
    EVENT_COLUMNS,
    LAST_OF,
    LIVE,
    LIVE_COLUMNS,
    OUTPUTS,
    PAID,
    PER_INSTANT,
    RUNNING,
    SESSION_GAP_MINUTES,
    WINDOW_DAYS,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EVENT_COLUMNS",
    "LIVE_COLUMNS",
    "SESSION_GAP_MINUTES",
    "customer_features",
    "customer_features_frame",
]


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


def _check_inputs(con: duckdb.DuckDBPyConnection, events_view: str, spine_view: str) -> None:
    _check_columns(
        con,
        events_view,
        {c: "TIMESTAMP WITH TIME ZONE" if c == "occurred_at" else "" for c in EVENT_COLUMNS},
    )
    _check_columns(con, spine_view, {"customer_id": "", "as_of": "TIMESTAMP WITH TIME ZONE"})


def feature_sql(events_view: str, spine_view: str, *, live: bool = False) -> str:
    """The feature query (one statement) over an events view and a spine view (customer_id, as_of).

    With `live`, the short live windows (LIVE_COLUMNS) follow the batch features."""
    sums = ",\n        ".join(
        f"{'max' if name in PER_INSTANT else 'sum'}({expr.sql()}) AS n_{name}"
        for name, expr in COUNTERS.items()
    )
    running = ",\n        ".join(
        f"sum(n_{name}) OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS c_{name}"
        for name in RUNNING
    )
    last_of = ",\n        ".join(
        f"max(CASE WHEN {which.sql()} THEN e.ts END) AS {k}_ts" for k, which in LAST_OF.items()
    )
    running_last = ",\n        ".join(
        f"max({k}_ts) OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS last_{k}_ts"
        for k in LAST_OF
    )
    asof = "\n".join(
        f"ASOF LEFT JOIN running w{d} ON w{d}.customer_id = s.customer_id AND s.t{d} >= w{d}.ts"
        for d in WINDOW_DAYS
    )
    outputs = {**OUTPUTS, **(LIVE if live else {})}
    select = ",\n    ".join(f"{expr.sql()} AS {name}" for name, expr in outputs.items())
    live_join = "\nLEFT JOIN cart_live p USING (rid)" if live else ""
    return f"""
WITH ev AS (
    SELECT customer_id, timezone('UTC', occurred_at) AS ts, type, category, quantity,
           coalesce(revenue, price * coalesce(quantity, 1)) AS amount
    FROM {events_view}
    WHERE customer_id IS NOT NULL AND occurred_at IS NOT NULL
),
instants AS (  -- one row per (customer, instant): ties are summed so the ASOF match is unique
    SELECT e.customer_id, e.ts,
        {sums},
        max(CASE WHEN {PAID.sql()} THEN e.ts END) AS purchase_ts,
        max(e.category) AS cat,  -- ties at one instant: the greatest name, so the choice is deterministic
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
             THEN 1 ELSE 0 END AS n_active_days,
        CASE WHEN purchase_ts IS NOT NULL AND coalesce(CAST(max(purchase_ts) OVER (PARTITION BY customer_id
                  ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS DATE) <> CAST(ts AS DATE), TRUE)
             THEN 1 ELSE 0 END AS n_purchase_days
    FROM instants
),
running AS (
    SELECT customer_id, ts,
        {running},
        max(purchase_ts) OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS last_purchase_ts,
        min(purchase_ts) OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS first_purchase_ts,
        {running_last},
        max(CASE WHEN n_sessions = 1 THEN ts END)
            OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS session_start_ts,
        last_value(cat IGNORE NULLS)
            OVER (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS last_category,
        min(ts) OVER (PARTITION BY customer_id) AS first_ts
    FROM gaps
),
spine AS (
    SELECT row_number() OVER () AS rid, customer_id, as_of, timezone('UTC', as_of) AS t,
           {", ".join(f"timezone('UTC', as_of) - INTERVAL {d} DAY AS t{d}" for d in WINDOW_DAYS)},
           timezone('UTC', as_of) - INTERVAL 30 MINUTE AS t30m,
           date_trunc('day', timezone('UTC', as_of)) AS t_day
    FROM {spine_view}
),
base AS (
    SELECT s.*, a.ts AS last_ts, a.last_purchase_ts, a.first_purchase_ts, a.first_ts,
        {", ".join(f"a.last_{k}_ts" for k in LAST_OF)},
        {", ".join(f"a.c_{n}" for n in RUNNING)},
        {", ".join(f"w{d}.c_{n} AS w{d}_{n}" for d in WINDOW_DAYS for n in RUNNING)},
        greatest(s.t30, coalesce(a.last_purchase_ts, s.t30)) AS t_cart,
        a.session_start_ts, a.last_category, m30.c_events AS m30_events, dd.c_events AS day_events
    FROM spine s
    ASOF LEFT JOIN running a ON a.customer_id = s.customer_id AND s.t >= a.ts
    {asof}
    ASOF LEFT JOIN running m30 ON m30.customer_id = s.customer_id AND s.t30m >= m30.ts
    ASOF LEFT JOIN running dd ON dd.customer_id = s.customer_id AND s.t_day > dd.ts
),
cart_live AS (  -- the cart total at the last purchase instant (adds at that instant count as bought)
    SELECT b.rid, r.c_cart_qty
    FROM base b ASOF LEFT JOIN running r ON r.customer_id = b.customer_id AND b.last_purchase_ts >= r.ts
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
    {select}
FROM base b
LEFT JOIN cart k USING (rid)
LEFT JOIN cats c USING (rid){live_join}
ORDER BY b.rid
"""


def customer_features(
    con: duckdb.DuckDBPyConnection, events_view: str, spine_view: str, *, live: bool = False
) -> duckdb.DuckDBPyRelation:
    """Features for each (customer_id, as_of) row of `spine_view`, from `events_view` rows at or before as_of.

    `events_view` needs EVENT_COLUMNS (occurred_at TIMESTAMPTZ); `spine_view` needs customer_id and
    as_of (TIMESTAMPTZ). Rows come back in spine order; customers without events get null recencies and zeros.
    `live` appends LIVE_COLUMNS (the `customer_live` view): the batch job and the live path both ask for them.
    """
    _check_inputs(con, events_view, spine_view)
    return con.sql(feature_sql(events_view, spine_view, live=live))


@functools.lru_cache(maxsize=32)
def _statement(events_view: str, spine_view: str, live: bool) -> duckdb.Statement:
    """`feature_sql` parsed once (the parse is ~5-7 ms of a tiny run); DuckDB copies it on each execute."""
    return duckdb.extract_statements(feature_sql(events_view, spine_view, live=live))[0]


def customer_features_frame(
    con: duckdb.DuckDBPyConnection,
    events_view: str,
    spine_view: str,
    *,
    live: bool = False,
    checked: bool = True,
) -> pd.DataFrame:
    """`customer_features` run at once into pandas: the same statement, executed eagerly.

    A DuckDB relation binds its query once when built and again when run; executing the parsed statement
    directly saves that second bind and the parse, which count for small spines. `checked=False` skips the
    input checks (two DESCRIBEs) for a caller whose views have a fixed, known schema."""
    if checked:
        _check_inputs(con, events_view, spine_view)
    return con.execute(_statement(events_view, spine_view, live)).df()
