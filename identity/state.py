"""Writing a resolve's results to the workspace: the map and guard log, the edges (explain, as-of, health),
raw components (incremental closure), aliases and audit rows; and the stored probabilistic links."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from contract.workspace import Workspace
from identity.graph import EXTRA_EDGES_SCHEMA, _extra_edges_table
from identity.history import (
    ALIASES_SCHEMA,
    ALIASES_TABLE,
    AUDIT_TABLE,
    MEMBERS_TABLE,
    derive_audit,
    now,
    read_or_empty,
    update_aliases,
)
from identity.resolved import GUARD_TABLE, MAP_TABLE
from identity.stitch import StitchResult

if TYPE_CHECKING:
    import pandas as pd

EDGES_TABLE = "identity_edges"
COMPONENTS_TABLE = "identity_components"
EXTRA_TABLE = "identity_extra_edges"


def store_extra_edges(ws: Workspace, extra: pd.DataFrame | pa.Table | None, *, append: bool) -> pa.Table:
    """Validate and store probabilistic links (replace, or append); return every stored one."""
    stored = read_or_empty(ws, EXTRA_TABLE, EXTRA_EDGES_SCHEMA)
    if extra is None:
        return stored
    table = extra if isinstance(extra, pa.Table) else pa.Table.from_pandas(extra, preserve_index=False)
    table = _extra_edges_table(table)
    table = pa.concat_tables([stored, table]) if append else table
    ws.replace(EXTRA_TABLE, table)
    return table


def commit(
    ws: Workspace,
    full: StitchResult,
    part: StitchResult,
    prior_part: pa.Table | None,
    *,
    actor: str,
) -> None:
    """Write ``full`` (the whole workspace's tables); derive audit and aliases from ``part`` (the re-resolved
    nodes) against ``prior_part`` (their previous map)."""
    at = now()
    if prior_part is not None and prior_part.num_rows:
        audit, members = derive_audit(
            prior_part, part.identity_map, part.edges, part.aliases, actor=actor, at=at
        )
        if audit.num_rows:
            ws.append(AUDIT_TABLE, audit)
            ws.append(MEMBERS_TABLE, members)
    old_aliases = read_or_empty(ws, ALIASES_TABLE, ALIASES_SCHEMA)
    if old_aliases.num_rows or part.aliases.num_rows:
        live = pc.unique(full.identity_map.column("customer_id").combine_chunks())
        ws.replace(ALIASES_TABLE, update_aliases(old_aliases, part.aliases, live, at))
    ws.replace(GUARD_TABLE, full.guard_log)
    ws.replace(EDGES_TABLE, full.edges)
    ws.replace(COMPONENTS_TABLE, full.raw_components)
    ws.replace(MAP_TABLE, full.identity_map)
