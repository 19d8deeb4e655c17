"""The identity facade: `IdentityResolver(ws).resolve()` reads the workspace, stitches and writes the map.

Components hang off the resolver as attributes (Splink's `Linker` style): `.stitch` is the deterministic
stitcher; probabilistic matching and clustering of records join as further components that contribute
edges before the components are taken, behind the same `resolve()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa

from contract.errors import WorkspaceError
from contract.workspace import Workspace
from identity.config import StitchConfig
from identity.resolved import GUARD_TABLE, MAP_TABLE
from identity.stitch import Stitcher


@dataclass(frozen=True)
class ResolveReport:
    identifiers: int
    customers: int
    known_customers: int  # profiles holding a user_id
    anonymous_only: int  # profiles of only anonymous_id / device_id
    largest_cluster: int  # identifiers in the biggest profile
    edges: int
    guard_firings: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        guards = ", ".join(f"{k} {v}" for k, v in sorted(self.guard_firings.items())) or "none"
        return (
            f"{self.identifiers} identifiers -> {self.customers} customers ({self.known_customers} known, "
            f"{self.anonymous_only} anonymous-only, largest {self.largest_cluster}); guards: {guards}; "
            f"{self.seconds:.1f}s"
        )


class IdentityResolver:
    """Resolve a workspace's identifiers into customer profiles."""

    def __init__(self, workspace: Workspace, config: StitchConfig | None = None) -> None:
        self.workspace = workspace
        self.config = config or StitchConfig()
        self.stitch = Stitcher(self.config)

    def resolve(self) -> ResolveReport:
        """Stitch events and records, write `identity_map` and `identity_guard_log`; report the counts."""
        ws = self.workspace
        if not ws.exists("events"):
            raise WorkspaceError(f"events: no events in workspace {ws.root} (import some first)")
        started = time.perf_counter()
        with ws.connect("events", "records") as con:
            result = self.stitch.run(con)
        ws.replace(GUARD_TABLE, result.guard_log)
        ws.replace(MAP_TABLE, result.identity_map)
        return _report(result.identity_map, result.guard_log, result.n_edges, time.perf_counter() - started)


def _report(identity_map: pa.Table, guard_log: pa.Table, edges: int, seconds: float) -> ResolveReport:
    import duckdb

    con = duckdb.connect()
    try:
        con.register("m", identity_map)
        con.register("g", guard_log)
        row = con.execute("""
            WITH c AS (
                SELECT customer_id, count(*) AS size, bool_or(identifier_type = 'user_id') AS known,
                       bool_and(identifier_type IN ('anonymous_id', 'device_id')) AS anon
                FROM m GROUP BY customer_id)
            SELECT coalesce(sum(size), 0), count(*), count(*) FILTER (known), count(*) FILTER (anon),
                   coalesce(max(size), 0)
            FROM c""").fetchone()
        guards = dict(con.execute("SELECT guard, count(*) FROM g GROUP BY guard").fetchall())
    finally:
        con.close()
    assert row is not None
    return ResolveReport(*(int(x) for x in row), edges=edges, guard_firings=guards, seconds=seconds)
