"""Churn labels from the resolved event log, one SQL statement over DuckDB.

For an as-of date T, a lookback L and a horizon H:

* population: customers with at least one event (of any type) in (T - L, T], or, with no lookback (L = None,
  the training default), every customer known by T: the customers `cxi score` scores, dormant ones included;
* churned = 1 when the customer has no *activity* in (T, T + H], where activity is any event or only a
  purchase (``settings.churn_activity``).

A label exists only when its whole horizon is observed (T + H <= the last event of the log).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from contract.errors import ContractError, WorkspaceError
from contract.schemas import PURCHASE_TYPES

ACTIVITIES: tuple[str, ...] = ("any", "purchase")
EVENTS_VIEW = "resolved_events"


def to_utc(value: datetime, field: str = "as_of") -> datetime:
    """An aware datetime in UTC; a naive one is read as UTC."""
    if not isinstance(value, datetime):
        raise ContractError(field, "must be a datetime", value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def log_bounds(con: duckdb.DuckDBPyConnection, view: str = EVENTS_VIEW) -> tuple[datetime, datetime]:
    """First and last event time of the resolved log (UTC)."""
    rows = con.execute(
        f"SELECT min(occurred_at), max(occurred_at) FROM {view} WHERE customer_id IS NOT NULL"
    ).fetchall()  # fetchall: DuckDB 2 keeps a half-read result open and blocks the connection
    row = rows[0]
    if row[0] is None:
        raise WorkspaceError(
            f"no resolved events in view {view!r}: import events and resolve identities first"
        )
    return to_utc(row[0]), to_utc(row[1])


def check_as_of(
    con: duckdb.DuckDBPyConnection,
    as_of: Sequence[datetime],
    *,
    horizon_days: int,
    lookback_days: int | None,
    view: str = EVENTS_VIEW,
) -> list[datetime]:
    """The sorted distinct as-of instants (UTC) after checking the horizon, the lookback and that every
    horizon ends inside the log in ``view``; ContractError naming the argument otherwise."""
    if horizon_days < 1:
        raise ContractError("horizon_days", "must be at least 1 day", horizon_days)
    if lookback_days is not None and lookback_days < 1:
        raise ContractError(
            "lookback_days", "must be at least 1 day (or None: every customer known)", lookback_days
        )
    if not as_of:
        raise ContractError("as_of", "at least one as-of date is required")
    dates = sorted({to_utc(t) for t in as_of})
    _, end = log_bounds(con, view)
    late = [t for t in dates if t + timedelta(days=horizon_days) > end]
    if late:
        raise ContractError(
            "as_of",
            f"the {horizon_days}-day horizon runs past the end of the event log ({end.isoformat()}); "
            f"latest usable as-of date is {(end - timedelta(days=horizon_days)).isoformat()}",
            late[0].isoformat(),
        )
    return dates


def in_population(lookback_days: int | None) -> str:
    """The join condition of an event ``e`` that puts its customer in the population at ``t.as_of``."""
    if lookback_days is None:
        return "e.occurred_at <= t.as_of"
    return f"e.occurred_at > t.as_of - to_days({int(lookback_days)}) AND e.occurred_at <= t.as_of"


def population_words(lookback_days: int | None) -> str:
    """The population in a model card's words."""
    return "known by" if lookback_days is None else f"active in the {lookback_days} days before"


def churn_labels(
    con: duckdb.DuckDBPyConnection,
    as_of: Sequence[datetime],
    *,
    horizon_days: int,
    activity: str = "any",
    lookback_days: int | None = 90,
    view: str = EVENTS_VIEW,
) -> pd.DataFrame:
    """Labels for every (customer, as-of date): columns customer_id, event_timestamp (= T, UTC), churned (0/1).

    ``con`` must expose ``view`` with at least customer_id, occurred_at and type. Raises ContractError for
    bad arguments or an as-of date whose horizon runs past the end of the log.
    """
    if activity not in ACTIVITIES:
        raise ContractError("activity", f"must be one of {', '.join(ACTIVITIES)}", activity)
    dates = check_as_of(con, as_of, horizon_days=horizon_days, lookback_days=lookback_days, view=view)

    activity_filter = (
        "TRUE"
        if activity == "any"
        else "e.type IN (" + ", ".join(f"'{t}'" for t in sorted(PURCHASE_TYPES)) + ")"
    )
    con.register("_churn_as_of", pd.DataFrame({"as_of": pd.to_datetime(dates, utc=True)}))
    con.execute("SET TimeZone = 'UTC'")
    sql = f"""
        WITH t AS (SELECT as_of::TIMESTAMPTZ AS as_of FROM _churn_as_of),
        ev AS (SELECT customer_id, occurred_at, type FROM {view} WHERE customer_id IS NOT NULL),
        pop AS (
            SELECT DISTINCT e.customer_id, t.as_of
            FROM ev e JOIN t
              ON {in_population(lookback_days)}
        ),
        act AS (
            SELECT DISTINCT e.customer_id, t.as_of
            FROM ev e JOIN t
              ON e.occurred_at > t.as_of AND e.occurred_at <= t.as_of + to_days({int(horizon_days)})
            WHERE {activity_filter}
        )
        SELECT p.customer_id, p.as_of AS event_timestamp, (a.customer_id IS NULL)::INTEGER AS churned
        FROM pop p LEFT JOIN act a ON a.customer_id = p.customer_id AND a.as_of = p.as_of
        ORDER BY p.as_of, p.customer_id
    """
    try:
        out = con.execute(sql).df()
    finally:
        con.unregister("_churn_as_of")
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    out["churned"] = out["churned"].astype("int8")
    return out
