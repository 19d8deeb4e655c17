"""Incremental resolution: link new events/records to existing clusters without recomputing everything.

Every edge of the new graph either lies inside one previous *raw* component (components before the conflict
and never-link cuts, stored in `identity_components`) or joins identifiers seen in the new data. So the
affected nodes are the new data's identifiers plus every node of the raw components they touch: a closed set.
Their guards depend only on their own observations, so the sub-log of events and records holding an affected
identifier gives them exactly the stats of a full run; the stitcher runs on that sub-log with edges and output
restricted to the affected nodes (``keep``), and the untouched rest of every table is carried over. Result:
exactly what `IdentityResolver.resolve()` gives on the whole workspace, from the same previous state.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from contract.errors import ContractError
from contract.schemas import EVENTS_SCHEMA, IDENTIFIER_TYPES, RECORDS_SCHEMA
from identity.graph import _RECORD_ID_COLUMNS
from identity.history import NEVER_LINK_SCHEMA, NEVER_LINK_TABLE, read_or_empty
from identity.ids import PRIOR_COLUMNS
from identity.resolved import GUARD_TABLE, MAP_TABLE
from identity.state import COMPONENTS_TABLE, EDGES_TABLE, commit, store_extra_edges
from identity.stitch import StitchResult

if TYPE_CHECKING:
    import pandas as pd

    from identity.resolver import IdentityResolver, ResolveReport


def _conform(table: pa.Table | None, schema: pa.Schema, name: str) -> pa.Table | None:
    if table is None or table.num_rows == 0:
        return None
    missing = [f.name for f in schema if f.name not in table.column_names and not f.nullable]
    if missing:
        raise ContractError(name, f"missing column(s) {', '.join(missing)}")
    cols = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def resolve_incremental(
    resolver: IdentityResolver,
    new_events: pa.Table | None,
    new_records: pa.Table | None,
    extra_edges: pd.DataFrame | pa.Table | None,
    *,
    actor: str,
) -> ResolveReport:
    """See the module docstring. Appends the new rows to the workspace first."""
    from identity.resolver import _report

    ws = resolver.workspace
    events = _conform(new_events, EVENTS_SCHEMA, "new_events")
    records = _conform(new_records, RECORDS_SCHEMA, "new_records")
    if not ws.exists(MAP_TABLE) or not ws.exists(COMPONENTS_TABLE):  # nothing resolved yet: a full run
        for name, t in (("events", events), ("records", records)):
            if t is not None:
                ws.append(name, t)
        return resolver.resolve(extra_edges, actor=actor)
    started = time.perf_counter()
    new_extra = store_extra_edges(ws, extra_edges, append=True) if extra_edges is not None else None
    extra = new_extra if new_extra is not None else store_extra_edges(ws, None, append=False)
    for name, t in (("events", events), ("records", records)):
        if t is not None:
            ws.append(name, t)
    con = duckdb.connect()
    try:
        seeds = [
            f"SELECT t, v FROM (UNPIVOT (SELECT {', '.join(IDENTIFIER_TYPES)} FROM _new_events) "
            f"ON {', '.join(IDENTIFIER_TYPES)} INTO NAME t VALUE v)"
        ]
        con.register("_new_events", events if events is not None else EVENTS_SCHEMA.empty_table())
        con.register("_new_records", records if records is not None else RECORDS_SCHEMA.empty_table())
        seeds.append(
            f"SELECT t, v FROM (UNPIVOT (SELECT {', '.join(_RECORD_ID_COLUMNS)}, source || ':' || record_id AS record "
            f"FROM _new_records) ON {', '.join(_RECORD_ID_COLUMNS)}, record INTO NAME t VALUE v)"
        )
        if extra_edges is not None:
            con.register("_x", store_extra_edges(ws, None, append=False))
            seeds.append(
                "SELECT left_type, left_value FROM _x UNION ALL SELECT right_type, right_value FROM _x"
            )
        con.execute(
            f"CREATE TABLE _seed AS SELECT DISTINCT t, v FROM ({' UNION ALL '.join(seeds)}) WHERE v IS NOT NULL"
        )
        con.execute(f"CREATE VIEW comps AS SELECT * FROM read_parquet('{ws.glob(COMPONENTS_TABLE)}')")
        con.execute("""
            CREATE TABLE _aff AS
            SELECT identifier_type AS t, identifier_value AS v FROM comps WHERE component IN (
                SELECT c.component FROM comps c JOIN _seed s ON s.t = c.identifier_type AND s.v = c.identifier_value)
            UNION SELECT t, v FROM _seed""")
        affected = con.sql(
            "SELECT t AS identifier_type, v AS identifier_value FROM _aff ORDER BY 1, 2"
        ).to_arrow_table()
        ev_filter = " OR ".join(f"{t} IN (SELECT v FROM _aff WHERE t = '{t}')" for t in IDENTIFIER_TYPES)
        sub_events = con.sql(
            f"SELECT * FROM read_parquet('{ws.glob('events')}', union_by_name=true) WHERE {ev_filter}"
        ).to_arrow_table()
        sub_records = None
        if ws.exists("records"):
            rec_filter = " OR ".join(
                [f"{t} IN (SELECT v FROM _aff WHERE t = '{t}')" for t in _RECORD_ID_COLUMNS]
                + ["source || ':' || record_id IN (SELECT v FROM _aff WHERE t = 'record')"]
            )
            sub_records = con.sql(
                f"SELECT * FROM read_parquet('{ws.glob('records')}', union_by_name=true) WHERE {rec_filter}"
            ).to_arrow_table()
        con.register("_affected", affected)
        old = {}
        for name in (MAP_TABLE, GUARD_TABLE, EDGES_TABLE, COMPONENTS_TABLE):
            key = ("a_type", "a_value") if name == EDGES_TABLE else ("identifier_type", "identifier_value")
            con.execute(f"CREATE VIEW old_{name} AS SELECT * FROM read_parquet('{ws.glob(name)}')")
            old[name] = con.sql(f"""
                SELECT o.* FROM old_{name} o ANTI JOIN _affected a
                ON a.identifier_type = o.{key[0]} AND a.identifier_value = o.{key[1]}""").to_arrow_table()
        prior_part = con.sql(f"""
            SELECT {", ".join("o." + c for c in PRIOR_COLUMNS)} FROM old_{MAP_TABLE} o SEMI JOIN _affected a
            ON a.identifier_type = o.identifier_type AND a.identifier_value = o.identifier_value""").to_arrow_table()
    finally:
        con.close()
    never = read_or_empty(ws, NEVER_LINK_TABLE, NEVER_LINK_SCHEMA)
    sub = duckdb.connect()
    try:
        sub.register("events", sub_events)
        if sub_records is not None and sub_records.num_rows:
            sub.register("records", sub_records)
        part = resolver.stitch.run(sub, prior=prior_part, extra_edges=extra, never_link=never, keep=affected)
    finally:
        sub.close()
    full = StitchResult(
        _concat(old[MAP_TABLE], part.identity_map, ["customer_id", "identifier_type", "identifier_value"]),
        _concat(old[GUARD_TABLE], part.guard_log, ["guard", "identifier_type", "identifier_value", "detail"]),
        part.n_edges,
        _concat(old[EDGES_TABLE], part.edges, None),
        _concat(old[COMPONENTS_TABLE], part.raw_components, None),
        part.aliases,
    )
    commit(ws, full, part, prior_part, actor=actor)
    n_edges = full.edges.column("cut").null_count  # edges not cut
    return _report(full.identity_map, full.guard_log, n_edges, time.perf_counter() - started)


def _concat(old: pa.Table, new: pa.Table, order: list[str] | None) -> pa.Table:
    out = pa.concat_tables([old.cast(new.schema), new])
    return out.sort_by([(c, "ascending") for c in order]) if order else out
