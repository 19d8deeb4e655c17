"""The deterministic identity graph, built as DuckDB SQL over the `events` and `records` views.

Nodes are (identifier_type, identifier_value) pairs; a customer record is the node ("record",
"<source>:<record_id>"). Edges, each a certainty rather than a likelihood:

* **user edges** — every identifier of an event that carries a user_id (login, signup, an authenticated
  purchase, any event sent while logged in) links to that user_id; so do a record's identifiers and the record
  node itself when the record names a user_id.
* **record edges** — a record without a user_id links its identifiers to its own record node.
* **pair edges** — in any event, the identifier pairs of `StitchConfig.unauthenticated_links` (by default
  anonymous_id <-> device_id: a first-party cookie lives on one device, so their co-occurrence is safe even
  without a login; an email or phone seen in an anonymous event is linked only as a guarded edge, below).

Guards, applied before any merging and all written to the guard log:

* **junk** — placeholder values (`StitchConfig.junk_values`, compared trimmed and lower-cased) and hashes of
  placeholder emails/phones are nodes without edges: each is its own profile and links nobody.
* **shared** — an identifier seen with more distinct user_ids than `StitchConfig.max_users[type]` (a kiosk, a
  family tablet, a recycled number) loses every edge.
* **contested** — one seen with 2..max user_ids keeps only its edge to the dominant user_id (most events, then
  the earliest, then the smallest id); the others are dropped.
* **household** — an email or phone (`StitchConfig.household_types`) held by records that disagree on the
  person (first names less similar than `household_name_similarity` by Jaro-Winkler and dates of birth that
  differ or are unknown: a family address on a partner's record) links no record that lacks a user_id: those
  record observations are dropped (a record naming a user_id keeps its user edge, which the contested guard
  settles), its event edges stay, and those records are left to the probabilistic matcher.

* **guarded edges** — in an event without a user_id (an email click, a guest checkout), the (carrier, strong)
  pairs of `StitchConfig.guarded_links` (a cookie or device with an email or phone), kept only while the
  carrier has been seen (in any event) with a single value of that strong type; a carrier seen with more
  values of a strong type than ``max_users`` allows is **shared** like one seen with too many user_ids.

Extra edges (probabilistic links from `identity.match`) join as rule ``probabilistic`` between known, unguarded
nodes. Every edge keeps its rule and ``first_ts`` (when its evidence first occurred), which as-of identity and
`cxi identity explain` read. ``keep`` restricts edges to a node subset (incremental resolution).

The remaining rule — never two user_ids in one profile through a chain of non-user edges — needs the
components, so it lives in `identity.stitch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from identity.config import NODE_TYPES, StitchConfig
from identity.errors import IdentityError

GUARD_LOG_SCHEMA = pa.schema(
    [
        ("guard", pa.string()),  # junk | shared | contested | household | conflict_cut | never_link
        ("identifier_type", pa.string()),
        ("identifier_value", pa.string()),
        ("detail", pa.string()),
    ]
)

#: Columns of an extra (probabilistic) edge frame passed to the resolver.
EXTRA_EDGE_COLUMNS: tuple[str, ...] = (
    "left_type",
    "left_value",
    "right_type",
    "right_value",
    "probability",
    "evidence",
)
EXTRA_EDGES_SCHEMA = pa.schema(
    [
        ("left_type", pa.string()),
        ("left_value", pa.string()),
        ("right_type", pa.string()),
        ("right_value", pa.string()),
        ("probability", pa.float64()),
        ("evidence", pa.string()),
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
    edges: pa.Table  # per edge (same order as src/dst): rule, first_ts, probability, evidence

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
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _rec AS SELECT NULL::BIGINT AS rid, NULL::VARCHAR AS user_id LIMIT 0"
        )
        return ev
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rec AS
        SELECT -row_number() OVER () AS rid, ingested_at AS ts, {", ".join(_RECORD_ID_COLUMNS)},
               source || ':' || record_id AS record,
               nullif(lower(trim(first_name)), '') AS fn, date_of_birth AS dob
        FROM records WHERE source IS NOT NULL AND record_id IS NOT NULL""")
    rec = f"""
        SELECT rid, ts, t, v FROM (UNPIVOT (
            SELECT rid, ts, {", ".join(_RECORD_ID_COLUMNS)}, record FROM _rec
        ) ON {", ".join(_RECORD_ID_COLUMNS)}, record INTO NAME t VALUE v)"""
    return f"{ev}\nUNION ALL\n{rec}"


def _household_sql(con: duckdb.DuckDBPyConnection, config: StitchConfig) -> str:
    """Household identifiers: (t, v, records, similarity) of each identifier of ``config.household_types``
    held by two records that disagree on the person (first names less similar than
    ``config.household_name_similarity`` by Jaro-Winkler, and different dates of birth when both are known)."""
    if not config.household_types or not _has_table(con, "records"):
        return (
            "SELECT NULL::VARCHAR AS t, NULL::VARCHAR AS v, 0::BIGINT AS records, 0.0::DOUBLE AS sim LIMIT 0"
        )
    in_types = ", ".join(f"'{t}'" for t in config.household_types)
    cap, thr = int(config.household_max_records), float(config.household_name_similarity)
    # values on more than `cap` records of several first names are households outright (no pairwise pass)
    return f"""
        WITH o AS (
            SELECT o.rid, o.t, o.v, r.fn, r.dob FROM _obs o JOIN _rec r USING (rid)
            WHERE o.rid < 0 AND o.t IN ({in_types}) AND r.fn IS NOT NULL),
        multi AS (SELECT t, v, count(*) AS n FROM o GROUP BY t, v HAVING count(DISTINCT fn) > 1),
        om AS (SELECT o.* FROM o JOIN multi USING (t, v) WHERE multi.n <= {cap}),
        pairs AS (
            SELECT x.t, x.v, min(jaro_winkler_similarity(x.fn, y.fn)) AS sim
            FROM om x JOIN om y ON x.t = y.t AND x.v = y.v AND x.rid < y.rid
            WHERE jaro_winkler_similarity(x.fn, y.fn) < {thr!r}
              AND (x.dob IS NULL OR y.dob IS NULL OR x.dob <> y.dob)
            GROUP BY x.t, x.v)
        SELECT p.t, p.v, m.n AS records, p.sim FROM pairs p JOIN multi m USING (t, v)
        UNION ALL
        SELECT t, v, n, NULL FROM multi WHERE n > {cap}"""


def build_graph(
    con: duckdb.DuckDBPyConnection,
    config: StitchConfig,
    extra_edges: pa.Table | None = None,
    keep: pa.Table | None = None,
) -> IdentityGraph:
    """Build the guarded edge list from the `events` (required) and `records` (optional) views of ``con``.

    ``extra_edges`` (EXTRA_EDGES_SCHEMA) add probabilistic links; ``keep`` (identifier_type, identifier_value)
    limits edges and guard rows to those nodes (the others are still numbered, so ordering is unchanged).
    """
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
    con.execute(f"CREATE OR REPLACE TEMP TABLE _household AS {_household_sql(con, config)}")
    # clean observations: junk identifiers take part in nothing; household identifiers link no record
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _cobs AS
        SELECT o.rid, o.ts, o.t, n.node FROM _obs o JOIN _nodes n USING (t, v)
        WHERE n.guard IS NULL
          AND NOT (o.rid < 0 AND EXISTS (SELECT 1 FROM _household h WHERE h.t = o.t AND h.v = o.v)
                   AND NOT EXISTS (SELECT 1 FROM _rec r WHERE r.rid = o.rid AND r.user_id IS NOT NULL))""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _uedges AS
        SELECT o.node AS a, u.node AS user_node, count(*) AS n, min(o.ts) AS first_ts
        FROM _cobs o JOIN _cobs u ON o.rid = u.rid AND u.t = 'user_id' AND o.t <> 'user_id'
        GROUP BY ALL""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ustats AS
        SELECT e.a, e.user_node, e.n, e.first_ts,
               count(*) OVER (PARTITION BY e.a) AS n_users,
               row_number() OVER (PARTITION BY e.a ORDER BY e.n DESC, e.first_ts, e.user_node) = 1 AS dominant,
               coalesce(l.max_users, 9223372036854775807) AS max_users
        FROM _uedges e JOIN _nodes n ON n.node = e.a LEFT JOIN _limits l ON l.t = n.t""")
    _guarded_stats(con, config)
    con.execute("""
        UPDATE _nodes SET guard = 'shared'
        WHERE node IN (SELECT a FROM _ustats WHERE n_users > max_users)
           OR node IN (SELECT a FROM _gstats WHERE n_values > max_users)""")
    pair_sql = [
        f"SELECT x.node AS a, y.node AS b, 'pair' AS rule, x.ts FROM _cobs x JOIN _cobs y ON x.rid = y.rid "
        f"AND x.t = '{ta}' AND y.t = '{tb}'"
        for ta, tb in config.unauthenticated_links
    ]
    other_sql = [
        """SELECT o.node AS a, r.node AS b, 'record' AS rule, o.ts FROM _cobs o JOIN _cobs r ON o.rid = r.rid
           AND r.t = 'record' AND o.t <> 'record' WHERE o.rid NOT IN (SELECT rid FROM _cobs WHERE t = 'user_id')""",
        *pair_sql,
        """SELECT g.a, g.b, 'guarded' AS rule, g.ts FROM _gobs g JOIN _gstats s ON s.a = g.a AND s.st = g.st
           WHERE NOT g.auth AND s.n_values = 1""",
    ]
    extra = _extra_edges_table(extra_edges)
    con.register("_extra", extra)
    con.register(
        "_keep",
        keep
        if keep is not None
        else pa.table(
            {"identifier_type": pa.array([], pa.string()), "identifier_value": pa.array([], pa.string())}
        ),
    )
    keep_sql = (
        "AND a IN (SELECT node FROM _kept) AND b IN (SELECT node FROM _kept)" if keep is not None else ""
    )
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _kept AS
        SELECT n.node FROM _nodes n JOIN _keep k ON k.identifier_type = n.t AND k.identifier_value = n.v""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _edges AS
        WITH shared AS (SELECT node FROM _nodes WHERE guard = 'shared'),
        kept_user AS (
            SELECT a, user_node AS b, first_ts FROM _ustats
            WHERE (n_users = 1 OR dominant) AND a NOT IN (SELECT node FROM shared)
        ),
        other AS (SELECT a, b, rule, min(ts) AS first_ts FROM ({" UNION ALL ".join(other_sql)}) GROUP BY ALL),
        prob AS (
            SELECT x.node AS a, y.node AS b, max(e.probability) AS probability,
                   arg_max(e.evidence, e.probability) AS evidence, greatest(x.first_seen, y.first_seen) AS first_ts
            FROM _extra e JOIN _nodes x ON x.t = e.left_type AND x.v = e.left_value
            JOIN _nodes y ON y.t = e.right_type AND y.v = e.right_value
            WHERE x.guard IS NULL AND y.guard IS NULL AND x.node <> y.node
            GROUP BY ALL
        ),
        alle AS (
            SELECT a, b, 'user' AS rule, first_ts, NULL::DOUBLE AS probability, NULL::VARCHAR AS evidence
            FROM kept_user
            UNION ALL
            SELECT a, b, rule, first_ts, NULL, NULL FROM other
            WHERE a NOT IN (SELECT node FROM shared) AND b NOT IN (SELECT node FROM shared)
            UNION ALL
            SELECT a, b, 'probabilistic', first_ts, probability, evidence FROM prob
        )
        SELECT * FROM alle WHERE true {keep_sql} ORDER BY a, b, rule""")

    nodes = con.sql(
        "SELECT node, t AS identifier_type, v AS identifier_value, first_seen, guard FROM _nodes ORDER BY node"
    ).to_arrow_table()
    n = nodes.num_rows
    edge_table = con.sql("SELECT * FROM _edges").to_arrow_table()
    src = edge_table.column("a").to_numpy().astype(np.int64)
    dst = edge_table.column("b").to_numpy().astype(np.int64)
    user_edge = np.asarray(edge_table.column("rule").to_numpy(zero_copy_only=False) == "user", dtype=bool)
    is_user = np.asarray(
        nodes.column("identifier_type").to_numpy(zero_copy_only=False) == "user_id", dtype=bool
    )
    user_of = np.full(n, -1, dtype=np.int64)
    user_of[src[user_edge]] = dst[user_edge]  # at most one kept user edge per identifier
    first = nodes.column("first_seen").cast(pa.int64()).fill_null(np.iinfo(np.int64).max)
    guard_log = _guard_log(con, keep is not None)
    return IdentityGraph(nodes, src, dst, is_user, user_of, first.to_numpy(), guard_log, edge_table)


def _guarded_stats(con: duckdb.DuckDBPyConnection, config: StitchConfig) -> None:
    """``_gobs``: per event, each (carrier, strong) pair of `StitchConfig.guarded_links` it holds (auth: with a
    user_id); ``_gstats``: per carrier and strong type, the distinct strong values it was seen with."""
    links = config.guarded_links
    con.register("_glinks", pa.table({"ct": [a for a, _ in links], "st": [b for _, b in links]}))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _gobs AS
        SELECT x.node AS a, y.node AS b, y.t AS st, x.ts,
               x.rid IN (SELECT rid FROM _cobs WHERE t = 'user_id') AS auth
        FROM _cobs x JOIN _glinks g ON g.ct = x.t JOIN _cobs y ON y.rid = x.rid AND y.t = g.st
        WHERE x.rid > 0""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _gstats AS
        SELECT g.a, g.st, count(DISTINCT g.b) AS n_values,
               coalesce(any_value(l.max_users), 9223372036854775807) AS max_users
        FROM _gobs g JOIN _nodes n ON n.node = g.a LEFT JOIN _limits l ON l.t = n.t GROUP BY g.a, g.st""")


def _extra_edges_table(extra: pa.Table | None) -> pa.Table:
    """Validate an extra-edge table (EXTRA_EDGES_SCHEMA): clear errors naming the column."""
    if extra is None:
        return EXTRA_EDGES_SCHEMA.empty_table()
    missing = [c for c in EXTRA_EDGE_COLUMNS if c not in extra.column_names]
    if missing:
        raise IdentityError(
            f"extra_edges: missing column(s) {', '.join(missing)} (need {', '.join(EXTRA_EDGE_COLUMNS)})"
        )
    extra = extra.select(list(EXTRA_EDGE_COLUMNS))
    try:
        extra = extra.cast(EXTRA_EDGES_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise IdentityError(f"extra_edges: columns do not fit {EXTRA_EDGES_SCHEMA}: {exc}") from exc
    for col in ("left_type", "right_type"):
        bad = set(extra.column(col).to_pylist()) - set(NODE_TYPES)
        if bad:
            raise IdentityError(f"extra_edges.{col}: unknown identifier type(s) {sorted(map(str, bad))}")
    prob = extra.column("probability").to_numpy(zero_copy_only=False)
    if len(prob) and (np.isnan(prob).any() or (prob < 0).any() or (prob > 1).any()):
        raise IdentityError("extra_edges.probability: must be a number in [0, 1]")
    return extra


def _guard_log(con: duckdb.DuckDBPyConnection, keep: bool = False) -> pa.Table:
    where = "WHERE n IN (SELECT node FROM _kept)" if keep else ""
    table = con.sql(f"""SELECT guard, identifier_type, identifier_value, detail FROM (
        SELECT 'junk' AS guard, t AS identifier_type, v AS identifier_value,
               node AS n,
               CASE WHEN t IN ('email_sha256', 'phone_sha256') AND lower(trim(v)) NOT IN (SELECT v FROM _junk_values)
                    THEN 'hash of a placeholder ' || replace(t, '_sha256', '') || ': links nobody'
                    ELSE 'placeholder value: links nobody' END AS detail
        FROM _nodes WHERE guard = 'junk'
        UNION ALL
        SELECT 'shared', n.t, n.v, n.node,
               'seen with ' || s.n_users || ' user_ids (max ' || s.max_users || '): links nobody'
        FROM _ustats s JOIN _nodes n ON n.node = s.a WHERE s.dominant AND s.n_users > s.max_users
        UNION ALL
        SELECT 'shared', n.t, n.v, n.node,
               'seen with ' || s.n_values || ' ' || s.st || ' values (max ' || s.max_users || '): links nobody'
        FROM _gstats s JOIN _nodes n ON n.node = s.a
        WHERE s.n_values > s.max_users AND s.a NOT IN (SELECT a FROM _ustats WHERE n_users > max_users)
        QUALIFY row_number() OVER (PARTITION BY s.a ORDER BY s.st) = 1
        UNION ALL
        SELECT 'contested', n.t, n.v, n.node,
               'seen with ' || s.n_users || ' user_ids: kept user_id ' || u.v || ' (' || s.n || ' events), dropped the others'
        FROM _ustats s JOIN _nodes n ON n.node = s.a JOIN _nodes u ON u.node = s.user_node
        WHERE s.dominant AND s.n_users > 1 AND s.n_users <= s.max_users
        UNION ALL
        SELECT 'household', n.t, n.v, n.node,
               'held by ' || h.records || ' records of different people (first-name similarity '
               || coalesce(round(h.sim, 2)::VARCHAR, 'not compared') || ', dates of birth differ or unknown): '
               || 'links no record without a user_id'
        FROM _household h JOIN _nodes n ON n.t = h.t AND n.v = h.v WHERE n.guard IS NULL
        ) {where} ORDER BY 1, 2, 3""").to_arrow_table()
    return table.cast(GUARD_LOG_SCHEMA)
