"""Level-3 predictive segments: definitions as data, batch and real-time membership, consent, exports.

`build_segments(settings, ws)` scores every customer with the champions and persists membership;
`LiveSegments` re-evaluates the customers an event touched; `SegmentStore(ws)` answers the pull API
(`members`, `changes`, `sizes`); `export` writes hashed identifiers of consenting members; `customer_consent`
folds per-purpose consent (most restrictive across merged profiles). Names are re-exported lazily (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contract.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BuildReport": "segments.build",
    "build_from_frame": "segments.build",
    "build_segments": "segments.build",
    "consent_of": "segments.consent",
    "customer_consent": "segments.consent",
    "with_consent": "segments.consent",
    "Definitions": "segments.definitions",
    "Segment": "segments.definitions",
    "load": "segments.definitions",
    "Evaluation": "segments.evaluate",
    "Thresholds": "segments.evaluate",
    "evaluate": "segments.evaluate",
    "freeze": "segments.evaluate",
    "ExportReport": "segments.export",
    "export": "segments.export",
    "LiveSegments": "segments.live",
    "Build": "segments.store",
    "Page": "segments.store",
    "SegmentStore": "segments.store",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from segments.build import BuildReport, build_from_frame, build_segments
    from segments.consent import consent_of, customer_consent, with_consent
    from segments.definitions import Definitions, Segment, load
    from segments.evaluate import Evaluation, Thresholds, evaluate, freeze
    from segments.export import ExportReport, export
    from segments.live import LiveSegments
    from segments.store import Build, Page, SegmentStore
