"""Persistent customer ids: a component's id given the previous identity map.

A previous id stays with the component holding its oldest identifier (first_seen, then priority and value);
a component holding several previous ids keeps the one whose oldest identifier is oldest (the oldest cluster)
and the others become its aliases; a component holding none takes its natural id,
``"c_" + sha256("<type>:<value>")[:16]`` of its oldest identifier. With no previous map every id is natural,
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
        SELECT nat.label,
               coalesce(s.survivor, CASE WHEN nat.nat IN (SELECT survivor FROM _surv)
                                         THEN 'c_' || left(sha256('split:' || nat.nat), 16)
                                         ELSE nat.nat END) AS customer_id
        FROM nat LEFT JOIN _surv s USING (label)""")
    return con.sql("""
        SELECT h.p AS alias_id, s.survivor AS customer_id
        FROM _holder h JOIN _surv s USING (label) WHERE h.p <> s.survivor ORDER BY 1""").to_arrow_table()


def natural_id(identifier_type: str, value: str) -> str:
    """The natural id of a component anchored at (type, value); the SQL of `assign_ids` in Python."""
    return "c_" + hashlib.sha256(f"{identifier_type}:{value}".encode()).hexdigest()[:16]


def split_id(natural: str) -> str:
    """The id of a split-off component whose natural id is already a survivor's (as `assign_ids`)."""
    return "c_" + hashlib.sha256(f"split:{natural}".encode()).hexdigest()[:16]
