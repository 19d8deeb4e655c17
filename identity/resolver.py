"""The identity facade: `IdentityResolver(ws).resolve()` reads the workspace, stitches and writes the map.

Components hang off the resolver as attributes (Splink's `Linker` style): `.stitch` is the deterministic
stitcher; probabilistic matching and clustering of records join as further components that contribute
edges before the components are taken, behind the same `resolve()` (``extra_edges``). Ids persist across
runs (`identity.ids`), merges and splits are audited (`identity.history`), `resolve_incremental` re-resolves
only what new data touches (`identity.incremental`) and `unmerge` splits a cluster back (`identity.unmerge`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pyarrow as pa

from contract.errors import WorkspaceError
from contract.workspace import Workspace
from identity.config import MatchConfig, StitchConfig
from identity.history import NEVER_LINK_SCHEMA, NEVER_LINK_TABLE, read_or_empty
from identity.ids import PRIOR_COLUMNS
from identity.resolved import MAP_TABLE
from identity.state import commit, store_extra_edges
from identity.stitch import Stitcher

if TYPE_CHECKING:
    import pandas as pd

    from identity.unmerge import UnmergeResult


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
    probabilistic_edges: int = 0  # extra edges passed to the stitcher (matchers' and the caller's)
    notes: tuple[str, ...] = ()  # what the probabilistic matchers did, or why they were skipped

    def __str__(self) -> str:
        guards = ", ".join(f"{k} {v}" for k, v in sorted(self.guard_firings.items())) or "none"
        return (
            f"{self.identifiers} identifiers -> {self.customers} customers ({self.known_customers} known, "
            f"{self.anonymous_only} anonymous-only, largest {self.largest_cluster}); guards: {guards}; "
            f"{self.seconds:.1f}s" + "".join(f"; {n}" for n in self.notes)
        )


class IdentityResolver:
    """Resolve a workspace's identifiers into customer profiles."""

    def __init__(
        self, workspace: Workspace, config: StitchConfig | None = None, match: MatchConfig | None = None
    ) -> None:
        self.workspace = workspace
        self.config = config or StitchConfig()
        self.match = match or MatchConfig()
        self.stitch = Stitcher(self.config)

    def resolve(
        self,
        extra_edges: pd.DataFrame | pa.Table | None = None,
        *,
        actor: str = "resolve",
        probabilistic: bool = False,
    ) -> ResolveReport:
        """Stitch events and records over the whole workspace; write the map, guard log, edges, aliases, audit.

        ``extra_edges`` (left_type, left_value, right_type, right_value, probability, evidence JSON) replace
        the stored probabilistic links; None keeps the stored ones. With ``probabilistic`` (off by default,
        so `cxi run` stays deterministic) the anonymous-profile and record matchers train on a deterministic
        pass held in memory and their links (probability + evidence, kept in `identity_edges`) replace the
        stored ones, together with ``extra_edges``; a matcher that cannot train is skipped (see ``notes``). Their
        thresholds and gates come from ``match`` (`MatchConfig`: held-out precision target).
        """
        ws = self.workspace
        if not ws.exists("events"):
            raise WorkspaceError(f"events: no events in workspace {ws.root} (import some first)")
        started = time.perf_counter()
        prior = ws.read(MAP_TABLE, columns=PRIOR_COLUMNS) if ws.exists(MAP_TABLE) else None
        never = read_or_empty(ws, NEVER_LINK_TABLE, NEVER_LINK_SCHEMA)
        notes: tuple[str, ...] = ()
        if probabilistic:
            extra_edges, notes = self._match(prior, never, extra_edges)
        extra = store_extra_edges(ws, extra_edges, append=False)
        with ws.connect("events", "records") as con:
            result = self.stitch.run(con, prior=prior, extra_edges=extra, never_link=never)
        commit(ws, result, result, prior, actor=actor)
        report = _report(result.identity_map, result.guard_log, result.n_edges, time.perf_counter() - started)
        return replace(report, probabilistic_edges=extra.num_rows, notes=notes)

    def _match(
        self, prior: pa.Table | None, never: pa.Table, extra_edges: pd.DataFrame | pa.Table | None
    ) -> tuple[pa.Table, tuple[str, ...]]:
        """The matchers' edges (plus ``extra_edges``), trained on a deterministic pass that is not written."""
        from identity.graph import EXTRA_EDGES_SCHEMA
        from identity.probabilistic import match_edges

        ws = self.workspace
        with ws.connect("events", "records") as con:
            base = self.stitch.run(con, prior=prior, extra_edges=None, never_link=never)
        found = match_edges(ws, base.identity_map, base.guard_log, self.match)
        tables = [pa.Table.from_pandas(found.edges, preserve_index=False).cast(EXTRA_EDGES_SCHEMA)]
        if extra_edges is not None:
            given = extra_edges if isinstance(extra_edges, pa.Table) else pa.Table.from_pandas(extra_edges)
            from identity.graph import _extra_edges_table

            tables.append(_extra_edges_table(given))
        return pa.concat_tables(tables), found.notes

    def resolve_incremental(
        self,
        new_events: pa.Table | None = None,
        new_records: pa.Table | None = None,
        extra_edges: pd.DataFrame | pa.Table | None = None,
        *,
        actor: str = "resolve_incremental",
    ) -> ResolveReport:
        """Append ``new_events``/``new_records`` and re-resolve only the clusters they touch; the result equals
        `resolve()` on the whole workspace. See `identity.incremental`."""
        from identity.incremental import resolve_incremental

        return resolve_incremental(self, new_events, new_records, extra_edges, actor=actor)

    def unmerge(
        self, customer_id: str, identifiers: list[tuple[str, str]] | None = None, *, actor: str = "cli"
    ) -> UnmergeResult:
        """Split a cluster back (its last merge, or detach ``identifiers``) and pin the split; see
        `identity.unmerge`."""
        from identity.unmerge import unmerge

        return unmerge(self, customer_id, identifiers, actor=actor)


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
