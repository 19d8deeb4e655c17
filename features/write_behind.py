"""Rows to the Feast online store: written at once, or written behind the live path with read-your-writes.

The live path recomputes a few dozen customers per micro-batch; writing them through Feast's SQLite online
store costs about as much as computing them (one upsert per feature). Behind the live path, `OnlineWriter`
keeps the latest recomputed row per customer in memory and a thread writes every waiting row in one
`write_to_online_store` call per view each interval, so a burst of updates to one customer becomes one
write. Readers of the live features call `overlay`, which puts waiting rows in place of the store's, so what
a reader sees is the same with or without write-behind; only other processes reading the online store
directly see a row up to one interval late (longer under load: the writer keeps to `WRITER_MAX_DUTY` of the
time, pausing after each chunk for nine times as long as it took, so a 1,500-row backlog is written over
~15 s in short bursts instead of one multi-second stretch that holds the interpreter).

With `start(process=True)` (the real-time engine's default) the writes themselves run in a child process
(`features.write_process`): the thread only hands each chunk over and waits with the interpreter released, so
it needs no pacing. Should the child die, the writer says so and writes in this process again; rows stay
waiting until a write is acknowledged, so none is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.definitions import JOIN_KEY, VIEWS, features_as_of
from features.periodic import Periodic

if TYPE_CHECKING:
    from features.store import FeatureRepo
    from features.write_process import WriterProcess

log = logging.getLogger(__name__)


def _common_dtype(a: np.dtype, b: np.dtype) -> np.dtype:
    """A dtype both columns fit in: their own when equal, float64 for two numeric ones, else object."""
    if a == b:
        return a
    numeric = pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)
    return np.dtype("float64") if numeric else np.dtype("object")


def place_rows(frame: pd.DataFrame, mask: np.ndarray, source: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """`frame` (`FeatureRepo.online` shape) with its `mask` rows replaced by `source`'s rows of the same
    customers (every column in `names`, and `features_as_of` from their `snapshot_at`).

    Column by column on arrays (a read's path: setting rows through pandas' indexers cost ~40 ms a read)."""
    at = np.flatnonzero(mask)
    pos = pd.Index(source[JOIN_KEY]).get_indexer(frame[JOIN_KEY].to_numpy()[at])
    if (pos < 0).any():
        raise KeyError("place_rows: a masked customer has no row in source")
    columns: dict[str, object] = {}
    for name in frame.columns:
        old = frame[name]
        if name == "features_as_of":
            new = features_as_of(source["snapshot_at"].to_numpy()[pos])
            column = (
                old.array.copy() if isinstance(old.dtype, pd.DatetimeTZDtype) else old.to_numpy(copy=True)
            )
            column[at] = new if isinstance(old.dtype, pd.DatetimeTZDtype) else new.to_numpy()
        elif name in names:
            new = source[name].to_numpy()[pos]
            kind = _common_dtype(old.dtype, new.dtype)
            if kind == np.dtype("float64"):  # pandas' nullable numbers: NA -> NaN
                column = old.to_numpy(dtype=kind, copy=True, na_value=np.nan)
            else:
                column = old.to_numpy(dtype=kind, copy=True)
            column[at] = new
        else:
            column = old.to_numpy()
        columns[name] = column
    return pd.DataFrame(columns, index=frame.index)


#: The writer thread writes at most this share of the time (it pauses after each chunk), leaving the
#: interpreter to ingestion, the applier and reads; under load each flush carries more coalesced rows.
WRITER_MAX_DUTY = 0.1
#: Rows per Feast write call: Feast converts each value to a proto in Python (~0.5 ms a row per view), so a
#: call holds the interpreter for its whole length; a behind flush pauses between calls (`flush(pace=)`).
WRITE_CHUNK = 32
#: Rows per hand-over to the writer process: it holds no interpreter of ours, so chunks only bound a request.
PROCESS_CHUNK = 512
#: Every view's columns: what a row handed to the writer process carries.
_VIEW_COLUMNS = [JOIN_KEY, *dict.fromkeys(name for view in VIEWS.values() for name, _, _ in view)]


class OnlineWriter:
    """Writes feature frames (every view's columns) online: at once, or behind (`start`).

    `lock` is the owner's state lock: `emit` and `overlay` are called under it; `flush` takes it only to
    snapshot and to clear, never while writing."""

    def __init__(self, repo: FeatureRepo, lock: threading.RLock, chunk: int = WRITE_CHUNK) -> None:
        self.repo = repo
        self.chunk = chunk
        self._lock = lock
        self._unwritten: dict[str, tuple[int, int]] = {}  # customer -> (frame key, row) of its waiting row
        self._frames: dict[int, tuple[pd.DataFrame, datetime]] = {}
        self._key = 0
        self._thread: Periodic | None = None
        self._process: WriterProcess | None = None
        self._flushing = threading.Lock()
        self._hurry = threading.Event()  # set by `stop`: a paced flush finishes without pausing
        self.flushes = 0
        self.rows_written = 0
        self.cleared = 0  # bumped whenever written rows stop waiting: a store read spanning it may be old

    @property
    def behind(self) -> bool:
        return self._thread is not None

    @property
    def process(self) -> WriterProcess | None:
        """The child process writing for the thread, if any (`start(process=True)`)."""
        return self._process

    @property
    def unwritten(self) -> int:
        """Rows waiting for the writer thread."""
        return len(self._unwritten)

    def emit(self, frame: pd.DataFrame, now: datetime) -> None:
        """`frame`'s rows (computed at `now`) go online: written now, or queued for the writer thread."""
        if frame.empty:
            return
        if self._thread is None:
            self.repo.write_views(frame, now)
            for c in frame[JOIN_KEY].tolist():  # a row still queued from before is older: never write it
                self._unwritten.pop(c, None)
            return
        self._key += 1
        self._frames[self._key] = (frame.reset_index(drop=True), now)
        for i, c in enumerate(frame[JOIN_KEY].tolist()):
            self._unwritten[c] = (self._key, i)

    def _rows(self, refs: dict[str, tuple[int, int]]) -> tuple[pd.DataFrame, pd.Series]:
        """The waiting rows `refs` point at (one per customer, in `refs` order) and each row's instant.

        One concat of the frames involved and one take (a flush takes all its rows at once): ~1,100 rows from
        ~60 frames in 6 ms of the interpreter's time, where a slice per frame and a concat of the slices took
        12 ms for each chunk of 512."""
        keys = list(dict.fromkeys(key for key, _ in refs.values()))
        frames = [self._frames[key][0] for key in keys]
        offsets = dict(zip(keys, np.cumsum([0, *(len(f) for f in frames[:-1])]).tolist(), strict=True))
        whole = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        rows = whole.take([offsets[key] + i for key, i in refs.values()]).reset_index(drop=True)
        stamps = pd.Series([self._frames[key][1] for key, _ in refs.values()], dtype="object")
        return rows, pd.to_datetime(stamps, utc=True)

    def waiting(self, customer_ids: list[str], names: list[str]) -> pd.DataFrame | None:
        """`FeatureRepo.online`'s frame for `customer_ids` built from their waiting rows alone, when every one
        has a waiting row (the rows just computed: newer than the store's); None otherwise."""
        if not customer_ids or not all(c in self._unwritten for c in customer_ids):
            return None
        refs = [self._unwritten[c] for c in customer_ids]
        if len({key for key, _ in refs}) == 1:  # a score's read (one customer): one take, half the time
            frame = self._frames[refs[0][0]][0].take([i for _, i in refs])
            frame = frame.reindex(columns=[JOIN_KEY, *names], copy=False)
            frame.index = pd.RangeIndex(len(frame))
        else:
            rows, _ = self._rows(dict(zip(customer_ids, refs, strict=True)))
            pos = pd.Index(rows[JOIN_KEY]).get_indexer(customer_ids)
            frame = rows.iloc[pos][[JOIN_KEY, *names]].reset_index(drop=True)
        frame["features_as_of"] = features_as_of(frame["snapshot_at"].to_numpy())
        return frame

    def overlay(self, frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
        """The store's rows (`FeatureRepo.online` shape) with the waiting rows in their place."""
        if not self._unwritten:
            return frame
        mask = frame[JOIN_KEY].isin(self._unwritten).to_numpy()
        if not mask.any():
            return frame
        ids = list(dict.fromkeys(frame.loc[mask, JOIN_KEY]))
        waiting, _ = self._rows({c: self._unwritten[c] for c in ids})
        return place_rows(frame, mask, waiting, names)

    def flush(self, pace: float = 0.0) -> int:
        """Write every waiting row (one call per view per `chunk` rows); returns how many. With `pace`, sleep
        `pace` times as long as each chunk took before the next (the writer thread: ``1 / WRITER_MAX_DUTY - 1``).

        A row replaced meanwhile by a newer one stays waiting (the newer one), so the store never ends older
        than memory. Chunks keep one call short: the Feast write holds the interpreter most of its time, and
        the live path shares it; without the pause, threads that give the interpreter up (NumPy, Arrow, I/O)
        wait up to a switch interval to get it back each time, so a long flush slows everything else many-fold."""
        with self._flushing:
            with self._lock:
                pending = list(self._unwritten.items())
            chunk = self.chunk if self._process is None else PROCESS_CHUNK
            if pending:  # no lock: frames are never changed, only dropped below
                every, stamps_of = self._rows(dict(pending))
            for start in range(0, len(pending), chunk):
                began = time.thread_time()  # this thread's own time: waits for the lock don't count
                refs = dict(pending[start : start + chunk])
                part = slice(start, start + chunk)
                rows, stamps = (
                    every.iloc[part].reset_index(drop=True),
                    stamps_of.iloc[part].reset_index(drop=True),
                )
                self._write(rows, stamps)
                with self._lock:
                    self.cleared += 1
                    for c, ref in refs.items():
                        if self._unwritten.get(c) == ref:
                            del self._unwritten[c]
                last = start + chunk >= len(pending)  # after it there is nothing to make room for
                if not last:
                    pause = (time.thread_time() - began) * pace
                    if pause and not self._hurry.is_set():
                        self._hurry.wait(pause)
                    else:
                        time.sleep(0)  # let a waiting thread in between chunks
            with self._lock:
                live = {key for key, _ in self._unwritten.values()}
                for key in [k for k in self._frames if k not in live]:
                    del self._frames[key]
            if pending:
                self.flushes += 1
                self.rows_written += len(pending)
            return len(pending)

    def _write(self, rows: pd.DataFrame, stamps: pd.Series) -> None:
        """Every view's columns of `rows` into the store: through the writer process when there is one."""
        process = self._process
        if process is not None:
            from features.write_process import WriterProcessError

            try:
                process.write(rows[_VIEW_COLUMNS], stamps)
                return
            except WriterProcessError as exc:
                if process.alive:
                    raise
                log.warning("%s; writing online rows in this process from now on", exc)
                self._process = None
                process.close()
        self.repo.write_views(rows, stamps)

    def start(self, interval_s: float, process: bool = False) -> None:
        """Write behind from a daemon thread every `interval_s`; with `process`, the writes run in a child
        process (`features.write_process`). A second call while running does nothing."""
        if self._thread is not None:
            return
        if process:
            from features.write_process import WriterProcess

            self._process = WriterProcess(self.repo.settings)
        pace = 1 / WRITER_MAX_DUTY - 1
        self._hurry.clear()
        thread = Periodic(lambda: self.flush(0.0 if self._process else pace), interval_s, "cxi-online-writer")
        with self._lock:
            self._thread = thread
        thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread and write what is waiting (writes are synchronous and in this process again)."""
        if self._thread is None:
            return
        self._hurry.set()
        self._thread.stop(timeout)
        with self._lock:
            self._thread = None
        try:
            self.flush()
        finally:
            process, self._process = self._process, None
            if process is not None:
                process.close()
