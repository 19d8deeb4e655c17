"""As-of identity: the identity map as it was at a past time.

Uses only the identifiers first seen at or before ``as_of`` and the edges whose evidence first occurred by
then (`identity_edges.first_ts`: the events' occurred_at, a record's ingested_at), then takes components with
the same conflict guard and never-link constraints as a resolve. Identifier guards (junk, shared) are judged
with everything known now: an identifier later found shared links nobody at any date. Ids follow the current
map (`identity.ids`), so a cluster that existed unchanged keeps its id, and the parts of a later merge get
their own (the survivor's and the alias's).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from identity.config import NODE_TYPES
from identity.graph import GUARD_LOG_SCHEMA
from identity.ids import assign_ids
from identity.stitch import IDENTITY_MAP_SCHEMA, IdentityGraph, NeverLink, _never_link_nodes, components

EDGES_TABLE = "identity_edges"


def _has(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchall()
    return bool(rows[0][0])


def map_as_of(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pa.Table:
    """The identity map at ``as_of`` from the `identity_map` and `identity_edges` views of ``con``."""
    prio = "list_position([" + ", ".join(f"'{t}'" for t in NODE_TYPES) + "], identifier_type)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _nodes AS
        SELECT (row_number() OVER (ORDER BY {prio}, identifier_value) - 1)::BIGINT AS node,
               identifier_type AS t, identifier_value AS v, first_seen
        FROM identity_map WHERE first_seen <= ?""",
        [as_of],
    )
    if _has(con, EDGES_TABLE):
        edges = con.execute(
            """
            SELECT x.node AS a, y.node AS b, e.rule = 'user' AS user_edge
            FROM identity_edges e JOIN _nodes x ON x.t = e.a_type AND x.v = e.a_value
            JOIN _nodes y ON y.t = e.b_type AND y.v = e.b_value
            WHERE e.first_ts <= ? AND coalesce(e.cut, '') <> 'never_link'""",
            [as_of],
        ).fetchnumpy()
    else:
        edges = {k: np.zeros(0, dtype=np.int64) for k in ("a", "b")} | {"user_edge": np.zeros(0, bool)}
    nodes = con.sql("SELECT * FROM _nodes ORDER BY node").to_arrow_table()
    n = nodes.num_rows
    src = np.asarray(edges["a"], dtype=np.int64)
    dst = np.asarray(edges["b"], dtype=np.int64)
    user_edge = np.asarray(edges["user_edge"], dtype=bool)
    is_user = np.asarray(nodes.column("t").to_numpy(zero_copy_only=False) == "user_id", dtype=bool)
    user_of = np.full(n, -1, dtype=np.int64)
    user_of[src[user_edge]] = dst[user_edge]
    first = nodes.column("first_seen").cast(pa.int64()).fill_null(np.iinfo(np.int64).max).to_numpy()
    graph = IdentityGraph(
        nodes, src, dst, is_user, user_of, first, GUARD_LOG_SCHEMA.empty_table(), pa.table({})
    )
    nl = (
        _never_link_nodes(con, con.sql("SELECT * FROM identity_never_link").to_arrow_table())
        if _has(con, "identity_never_link")
        else NeverLink.empty()
    )
    comp = components(graph, nl)
    con.register(
        "_comp",
        pa.table(
            {
                "node": np.arange(n),
                "label": comp.labels,
                "anchor": comp.anchor,
                "ord": np.argsort(np.lexsort((np.arange(n), first))),
                "kept": np.ones(n, dtype=bool),
            }
        ),
    )
    prior = con.sql(
        "SELECT identifier_type, identifier_value, customer_id FROM identity_map"
    ).to_arrow_table()
    assign_ids(con, prior)
    return (
        con.sql("""
        SELECT n.t AS identifier_type, n.v AS identifier_value, i.customer_id, n.first_seen
        FROM _nodes n JOIN _comp c ON c.node = n.node JOIN _ids i ON i.label = c.label
        ORDER BY customer_id, n.node""")
        .to_arrow_table()
        .cast(IDENTITY_MAP_SCHEMA)
    )
