"""Streaming features: the feature definition recomputed for the customers a micro-batch touched.

`LiveFeatures` keeps every resolved event in memory as per-customer Arrow tables
(`features.live_events.HeldEvents`), so a recompute reads only the touched customers' rows: no scan of the log.
The numbers come from `features.compute_live`, the NumPy engine of the one feature definition (`features.spec`)
whose SQL engine writes the batch snapshots, over a spine of touched customers × `now`; each customer's engine
state is kept and continued by the events appended since (`features.live_state`), so a micro-batch costs
O(its events). The rows are written to the Feast online store, one `write_to_online_store` call per view.

Time moves windows without new events. A read serves the stored row (a Feast read) unless its short windows
have changed since it was computed (`features.expiry`: a 30-minute window or the session ran out, a UTC
midnight passed with events today, a future-stamped event fell due) or it is older than `max_age`; only then
it recomputes, exactly, and writes back. A sweeper (`sweep`, on a thread with `start_sweeper`) recomputes in
bulk the rows whose windows ran out and, oldest first, rows older than `live_refresh_seconds`, so the online
store expires windows by itself too (within one sweep interval).

Online writes go through `features.write_behind.OnlineWriter`: at once by default, or, with `start_writer`
(what the real-time engine runs), behind the live path in bulk while reads serve waiting rows from memory; the
engine's writes themselves run in a child process (`features.write_process`).

An absorbed customer (merged into a survivor) keeps an online row: it is rewritten as the empty row (no
events, zero counts, null recencies), which is what the batch function says about an id without events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import ContractError
from contract.workspace import Workspace
from features.compute import EVENT_COLUMNS
from features.definitions import JOIN_KEY, feature_names
from features.expiry import NEVER, Schedule, next_change
from features.live_events import HeldEvents, final_survivors, newest_first
from features.live_state import FeatureStates
from features.periodic import Periodic
from features.write_behind import OnlineWriter, place_rows

if TYPE_CHECKING:
    from features.store import FeatureRepo

_SWEEP_CHUNK = 500  # customers per recompute in a sweep (outside the lock; NumPy holds the interpreter)
_SWEEP_WRITE = 32  # rows per online write in a sweep (under the lock: ~40 ms, what an update may wait)
_SKEW_US = 1_000_000  # a stored row up to this far ahead of `now` is served (clocks read before the lock)


def _utc(now: datetime, field: str = "now") -> pd.Timestamp:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ContractError(field, "must be a timezone-aware datetime", now)
    return pd.Timestamp(now).tz_convert(UTC)


def _us(at: pd.Timestamp) -> int:
    """An instant as int64 microseconds since the epoch (the unit of `features.expiry`)."""
    return at.value // 1000


class LiveFeatures:
    """In-memory resolved events + online feature rows kept equal to the batch function at `now`."""

    def __init__(
        self, repo: FeatureRepo, history: pa.Table | None = None, *, max_age: timedelta | None = None
    ) -> None:
        """`history`: resolved events (event_id, customer_id + compute.EVENT_COLUMNS), loaded as is.

        `max_age` (default: setting `live_feature_max_age_s`): a read recomputes rows older than this;
        timedelta(0) recomputes every read at a new instant (exact at any instant, for tests)."""
        settings = repo.settings
        self.repo = repo
        self.max_age = max_age if max_age is not None else timedelta(seconds=settings.live_feature_max_age_s)
        self.refresh = timedelta(seconds=settings.live_refresh_seconds)
        self.sweep_limit = settings.live_sweep_max_customers
        self._events = HeldEvents(history)
        self.states = FeatureStates(settings.live_state_max_instants)  # continued by appended events
        self._schedule = Schedule()
        self._lock = threading.RLock()
        #: The frame the last `update` computed and wrote (every column at its `now`), for hooks that need it.
        self.last_written: pd.DataFrame | None = None
        self._sweeper: Periodic | None = None
        self._sweeping = threading.Lock()
        self.writer = OnlineWriter(repo, self._lock)  # online writes: at once, or behind (`start_writer`)
        self._updating = threading.RLock()  # one update at a time; readers are not blocked by its recompute
        self._schedule.unknown = set(self._events)  # their online rows come from elsewhere (batch, last run)

    @classmethod
    def from_workspace(cls, repo: FeatureRepo, ws: Workspace) -> LiveFeatures:
        """Loaded with the workspace's resolved events (empty when no events or identity map exist yet)."""
        from features.snapshots import RESOLVED_EVENTS, attach_resolved_events

        if not (ws.exists("events") and ws.exists("identity_map")):
            return cls(repo)
        cols = ", ".join(["event_id", *EVENT_COLUMNS])
        with ws.connect("events", "identity_map", "identity_guard_log") as con:
            attach_resolved_events(con, ws)
            history = con.sql(
                f"SELECT {cols} FROM {RESOLVED_EVENTS} WHERE customer_id IS NOT NULL"
            ).to_arrow_table()
        return cls(repo, history)

    # --- state ---
    @property
    def customers(self) -> int:
        return len(self._events)

    @property
    def events(self) -> int:
        return self._events.rows

    def events_of(self, customer_id: str) -> pa.Table:
        """The events held for one customer (EVENTS_SCHEMA; empty when none)."""
        with self._lock:
            return self._events.of(customer_id)

    def recent_events(self, customer_id: str, limit: int | None = 20) -> pd.DataFrame:
        """One customer's events, newest first (ties: by event_id), at most `limit` (None: all)."""
        return newest_first(self.events_of(customer_id), limit)

    # --- the live path ---
    def update(
        self,
        events: pa.Table,
        customer_ids: pa.Array | pa.ChunkedArray,
        relabel: dict[str, str],
        now: datetime,
        *,
        unique: bool = False,
    ) -> list[str]:
        """Append `events` (one customer id each), fold absorbed customers into survivors, recompute the
        touched customers at `now` and write them online (both views). Returns the customers written.
        `unique`: no event is held already (`HeldEvents.add`); otherwise a replayed event_id is skipped."""
        _utc(now)
        if len(customer_ids) != events.num_rows:
            raise ContractError(
                "customer_ids", f"must have one id per event ({events.num_rows})", len(customer_ids)
            )
        if customer_ids.null_count:
            raise ContractError("customer_ids", "must not hold nulls", customer_ids.null_count)
        with self._updating, self._lock:
            final = final_survivors(relabel)
            moved = self._events.fold(final)
            self.states.invalidate(final)  # absorbed: their events now belong to the survivors
            ids = (
                customer_ids.combine_chunks()
                if isinstance(customer_ids, pa.ChunkedArray)
                else pa.array(customer_ids)
            ).cast(pa.string())
            if final:  # an event labelled with an absorbed id belongs to its survivor
                ids = pa.array([final.get(c, c) for c in ids.to_pylist()], pa.string())
            self._events.add(events, ids, unique=unique)
            touched = list(dict.fromkeys([*pc.unique(ids).to_pylist(), *sorted(moved)]))
        self.last_written = self._write(touched, now)
        return touched

    def assign(self, event_ids: list[str], customer_ids: list[str], now: datetime) -> list[str]:
        """Move events to other customers (an unmerge), recompute old and new owners at `now`, write them."""
        _utc(now)
        if len(event_ids) != len(customer_ids):
            raise ContractError(
                "customer_ids", f"must have one id per event ({len(event_ids)})", len(customer_ids)
            )
        target = dict(zip(event_ids, customer_ids, strict=True))
        if not target:
            return []
        with self._updating, self._lock:
            owners = self._events.move(target)
            self.states.invalidate(owners)  # events taken out of the middle of their tables
            touched = list(dict.fromkeys([*owners, *dict.fromkeys(customer_ids)]))
        self._write(touched, now)
        return touched

    def _snapshot(self, ids: list[str]) -> tuple[list[pa.Table | None], list[int]]:
        """The customers' held tables (immutable) and their state tokens, taken together (under `_lock`)."""
        return [self._events.get(c) for c in ids], self.states.generations(ids)

    def _run(
        self, ids: list[str], tables: list[pa.Table | None], generations: list[int], at: pd.Timestamp
    ) -> pd.DataFrame:
        """The feature definition at `at` over a snapshot of the customers' events, spine = ids × at."""
        return self.states.features(ids, tables, at, generations=generations)

    def compute(self, customer_ids: Iterable[str], now: datetime) -> pd.DataFrame:
        """The batch function at `now` for `customer_ids` (order kept, duplicates dropped): every column."""
        at = _utc(now)
        ids = list(dict.fromkeys(customer_ids))
        with self._lock:
            return self._run(ids, *self._snapshot(ids), at)

    def _changes(self, ids: list[str], as_of: np.ndarray) -> np.ndarray:
        """`features.expiry.next_change` for `ids` at their `as_of` (µs), from the events held."""
        owner, ts = self.states.event_times(ids, [self._events.get(c) for c in ids])
        return next_change(owner, ts, as_of)

    def _record(self, ids: list[str], at: pd.Timestamp) -> None:
        """`ids` were written at `at`: schedule when their short windows run out."""
        held = [c for c in ids if c in self._events]
        for c in ids:
            if c not in self._events:
                self._schedule.forget(c)
        at_us = _us(at)
        self._schedule.record(held, at_us, self._changes(held, np.full(len(held), at_us, np.int64)))

    def _write(self, customer_ids: list[str], now: datetime) -> pd.DataFrame | None:
        """Recompute `customer_ids` at `now` and emit the rows. The events are taken under the lock (the held
        tables are immutable), the recompute runs outside it so readers go on,
        and the rows are emitted under it; one update at a time (`update`, `assign`)."""
        if not customer_ids:
            return None
        at = _utc(now)
        ids = list(dict.fromkeys(customer_ids))
        with self._updating:
            with self._lock:
                tables, generations = self._snapshot(ids)
            frame = self._run(ids, tables, generations, at)
            with self._lock:
                self.writer.emit(frame, now)
                self._record(ids, at)
        return frame

    # --- reads ---
    def _stale(self, frame: pd.DataFrame, at_us: int) -> tuple[np.ndarray, set[str]]:
        """Rows to recompute at `at_us`, and those of them to write back (the store's row is older)."""
        ids = frame[JOIN_KEY].tolist()
        stored = frame["features_as_of"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
        stored_us, nat = stored.astype(np.int64), np.isnat(stored)
        max_us = int(self.max_age / timedelta(microseconds=1))
        skew = min(_SKEW_US, max_us)
        stale = np.zeros(len(ids), dtype=bool)
        behind: set[str] = set()
        unknown: list[int] = []
        for i, c in enumerate(ids):
            if c not in self._events:
                continue  # no events: the store's row is the batch function's (empty or absorbed) row
            written = self._schedule.written.get(c)
            if nat[i]:
                stale[i] = True
                behind.add(c)
            elif written is None or stored_us[i] < written - written % 1_000_000:
                # a row from the batch job, an earlier run or an overwrite: judged by its own as_of
                unknown.append(i)
            elif (
                at_us < written - skew
                or at_us - written > max_us
                or self._schedule.due.get(c, NEVER) <= at_us
            ):
                stale[i] = True
                if written <= at_us:
                    behind.add(c)
        if unknown:
            as_of = stored_us[unknown]
            due = self._changes([ids[i] for i in unknown], as_of)
            for i, s, d in zip(unknown, as_of.tolist(), due.tolist(), strict=True):
                if at_us < s - skew or at_us - s > max_us or d <= at_us:
                    stale[i] = True
                    if s <= at_us:
                        behind.add(ids[i])
        # a read can fetch its row before an update lands and judge it after: its recompute (at the read's
        # instant) must never replace a newer row in memory, or a later score would serve the older one
        written = self._schedule.written
        return stale, {c for c in behind if written.get(c, at_us) <= at_us}

    def read(self, customer_ids: list[str], now: datetime, service: str = "churn_v1") -> pd.DataFrame:
        """Online features of `service` (one row per id, order kept, plus `features_as_of`).

        The stored row is served (one Feast read, none when every row still waits to be written) unless its
        short windows ran out since it was computed or it is older than `max_age`: then it is recomputed at
        `now` from the events in memory, and written back when that moves it forward. Customers without
        events are returned as the store has them."""
        at = _utc(now)
        names = feature_names(service)
        ids = list(customer_ids)
        frame = self._served(ids, service, names)
        with self._lock:
            if frame is None:  # flushes kept landing during the store reads: read under the lock
                frame = self.writer.overlay(self.repo.online(ids, service), names)
            stale, behind = self._stale(frame, _us(at))
            if not stale.any():
                return frame
            ids = list(dict.fromkeys(frame.loc[stale, JOIN_KEY]))
            fresh = self.compute(ids, now)
            forward = [c for c in ids if c in behind]
            if forward:
                self.writer.emit(fresh[fresh[JOIN_KEY].isin(forward)], now)
                self._record(forward, at)
            return place_rows(frame, stale, fresh, names)

    def _served(self, ids: list[str], service: str, names: list[str], tries: int = 3) -> pd.DataFrame | None:
        """What a read starts from, without holding the lock over a store read: the rows waiting to be written
        when every id has one, else the store's rows with waiting ones in place. A store read that a flush
        overlapped may predate rows that flush wrote, so it is tried again; None after `tries` overlaps."""
        for _ in range(tries):
            with self._lock:
                frame = self.writer.waiting(ids, names)  # just computed, not yet written: no store read
                if frame is not None:
                    return frame
                cleared = self.writer.cleared
            stored = self.repo.online(ids, service)
            with self._lock:
                if self.writer.cleared == cleared:
                    return self.writer.overlay(stored, names)
        return None

    # --- the sweeper ---
    def sweep(self, now: datetime) -> int:
        """Recompute and write, in bulk, every row whose short windows ran out by `now`, then (oldest first,
        at most `sweep_limit`) rows older than `refresh` or never written here. Returns how many were written.

        Each chunk is recomputed outside the lock on a snapshot of its events;
        rows are written under the lock in small batches, skipping customers updated meanwhile (their newer
        row stands), so updates and reads wait at most one small write."""
        at = _utc(now)
        at_us = _us(at)
        refresh_us = int(self.refresh / timedelta(microseconds=1))
        with self._lock:
            expired = self._schedule.expired(at_us)
            old = self._schedule.oldest(at_us - refresh_us, self.sweep_limit)
        todo = list(dict.fromkeys([*expired, *old]))
        done = 0
        try:
            with self._sweeping:  # one sweep at a time
                for start in range(0, len(todo), _SWEEP_CHUNK):
                    done += self._sweep_chunk(todo[start : start + _SWEEP_CHUNK], at)
        finally:
            with self._lock:
                self._schedule.retry(expired, at_us)
        return done

    def _sweep_chunk(self, customers: list[str], at: pd.Timestamp) -> int:
        at_us = _us(at)
        with self._lock:
            ids = [
                c for c in customers if c in self._events and self._schedule.written.get(c, at_us) <= at_us
            ]
            tables, generations = self._snapshot(ids)
        if not ids:
            return 0
        snapshot = dict(zip(ids, tables, strict=True))
        frame = self._run(ids, tables, generations, at)
        written = 0
        for start in range(0, len(ids), _SWEEP_WRITE):
            with self._lock:
                keep = [
                    c
                    for c in ids[start : start + _SWEEP_WRITE]
                    if self._events.get(c) is snapshot[c] and self._schedule.written.get(c, at_us) <= at_us
                ]
                if keep:
                    self.writer.emit(frame[frame[JOIN_KEY].isin(keep)], at.to_pydatetime())
                    self._record(keep, at)
                written += len(keep)
            time.sleep(0.001)  # hand the lock over: a waiting update gets it (Python locks are not fair)
        return written

    def start_sweeper(
        self, interval_s: float | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        """Run `sweep(clock())` every `interval_s` (default: setting `live_sweep_seconds`) on a daemon
        thread; `clock` defaults to the UTC wall clock. A second call while running does nothing."""
        if self._sweeper is not None:
            return
        interval = self.repo.settings.live_sweep_seconds if interval_s is None else interval_s
        tick = clock or (lambda: datetime.now(UTC))
        self._sweeper = Periodic(lambda: self.sweep(tick()), interval, "cxi-live-sweeper").start()

    def stop_sweeper(self, timeout: float | None = 10.0) -> None:
        """Stop the sweeper thread (waits for a running sweep up to `timeout` seconds)."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.stop(timeout)

    # --- write-behind ---
    def start_writer(self, interval_s: float, process: bool = False) -> None:
        """Write online rows behind the live path every `interval_s`, from a child process with `process`
        (`OnlineWriter.start`)."""
        self.writer.start(interval_s, process)

    def stop_writer(self, timeout: float | None = 10.0) -> None:
        """Stop writing behind; what is waiting is written now."""
        self.writer.stop(timeout)
