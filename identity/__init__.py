"""Identity resolution: identifiers -> one persistent customer profile each.

`IdentityResolver(ws).resolve()` writes `identity_map` (identifier_type, identifier_value, customer_id,
first_seen) and `identity_guard_log`; `IdentityIndex.load(ws)` answers lookups in memory;
`attach_customer_ids(con)` / `resolved_events(ws)` give every event its customer_id.
"""

from identity.config import StitchConfig
from identity.errors import IdentityError
from identity.index import IdentityIndex
from identity.resolved import attach_customer_ids, resolved_events
from identity.resolver import IdentityResolver, ResolveReport
from identity.stitch import IDENTITY_MAP_SCHEMA, Stitcher, connected_components

__all__ = [
    "IDENTITY_MAP_SCHEMA",
    "IdentityError",
    "IdentityIndex",
    "IdentityResolver",
    "ResolveReport",
    "StitchConfig",
    "Stitcher",
    "attach_customer_ids",
    "connected_components",
    "resolved_events",
]
