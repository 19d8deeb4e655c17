"""Loading live identity from a workspace: one vectorised stitcher pass, then its evidence into dicts.

The stitcher runs over the stored events and records with the stored map as prior (so the ids are the batch
ids, and events imported since the last resolve are included) and leaves its working tables on the DuckDB
connection (`identity.graph`: `_nodes`, `_ustats`, `_cobs`, `_extra`); the raw evidence the live path needs
(first sightings, user observations per identifier, non-user edges before the shared guard drops them, the
guarded (carrier, strong) co-occurrences of `_gobs`) is read from those in four queries.
"""

from __future__ import annotations

import pyarrow as pa

from contract.workspace import Workspace
from identity.graph import EXTRA_EDGES_SCHEMA
from identity.ids import PRIOR_COLUMNS
from identity.live_graph import Evidence, Key
from identity.resolved import MAP_TABLE
from identity.state import EXTRA_TABLE
from identity.stitch import Stitcher

_MAX_US = 2**63 - 1


def load_evidence(
    ws: Workspace, ev: Evidence, never: pa.Table
) -> tuple[list[Key], list[str], list[tuple[str, str]]] | None:
    """Fill ``ev`` from the workspace; return (nodes, their customer ids, new (alias, survivor) pairs), or
    None when the workspace holds no events."""
    if not ws.exists("events"):
        return None
    prior = ws.read(MAP_TABLE, columns=PRIOR_COLUMNS) if ws.exists(MAP_TABLE) else None
    extra = ws.read(EXTRA_TABLE).select(EXTRA_EDGES_SCHEMA.names) if ws.exists(EXTRA_TABLE) else None
    with ws.connect("events", "records") as con:
        result = Stitcher(ev.config).run(con, prior=prior, extra_edges=extra, never_link=never)
        nodes = con.sql(
            f"SELECT t, v, coalesce(epoch_us(first_seen), {_MAX_US}) AS fs, guard = 'junk' AS junk FROM _nodes"
        ).to_arrow_table()
        users = con.sql("""
            SELECT a.t, a.v, u.v AS u, s.n, epoch_us(s.first_ts) AS ts
            FROM _ustats s JOIN _nodes a ON a.node = s.a JOIN _nodes u ON u.node = s.user_node""").to_arrow_table()
        pair_sql = [
            f"SELECT x.node AS a, y.node AS b, 'pair' AS rule, x.ts FROM _cobs x JOIN _cobs y ON x.rid = y.rid "
            f"AND x.t = '{ta}' AND y.t = '{tb}'"
            for ta, tb in ev.config.unauthenticated_links
        ]
        other = con.sql(f"""
            WITH e AS (
                SELECT a, b, rule, min(ts) AS ts FROM (
                    SELECT o.node AS a, r.node AS b, 'record' AS rule, o.ts FROM _cobs o JOIN _cobs r
                    ON o.rid = r.rid AND r.t = 'record' AND o.t <> 'record'
                    WHERE o.rid NOT IN (SELECT rid FROM _cobs WHERE t = 'user_id')
                    {"".join(" UNION ALL " + q for q in pair_sql)}) GROUP BY ALL
                UNION ALL
                SELECT x.node, y.node, 'probabilistic', greatest(x.first_seen, y.first_seen)
                FROM _extra e JOIN _nodes x ON x.t = e.left_type AND x.v = e.left_value
                JOIN _nodes y ON y.t = e.right_type AND y.v = e.right_value
                WHERE x.guard IS DISTINCT FROM 'junk' AND y.guard IS DISTINCT FROM 'junk' AND x.node <> y.node)
            SELECT x.t AS at, x.v AS av, y.t AS bt, y.v AS bv, e.rule, coalesce(epoch_us(e.ts), {_MAX_US}) AS ts
            FROM e JOIN _nodes x ON x.node = e.a JOIN _nodes y ON y.node = e.b""").to_arrow_table()
        guarded = con.sql(f"""
            SELECT x.t AS at, x.v AS av, y.t AS bt, y.v AS bv, bool_and(g.auth) AS auth,
                   coalesce(epoch_us(min(g.ts) FILTER (NOT g.auth)), {_MAX_US}) AS ts
            FROM _gobs g JOIN _nodes x ON x.node = g.a JOIN _nodes y ON y.node = g.b
            GROUP BY ALL""").to_arrow_table()
    keys = list(zip(nodes["t"].to_pylist(), nodes["v"].to_pylist(), strict=True))
    ev.first_seen.update(zip(keys, nodes["fs"].to_pylist(), strict=True))
    ev.junk.update(k for k, j in zip(keys, nodes["junk"].to_pylist(), strict=True) if j)
    for t, v, u, n, ts in zip(*(users[c].to_pylist() for c in ("t", "v", "u", "n", "ts")), strict=True):
        ev.add_user_obs((t, v), u, ts, n)
    for at, av, bt, bv, rule, ts in zip(*(other[c].to_pylist() for c in other.column_names), strict=True):
        ev.add_edge((at, av), (bt, bv), rule, ts)
    for at, av, bt, bv, auth, ts in zip(*(guarded[c].to_pylist() for c in guarded.column_names), strict=True):
        ev.add_strong_obs((at, av), (bt, bv), ts, auth)
    m = result.identity_map
    mkeys = list(zip(m["identifier_type"].to_pylist(), m["identifier_value"].to_pylist(), strict=True))
    aliases = list(
        zip(result.aliases["alias_id"].to_pylist(), result.aliases["customer_id"].to_pylist(), strict=True)
    )
    return mkeys, m["customer_id"].to_pylist(), aliases
