"""Identity resolution: identifiers -> one persistent customer profile each.

`IdentityResolver(ws).resolve()` writes `identity_map` (identifier_type, identifier_value, customer_id,
first_seen) and `identity_guard_log`; `IdentityIndex.load(ws)` answers lookups in memory;
`attach_customer_ids(con)` / `resolved_events(ws)` give every event its customer_id; `identity.match` links
records probabilistically. Names are re-exported lazily (PEP 562) so `identity.match` alone stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contract.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "MatchConfig": "identity.config",
    "StitchConfig": "identity.config",
    "IdentityError": "identity.errors",
    "IdentityIndex": "identity.index",
    "attach_customer_ids": "identity.resolved",
    "resolved_events": "identity.resolved",
    "IdentityResolver": "identity.resolver",
    "ResolveReport": "identity.resolver",
    "IDENTITY_MAP_SCHEMA": "identity.stitch",
    "Stitcher": "identity.stitch",
    "connected_components": "identity.stitch",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from identity.config import MatchConfig, StitchConfig
    from identity.errors import IdentityError
    from identity.index import IdentityIndex
    from identity.resolved import attach_customer_ids, resolved_events
    from identity.resolver import IdentityResolver, ResolveReport
    from identity.stitch import IDENTITY_MAP_SCHEMA, Stitcher, connected_components
