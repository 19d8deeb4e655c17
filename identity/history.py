"""Merge history, aliases and never-link constraints: the audit trail that makes merges reversible.

* `identity_audit` — one row per merge or split: audit_id, at, action (merge | split), survivor, absorbed,
  rule (the edge rules that made it, or the constraint that broke it), probability (of a probabilistic link),
  evidence (JSON: the bridging edges), actor.
* `identity_audit_members` — the absorbed cluster's identifiers at merge time (what `unmerge` restores).
* `identity_aliases` — alias_id -> customer_id (the survivor), merged_at; lookups by an alias id resolve.
* `identity_never_link` — constraint_id, side (0/1), identifier_type, identifier_value, created_at, actor:
  the two sides never share a customer again (`identity.stitch` cuts their links).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from contract.schemas import TS
from contract.workspace import Workspace

AUDIT_TABLE = "identity_audit"
MEMBERS_TABLE = "identity_audit_members"
ALIASES_TABLE = "identity_aliases"
NEVER_LINK_TABLE = "identity_never_link"

AUDIT_SCHEMA = pa.schema(
    [
        ("audit_id", pa.string()),
        ("at", TS),
        ("action", pa.string()),
        ("survivor", pa.string()),
        ("absorbed", pa.string()),
        ("rule", pa.string()),
        ("probability", pa.float64()),
        ("evidence", pa.string()),
        ("actor", pa.string()),
    ]
)
MEMBERS_SCHEMA = pa.schema(
    [("audit_id", pa.string()), ("identifier_type", pa.string()), ("identifier_value", pa.string())]
)
ALIASES_SCHEMA = pa.schema([("alias_id", pa.string()), ("customer_id", pa.string()), ("merged_at", TS)])
NEVER_LINK_SCHEMA = pa.schema(
    [
        ("constraint_id", pa.string()),
        ("side", pa.int8()),
        ("identifier_type", pa.string()),
        ("identifier_value", pa.string()),
        ("created_at", TS),
        ("actor", pa.string()),
    ]
)
#: Bridging edges kept as evidence per merge (the rest are counted).
MAX_EVIDENCE_EDGES = 20


def read_or_empty(ws: Workspace, name: str, schema: pa.Schema) -> pa.Table:
    return ws.read(name).select(schema.names).cast(schema) if ws.exists(name) else schema.empty_table()


def derive_audit(
    prior: pa.Table, new_map: pa.Table, edges: pa.Table, aliases: pa.Table, *, actor: str, at: datetime
) -> tuple[pa.Table, pa.Table]:
    """Audit rows (merges from ``aliases``, splits from prior clusters now spread over several ids) and the
    absorbed members of each merge. ``prior``/``new_map`` cover the same nodes (the re-resolved part)."""
    con = duckdb.connect()
    try:
        con.register("prior", prior.select(["identifier_type", "identifier_value", "customer_id"]))
        con.register("m", new_map.select(["identifier_type", "identifier_value", "customer_id"]))
        con.register("e", edges)
        con.register("al", aliases)
        con.execute("""
            CREATE TEMP TABLE pn AS SELECT m.identifier_type AS t, m.identifier_value AS v,
                p.customer_id AS old, m.customer_id AS new
            FROM m LEFT JOIN prior p USING (identifier_type, identifier_value)""")
        merges = con.sql(f"""
            WITH bridge AS (
                SELECT al.alias_id, al.customer_id, e.*
                FROM al JOIN e ON true
                JOIN pn x ON x.t = e.a_type AND x.v = e.a_value JOIN pn y ON y.t = e.b_type AND y.v = e.b_value
                WHERE e.cut IS NULL AND x.new = al.customer_id AND y.new = al.customer_id
                  AND ((x.old = al.alias_id AND y.old IS DISTINCT FROM al.alias_id)
                       OR (y.old = al.alias_id AND x.old IS DISTINCT FROM al.alias_id)))
            SELECT alias_id AS absorbed, customer_id AS survivor,
                   string_agg(DISTINCT rule, ',' ORDER BY rule) AS rule, max(probability) AS probability,
                   to_json({{bridges: list({{a: a_type || ':' || a_value, b: b_type || ':' || b_value,
                                            rule: rule, first_ts: first_ts, probability: probability,
                                            evidence: evidence}} ORDER BY first_ts, a_value, b_value)
                                       [1:{MAX_EVIDENCE_EDGES}],
                             n_bridges: count(*)}})::VARCHAR AS evidence
            FROM bridge GROUP BY ALL
            UNION ALL  -- a merge with no bridging edge left (e.g. the absorbed side's links changed): still recorded
            SELECT alias_id, customer_id, 'unknown', NULL, '{{"bridges": [], "n_bridges": 0}}'
            FROM al WHERE alias_id NOT IN (SELECT alias_id FROM bridge)
            ORDER BY 2, 1""").fetchall()
        splits = con.sql("""
            WITH spread AS (SELECT old, new, count(*) AS n FROM pn WHERE old IS NOT NULL GROUP BY ALL),
            multi AS (SELECT old FROM spread GROUP BY old HAVING count(*) > 1),
            keeper AS (SELECT old, CASE WHEN bool_or(new = old) THEN old ELSE arg_max(new, n) END AS kept
                       FROM spread WHERE old IN (SELECT old FROM multi) GROUP BY old)
            SELECT k.kept AS survivor, s.new AS absorbed, s.old, s.n
            FROM spread s JOIN keeper k USING (old) WHERE s.new <> k.kept ORDER BY 1, 2""").fetchall()
        members = con.sql(
            "SELECT old AS alias_id, t, v FROM pn WHERE old IN (SELECT alias_id FROM al) ORDER BY 1, 2, 3"
        ).fetchall()
    finally:
        con.close()
    rows: list[dict[str, object]] = []
    ids: dict[str, str] = {}
    for absorbed, survivor, rule, prob, evidence in merges:
        ids[absorbed] = uuid.uuid4().hex
        rows.append(audit_row(ids[absorbed], at, "merge", survivor, absorbed, rule, prob, evidence, actor))
    for survivor, absorbed, old, n in splits:
        evidence = f'{{"split_from": "{old}", "identifiers": {n}}}'
        rows.append(
            audit_row(uuid.uuid4().hex, at, "split", survivor, absorbed, "split", None, evidence, actor)
        )
    member_rows = [{"audit_id": ids[a], "identifier_type": t, "identifier_value": v} for a, t, v in members]
    return (
        pa.Table.from_pylist(rows, schema=AUDIT_SCHEMA),
        pa.Table.from_pylist(member_rows, schema=MEMBERS_SCHEMA),
    )


def audit_row(
    audit_id: str,
    at: datetime,
    action: str,
    survivor: str,
    absorbed: str,
    rule: str,
    probability: float | None,
    evidence: str,
    actor: str,
) -> dict[str, object]:
    """One `identity_audit` row (batch resolves and the live stitcher write the same shape)."""
    return {
        "audit_id": audit_id,
        "at": at,
        "action": action,
        "survivor": survivor,
        "absorbed": absorbed,
        "rule": rule,
        "probability": probability,
        "evidence": evidence,
        "actor": actor,
    }


def update_aliases(old: pa.Table, new_pairs: pa.Table, live_ids: pa.Array, at: datetime) -> pa.Table:
    """Add ``new_pairs`` (alias_id, customer_id), re-point chains to the final survivor, and drop aliases
    that are live customer ids again (restored by an unmerge)."""
    con = duckdb.connect()
    try:
        con.register("old", old)
        con.register("np_", new_pairs)
        con.register("live", pa.table({"id": live_ids}))
        con.execute(
            """
            CREATE TEMP TABLE a AS
            SELECT alias_id, customer_id, merged_at FROM old WHERE alias_id NOT IN (SELECT alias_id FROM np_)
            UNION ALL SELECT alias_id, customer_id, ? FROM np_""",
            [at],
        )
        for _ in range(32):  # follow chains (alias -> alias -> survivor); short in practice
            changed = con.execute("""
                UPDATE a SET customer_id = b.customer_id FROM a AS b
                WHERE a.customer_id = b.alias_id AND a.customer_id <> b.customer_id""").fetchone()
            if not changed or not changed[0]:
                break
        return (
            con.sql("""SELECT * FROM a WHERE alias_id NOT IN (SELECT id FROM live)
                       AND alias_id <> customer_id ORDER BY alias_id""")
            .to_arrow_table()
            .cast(ALIASES_SCHEMA)
        )
    finally:
        con.close()


def new_constraint(
    side0: list[tuple[str, str]], side1: list[tuple[str, str]], *, actor: str, at: datetime
) -> pa.Table:
    """A never-link constraint between two identifier sets."""
    cid = uuid.uuid4().hex
    rows = [
        {
            "constraint_id": cid,
            "side": side,
            "identifier_type": t,
            "identifier_value": v,
            "created_at": at,
            "actor": actor,
        }
        for side, group in ((0, side0), (1, side1))
        for t, v in group
    ]
    return pa.Table.from_pylist(rows, schema=NEVER_LINK_SCHEMA)


def now() -> datetime:
    return datetime.now(UTC)
