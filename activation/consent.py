"""A consent check over the workspace, for deliverers that run outside the live service (`cxi destinations`).

It reads `segments.consent.customer_consent` once (most restrictive statement across merged profiles wins)
and fills unknowns with `Settings.consent_default_granted`. The live service passes its own check instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contract.schemas import ConsentPurpose
    from contract.settings import Settings
    from contract.workspace import Workspace


class WorkspaceConsent:
    """``(customer_ids, purpose) -> ids that consent``, from one snapshot of the workspace's consent table."""

    def __init__(self, settings: Settings, ws: Workspace) -> None:
        from segments.consent import COLUMNS, customer_consent, defaults

        frame = customer_consent(settings, ws)
        self._defaults = defaults(settings)
        self._known: dict[str, dict[str, bool]] = {}
        for purpose, col in COLUMNS.items():
            known = frame[["customer_id", col]].dropna()
            self._known[purpose] = dict(
                zip(known["customer_id"].astype(str), known[col].astype(bool), strict=True)
            )

    def __call__(self, customer_ids: Sequence[str], purpose: ConsentPurpose | str) -> set[str]:
        p = str(getattr(purpose, "value", purpose))
        known, default = self._known[p], self._defaults[p]
        return {c for c in customer_ids if known.get(c, default)}


class FrameConsent:
    """Adapter for anything with ``consent(customer_ids) -> DataFrame`` of customer_id + ``consent_<purpose>``
    booleans (e.g. `segments.live.LiveSegments`), so the live service checks the same state it segments with."""

    def __init__(self, source: object) -> None:
        self.source = source

    def __call__(self, customer_ids: Sequence[str], purpose: ConsentPurpose | str) -> set[str]:
        p = str(getattr(purpose, "value", purpose))
        frame = self.source.consent(list(customer_ids))  # type: ignore[attr-defined]
        return set(frame.loc[frame[f"consent_{p}"].astype(bool), "customer_id"].astype(str))
