"""Real-time segment entry/exit: the engine hook that re-evaluates the customers each micro-batch touched.

Called on the engine's hooks thread with every batch applied since the last call (`serving.realtime`), in-process
or, by default, in a child process (`serving.segments_process`): `HookRun.of` takes what a run needs from the
applied batches in the serving process, `SegmentHook.run` does the run. Per batch, in log order: consent
statements join the consent state, merges move consent to the survivor (most restrictive wins) and make the
absorbed profile exit. Then, once for the run, every customer the batches touched (and still live) is scored by
the registered champions on the features the applier computed (the same numbers the online store got) and
re-evaluated against the segment definitions with the latest build's frozen thresholds. Entry/exit events go
to the webhook outbox (`activation`), which never blocks the engine: delivery runs on its own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from activation import Activation
    from contract.settings import Settings
    from segments.live import LiveSegments
    from serving.realtime import AppliedBatch

log = logging.getLogger(__name__)

MODELS = ("churn", "intent", "value")

#: Feature rows of customers at an instant (`features.live.LiveFeatures.compute`).
Compute = Callable[[list[str], datetime], pd.DataFrame]


@dataclass
class HookBatch:
    """What segments need of one applied micro-batch (picklable: it crosses to the segments process)."""

    consent: pa.Table | None  # the batch's consent_update events (None: it has none)
    owners: pa.Array | None  # their customer ids
    relabel: dict[str, str]  # absorbed customer_id -> survivor
    customers: list[str]  # the customers the batch rewrote
    applied_at: datetime
    features: pd.DataFrame | None  # the rows the applier computed

    @classmethod
    def of(cls, batch: AppliedBatch) -> HookBatch:
        events, consent, owners = batch.events, None, None
        if events.num_rows:
            hit = pc.equal(events["type"], "consent_update")
            if pc.any(hit).as_py():  # selected in Arrow: most batches hold no consent statement
                consent = events.filter(hit)
                owners = pa.array(batch.update.customer_ids, pa.string()).filter(hit)
        return cls(consent, owners, batch.update.relabel, batch.customers, batch.applied_at, batch.features)


@dataclass
class HookRun:
    """One hook run: the batches in log order, the customers to re-evaluate, and a feature row for each."""

    batches: list[HookBatch]
    customers: list[str]  # touched and still live (absorbed ones exit instead)
    rows: pd.DataFrame | None  # latest computed row per customer of `customers`

    @classmethod
    def of(cls, batches: list[AppliedBatch], compute: Compute) -> HookRun:
        """Built where the live features are: the rows the applier computed, and `compute`d rows (at the last
        batch's instant) for touched customers it did not compute (a merge's survivor, say)."""
        slim = [HookBatch.of(b) for b in batches]
        customers: dict[str, None] = {}
        for batch in slim:
            for absorbed in batch.relabel:  # the absorbed profiles exit; they are not evaluated again
                customers.pop(absorbed, None)
            customers.update(dict.fromkeys(batch.customers))
        if not customers:
            return cls(slim, [], None)
        frames = [b.features for b in slim if b.features is not None and len(b.features)]
        rows = (
            pd.concat(frames, ignore_index=True).drop_duplicates("customer_id", keep="last")
            if frames
            else None
        )
        if rows is not None:
            rows = rows[rows["customer_id"].isin(customers)]
        have = set(rows["customer_id"]) if rows is not None else set()
        missing = [c for c in customers if c not in have]
        if missing:
            extra = compute(missing, pd.Timestamp(slim[-1].applied_at).to_pydatetime())
            rows = extra if rows is None else pd.concat([rows, extra], ignore_index=True)
        assert rows is not None
        return cls(slim, list(customers), rows)  # `SegmentHook.scores` takes its own re-indexed copy


class SegmentHook:
    """Live segments, the champions that score them, and webhook delivery; `run` applies one `HookRun`.
    Called with applied batches (`RealtimeEngine.hooks`) it builds the run itself with `compute`."""

    def __init__(
        self,
        segments: LiveSegments,
        champions: dict[str, Any],
        activation: Activation | None = None,
        compute: Compute | None = None,
    ) -> None:
        self.segments = segments
        self.champions = champions
        self.activation = activation
        self.compute = compute
        self.delivered = 0
        self.lock = threading.Lock()  # the segment and consent state: this hook vs the deliverer's threads

    @classmethod
    def open(cls, settings: Settings, compute: Compute | None = None) -> SegmentHook:
        """Live segments over the workspace, the registered champions, and webhook delivery when configured."""
        from activation import Activation
        from contract.workspace import Workspace
        from segments.live import LiveSegments
        from training.registry import Registry

        segments = LiveSegments.load(settings, Workspace(settings.workspace))
        registry = Registry(settings)
        champions = {m: registry.champion(m) for m in MODELS if registry.champion_version(m) is not None}

        hook: SegmentHook | None = None

        def consent(customer_ids: Any, purpose: Any) -> set[str]:
            # the deliverer's threads read the consent state this hook writes: its lock
            assert hook is not None
            with hook.lock:
                return segments.consenting(list(customer_ids), purpose)

        activation = Activation.from_settings(settings, consent=consent)
        hook = cls(segments, champions, activation, compute)
        activation.start()
        return hook

    def wait_ready(self) -> bool:
        """Ready once opened (`serving.segments_process.SegmentProcess` waits for its child here)."""
        return True

    def scores(self, rows: pd.DataFrame) -> pd.DataFrame:
        """`rows` (customer_id + every feature) + each champion's score column."""
        from training.scoring import SCORE_COLUMNS

        frame = rows.reset_index(drop=True)
        for name, champ in self.champions.items():
            X = frame[champ.feature_names]
            numeric = all(pd.api.types.is_numeric_dtype(t) for t in X.dtypes)  # the applier's rows: one cast
            X = X.astype("float64") if numeric else X.apply(pd.to_numeric, errors="coerce").astype("float64")
            frame[SCORE_COLUMNS[name]] = champ.predict(X)
        return frame

    def __call__(self, batches: list[AppliedBatch]) -> None:
        if self.compute is None:
            raise TypeError("SegmentHook needs `compute` to run on applied batches")
        self.run(HookRun.of(batches, self.compute))

    def run(self, run: HookRun) -> None:
        changes: list[pd.DataFrame] = []
        with self.lock:
            for batch in run.batches:
                if batch.consent is not None:
                    self.segments.observe(batch.consent, batch.owners)
                if batch.relabel:  # the absorbed profiles exit now
                    changes.append(self.segments.relabel(batch.relabel, at=batch.applied_at))
            if run.customers and run.rows is not None:
                last = pd.Timestamp(run.batches[-1].applied_at).to_pydatetime()
                changes.append(self.segments.evaluate(self.scores(run.rows), at=last))
        changes = [c for c in changes if c is not None and len(c)]
        if changes and self.activation is not None:
            self.delivered += self.activation.enqueue(pd.concat(changes, ignore_index=True))

    def close(self) -> None:
        if self.activation is not None:
            self.activation.close()
