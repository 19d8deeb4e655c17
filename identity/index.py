"""In-memory lookups over the identity map, for the scoring service (microseconds per lookup)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import ContractError, WorkspaceError
from contract.normalize import normalize_email, normalize_phone, sha256_hex
from contract.workspace import Workspace
from identity.config import NODE_TYPES
from identity.resolved import GUARD_TABLE, MAP_TABLE, UNLINKING_GUARDS

ALIASES_TABLE = "identity_aliases"


class IdentityIndex:
    """identifier -> customer_id and customer_id -> identifiers.

    Identifiers the guards marked junk or shared name nobody: ``customer_for`` answers None for them,
    although the map keeps them (each as its own profile) so every event still resolves.
    """

    def __init__(
        self,
        identity_map: pa.Table,
        guarded: set[tuple[str, str]] | None = None,
        aliases: dict[str, str] | None = None,
    ) -> None:
        t = identity_map.sort_by([("customer_id", "ascending"), ("identifier_type", "ascending")])
        types = t.column("identifier_type").to_pylist()
        values = t.column("identifier_value").to_pylist()
        customers = t.column("customer_id").to_pylist()
        self._guarded = guarded or set()
        self._aliases = aliases or {}
        self._by_id: dict[tuple[str, str], str] = dict(
            zip(zip(types, values, strict=True), customers, strict=True)
        )
        self._types, self._values = types, values
        self._customers = np.asarray(customers, dtype=object)

    @classmethod
    def load(cls, ws: Workspace, as_of: datetime | None = None) -> IdentityIndex:
        """The current map, or with ``as_of`` the map as it was then (`identity.asof`)."""
        if not ws.exists(MAP_TABLE):
            raise WorkspaceError(
                f"{MAP_TABLE}: missing in workspace {ws.root} (run `cxi identity resolve` first)"
            )
        guarded: set[tuple[str, str]] = set()
        if ws.exists(GUARD_TABLE):
            log = ws.read(GUARD_TABLE, columns=["guard", "identifier_type", "identifier_value"])
            log = log.filter(pc.is_in(log.column("guard"), pa.array(UNLINKING_GUARDS)))
            guarded = set(
                zip(
                    log.column("identifier_type").to_pylist(),
                    log.column("identifier_value").to_pylist(),
                    strict=True,
                )
            )
        aliases: dict[str, str] = {}
        if ws.exists(ALIASES_TABLE):
            a = ws.read(ALIASES_TABLE, columns=["alias_id", "customer_id"])
            aliases = dict(zip(a["alias_id"].to_pylist(), a["customer_id"].to_pylist(), strict=True))
        if as_of is None:
            table = ws.read(MAP_TABLE, columns=["identifier_type", "identifier_value", "customer_id"])
        else:
            from identity.asof import map_as_of

            with ws.connect(MAP_TABLE, "identity_edges", "identity_never_link") as con:
                table = map_as_of(con, as_of)
        return cls(table, guarded, aliases)

    def canonical_id(self, customer_id: str) -> str:
        """The live id for ``customer_id``: itself, or the survivor it was merged into (an alias)."""
        return self._aliases.get(customer_id, customer_id)

    def customer_for_any(self, identifier_type: str, value: str) -> str | None:
        """Like `customer_for`, guarded identifiers included (each is its own profile in the map)."""
        return self._by_id.get((identifier_type, value))

    def __len__(self) -> int:
        return len(self._by_id)

    def customer_for(self, identifier_type: str, value: str) -> str | None:
        """The customer an identifier belongs to; None when unknown, junk or shared."""
        if identifier_type not in NODE_TYPES:
            raise ContractError(
                "identifier_type",
                f"unknown identifier type (one of {', '.join(NODE_TYPES)})",
                identifier_type,
            )
        key = (identifier_type, value)
        return None if key in self._guarded else self._by_id.get(key)

    def customer_for_email(self, email: str) -> str | None:
        """Look up by a raw email: normalised and hashed as at import."""
        return self.customer_for("email_sha256", sha256_hex(normalize_email(email)))

    def customer_for_phone(self, phone: str, region: str | None = None) -> str | None:
        """Look up by a raw phone number: normalised and hashed as at import (a number without a country code
        is read in `region`, the import's ``phone_region``; see ``contract.normalize``)."""
        return self.customer_for("phone_sha256", sha256_hex(normalize_phone(phone, region)))

    def identifiers_of(self, customer_id: str) -> list[tuple[str, str]]:
        """Every (identifier_type, identifier_value) of a customer (an alias id resolves to its survivor);
        empty when the id is unknown."""
        customer_id = self.canonical_id(customer_id)
        lo = int(np.searchsorted(self._customers, customer_id, side="left"))
        hi = int(np.searchsorted(self._customers, customer_id, side="right"))
        return sorted(zip(self._types[lo:hi], self._values[lo:hi], strict=True), key=_priority)


def _priority(item: tuple[str, str]) -> tuple[int, str]:
    return NODE_TYPES.index(item[0]), item[1]
