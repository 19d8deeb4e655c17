"""Persistent customer ids: a component's id given the previous identity map.

A previous id stays with the component holding its oldest identifier (first_seen, then priority and value);
a component holding several previous ids keeps the one whose oldest identifier is oldest (the oldest cluster)
and the others become its aliases; a component holding none takes its natural id,
``"c_" + sha256("<type>:<value>")[:16]`` of its oldest identifier, or, when a survivor already holds that id
(its cluster split), the first split id ``"c_" + sha256("split:<id>")[:16]`` down the chain that no survivor
holds (a cluster may split more than once). With no previous map every id is natural,
so a full rerun on the same data gives the same ids, and a cluster that only grows keeps its id.
"""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa

PRIOR_COLUMNS = ["identifier_type", "identifier_value", "customer_id"]


def assign_ids(con: duckdb.DuckDBPyConnection, prior: pa.Table | None) -> pa.Table:
    """Create temp table `_ids` (label, customer_id) from `_comp` and `_nodes`; return the aliases.

    `_comp` holds node, label, anchor, ord (global age rank) per node. Returns (alias_id, customer_id).
    """
    if prior is None:
        prior = pa.table({c: pa.array([], pa.string()) for c in PRIOR_COLUMNS})
    con.register("_prior", prior.select(PRIOR_COLUMNS))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _holder AS
        WITH pm AS (
            SELECT p.customer_id AS p, c.label, c.ord
            FROM _prior p JOIN _nodes n ON n.t = p.identifier_type AND n.v = p.identifier_value
            JOIN _comp c ON c.node = n.node WHERE c.kept)
        SELECT p, arg_min(label, ord) AS label, min(ord) AS ord FROM pm GROUP BY p""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _surv AS
        SELECT label, arg_min(p, ord) AS survivor FROM _holder GROUP BY label""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ids AS
        WITH nat AS (
            SELECT c.label, 'c_' || left(sha256(a.t || ':' || a.v), 16) AS nat
            FROM _comp c JOIN _nodes a ON a.node = c.anchor WHERE c.node = c.anchor)
        SELECT nat.label, coalesce(s.survivor, nat.nat) AS customer_id,
               s.survivor IS NULL AND nat.nat IN (SELECT survivor FROM _surv) AS clash
        FROM nat LEFT JOIN _surv s USING (label)""")
    clashes = con.execute("SELECT label, customer_id FROM _ids WHERE clash").fetchall()
    if clashes:  # a split: rare and few, so the id chain is walked here
        taken = {r[0] for r in con.execute("SELECT survivor FROM _surv").fetchall()}
        con.executemany(
            "UPDATE _ids SET customer_id = ? WHERE label = ?",
            [(fresh_id(natural, taken), label) for label, natural in clashes],
        )
    return con.sql("""
        SELECT h.p AS alias_id, s.survivor AS customer_id
        FROM _holder h JOIN _surv s USING (label) WHERE h.p <> s.survivor ORDER BY 1""").to_arrow_table()


def natural_id(identifier_type: str, value: str) -> str:
    """The natural id of a component anchored at (type, value); the SQL of `assign_ids` in Python."""
    return "c_" + hashlib.sha256(f"{identifier_type}:{value}".encode()).hexdigest()[:16]


def split_id(natural: str) -> str:
    """One step of the split chain: the id derived from an id a survivor already holds."""
    return "c_" + hashlib.sha256(f"split:{natural}".encode()).hexdigest()[:16]


def fresh_id(natural: str, taken: set[str]) -> str:
    """The id of a component without previous ids: its natural id, else the first split id no survivor in
    `taken` holds (as `assign_ids`)."""
    cid = natural
    while cid in taken:
        cid = split_id(cid)
    return cid
