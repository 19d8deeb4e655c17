"""Real-time segment entry/exit: the engine hook that re-evaluates the customers each micro-batch touched.

Called on the engine's hooks thread with every batch applied since the last call (`serving.realtime`). Per
batch, in log order: consent statements join the consent state, merges move consent to the survivor (most
restrictive wins) and make the absorbed profile exit. Then, once for the run, every customer the batches
touched (and still live) is scored by the registered champions on the features the applier computed (the
same numbers the online store got) and re-evaluated against the segment definitions with the latest build's
frozen thresholds. Entry/exit events go to the webhook outbox (`activation`), which never blocks the engine:
delivery runs on its own thread.
"""

from __future__ import annotations

import logging
import threading
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
        self.lock = threading.Lock()  # the segment and consent state: this hook vs the deliverer's threads

    @classmethod
    def open(cls, settings: Settings, engine: RealtimeEngine) -> SegmentHook:
        """Live segments over the workspace, the registered champions, and webhook delivery when configured."""
        from activation import Activation
        from segments.live import LiveSegments
        from training.registry import Registry

        segments = LiveSegments.load(settings, engine.ws)
        registry = Registry(settings)
        champions = {m: registry.champion(m) for m in MODELS if registry.champion_version(m) is not None}

        hook: SegmentHook | None = None

        def consent(customer_ids: Any, purpose: Any) -> set[str]:
            # the deliverer's threads read the consent state this hook writes: its lock
            assert hook is not None
            with hook.lock:
                return segments.consenting(list(customer_ids), purpose)

        activation = Activation.from_settings(settings, consent=consent)
        hook = cls(engine, segments, champions, activation)
        activation.start()
        return hook

    def scores(self, customers: list[str], at: pd.Timestamp, computed: pd.DataFrame | None) -> pd.DataFrame:
        """customer_id + every feature + each champion's score column: the rows the applier `computed`
        (latest per customer), the others computed at ``at``."""
        from training.scoring import SCORE_COLUMNS

        parts = []
        if computed is not None:
            parts.append(computed[computed["customer_id"].isin(customers)])
        have = set(parts[0]["customer_id"]) if parts else set()
        missing = [c for c in customers if c not in have]
        if missing:
            parts.append(self.engine.features.compute(missing, at.to_pydatetime()))
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
        for name, champ in self.champions.items():
            X = frame[champ.feature_names]
            numeric = all(pd.api.types.is_numeric_dtype(t) for t in X.dtypes)  # the applier's rows: one cast
            X = X.astype("float64") if numeric else X.apply(pd.to_numeric, errors="coerce").astype("float64")
            frame[SCORE_COLUMNS[name]] = champ.predict(X)
        return frame

    def __call__(self, batches: list[AppliedBatch]) -> None:
        changes: list[pd.DataFrame] = []
        with self.lock:
            customers: dict[str, None] = {}
            for batch in batches:
                at = batch.applied_at
                self.segments.observe(batch.events, batch.update.customer_ids)
                if batch.update.relabel:  # the absorbed profiles exit now; they are not evaluated again
                    changes.append(self.segments.relabel(batch.update.relabel, at=at))
                    for absorbed in batch.update.relabel:
                        customers.pop(absorbed, None)
                customers.update(dict.fromkeys(batch.customers))
            if customers:
                last = pd.Timestamp(batches[-1].applied_at)
                frames = [b.features for b in batches if b.features is not None and len(b.features)]
                computed = (
                    pd.concat(frames, ignore_index=True).drop_duplicates("customer_id", keep="last")
                    if frames
                    else None
                )
                scored = self.scores(list(customers), last, computed)
                changes.append(self.segments.evaluate(scored, at=last.to_pydatetime()))
        changes = [c for c in changes if c is not None and len(c)]
        if changes and self.activation is not None:
            self.delivered += self.activation.enqueue(pd.concat(changes, ignore_index=True))

    def close(self) -> None:
        if self.activation is not None:
            self.activation.close()
