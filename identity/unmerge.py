"""Undo a merge: split a cluster back and pin the split with a never-link constraint.

`unmerge(resolver, customer_id)` splits off the cluster absorbed by the customer's latest merge (its members at
merge time, from `identity_audit_members`); with ``identifiers`` it detaches those instead. The constraint is
stored in `identity_never_link`, the workspace is re-resolved (the split is audited with the actor), and the
result names every customer whose features must be rebuilt (`affected_customers` answers the same from the
audit for any period). The features layer cannot be imported from here; the caller triggers the rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow.compute as pc

from contract.errors import ContractError, NotFoundError
from identity.errors import IdentityError
from identity.history import (
    AUDIT_SCHEMA,
    AUDIT_TABLE,
    MEMBERS_SCHEMA,
    MEMBERS_TABLE,
    NEVER_LINK_TABLE,
    new_constraint,
    now,
    read_or_empty,
)
from identity.index import IdentityIndex

if TYPE_CHECKING:
    from contract.workspace import Workspace
    from identity.resolver import IdentityResolver


@dataclass(frozen=True)
class UnmergeResult:
    customer_id: str  # the cluster that was split (after alias resolution)
    split_off: list[str]  # customer ids of the detached part(s)
    detached: int  # identifiers moved out
    affected_customer_ids: list[str]  # rebuild features for these


def unmerge(
    resolver: IdentityResolver,
    customer_id: str,
    identifiers: list[tuple[str, str]] | None = None,
    *,
    actor: str = "cli",
) -> UnmergeResult:
    """Split ``customer_id`` (see the module docstring) and re-resolve the workspace."""
    ws = resolver.workspace
    index = IdentityIndex.load(ws)
    cid = index.canonical_id(customer_id)
    members = index.identifiers_of(cid)
    if not members:
        raise NotFoundError(f"customer_id: unknown customer {customer_id!r}")
    if identifiers:
        missing = [f"{t}:{v}" for t, v in identifiers if (t, v) not in set(members)]
        if missing:
            raise ContractError("identifier", f"not in customer {cid}: {', '.join(missing)}")
        side1 = sorted(set(identifiers))
    else:
        side1 = _last_merge_members(ws, cid, set(members))
    side0 = [m for m in members if m not in set(side1)]
    if not side0:
        raise ContractError("identifier", f"detaching every identifier of {cid} splits nothing")
    at = now()
    ws.append(NEVER_LINK_TABLE, new_constraint(side0, side1, actor=actor, at=at))
    resolver.resolve(actor=actor)
    after = IdentityIndex.load(ws)
    split_off = sorted({c for t, v in side1 if (c := after.customer_for_any(t, v)) is not None} - {cid})
    kept = sorted({c for t, v in side0 if (c := after.customer_for_any(t, v)) is not None})
    return UnmergeResult(cid, split_off, len(side1), sorted({cid, *kept, *split_off}))


def _last_merge_members(ws: Workspace, cid: str, members: set[tuple[str, str]]) -> list[tuple[str, str]]:
    audit = read_or_empty(ws, AUDIT_TABLE, AUDIT_SCHEMA)
    merges = audit.filter(pc.and_(pc.equal(audit["action"], "merge"), pc.equal(audit["survivor"], cid)))
    rows = sorted(merges.to_pylist(), key=lambda r: r["at"], reverse=True)
    held = read_or_empty(ws, MEMBERS_TABLE, MEMBERS_SCHEMA).to_pylist()
    for row in rows:  # latest merge whose absorbed identifiers are still here
        side = sorted(
            (m["identifier_type"], m["identifier_value"])
            for m in held
            if m["audit_id"] == row["audit_id"] and (m["identifier_type"], m["identifier_value"]) in members
        )
        if side:
            return side
    raise IdentityError(
        f"unmerge: customer {cid} has no merge to undo (name --identifier TYPE:VALUE instead)"
    )


def affected_customers(ws: Workspace, since: datetime) -> list[str]:
    """Customers touched by merges or splits audited at or after ``since``: their features need a rebuild."""
    audit = read_or_empty(ws, AUDIT_TABLE, AUDIT_SCHEMA)
    recent = audit.filter(pc.greater_equal(audit["at"], since))
    return sorted(set(recent["survivor"].to_pylist()) | set(recent["absorbed"].to_pylist()))
