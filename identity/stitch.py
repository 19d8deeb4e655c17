"""Deterministic stitching: connected components of the guarded identity graph, the last guard (never two
user_ids in one profile) and stable customer ids.

Components are computed vectorised (scipy.sparse.csgraph over integer-coded nodes: union-find without a
Python loop over rows). A component's customer id is ``"c_" + sha256("<type>:<value>")[:16]`` of its oldest
identifier (earliest first_seen; ties by identifier priority, then value), so the same data gives the same
ids whatever the input order. Given the previous map (``prior``), ids persist: a previous id stays with the
component holding its oldest identifier; a component holding several keeps the oldest cluster's id and the
others become aliases (merges); a component holding none takes its natural id. Never-link constraints
(`identity.history`) are applied after the conflict guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _cc

from contract.schemas import TS
from identity.config import StitchConfig
from identity.errors import IdentityError
from identity.graph import GUARD_LOG_SCHEMA, IdentityGraph, build_graph
from identity.ids import assign_ids

IDENTITY_MAP_SCHEMA = pa.schema(
    [
        ("identifier_type", pa.string()),
        ("identifier_value", pa.string()),
        ("customer_id", pa.string()),
        ("first_seen", TS),
    ]
)


def connected_components(n_nodes: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Component label per node (0..k-1) of the undirected graph given as edge arrays."""
    if n_nodes == 0:
        return np.zeros(0, dtype=np.int64)
    weights = np.ones(len(src), dtype=np.int32)
    adj = coo_matrix((weights, (src, dst)), shape=(n_nodes, n_nodes)).tocsr()
    _, labels = _cc(adj, directed=False)
    return labels.astype(np.int64)


def _users_per_component(labels: np.ndarray, is_user: np.ndarray) -> np.ndarray:
    size = int(labels.max()) + 1 if len(labels) else 0
    return np.bincount(labels[is_user], minlength=size)


@dataclass(frozen=True)
class Components:
    labels: np.ndarray  # component per node
    anchor: np.ndarray  # per node: the node id of its component's oldest identifier
    cut: np.ndarray  # bool per edge of the graph: dropped by the conflict guard or a never-link constraint
    conflict_users: np.ndarray  # per edge: user_ids its component held before the cut (0 when not cut)
    raw: np.ndarray  # per node: component label before any cut (the closure incremental runs need)
    never_cut: np.ndarray  # bool per edge: cut by a never-link constraint


@dataclass(frozen=True)
class NeverLink:
    """Node-level never-link constraints: constraint id and side (0/1) per constrained node."""

    cid: np.ndarray
    side: np.ndarray
    node: np.ndarray

    @classmethod
    def empty(cls) -> NeverLink:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z)


def _never_link_cut(n: int, src: np.ndarray, dst: np.ndarray, alive: np.ndarray, nl: NeverLink) -> np.ndarray:
    """Edges to cut so that no component holds both sides of a constraint (cross edges first, then the links
    of the constrained nodes to unconstrained ones inside a still-conflicted component)."""
    cut = np.zeros(len(src), dtype=bool)
    if len(nl.node) == 0 or len(src) == 0:
        return cut
    for cid in np.unique(nl.cid):
        m = nl.cid == cid
        side = np.full(n, -1, dtype=np.int64)
        side[nl.node[m]] = nl.side[m]
        cross = (side[src] >= 0) & (side[dst] >= 0) & (side[src] != side[dst])
        cut |= cross & alive
        labels = connected_components(n, src[alive & ~cut], dst[alive & ~cut])
        both = np.intersect1d(labels[nl.node[m & (nl.side == 0)]], labels[nl.node[m & (nl.side == 1)]])
        if len(both):
            in_conflict = np.isin(labels[src], both)
            one_end = (side[src] >= 0) != (side[dst] >= 0)
            cut |= alive & in_conflict & one_end
    return cut


def _holders(
    n: int, src: np.ndarray, dst: np.ndarray, is_user: np.ndarray, user_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per node the user_id node it holds (-1: none), and per edge whether it is the one giving its
    identifier that user_id (a kept user edge, or the only probabilistic link naming a user_id)."""
    user_edge = (user_of[src] == dst) | (user_of[dst] == src)
    names_user = ~user_edge & (is_user[src] != is_user[dst])  # a probabilistic link naming a user_id
    ident = np.where(is_user[src], dst, src)
    named = np.where(is_user[src], src, dst)
    linked = np.full(n, -1, dtype=np.int64)
    if names_user.any():
        pairs = np.unique(np.stack([ident[names_user], named[names_user]], axis=1), axis=0)
        once = np.bincount(pairs[:, 0], minlength=n)[pairs[:, 0]] == 1
        linked[pairs[once, 0]] = pairs[once, 1]
    holder = np.where(is_user, np.arange(n), np.where(user_of >= 0, user_of, linked))
    defining = user_edge | (names_user & (holder[ident] == named))
    return holder, defining


def components(graph: IdentityGraph, never_link: NeverLink | None = None) -> Components:
    """Components with the conflict guard and never-link constraints applied, and each node's anchor."""
    n, src, dst = graph.n_nodes, graph.src, graph.dst
    labels = connected_components(n, src, dst)
    raw = labels
    users = _users_per_component(labels, graph.is_user)
    conflicted = users[labels] > 1
    # A chain of non-user edges joined two people. Inside such components every identifier stays with the
    # user_id it holds and no path between two user_ids survives. An identifier holds the user_id of its kept
    # user edge; else the one user_id a probabilistic link names (a link naming several holds none); a
    # user_id holds itself. Cut every edge whose ends hold different user_ids, or only one of which holds one,
    # except the edge that gives an identifier its user_id (identifiers holding none keep their links among
    # themselves).
    is_user, user_of = graph.is_user, graph.user_of
    holder, defining = _holders(n, src, dst, is_user, user_of)
    cut = (
        ~defining & conflicted[src] & ((holder[src] >= 0) | (holder[dst] >= 0)) & (holder[src] != holder[dst])
    )
    conflict_users = np.where(cut, users[labels[src]] if len(src) else 0, 0)
    never_cut = _never_link_cut(n, src, dst, ~cut, never_link or NeverLink.empty())
    cut = cut | never_cut
    if cut.any():
        labels = connected_components(n, src[~cut], dst[~cut])
        users = _users_per_component(labels, graph.is_user)
    if len(users) and users.max() > 1:  # cannot happen: each identifier keeps at most one user edge
        raise IdentityError(f"stitch: a profile holds {int(users.max())} user_ids after the guards")
    order = np.lexsort((np.arange(n), graph.first_seen_us, labels))  # node id order = priority, then value
    first = np.ones(n, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    anchor_of = np.empty(int(labels.max()) + 1 if n else 0, dtype=np.int64)
    anchor_of[labels[order][first]] = order[first]
    return Components(labels, anchor_of[labels], cut, conflict_users, raw, never_cut)


@dataclass(frozen=True)
class StitchResult:
    identity_map: pa.Table
    guard_log: pa.Table
    n_edges: int
    edges: pa.Table = field(default_factory=lambda: EDGES_SCHEMA.empty_table())  # every edge, cut flagged
    raw_components: pa.Table = field(default_factory=lambda: RAW_COMPONENTS_SCHEMA.empty_table())
    aliases: pa.Table = field(
        default_factory=lambda: ALIAS_PAIRS_SCHEMA.empty_table()
    )  # absorbed -> survivor


EDGES_SCHEMA = pa.schema(
    [
        ("a_type", pa.string()),
        ("a_value", pa.string()),
        ("b_type", pa.string()),
        ("b_value", pa.string()),
        ("rule", pa.string()),  # user | record | pair | probabilistic
        ("first_ts", TS),
        ("probability", pa.float64()),
        ("evidence", pa.string()),
        ("cut", pa.string()),  # NULL | conflict | never_link
    ]
)
RAW_COMPONENTS_SCHEMA = pa.schema(
    [("identifier_type", pa.string()), ("identifier_value", pa.string()), ("component", pa.string())]
)
ALIAS_PAIRS_SCHEMA = pa.schema([("alias_id", pa.string()), ("customer_id", pa.string())])


class Stitcher:
    """The deterministic component of the resolver: graph -> guards -> components -> identity map."""

    def __init__(self, config: StitchConfig) -> None:
        self.config = config

    def run(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        prior: pa.Table | None = None,
        extra_edges: pa.Table | None = None,
        never_link: pa.Table | None = None,
        keep: pa.Table | None = None,
    ) -> StitchResult:
        """Stitch the `events` (and `records`) views of ``con``; returns the tables, writes nothing.

        ``prior``: the previous identity map (persistent ids); ``extra_edges``: probabilistic links;
        ``never_link``: (constraint_id, side, identifier_type, identifier_value); ``keep``: only these nodes.
        """
        graph = build_graph(con, self.config, extra_edges, keep)
        nl = _never_link_nodes(con, never_link)
        comp = components(graph, nl)
        n = graph.n_nodes
        kept = np.ones(n, dtype=bool)
        if keep is not None:
            kept[:] = False
            kept[con.execute("SELECT node FROM _kept").fetchnumpy()["node"].astype(np.int64)] = True
        con.register(
            "_comp",
            pa.table(
                {
                    "node": np.arange(n),
                    "label": comp.labels,
                    "anchor": comp.anchor,
                    "raw": comp.raw,
                    "ord": np.argsort(np.lexsort((np.arange(n), graph.first_seen_us))),
                    "kept": kept,
                }
            ),
        )
        aliases = assign_ids(con, prior)
        identity_map = con.sql("""
            SELECT n.t AS identifier_type, n.v AS identifier_value, i.customer_id, n.first_seen
            FROM _nodes n JOIN _comp c ON c.node = n.node JOIN _ids i ON i.label = c.label
            WHERE c.kept ORDER BY customer_id, n.node""").to_arrow_table()
        raw = con.sql("""
            WITH k AS (SELECT raw, min(node) AS m FROM _comp GROUP BY raw)
            SELECT n.t AS identifier_type, n.v AS identifier_value, a.t || ':' || a.v AS component
            FROM _comp c JOIN k USING (raw) JOIN _nodes n ON n.node = c.node JOIN _nodes a ON a.node = k.m
            WHERE c.kept""").to_arrow_table()
        edges = self._edges(con, graph, comp)
        log = pa.concat_tables([graph.guard_log, self._cut_log(con, graph, comp)])
        return StitchResult(
            identity_map.cast(IDENTITY_MAP_SCHEMA),
            log,
            int(len(graph.src) - comp.cut.sum()),
            edges,
            raw.cast(RAW_COMPONENTS_SCHEMA),
            aliases.cast(ALIAS_PAIRS_SCHEMA),
        )

    @staticmethod
    def _edges(con: duckdb.DuckDBPyConnection, graph: IdentityGraph, comp: Components) -> pa.Table:
        cut = np.where(comp.never_cut, "never_link", np.where(comp.cut, "conflict", None))
        con.register("_e", graph.edges.append_column("cut", pa.array(cut.tolist(), pa.string())))
        return (
            con.sql("""
            SELECT x.t AS a_type, x.v AS a_value, y.t AS b_type, y.v AS b_value, e.rule, e.first_ts,
                   e.probability, e.evidence, e.cut
            FROM _e e JOIN _nodes x ON x.node = e.a JOIN _nodes y ON y.node = e.b""")
            .to_arrow_table()
            .cast(EDGES_SCHEMA)
        )

    @staticmethod
    def _cut_log(con: duckdb.DuckDBPyConnection, graph: IdentityGraph, comp: Components) -> pa.Table:
        idx = np.flatnonzero(comp.cut)
        if len(idx) == 0:
            return GUARD_LOG_SCHEMA.empty_table()
        con.register(
            "_cut",
            pa.table(
                {
                    "a": graph.src[idx],
                    "b": graph.dst[idx],
                    "users": comp.conflict_users[idx],
                    "never": comp.never_cut[idx],
                }
            ),
        )
        return (
            con.sql("""
            SELECT CASE WHEN c.never THEN 'never_link' ELSE 'conflict_cut' END AS guard,
                   x.t AS identifier_type, x.v AS identifier_value,
                   CASE WHEN c.never THEN 'unlinked from ' || y.t || ' ' || y.v || ': a never-link constraint'
                        ELSE 'unlinked from ' || y.t || ' ' || y.v || ': the link joined ' || c.users || ' user_ids'
                   END AS detail
            FROM _cut c JOIN _nodes x ON x.node = c.a JOIN _nodes y ON y.node = c.b
            ORDER BY 1, 2, 3, 4""")
            .to_arrow_table()
            .cast(GUARD_LOG_SCHEMA)
        )


def _never_link_nodes(con: duckdb.DuckDBPyConnection, never_link: pa.Table | None) -> NeverLink:
    if never_link is None or never_link.num_rows == 0:
        return NeverLink.empty()
    con.register("_nl", never_link.select(["constraint_id", "side", "identifier_type", "identifier_value"]))
    rows = con.execute("""
        SELECT dense_rank() OVER (ORDER BY l.constraint_id) AS cid, l.side::BIGINT AS side, n.node
        FROM _nl l JOIN _nodes n ON n.t = l.identifier_type AND n.v = l.identifier_value""").fetchnumpy()
    return NeverLink(*(np.asarray(rows[k], dtype=np.int64) for k in ("cid", "side", "node")))
