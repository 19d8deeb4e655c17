"""Graph health: cluster sizes, giant clusters, bridge identifiers and guard firings, checked against
thresholds (`HealthConfig`).

A bridge identifier is an articulation point of its cluster's (uncut) edge graph: removing it splits the
cluster, so one identifier alone holds people together — the usual sign of a shared device or a recycled
number slipping through the guards. A user_id is not counted: it is the authenticated hub a person's
identifiers are meant to hang from. They are computed with networkx for clusters of at least
``bridge_min_size`` identifiers, largest first, up to ``bridge_max_nodes`` identifiers in all (bounded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import networkx as nx
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from contract.errors import WorkspaceError
from contract.workspace import Workspace
from identity.resolved import GUARD_TABLE, MAP_TABLE

EDGES_TABLE = "identity_edges"


class HealthConfig(BaseModel):
    """Thresholds of `cxi identity health`; crossing one is a warning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    giant_cluster_size: int = Field(50, ge=2, description="A cluster with more identifiers is giant.")
    max_giant_clusters: int = Field(0, ge=0, description="Most giant clusters before a warning.")
    bridge_min_size: int = Field(3, ge=3, description="Smallest cluster searched for bridge identifiers.")
    bridge_max_nodes: int = Field(200_000, ge=1, description="Most identifiers searched for bridges in all.")
    max_bridge_share: float = Field(
        0.10, ge=0, le=1, description="Most bridge identifiers per identifier of the searched clusters."
    )
    max_guard_share: dict[str, float] = Field(
        default_factory=lambda: {"junk": 0.01, "shared": 0.01, "contested": 0.02, "conflict_cut": 0.01},
        description="Most firings of a guard per identifier.",
    )


@dataclass(frozen=True)
class HealthReport:
    identifiers: int
    customers: int
    size_distribution: dict[str, int]  # size bucket -> clusters
    giant_clusters: list[tuple[str, int]]  # (customer_id, identifiers), largest first
    bridges: list[tuple[str, str, str]]  # (customer_id, identifier_type, identifier_value)
    searched_identifiers: int
    guard_firings: dict[str, int]
    warnings: list[str] = field(default_factory=list)


_BUCKETS = ((1, 1), (2, 2), (3, 5), (6, 10), (11, 50), (51, 10**12))


def health(ws: Workspace, config: HealthConfig | None = None) -> HealthReport:
    """Measure the workspace's identity graph and compare with ``config``."""
    config = config or HealthConfig()
    if not ws.exists(MAP_TABLE):
        raise WorkspaceError(
            f"{MAP_TABLE}: missing in workspace {ws.root} (run `cxi identity resolve` first)"
        )
    with ws.connect(MAP_TABLE, EDGES_TABLE, GUARD_TABLE) as con:
        con.execute(
            "CREATE TEMP TABLE sizes AS SELECT customer_id, count(*) AS n FROM identity_map GROUP BY 1"
        )
        identifiers, customers = con.execute("SELECT coalesce(sum(n), 0), count(*) FROM sizes").fetchall()[0]
        dist = {
            (f"{lo}" if lo == hi else f"{lo}+" if hi > 10**9 else f"{lo}-{hi}"): int(
                con.execute("SELECT count(*) FROM sizes WHERE n BETWEEN ? AND ?", [lo, hi]).fetchall()[0][0]
            )
            for lo, hi in _BUCKETS
        }
        giants = [
            (c, int(n))
            for c, n in con.execute(
                "SELECT customer_id, n FROM sizes WHERE n > ? ORDER BY n DESC, customer_id",
                [config.giant_cluster_size],
            ).fetchall()
        ]
        guards = (
            dict(con.execute("SELECT guard, count(*) FROM identity_guard_log GROUP BY 1").fetchall())
            if (ws.exists(GUARD_TABLE))
            else {}
        )
        bridges, searched = _bridges(con, config) if ws.exists(EDGES_TABLE) else ([], 0)
    warnings = []
    if len(giants) > config.max_giant_clusters:
        warnings.append(
            f"{len(giants)} giant clusters (> {config.giant_cluster_size} identifiers; max {config.max_giant_clusters})"
        )
    if searched and len(bridges) / searched > config.max_bridge_share:
        warnings.append(
            f"bridge identifiers: {len(bridges)} of {searched} searched ({len(bridges) / searched:.1%} > "
            f"{config.max_bridge_share:.1%})"
        )
    for guard, n in sorted(guards.items()):
        limit = config.max_guard_share.get(guard)
        if limit is not None and identifiers and n / identifiers > limit:
            warnings.append(
                f"guard {guard}: {n} firings ({n / identifiers:.1%} of identifiers > {limit:.1%})"
            )
    return HealthReport(int(identifiers), int(customers), dist, giants, bridges, searched, guards, warnings)


def _bridges(con: duckdb.DuckDBPyConnection, config: HealthConfig) -> tuple[list[tuple[str, str, str]], int]:
    chosen = con.execute(
        """WITH c AS (SELECT customer_id, n, sum(n) OVER (ORDER BY n DESC, customer_id) AS run FROM sizes
                      WHERE n >= ?)
           SELECT customer_id FROM c WHERE run <= ?""",
        [config.bridge_min_size, config.bridge_max_nodes],
    ).fetchall()
    if not chosen:
        return [], 0
    con.register("chosen", pa.table({"customer_id": [c for (c,) in chosen]}))
    rows = con.execute("""
        SELECT x.customer_id, e.a_type || '\x1f' || e.a_value, e.b_type || '\x1f' || e.b_value
        FROM identity_edges e
        JOIN identity_map x ON x.identifier_type = e.a_type AND x.identifier_value = e.a_value
        JOIN identity_map y ON y.identifier_type = e.b_type AND y.identifier_value = e.b_value
        WHERE e.cut IS NULL AND x.customer_id = y.customer_id
          AND x.customer_id IN (SELECT customer_id FROM chosen)
        ORDER BY 1""").fetchall()
    graphs: dict[str, nx.Graph] = {}
    for cid, a, b in rows:
        graphs.setdefault(cid, nx.Graph()).add_edge(a, b)
    out = []
    for cid, g in sorted(graphs.items()):
        for node in sorted(nx.articulation_points(g)):
            t, v = node.split("\x1f", 1)
            if t != "user_id":
                out.append((cid, t, v))
    searched = int(
        con.execute(
            "SELECT sum(n) FROM sizes WHERE customer_id IN (SELECT customer_id FROM chosen)"
        ).fetchall()[0][0]
    )
    return out, searched
