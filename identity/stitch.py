"""Deterministic stitching: connected components of the guarded identity graph, the last guard (never two
user_ids in one profile) and stable customer ids.

Components are computed vectorised (scipy.sparse.csgraph over integer-coded nodes: union-find without a
Python loop over rows). A component's customer id is ``"c_" + sha256("<type>:<value>")[:16]`` of its oldest
identifier (earliest first_seen; ties by identifier priority, then value), so the same data gives the same
ids whatever the input order, and a profile keeps its id while it only grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _cc

from contract.schemas import TS
from identity.config import StitchConfig
from identity.errors import IdentityError
from identity.graph import GUARD_LOG_SCHEMA, IdentityGraph, build_graph

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
    cut: np.ndarray  # bool per edge of the graph: dropped by the conflict guard
    conflict_users: np.ndarray  # per edge: user_ids its component held before the cut (0 when not cut)


def components(graph: IdentityGraph) -> Components:
    """Components with the conflict guard applied, and each node's anchor (oldest identifier)."""
    n, src, dst = graph.n_nodes, graph.src, graph.dst
    labels = connected_components(n, src, dst)
    users = _users_per_component(labels, graph.is_user)
    conflicted = users[labels] > 1
    # A chain of non-user edges joined two people. Cut, inside such components, every non-user edge that
    # touches an identifier holding a user edge, unless both ends hold the same one: each such identifier
    # stays with its own (single) user_id; identifiers with no user edge keep their links among themselves.
    # No path between two user_ids survives.
    user_of = graph.user_of
    non_user = ~graph.is_user[src] & ~graph.is_user[dst]
    cut = (
        non_user
        & conflicted[src]
        & ((user_of[src] >= 0) | (user_of[dst] >= 0))
        & (user_of[src] != user_of[dst])
    )
    conflict_users = np.where(cut, users[labels[src]] if len(src) else 0, 0)
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
    return Components(labels, anchor_of[labels], cut, conflict_users)


@dataclass(frozen=True)
class StitchResult:
    identity_map: pa.Table
    guard_log: pa.Table
    n_edges: int


class Stitcher:
    """The deterministic component of the resolver: graph -> guards -> components -> identity map."""

    def __init__(self, config: StitchConfig) -> None:
        self.config = config

    def run(self, con: duckdb.DuckDBPyConnection) -> StitchResult:
        """Stitch the `events` (and `records`) views of ``con``; returns the tables, writes nothing."""
        graph = build_graph(con, self.config)
        comp = components(graph)
        con.register("_anchor", pa.table({"node": np.arange(graph.n_nodes), "anchor": comp.anchor}))
        identity_map = con.sql("""
            SELECT n.t AS identifier_type, n.v AS identifier_value,
                   'c_' || left(sha256(a.t || ':' || a.v), 16) AS customer_id, n.first_seen
            FROM _nodes n JOIN _anchor x ON x.node = n.node JOIN _nodes a ON a.node = x.anchor
            ORDER BY customer_id, n.node""").to_arrow_table()
        log = pa.concat_tables([graph.guard_log, self._cut_log(con, graph, comp)])
        return StitchResult(identity_map.cast(IDENTITY_MAP_SCHEMA), log, int(len(graph.src) - comp.cut.sum()))

    @staticmethod
    def _cut_log(con: duckdb.DuckDBPyConnection, graph: IdentityGraph, comp: Components) -> pa.Table:
        idx = np.flatnonzero(comp.cut)
        if len(idx) == 0:
            return GUARD_LOG_SCHEMA.empty_table()
        con.register(
            "_cut",
            pa.table({"a": graph.src[idx], "b": graph.dst[idx], "users": comp.conflict_users[idx]}),
        )
        return (
            con.sql("""
            SELECT 'conflict_cut' AS guard, x.t AS identifier_type, x.v AS identifier_value,
                   'unlinked from ' || y.t || ' ' || y.v || ': the link joined ' || c.users || ' user_ids' AS detail
            FROM _cut c JOIN _nodes x ON x.node = c.a JOIN _nodes y ON y.node = c.b
            ORDER BY 2, 3, 4""")
            .to_arrow_table()
            .cast(GUARD_LOG_SCHEMA)
        )
