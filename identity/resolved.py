"""Events with their customer: the `resolved_events` view that features read.

An event's customer is the one of its highest-priority identifier (contract.IDENTIFIER_TYPES order:
user_id, email_sha256, phone_sha256, loyalty_id, device_id, anonymous_id) found in `identity_map`, where
identifiers the guards marked junk or shared (`identity_guard_log`) are tried only after every other one:
a login on a kiosk belongs to the user, an anonymous page view on it to the cookie's owner. Each event keeps
exactly one row; an event none of whose identifiers is in the map (imported after the last resolve) gets
``customer_id`` NULL.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa

from contract.errors import WorkspaceError
from contract.schemas import IDENTIFIER_TYPES
from contract.workspace import Workspace

MAP_TABLE = "identity_map"
GUARD_TABLE = "identity_guard_log"
#: Guards after which an identifier links nobody (a `contested` one still belongs to its dominant user).
UNLINKING_GUARDS: tuple[str, ...] = ("junk", "shared")


def _has(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def attach_customer_ids(
    con: duckdb.DuckDBPyConnection, view: str = "resolved_events", *, as_of: datetime | None = None
) -> str:
    """Create (or replace) the view ``view`` = every column of `events` + ``customer_id``; returns its name.

    ``con`` must hold `events` and `identity_map` (e.g. ``ws.connect()`` after ``IdentityResolver.resolve``);
    `identity_guard_log` is used when present. With ``as_of``, the view holds the events at or before it,
    resolved with the identity graph as it was then (`identity.asof`; needs `identity_edges`).
    """
    for name in ("events", MAP_TABLE):
        if not _has(con, name):
            raise WorkspaceError(
                f"{name}: no such table or view on the connection (import events, then resolve)"
            )
    map_table, events = MAP_TABLE, "events"
    if as_of is not None:
        from identity.asof import map_as_of

        con.register(f"_{view}_map", map_as_of(con, as_of))
        map_table = f"_{view}_map"
        con.execute(
            f"CREATE OR REPLACE VIEW _{view}_events AS SELECT * FROM events "
            f"WHERE occurred_at <= '{as_of.isoformat()}'::TIMESTAMPTZ"
        )
        events = f"_{view}_events"
    guarded = (
        f"SELECT DISTINCT identifier_type, identifier_value FROM {GUARD_TABLE} "
        f"WHERE guard IN ({', '.join(repr(g) for g in UNLINKING_GUARDS)})"
        if _has(con, GUARD_TABLE)
        else "SELECT NULL::VARCHAR AS identifier_type, NULL::VARCHAR AS identifier_value WHERE false"
    )
    ctes = [
        f"""lk_{t} AS (
            SELECT m.identifier_value AS v, m.customer_id, g.identifier_value IS NOT NULL AS guarded
            FROM {map_table} m LEFT JOIN ({guarded}) g
              ON g.identifier_type = m.identifier_type AND g.identifier_value = m.identifier_value
            WHERE m.identifier_type = '{t}')"""
        for t in IDENTIFIER_TYPES
    ]
    joins = [f"LEFT JOIN lk_{t} ON lk_{t}.v = e.{t}" for t in IDENTIFIER_TYPES]
    picks = [f"CASE WHEN NOT lk_{t}.guarded THEN lk_{t}.customer_id END" for t in IDENTIFIER_TYPES]
    picks += [f"lk_{t}.customer_id" for t in IDENTIFIER_TYPES]
    con.execute(f"""
        CREATE OR REPLACE VIEW {view} AS
        WITH {", ".join(ctes)}
        SELECT e.*, coalesce({", ".join(picks)}) AS customer_id
        FROM {events} e {" ".join(joins)}""")
    return view


def resolved_events(ws: Workspace, columns: list[str] | None = None) -> pa.Table:
    """The resolved events of a workspace as one Arrow table (``columns``: a subset, customer_id allowed)."""
    if not ws.exists(MAP_TABLE):
        raise WorkspaceError(
            f"{MAP_TABLE}: missing in workspace {ws.root} (run `cxi identity resolve` first)"
        )
    with ws.connect("events", MAP_TABLE, GUARD_TABLE) as con:
        view = attach_customer_ids(con)
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return con.sql(f"SELECT {cols} FROM {view}").to_arrow_table()
