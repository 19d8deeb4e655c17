"""Purchase-intent and value labels from the resolved event log, one SQL statement each over DuckDB.

For an as-of instant T, a lookback L and a horizon H, the population is the customers with at least one event
(of any type) in (T - L, T], or every customer known by T without a lookback (the default), as for churn
(`training.labels`). Then:

* ``purchased`` (intent) = 1 when the customer makes a purchase (a purchase event with a non-negative amount;
  returns are negative) in (T, T + H];
* ``revenue`` (value) = the customer's revenue net of returns in (T, T + H], floored at 0 (amount =
  ``revenue``, else ``price * quantity``, as in the features).

A label exists only when its whole horizon is observed (T + H <= the last event of the log).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd

from contract.schemas import PURCHASE_TYPES
from training.labels import EVENTS_VIEW, check_as_of, in_population

INTENT_LABEL = "purchased"
VALUE_LABEL = "revenue"
_PURCHASES = ", ".join(f"'{t}'" for t in sorted(PURCHASE_TYPES))
_AMOUNT = "coalesce(e.revenue, e.price * coalesce(e.quantity, 1), 0)"
#: Per label: its SQL over the future purchases ``f`` of a customer at an as-of, and its dtype.
_OUTCOMES: dict[str, tuple[str, str]] = {
    INTENT_LABEL: ("(coalesce(f.n_purchases, 0) > 0)::INTEGER", "int8"),
    VALUE_LABEL: ("greatest(coalesce(f.net_revenue, 0), 0)::DOUBLE", "float64"),
}


def _labels(
    con: duckdb.DuckDBPyConnection,
    as_of: Sequence[datetime],
    label: str,
    *,
    horizon_days: int,
    lookback_days: int | None,
    view: str,
) -> pd.DataFrame:
    """The population at each as-of with ``label``'s outcome (`_OUTCOMES`)."""
    outcome, dtype = _OUTCOMES[label]
    dates = check_as_of(con, as_of, horizon_days=horizon_days, lookback_days=lookback_days, view=view)
    con.register("_target_as_of", pd.DataFrame({"as_of": pd.to_datetime(dates, utc=True)}))
    con.execute("SET TimeZone = 'UTC'")
    sql = f"""
        WITH t AS (SELECT as_of::TIMESTAMPTZ AS as_of FROM _target_as_of),
        ev AS (SELECT customer_id, occurred_at, type, {_AMOUNT} AS amount
               FROM {view} e WHERE customer_id IS NOT NULL),
        pop AS (
            SELECT DISTINCT e.customer_id, t.as_of
            FROM ev e JOIN t
              ON {in_population(lookback_days)}
        ),
        fut AS (
            SELECT e.customer_id, t.as_of,
                   count(*) FILTER (WHERE e.amount >= 0) AS n_purchases, sum(e.amount) AS net_revenue
            FROM ev e JOIN t
              ON e.occurred_at > t.as_of AND e.occurred_at <= t.as_of + to_days({int(horizon_days)})
            WHERE e.type IN ({_PURCHASES})
            GROUP BY ALL
        )
        SELECT p.customer_id, p.as_of AS event_timestamp, {outcome} AS {label}
        FROM pop p LEFT JOIN fut f ON f.customer_id = p.customer_id AND f.as_of = p.as_of
        ORDER BY p.as_of, p.customer_id
    """
    try:
        out = con.execute(sql).df()
    finally:
        con.unregister("_target_as_of")
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    out[label] = out[label].astype(dtype)
    return out


def intent_labels(
    con: duckdb.DuckDBPyConnection,
    as_of: Sequence[datetime],
    *,
    horizon_days: int = 7,
    lookback_days: int | None = 90,
    view: str = EVENTS_VIEW,
) -> pd.DataFrame:
    """Columns customer_id, event_timestamp (= T, UTC), purchased (0/1: a purchase in (T, T + H])."""
    return _labels(
        con, as_of, INTENT_LABEL, horizon_days=horizon_days, lookback_days=lookback_days, view=view
    )


def value_labels(
    con: duckdb.DuckDBPyConnection,
    as_of: Sequence[datetime],
    *,
    horizon_days: int = 90,
    lookback_days: int | None = 90,
    view: str = EVENTS_VIEW,
) -> pd.DataFrame:
    """Columns customer_id, event_timestamp (= T, UTC), revenue (net revenue in (T, T + H], floored at 0)."""
    return _labels(con, as_of, VALUE_LABEL, horizon_days=horizon_days, lookback_days=lookback_days, view=view)
