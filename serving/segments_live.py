"""Real-time segment entry/exit: the engine hook that re-evaluates the customers each micro-batch touched.

Per applied batch (`serving.realtime.AppliedBatch`): consent statements join the consent state, merges move
consent to the survivor (most restrictive wins) and make the absorbed profile exit, and every touched customer
is scored by the registered champions on the features just computed (the same numbers the online store got)
and re-evaluated against the segment definitions with the latest build's frozen thresholds. Entry/exit events
go to the webhook outbox (`activation`), which never blocks the engine: delivery runs on its own thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from activation import Activation
    from contract.settings import Settings
    from segments.live import LiveSegments
    from serving.realtime import AppliedBatch, RealtimeEngine

log = logging.getLogger(__name__)

MODELS = ("churn", "intent", "value")


class SegmentHook:
    """Callable hook for `RealtimeEngine.hooks`; `open` builds it from settings (None when nothing to do)."""

    def __init__(
        self,
        engine: RealtimeEngine,
        segments: LiveSegments,
        champions: dict[str, Any],
        activation: Activation | None = None,
    ) -> None:
        self.engine = engine
        self.segments = segments
        self.champions = champions
        self.activation = activation
        self.delivered = 0

    @classmethod
    def open(cls, settings: Settings, engine: RealtimeEngine) -> SegmentHook:
        """Live segments over the workspace, the registered champions, and webhook delivery when configured."""
        from activation import Activation
        from segments.live import LiveSegments
        from training.registry import Registry

        segments = LiveSegments.load(settings, engine.ws)
        registry = Registry(settings)
        champions = {m: registry.champion(m) for m in MODELS if registry.champion_version(m) is not None}

        def consent(customer_ids: Any, purpose: Any) -> set[str]:
            # the deliverer's threads read the consent state the applier writes: same lock
            with engine.state_lock:
                return segments.consenting(list(customer_ids), purpose)

        activation = Activation.from_settings(settings, consent=consent)
        activation.start()
        return cls(engine, segments, champions, activation)

    def scores(self, customers: list[str], at: pd.Timestamp) -> pd.DataFrame:
        """customer_id + every feature at ``at`` + each champion's score column."""
        from training.scoring import SCORE_COLUMNS

        written = self.engine.features.last_written
        if written is not None and set(customers) <= set(written["customer_id"]):
            # the frame `update` just computed at this batch's instant: no second feature query
            frame = written[written["customer_id"].isin(customers)].reset_index(drop=True)
        else:
            frame = self.engine.features.compute(customers, at.to_pydatetime())
        for name, champ in self.champions.items():
            X = frame[champ.feature_names].apply(pd.to_numeric, errors="coerce").astype("float64")
            frame[SCORE_COLUMNS[name]] = champ.predict(X)
        return frame

    def __call__(self, batch: AppliedBatch) -> None:
        at = pd.Timestamp(batch.applied_at)
        self.segments.observe(batch.events, batch.update.customer_ids)
        changes: list[pd.DataFrame] = []
        if batch.update.relabel:
            changes.append(self.segments.relabel(batch.update.relabel, at=at.to_pydatetime()))
        if batch.customers:
            changes.append(self.segments.evaluate(self.scores(batch.customers, at), at=at.to_pydatetime()))
        changes = [c for c in changes if c is not None and len(c)]
        if changes and self.activation is not None:
            self.delivered += self.activation.enqueue(pd.concat(changes, ignore_index=True))

    def close(self) -> None:
        if self.activation is not None:
            self.activation.close()
