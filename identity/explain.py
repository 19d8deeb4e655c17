"""Why a customer is one customer: its identifiers, the edges (rule, evidence) holding it together, the guard
firings touching it and its merge/split history."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import NotFoundError
from contract.workspace import Workspace
from identity.history import AUDIT_SCHEMA, AUDIT_TABLE, read_or_empty
from identity.index import IdentityIndex
from identity.resolved import GUARD_TABLE
from identity.stitch import EDGES_SCHEMA

EDGES_TABLE = "identity_edges"


@dataclass(frozen=True)
class Explanation:
    customer_id: str
    aliases: list[str]
    identifiers: list[tuple[str, str]]
    edges: pa.Table  # EDGES_SCHEMA rows with an end in the cluster (cut ones flagged)
    guards: pa.Table  # guard log rows of its identifiers
    history: pa.Table  # AUDIT_SCHEMA rows naming it (or its aliases)


def explain(ws: Workspace, key: str) -> Explanation:
    """``key``: a customer_id (or alias id), or an identifier as ``TYPE:VALUE``."""
    index = IdentityIndex.load(ws)
    cid = index.canonical_id(key)
    if not index.identifiers_of(cid) and ":" in key:
        t, v = key.split(":", 1)
        cid = index.customer_for_any(t, v) or ""
    members = index.identifiers_of(cid)
    if not members:
        raise NotFoundError(
            f"id: {key!r} is neither a customer_id, an alias, nor a known TYPE:VALUE identifier"
        )
    keys = pa.array([f"{t}\x1f{v}" for t, v in members])
    edges = read_or_empty(ws, EDGES_TABLE, EDGES_SCHEMA)
    a = pc.binary_join_element_wise(edges["a_type"], edges["a_value"], "\x1f")
    b = pc.binary_join_element_wise(edges["b_type"], edges["b_value"], "\x1f")
    edges = edges.filter(pc.or_(pc.is_in(a, keys), pc.is_in(b, keys)))
    guards = (
        ws.read(GUARD_TABLE) if ws.exists(GUARD_TABLE) else pa.table({"guard": pa.array([], pa.string())})
    )
    if guards.num_rows:
        g = pc.binary_join_element_wise(guards["identifier_type"], guards["identifier_value"], "\x1f")
        guards = guards.filter(pc.is_in(g, keys))
    aliases = sorted(k for k, v in index._aliases.items() if v == cid)
    ids = pa.array([cid, *aliases])
    audit = read_or_empty(ws, AUDIT_TABLE, AUDIT_SCHEMA)
    history = audit.filter(
        pc.or_(pc.is_in(audit["survivor"], ids), pc.is_in(audit["absorbed"], ids))
    ).sort_by("at")
    return Explanation(cid, aliases, members, edges, guards, history)
