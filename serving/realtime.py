"""The real-time engine: durable ingestion -> live identity -> streaming features (-> segments), in log order.

`RealtimeEngine.submit` validates a request's events, appends the accepted ones to the durable `EventLog`
(acknowledged only after fsync) and hands them to one applier thread. The applier takes everything pending
at once (so a burst of single-event requests becomes one micro-batch), stitches it with `LiveIdentity` and
recomputes the touched customers' features with the feature definition (`LiveFeatures.update`); the rows
go to the Feast online store behind the live path (`features.write_behind`, written by a child process,
`features.write_process`; reads serve them at once). A
request may wait until its events are *visible* (the default: the next score reflects them) or only until
they are *durable*. The hooks (segments, webhooks) run on their own thread, after visibility, over every
batch applied since their last run at once and at most every `live_hooks_seconds`, so a slow hook delays
neither ingestion nor scores; the segment hook's work itself runs in a child process
(`serving.segments_process`), so it does not hold this process's interpreter either.

Derived state is a function of the batch state plus the log: on start the engine re-applies every logged
event not yet in the workspace `events` table, so a crash (kill -9) loses nothing that was acknowledged and
the state it rebuilds is the one a replay would build.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd

from contract.errors import CXIError

if TYPE_CHECKING:
    from contract.settings import Settings
    from contract.workspace import Workspace
    from events.ingest import Ingestor, IngestResult
    from events.log import EventLog
    from features.live import LiveFeatures
    from features.store import FeatureRepo
    from identity.live import LiveIdentity, LiveUpdate
    from serving.realtime_matching import LiveMatching
    from serving.segments_live import SegmentHook
    from serving.segments_process import SegmentProcess

log = logging.getLogger(__name__)

#: durable: logged (fsync); visible: the next score reflects it; settled: segments and webhooks too.
Wait = Literal["durable", "visible", "settled"]
#: How often (at most) live merge audit rows are appended to the workspace; the rest on close.
AUDIT_SECONDS = 30.0


class NotVisibleError(CXIError):
    """Events were logged durably but not applied to the derived state in time (they will be)."""


@dataclass
class AppliedBatch:
    """One micro-batch the applier took: its events, the identity update and the customers rewritten."""

    events: pa.Table
    update: LiveUpdate
    customers: list[str]
    applied_at: datetime
    seconds: float
    features: pd.DataFrame | None = None  # every column of the rows `LiveFeatures.update` computed
    last_seq: int = 0


@dataclass
class EngineStats:
    """Counters for /v1/stats and benchmarks."""

    batches: int = 0
    events: int = 0
    merges: int = 0
    hook_runs: int = 0
    hook_errors: int = 0
    apply_seconds: list[float] = field(default_factory=list)
    lag_seconds: list[float] = field(default_factory=list)

    def record(self, batch: AppliedBatch, received: datetime | None) -> None:
        self.batches += 1
        self.events += batch.events.num_rows
        self.merges += len(batch.update.merges)
        if batch.events.num_rows:  # a batch of links (live matching) is no measure of applying events
            self.apply_seconds = [*self.apply_seconds[-999:], batch.seconds]
        if received is not None:
            self.lag_seconds = [*self.lag_seconds[-999:], (batch.applied_at - received).total_seconds()]


#: A hook gets every batch applied since its last call, in log order.
Hook = Callable[[list[AppliedBatch]], None]


class RealtimeEngine:
    """Owns the log, the ingestor, live identity and live features; applies events in log order."""

    def __init__(
        self,
        ws: Workspace,
        event_log: EventLog,
        ingestor: Ingestor,
        identity: LiveIdentity,
        features: LiveFeatures,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_pending_rows: int = 50_000,
        visible_timeout: float = 10.0,
        hooks_interval: float = 0.0,
    ) -> None:
        self.ws = ws
        self.log = event_log
        self.ingestor = ingestor
        self.identity = identity
        self.features = features
        self.clock = clock
        self.max_pending_rows = max_pending_rows
        self.visible_timeout = visible_timeout
        self.hooks_interval = hooks_interval
        self.hooks: list[Hook] = []  # replaced, not changed in place, once the hook thread runs
        self.segments: SegmentHook | SegmentProcess | None = None
        self.stats = EngineStats()
        self._pending: list[tuple[pa.Table, datetime]] = []
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._applied_seq = 0
        self.state_lock = threading.RLock()  # live identity: readers vs the applier's `observe`
        self._error: BaseException | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._audit_at = time.monotonic()
        self._hooked: list[AppliedBatch] = []  # applied, waiting for the hooks' thread
        self._hooked_seq = 0  # the hooks have seen every batch up to this seq
        self._hook_cond = threading.Condition()
        self._hook_thread: threading.Thread | None = None
        self._waiters: list[tuple[int, Wait, Any, Any]] = []  # `until` futures: (seq, wait, loop, future)
        self._waiters_lock = threading.Lock()
        self.matching: LiveMatching | None = None  # live anonymous matching, when on
        self._links: list[pd.DataFrame] = []  # links found by a matching pass, waiting for the applier

    # --- life cycle ------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, settings: Settings, repo: FeatureRepo | None = None, *, segments: bool = True
    ) -> RealtimeEngine:
        """Open the workspace's log, load identity and features (and live segments with webhook delivery),
        re-apply the log tail, start the applier."""
        from contract.workspace import Workspace
        from events.ingest import Ingestor
        from events.log import EventLog
        from features.live import LiveFeatures
        from features.store import FeatureRepo
        from identity.config import StitchConfig
        from identity.live import LiveIdentity

        ws = Workspace(settings.workspace)
        event_log = EventLog.open(ws)
        repo = repo or FeatureRepo(settings)
        engine = cls(
            ws,
            event_log,
            Ingestor(ws, event_log, phone_region=settings.default_phone_region),
            LiveIdentity.load(ws, StitchConfig.from_settings(settings)),
            LiveFeatures.from_workspace(repo, ws),
            max_pending_rows=settings.realtime_max_pending_rows,
            visible_timeout=settings.realtime_visible_timeout_seconds,
            hooks_interval=settings.live_hooks_seconds,
        )
        if segments:
            try:
                hook = engine.open_segments(settings)
                engine.hooks.append(hook)
                engine.segments = hook
            except Exception as exc:  # scoring and ingestion work without segments; say why once
                log.warning("live segments off: %s: %s", type(exc).__name__, exc)
        engine.recover()
        # before the first request rather than in it (Feast's import alone takes seconds)
        opened = repo.open_online()
        log.info("online store open: %s", ", ".join(opened) or "no feature service registered yet")
        engine.start()
        if settings.live_anonymous_match != "off":
            from serving.realtime_matching import LiveMatching

            engine.matching = LiveMatching(engine)
            engine.matching.start(settings.live_anonymous_match, settings.live_match_seconds)
        engine.features.start_sweeper(clock=engine.clock)  # short windows expire without new events
        if settings.live_write_behind_seconds > 0:
            engine.features.start_writer(settings.live_write_behind_seconds, settings.live_write_process)
        if engine.segments is not None and not engine.segments.wait_ready():
            # its set-up failed (logged): scoring and ingestion go on. A new list, as the hook thread may be
            # iterating the current one
            engine.hooks = [h for h in engine.hooks if h is not engine.segments]
            engine.segments.close()
            engine.segments = None
        return engine

    def open_segments(self, settings: Settings) -> SegmentHook | SegmentProcess:
        """The live segments hook: in a child process (`serving.segments_process`) unless
        ``live_segments_process`` is off; either way the feature rows come from this engine."""
        if settings.live_segments_process:
            from serving.segments_process import SegmentProcess

            return SegmentProcess(settings, self.features.compute)
        from serving.segments_live import SegmentHook

        return SegmentHook.open(settings, self.features.compute)

    def recover(self) -> int:
        """Apply every logged event that the workspace's batch state does not hold yet; returns how many."""
        tail = self.log_tail()
        if tail.num_rows:
            started = time.perf_counter()
            self._apply(tail, None)
            log.info("re-applied %d logged events in %.2fs", tail.num_rows, time.perf_counter() - started)
        with self._cond:
            self._applied_seq = max(self._applied_seq, self.log.last_seq)
        return tail.num_rows

    def log_tail(self) -> pa.Table:
        """Logged events (in seq order) whose event_id is not in the workspace `events` table."""
        logged = self.log.read()
        if logged.num_rows == 0 or not self.ws.exists("events"):
            return logged
        known = self.ws.read("events", columns=["event_id"]).column("event_id")
        return logged.filter(pc.invert(pc.is_in(logged.column("event_id"), value_set=known)))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cxi-applier", daemon=True)
            self._thread.start()
        if self._hook_thread is None:
            self._hook_thread = threading.Thread(target=self._run_hooks, name="cxi-hooks", daemon=True)
            self._hook_thread.start()

    def close(self) -> None:
        if self.matching is not None:
            self.matching.close()  # no new links; those found are applied before the applier stops
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._hook_cond:
            self._hook_cond.notify_all()
        if self._hook_thread is not None:
            self._hook_thread.join(timeout=30)
        self.features.stop_sweeper()
        self.features.stop_writer()
        with self.state_lock:
            self.identity.write_audit(self.ws)
        if self.segments is not None:
            self.segments.close()
        self.log.close()

    # --- ingestion -------------------------------------------------------------------------------------------
    def submit(self, records: list[dict], wait: Wait = "visible") -> IngestResult:
        """Validate, log durably, queue for the applier; with ``wait="visible"`` return once applied.

        Raises `events.log.Overloaded` (the caller answers 429/503 with Retry-After) when the applier is
        too far behind or the log's queue is full: nothing is accepted then, so nothing is lost.
        """
        from events.log import Overloaded

        self._raise_if_failed()
        with self._cond:
            if self._pending_rows >= self.max_pending_rows:
                raise Overloaded(
                    f"{self._pending_rows} events waiting to be applied", retry_after=self._retry_after()
                )
        received = self.clock()
        result = self.ingestor.ingest(records)
        accepted = result.accepted
        if accepted.num_rows == 0:
            return result
        last = int(pc.max(accepted.column("seq")).as_py())
        with self._cond:
            self._pending.append((accepted, received))
            self._pending_rows += accepted.num_rows
            self._cond.notify_all()
        if wait != "durable":
            self.wait_until(last, wait)
        return result

    def reached(self, seq: int, wait: Wait) -> bool:
        """Whether events up to `seq` are applied (visible) or also seen by the hooks (settled)."""
        if wait == "durable":
            return True
        if self._applied_seq < seq:
            return False
        return wait == "visible" or not self.hooks or self._hooked_seq >= seq

    def wait_until(self, seq: int, wait: Wait = "visible") -> None:
        """Block until `reached(seq, wait)`; `NotVisibleError` after `visible_timeout` (the events stay)."""
        deadline = time.monotonic() + self.visible_timeout
        # applied first (the applier notifies `_cond`), then seen by the hooks (their thread, `_hook_cond`)
        for cond, level in ((self._cond, "visible"), (self._hook_cond, wait)):
            with cond:
                while not self.reached(seq, level) and self._error is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise NotVisibleError(self._late(seq, wait))
                    cond.wait(left)
        self._raise_if_failed()

    async def until(self, seq: int, wait: Wait = "visible") -> None:
        """`wait_until` for an event loop: the request waits as a future, not on a worker thread, so requests
        waiting for visibility never exhaust the server's thread pool."""
        import asyncio

        if self.reached(seq, wait):
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._waiters_lock:
            self._waiters.append((seq, wait, loop, future))
        self._wake()  # reached between the check and the registration
        try:
            await asyncio.wait_for(future, self.visible_timeout)
        except TimeoutError:
            raise NotVisibleError(self._late(seq, wait)) from None
        self._raise_if_failed()

    def _wake(self) -> None:
        """Resolve the futures of `until` whose events are now reached (or every one when the applier failed)."""
        with self._waiters_lock:
            if not self._waiters:
                return
            done = [w for w in self._waiters if self._error is not None or self.reached(w[0], w[1])]
            self._waiters = [w for w in self._waiters if w not in done]
        for _, _, loop, future in done:
            loop.call_soon_threadsafe(_resolve, future)

    def _late(self, seq: int, wait: Wait) -> str:
        what = "applied" if wait == "visible" else "seen by segments"
        return (
            f"events logged (up to seq {seq}) but not {what} within {self.visible_timeout:.0f}s; they will be"
        )

    @property
    def applied_seq(self) -> int:
        return self._applied_seq

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def _retry_after(self) -> float:
        recent = self.stats.apply_seconds[-20:]
        per_batch = sorted(recent)[len(recent) // 2] if recent else 0.05
        return max(0.1, round(per_batch * 2, 2))

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise CXIError(f"real-time applier stopped: {type(self._error).__name__}: {self._error}")

    # --- the applier -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._links and not self._stop:
                    self._cond.wait()
                if self._stop and not self._pending and not self._links:
                    return
                batch, self._pending = self._pending, []
                links, self._links = self._links, []
            try:
                for edges in links:  # found on the last pass, applied in order with the events
                    assert self.matching is not None  # only a matching pass queues links
                    self.matching.apply(edges)
            except BaseException as exc:
                self._fail(exc)
                return
            if not batch:
                continue
            tables = [t for t, _ in batch]
            received = min(r for _, r in batch)
            events = pa.concat_tables(tables, promote_options="default")
            events = events.take(pc.sort_indices(events, sort_keys=[("seq", "ascending")]))
            try:
                applied = self._apply(events, received)
            except BaseException as exc:
                self._fail(exc)
                return
            with self._cond:
                self._pending_rows -= events.num_rows
                self._applied_seq = max(self._applied_seq, applied.last_seq)
                self._cond.notify_all()
            self._wake()

    def _fail(self, exc: BaseException) -> None:
        """Keep the reason (submit() reports it; the log still has the events) and release every waiter."""
        log.exception("real-time applier failed; events stay in the log for replay")
        with self._cond:
            self._error = exc
            self._cond.notify_all()
        with self._hook_cond:  # requests waiting for settled segments stop waiting too
            self._hook_cond.notify_all()
        self._wake()

    def _apply(self, events: pa.Table, received: datetime | None) -> AppliedBatch:
        started = time.perf_counter()
        with self.state_lock:  # identity only: features have their own lock, held briefly
            update = self.identity.observe(events)
            if self.matching is not None:  # what the next matching pass sees, in the same order
                self.matching.observe(events, update.touched)
            if self.identity_audit_due():
                self.identity.write_audit(self.ws)
        return self.follow(events, update, started, received)

    def follow(
        self, events: pa.Table, update: LiveUpdate, started: float, received: datetime | None
    ) -> AppliedBatch:
        """Features follow an identity update (the events' customers, merges, moves); the batch is recorded
        and handed to the hooks."""
        now = self.clock()
        # the log dedupes by event_id and the workspace's events are not in its tail: nothing is held twice
        customers = self.features.update(events, update.customer_ids, update.relabel, now, unique=True)
        frame = self.features.last_written
        if update.moved:  # a guard split a profile: past events change hands
            moved = self.features.assign(list(update.moved), list(update.moved.values()), now)
            customers = sorted({*customers, *moved})
        batch = AppliedBatch(
            events=events,
            update=update,
            customers=customers,
            applied_at=now,
            seconds=time.perf_counter() - started,
            features=frame,
            last_seq=int(pc.max(events.column("seq")).as_py()) if "seq" in events.column_names else 0,
        )
        self.stats.record(batch, received)
        if self.hooks:
            with self._hook_cond:
                self._hooked.append(batch)
                self._hook_cond.notify_all()
        return batch

    # --- live anonymous matching (`serving.realtime_matching`) ------------------------------------------------
    def queue_links(self, edges: pd.DataFrame) -> None:
        """Links a matching pass found: the applier applies them in order with events."""
        with self._cond:
            self._links.append(edges)
            self._cond.notify_all()

    # --- the hooks' thread -----------------------------------------------------------------------------------
    def _run_hooks(self) -> None:
        started = 0.0
        while True:
            with self._hook_cond:
                while not self._hooked and not self._stop:
                    self._hook_cond.wait()
                # at most one run per `hooks_interval`: batches applied meanwhile join this run
                while not self._stop and (left := started + self.hooks_interval - time.monotonic()) > 0:
                    self._hook_cond.wait(left)
                started = time.monotonic()
                if not self._hooked and self._stop and (self._thread is None or not self._thread.is_alive()):
                    return
                batches, self._hooked = self._hooked, []
            if batches:
                for hook in self.hooks:
                    try:
                        hook(batches)
                    except Exception:  # derived state for activation; ingestion and scores go on
                        self.stats.hook_errors += 1
                        log.exception("real-time hook %r failed on %d batches", hook, len(batches))
                self.stats.hook_runs += 1
            with self._hook_cond:
                self._hooked_seq = max([self._hooked_seq, *(b.last_seq for b in batches)])
                self._hook_cond.notify_all()
            self._wake()
            if not batches:
                time.sleep(0.01)  # stopping: the applier is finishing its last batch

    def identity_audit_due(self) -> bool:
        """Merge audit rows are appended to the workspace at most every AUDIT_SECONDS (one part per write)."""
        now = time.monotonic()
        if now - self._audit_at < AUDIT_SECONDS:
            return False
        self._audit_at = now
        return True

    # --- reads (serving) -------------------------------------------------------------------------------------
    def customer_for(self, identifier_type: str, value: str) -> str | None:
        """`serving.scoring.IdentityLookup`: the live customer of an identifier (canonical after merges)."""
        with self.state_lock:
            if identifier_type == "customer_id":
                return self.identity.canonical_id(value)
            return self.identity.customer_for(identifier_type, value)

    def online(self, customer_ids: list[str], service: str = "churn_v1"):  # type: ignore[no-untyped-def]
        """`serving.scoring.OnlineFeatures`: live features at this instant (windows expire at read)."""
        from features.definitions import TIMESTAMP_FIELD
        from serving.scoring import AS_OF_COLUMN

        now = self.clock()
        with self.state_lock:
            ids = [self.identity.canonical_id(c) for c in customer_ids]
        frame = self.features.read(ids, now, service)
        if AS_OF_COLUMN not in frame.columns and TIMESTAMP_FIELD in frame.columns:
            frame[AS_OF_COLUMN] = frame[TIMESTAMP_FIELD]
        return frame


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)
