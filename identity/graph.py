"""The deterministic identity graph, built as DuckDB SQL over the `events` and `records` views.

Nodes are (identifier_type, identifier_value) pairs; a customer record is the node ("record",
"<source>:<record_id>"). Edges, each a certainty rather than a likelihood:

* **user edges** — every identifier of an event that carries a user_id (login, signup, an authenticated
  purchase, any event sent while logged in) links to that user_id; so do a record's identifiers and the record
  node itself when the record names a user_id.
* **record edges** — a record without a user_id links its identifiers to its own record node.
* **pair edges** — in any event, the identifier pairs of `StitchConfig.unauthenticated_links` (by default
  anonymous_id <-> device_id: a first-party cookie lives on one device, so their co-occurrence is safe even
  without a login; an email or phone seen in an anonymous event is not linked, it may be forwarded or shared).

Guards, applied before any merging and all written to the guard log:

* **junk** — placeholder values (`StitchConfig.junk_values`, compared trimmed and lower-cased) and hashes of
  placeholder emails/phones are nodes without edges: each is its own profile and links nobody.
* **shared** — an identifier seen with more distinct user_ids than `StitchConfig.max_users[type]` (a kiosk, a
  family tablet, a recycled number) loses every edge.
* **contested** — one seen with 2..max user_ids keeps only its edge to the dominant user_id (most events, then
  the earliest, then the smallest id); the others are dropped.

The remaining rule — never two user_ids in one profile through a chain of non-user edges — needs the
components, so it lives in `identity.stitch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from identity.config import NODE_TYPES, StitchConfig

GUARD_LOG_SCHEMA = pa.schema(
    [
        ("guard", pa.string()),  # junk | shared | contested | conflict_cut
        ("identifier_type", pa.string()),
        ("identifier_value", pa.string()),
        ("detail", pa.string()),
    ]
)

_ID_COLUMNS = ("anonymous_id", "device_id", "user_id", "email_sha256", "phone_sha256", "loyalty_id")
_RECORD_ID_COLUMNS = ("user_id", "email_sha256", "phone_sha256", "loyalty_id")


@dataclass(frozen=True)
class IdentityGraph:
    """Integer-coded graph. Node ids follow identifier priority, then value: a smaller id is a stronger tie-break.

    ``nodes`` columns: node, identifier_type, identifier_value, first_seen, guard (junk | shared | None).
    """

    nodes: pa.Table
    src: np.ndarray  # int64 node ids; edges are undirected
    dst: np.ndarray
    is_user: np.ndarray  # bool per node: a user_id node
    user_of: np.ndarray  # int64 per node: the user_id node it keeps an edge to after the guards, else -1
    first_seen_us: np.ndarray  # int64 per node, microseconds since the epoch (missing = latest)
    guard_log: pa.Table

    @property
    def has_user(self) -> np.ndarray:
        return self.user_of >= 0

    @property
    def n_nodes(self) -> int:
        return self.nodes.num_rows


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def _observations_sql(con: duckdb.DuckDBPyConnection) -> str:
    """One row per (event or record, identifier): rid (events > 0, records < 0), ts, t, v."""
    ev = f"""
        SELECT rid, ts, t, v FROM (UNPIVOT (
            SELECT row_number() OVER () AS rid, occurred_at AS ts, {", ".join(_ID_COLUMNS)} FROM events
        ) ON {", ".join(_ID_COLUMNS)} INTO NAME t VALUE v)"""
    if not _has_table(con, "records"):
        return ev
    rec = f"""
        SELECT rid, ts, t, v FROM (UNPIVOT (
            SELECT -row_number() OVER () AS rid, ingested_at AS ts, {", ".join(_RECORD_ID_COLUMNS)},
                   source || ':' || record_id AS record
            FROM records WHERE source IS NOT NULL AND record_id IS NOT NULL
        ) ON {", ".join(_RECORD_ID_COLUMNS)}, record INTO NAME t VALUE v)"""
    return f"{ev}\nUNION ALL\n{rec}"


def build_graph(con: duckdb.DuckDBPyConnection, config: StitchConfig) -> IdentityGraph:
    """Build the guarded edge list from the `events` (required) and `records` (optional) views of ``con``."""
    con.register("_junk_values", pa.table({"v": sorted(config.junk_values)}))
    blocked = config.blocked_hashes()
    con.register("_blocked", pa.table({"t": [t for t, _ in blocked], "v": [v for _, v in blocked]}))
    limits = config.max_users
    con.register("_limits", pa.table({"t": list(limits), "max_users": list(limits.values())}))
    prio = "list_position([" + ", ".join(f"'{t}'" for t in NODE_TYPES) + "], t)"

    con.execute(f"CREATE OR REPLACE TEMP TABLE _obs AS {_observations_sql(con)}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _nodes AS
        WITH g AS (SELECT t, v, min(ts) AS first_seen FROM _obs GROUP BY t, v)
        SELECT (row_number() OVER (ORDER BY {prio}, v) - 1)::BIGINT AS node, t, v, first_seen,
               CASE WHEN (t <> 'record' AND lower(trim(v)) IN (SELECT v FROM _junk_values))
                         OR EXISTS (SELECT 1 FROM _blocked b WHERE b.t = g.t AND b.v = g.v) THEN 'junk' END AS guard
        FROM g""")
    # clean observations: junk identifiers take part in nothing
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _cobs AS
        SELECT o.rid, o.ts, o.t, n.node FROM _obs o JOIN _nodes n USING (t, v) WHERE n.guard IS NULL""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _uedges AS
        SELECT o.node AS a, u.node AS user_node, count(*) AS n, min(o.ts) AS first_ts
        FROM _cobs o JOIN _cobs u ON o.rid = u.rid AND u.t = 'user_id' AND o.t <> 'user_id'
        GROUP BY ALL""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ustats AS
        SELECT e.a, e.user_node, e.n,
               count(*) OVER (PARTITION BY e.a) AS n_users,
               row_number() OVER (PARTITION BY e.a ORDER BY e.n DESC, e.first_ts, e.user_node) = 1 AS dominant,
               coalesce(l.max_users, 9223372036854775807) AS max_users
        FROM _uedges e JOIN _nodes n ON n.node = e.a LEFT JOIN _limits l ON l.t = n.t""")
    con.execute("""
        UPDATE _nodes SET guard = 'shared'
        WHERE node IN (SELECT a FROM _ustats WHERE n_users > max_users)""")
    pair_sql = [
        f"SELECT x.node AS a, y.node AS b FROM _cobs x JOIN _cobs y ON x.rid = y.rid "
        f"AND x.t = '{ta}' AND y.t = '{tb}'"
        for ta, tb in config.unauthenticated_links
    ]
    other_sql = [
        """SELECT o.node AS a, r.node AS b FROM _cobs o JOIN _cobs r ON o.rid = r.rid AND r.t = 'record'
           AND o.t <> 'record' WHERE o.rid NOT IN (SELECT rid FROM _cobs WHERE t = 'user_id')""",
        *pair_sql,
    ]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _edges AS
        WITH shared AS (SELECT node FROM _nodes WHERE guard = 'shared'),
        kept_user AS (
            SELECT a, user_node AS b FROM _ustats
            WHERE (n_users = 1 OR dominant) AND a NOT IN (SELECT node FROM shared)
        ),
        other AS (SELECT DISTINCT a, b FROM ({" UNION ALL ".join(other_sql)}))
        SELECT a, b, true AS user_edge FROM kept_user
        UNION ALL
        SELECT a, b, false FROM other
        WHERE a NOT IN (SELECT node FROM shared) AND b NOT IN (SELECT node FROM shared)""")

    nodes = con.sql(
        "SELECT node, t AS identifier_type, v AS identifier_value, first_seen, guard FROM _nodes ORDER BY node"
    ).to_arrow_table()
    n = nodes.num_rows
    edges = con.execute("SELECT a, b, user_edge FROM _edges").fetchnumpy()
    src = np.asarray(edges["a"], dtype=np.int64)
    dst = np.asarray(edges["b"], dtype=np.int64)
    user_edge = np.asarray(edges["user_edge"], dtype=bool)
    is_user = np.asarray(
        nodes.column("identifier_type").to_numpy(zero_copy_only=False) == "user_id", dtype=bool
    )
    user_of = np.full(n, -1, dtype=np.int64)
    user_of[src[user_edge]] = dst[user_edge]  # at most one kept user edge per identifier
    first = nodes.column("first_seen").cast(pa.int64()).fill_null(np.iinfo(np.int64).max)
    guard_log = _guard_log(con)
    return IdentityGraph(nodes, src, dst, is_user, user_of, first.to_numpy(), guard_log)


def _guard_log(con: duckdb.DuckDBPyConnection) -> pa.Table:
    table = con.sql("""
        SELECT 'junk' AS guard, t AS identifier_type, v AS identifier_value,
               CASE WHEN t IN ('email_sha256', 'phone_sha256') AND lower(trim(v)) NOT IN (SELECT v FROM _junk_values)
                    THEN 'hash of a placeholder ' || replace(t, '_sha256', '') || ': links nobody'
                    ELSE 'placeholder value: links nobody' END AS detail
        FROM _nodes WHERE guard = 'junk'
        UNION ALL
        SELECT 'shared', n.t, n.v,
               'seen with ' || s.n_users || ' user_ids (max ' || s.max_users || '): links nobody'
        FROM _ustats s JOIN _nodes n ON n.node = s.a WHERE s.dominant AND s.n_users > s.max_users
        UNION ALL
        SELECT 'contested', n.t, n.v,
               'seen with ' || s.n_users || ' user_ids: kept user_id ' || u.v || ' (' || s.n || ' events), dropped the others'
        FROM _ustats s JOIN _nodes n ON n.node = s.a JOIN _nodes u ON u.node = s.user_node
        WHERE s.dominant AND s.n_users > 1 AND s.n_users <= s.max_users
        ORDER BY 1, 2, 3""").to_arrow_table()
    return table.cast(GUARD_LOG_SCHEMA)
