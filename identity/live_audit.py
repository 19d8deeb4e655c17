"""Audit rows of live merges and splits, in the shapes of `identity.history` (`identity_audit`,
`identity_audit_members`), built in Python from the re-decided subgraph (a DuckDB pass per micro-batch would
cost milliseconds). Evidence of a merge: the bridging edges, as `identity.history.derive_audit` writes them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from identity.history import MAX_EVIDENCE_EDGES, audit_row
from identity.live_graph import Edge, Key, Subgraph

#: Who the audit rows of live merges and splits name as the actor.
ACTOR = "live"


def merge_rows(
    sub: Subgraph, prior: dict[Key, str], new_cust: dict[Key, str], aliases: dict[str, str], at: datetime
) -> tuple[list[dict[str, object]], list[dict[str, object]], dict[str, str]]:
    """(audit rows, absorbed members, rule per absorbed id) of the merges ``aliases`` (absorbed -> survivor)."""
    rows: list[dict[str, object]] = []
    members: list[dict[str, object]] = []
    reasons: dict[str, str] = {}
    for absorbed, survivor in sorted(aliases.items()):
        bridges = [e for e in sub.edges if e.cut is None and _bridges(e, absorbed, survivor, prior, new_cust)]
        bridges.sort(key=lambda e: (e.ts, e.a[1], e.b[1]))
        rule = ",".join(sorted({r for e in bridges for r in e.rule.split(",")})) or "unknown"
        reasons[absorbed] = rule
        audit_id = uuid.uuid4().hex
        evidence = {
            "bridges": [
                {
                    "a": f"{e.a[0]}:{e.a[1]}",
                    "b": f"{e.b[0]}:{e.b[1]}",
                    "rule": e.rule,
                    "first_ts": datetime.fromtimestamp(e.ts / 1e6, UTC).isoformat(),
                    "probability": None,
                    "evidence": None,
                }
                for e in bridges[:MAX_EVIDENCE_EDGES]
            ],
            "n_bridges": len(bridges),
        }
        rows.append(
            audit_row(audit_id, at, "merge", survivor, absorbed, rule, None, json.dumps(evidence), ACTOR)
        )
        members.extend(
            {"audit_id": audit_id, "identifier_type": k[0], "identifier_value": k[1]}
            for k in sorted(k for k, c in prior.items() if c == absorbed)
        )
    return rows, members, reasons


def split_rows(prior: dict[Key, str], new_cust: dict[Key, str], at: datetime) -> list[dict[str, object]]:
    """A split row per new id a previous cluster spread to (the kept one: the old id, else the largest)."""
    spread: dict[str, dict[str, int]] = {}
    for k, old in prior.items():
        per = spread.setdefault(old, {})
        per[new_cust[k]] = per.get(new_cust[k], 0) + 1
    rows = []
    for old, news in sorted(spread.items()):
        if len(news) < 2:
            continue
        kept = old if old in news else max(sorted(news), key=lambda c: news[c])
        for new, count in sorted(news.items()):
            if new != kept:
                evidence = json.dumps({"split_from": old, "identifiers": count})
                rows.append(
                    audit_row(uuid.uuid4().hex, at, "split", kept, new, "split", None, evidence, ACTOR)
                )
    return rows


def _bridges(e: Edge, absorbed: str, survivor: str, prior: dict[Key, str], new: dict[Key, str]) -> bool:
    if new[e.a] != survivor or new[e.b] != survivor:
        return False
    pa_, pb = prior.get(e.a), prior.get(e.b)
    return (pa_ == absorbed) != (pb == absorbed)
