"""The durable event log: append-only segment files under ``<workspace>/eventlog/``, written by group commit.

An append is acknowledged only after its rows are on disk: one writer thread takes every pending append, drops
the event_ids already stored (in this group, in the log, or in the workspace ``events`` table; the stored ones
are held in `events.id_index`), numbers the rest gap-free from 1 (``seq``), writes them as ONE framed record
and fsyncs once, then releases all the waiting callers. Segments roll at ``segment_bytes``; a background
thread then has a child process "seal" each closed segment (rewrite it as a few large frames, same rows and
seqs, temp file + rename; see `events.segment`, which also holds the file format) so that reading it decodes a
handful of batches instead of one per commit. Every frame carries a CRC, so a torn or corrupt tail is detected
at open and truncated (it was never acknowledged: the ack follows the fsync of everything before it). Reading
glues the schema and a segment's batch messages into one IPC stream and decodes it in one call.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import ContractError, CXIError, WorkspaceError
from contract.schemas import EVENTS_SCHEMA
from contract.workspace import Workspace, fsync_dir
from events import segment
from events.id_index import IdIndex, hashes
from events.segment import FrameIndex

#: What the log stores and ``read`` returns: ``seq`` then the stored events columns.
LOG_SCHEMA = pa.schema([pa.field("seq", pa.int64()), *EVENTS_SCHEMA])
_SEAL_ROWS = 65_536  # rows per frame of a sealed segment
_SEAL_TIMEOUT_S = 600.0  # a sealing child silent this long is killed (the segment stays unsealed)


class Overloaded(CXIError):
    """Too much is waiting: nothing of this call was accepted; the client should retry after ``retry_after`` s."""

    def __init__(self, reason: str, *, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"{reason}; retry after {retry_after:g} s")


@dataclass
class AppendResult:
    """The rows newly written (duplicates removed, with ``seq``) and the event_ids that were already stored."""

    table: pa.Table
    duplicates: list[str] = field(default_factory=list)


@dataclass
class _Request:
    table: pa.Table
    ids: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: AppendResult | None = None
    error: BaseException | None = None


_sync = getattr(os, "fdatasync", os.fsync)


def _seal_in_child(path: Path) -> list[FrameIndex]:
    """Seal closed segment ``path`` into ``path.tmp`` in a child process (see `events.segment`)."""
    done = subprocess.run(
        [sys.executable, "-I", segment.__file__, str(path), str(_SEAL_ROWS)],
        capture_output=True,
        text=True,
        timeout=_SEAL_TIMEOUT_S,
        start_new_session=True,  # a Ctrl-C meant for the service does not cut a seal short
        check=False,
    )
    if done.returncode:
        raise WorkspaceError(f"sealing {path.name} failed: {done.stderr.strip()[-500:]}")
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in json.loads(done.stdout)]


class EventLog:
    """Append-only, durable event log (see the module doc). Thread-safe; one writer process at a time."""

    def __init__(
        self,
        directory: Path,
        *,
        max_pending: int,
        retry_after: float,
        segment_bytes: int,
        commit_interval: float,
        read_only: bool = False,
    ) -> None:
        self.directory = directory
        self.max_pending = max_pending
        self.retry_after = retry_after
        self.segment_bytes = segment_bytes
        self.commit_interval = commit_interval
        self.read_only = read_only
        self.recovered_bytes = 0  # bytes of torn tail cut off at open
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._pending = 0
        self._closing = False
        self._broken: BaseException | None = None
        self._segments: list[Path] = []
        self._seg_fds: list[int] = []  # a read descriptor per segment (survives a sealing rename)
        self._retired_fds: list[int] = []
        self._f_first = array("q")  # per frame: first seq, segment index, payload offset, payload length
        self._f_seg = array("q")
        self._f_off = array("q")
        self._f_len = array("q")
        self._last_seq = 0
        self._schema_bytes = LOG_SCHEMA.serialize().to_pybytes()
        self._seen = IdIndex()
        self._fd: int | None = None
        self._size = 0
        self._lock_fd: int | None = None
        self._writer: threading.Thread | None = None
        self._seal_cond = threading.Condition()
        self._seal_queue: list[int] = []
        self._sealing = False
        self._sealer: threading.Thread | None = None
        self.seal_error: BaseException | None = None

    # --- opening and recovery ---
    @classmethod
    def open(
        cls,
        ws: Workspace,
        *,
        max_pending: int | None = None,
        retry_after: float | None = None,
        segment_bytes: int | None = None,
        commit_interval_ms: float | None = None,
        read_only: bool = False,
    ) -> EventLog:
        """Open (or create) the workspace's log, cutting off a torn tail; defaults from ``Settings``.

        ``read_only`` opens a snapshot for reading beside a running writer (no lock, no repair, no appends).
        """
        from contract.settings import Settings

        s = Settings()
        log = cls(
            ws.root / "eventlog",
            max_pending=max_pending or s.eventlog_max_pending,
            retry_after=retry_after if retry_after is not None else s.eventlog_retry_after_s,
            segment_bytes=segment_bytes or s.eventlog_segment_bytes,
            commit_interval=(
                commit_interval_ms if commit_interval_ms is not None else s.eventlog_commit_interval_ms
            )
            / 1000,
            read_only=read_only,
        )
        try:
            log._open(ws)
        except BaseException:
            log.close()
            raise
        return log

    def _open(self, ws: Workspace) -> None:
        if not self.read_only:
            fresh = not self.directory.exists()
            self.directory.mkdir(parents=True, exist_ok=True)
            if fresh:
                fsync_dir(self.directory.parent)
            self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                os.close(self._lock_fd)
                self._lock_fd = None
                raise WorkspaceError(f"event log {self.directory} is open for writing elsewhere") from exc
        if not self.read_only:
            for stale in self.directory.glob("seg-*.log.tmp"):  # a sealing cut short: the original stands
                stale.unlink()
        paths = sorted(self.directory.glob("seg-*.log")) if self.directory.is_dir() else []
        for i, path in enumerate(paths):
            self._scan(path, last=i == len(paths) - 1)
        if self._segments and not self.read_only:
            self._fd = os.open(self._segments[-1], os.O_WRONLY | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size
        self._seen.add_many(self.read()["event_id"].to_numpy(zero_copy_only=False))
        if ws.exists("events"):
            with ws.connect("events") as con:
                stored = con.sql("SELECT event_id FROM events WHERE event_id IS NOT NULL").fetchnumpy()
            self._seen.add_many(np.asarray(stored["event_id"], dtype=object))
        if not self.read_only:
            self._writer = threading.Thread(target=self._run, name="cxi-eventlog-writer", daemon=True)
            self._writer.start()
            self._sealer = threading.Thread(target=self._seal_loop, name="cxi-eventlog-sealer", daemon=True)
            self._sealer.start()
            for seg in range(len(self._segments) - 1):
                self._schedule_seal(seg)

    def _scan(self, path: Path, *, last: bool) -> None:
        """Index one segment's valid frames; a bad frame ends it (torn tail: cut off; elsewhere: an error)."""
        fd = os.open(path, os.O_RDONLY)  # index and reads from one inode, even if a seal renames over it
        data = memoryview(os.pread(fd, os.fstat(fd).st_size, 0))
        bad_at: int | None = None
        head = segment.read_header(data)
        if head is None:
            bad_at = 0
            os.close(fd)
        elif head[0] != self._schema_bytes:
            os.close(fd)
            raise WorkspaceError(f"event log segment {path} holds another schema (an older CXI?)")
        else:
            pos = head[1]
            seg = len(self._segments)
            self._segments.append(path)
            self._seg_fds.append(fd)
            while pos < len(data):
                found = segment.next_frame(data, pos)
                if found is None:
                    bad_at = pos
                    break
                first, rows, start, length = found
                if first != self._last_seq + 1:
                    raise WorkspaceError(f"event log segment {path}: seq {first} follows {self._last_seq}")
                for arr, v in (
                    (self._f_first, first),
                    (self._f_seg, seg),
                    (self._f_off, start),
                    (self._f_len, length),
                ):
                    arr.append(v)
                self._last_seq = first + rows - 1
                pos = start + length
        if bad_at is None:
            return
        if not last:
            raise WorkspaceError(f"event log segment {path} is corrupt at byte {bad_at} (not its tail)")
        self.recovered_bytes = len(data) - bad_at
        if self.read_only:
            return
        if bad_at == 0:  # header itself torn: the segment never held an acknowledged frame
            path.unlink()
            fsync_dir(self.directory)
            return
        with open(path, "r+b") as fh:
            fh.truncate(bad_at)
            os.fsync(fh.fileno())

    # --- appending ---
    def append(self, table: pa.Table) -> AppendResult:
        """Write the rows (contract events schema) durably; returns after the fsync. Raises Overloaded."""
        if self.read_only:
            raise WorkspaceError(f"event log {self.directory} was opened read-only")
        missing = [c for c in EVENTS_SCHEMA.names if c not in table.column_names]
        if missing:
            raise ContractError("events", f"missing column(s) {', '.join(missing)}")
        if table.schema != EVENTS_SCHEMA:
            table = table.select(EVENTS_SCHEMA.names).cast(EVENTS_SCHEMA)
        if table["event_id"].null_count:
            raise ContractError("event_id", "required")
        req = _Request(table, table["event_id"].to_pylist())
        with self._cond:
            if self._closing or self._broken is not None:
                raise WorkspaceError(f"event log {self.directory} is closed") from self._broken
            if self._pending and self._pending + table.num_rows > self.max_pending:
                raise Overloaded(f"{self._pending} rows wait for the event log", retry_after=self.retry_after)
            self._pending += table.num_rows
            self._queue.append(req)
            self._cond.notify()
        req.done.wait()
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
            if self.commit_interval:
                time.sleep(self.commit_interval)
            with self._cond:
                group, self._queue = self._queue, []
            try:
                self._commit(group)
            except BaseException as exc:  # the group fails; the log refuses further appends
                err = WorkspaceError(f"event log write failed: {exc}")
                with self._cond:
                    self._broken = exc
                    group += self._queue
                    self._queue = []
                for req in group:
                    req.error = err
            finally:
                with self._cond:
                    self._pending -= sum(r.table.num_rows for r in group)
                for req in group:
                    req.done.set()

    def _commit(self, group: list[_Request]) -> None:
        ids = [i for r in group for i in r.ids]
        hashed = hashes(np.array(ids, dtype=object))  # once: for the lookup and for adding the new ones
        known = self._seen.contains(ids, hashed)
        batch_ids: set[str] = set()
        keep = np.zeros(len(ids), dtype=bool)
        for j, e in enumerate(ids):  # first occurrence wins (groups are bounded by max_pending)
            if not known[j] and e not in batch_ids:
                keep[j] = True
                batch_ids.add(e)
        rows = group[0].table if len(group) == 1 else pa.concat_tables([r.table for r in group])
        rows = rows.combine_chunks()
        if not keep.all():
            rows = rows.filter(pa.array(keep))
        first = self._last_seq + 1
        seq = pa.array(np.arange(first, first + rows.num_rows, dtype=np.int64))
        rows = pa.table([seq, *rows.columns], schema=LOG_SCHEMA)
        if rows.num_rows:
            batches = rows.to_batches()
            self._write(batches[0] if len(batches) == 1 else rows.combine_chunks().to_batches()[0], first)
            kept = np.flatnonzero(keep)
            self._seen.add([ids[j] for j in kept], (hashed[0][kept], hashed[1][kept]))
        start = pos = 0
        for r in group:
            n = r.table.num_rows
            mine = keep[pos : pos + n]
            kept = int(mine.sum())
            dup = [ids[pos + i] for i in np.flatnonzero(~mine)]
            r.result = AppendResult(rows.slice(start, kept), dup)
            start, pos = start + kept, pos + n

    def _write(self, batch: pa.RecordBatch, first: int) -> None:
        if self._fd is None or self._size >= self.segment_bytes:
            self._roll(first)
        assert self._fd is not None
        data, length = segment.frame(batch, first)
        offset = self._size + segment.FRAME.size
        segment.write_all(self._fd, data)
        _sync(self._fd)
        self._size += len(data)
        with self._cond:
            for arr, v in (
                (self._f_first, first),
                (self._f_seg, len(self._segments) - 1),
                (self._f_off, offset),
                (self._f_len, length),
            ):
                arr.append(v)
            self._last_seq = first + batch.num_rows - 1

    def _roll(self, first: int) -> None:
        """Start a new segment named by its first seq: header written and fsynced, then the directory."""
        path = self.directory / f"seg-{first:020d}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        header = segment.segment_header(self._schema_bytes)
        segment.write_all(fd, header)
        os.fsync(fd)
        fsync_dir(self.directory)
        closed = len(self._segments) - 1
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._size = fd, len(header)
        with self._cond:
            self._segments.append(path)
            self._seg_fds.append(os.open(path, os.O_RDONLY))
        if closed >= 0:
            self._schedule_seal(closed)

    # --- sealing: closed segments rewritten as a few large frames, so reading them decodes few batches ---
    def _schedule_seal(self, seg: int) -> None:
        with self._seal_cond:
            self._seal_queue.append(seg)
            self._seal_cond.notify_all()

    def _seal_loop(self) -> None:
        while True:
            with self._seal_cond:
                while not self._seal_queue and not self._closing:
                    self._seal_cond.wait()
                if self._closing:  # a queued seal is only an optimisation: the next open redoes it
                    return
                seg = self._seal_queue.pop(0)
                self._sealing = True
            try:
                self._seal(seg)
            except Exception as exc:  # the unsealed segment stays valid; reads are just slower
                self.seal_error = exc
            finally:
                with self._seal_cond:
                    self._sealing = False
                    self._seal_cond.notify_all()

    def _wait_sealed(self, timeout: float = 30) -> None:
        """Block until no seal is queued or running (tests, benchmarks)."""
        with self._seal_cond:
            self._seal_cond.wait_for(lambda: not self._seal_queue and not self._sealing, timeout)

    def _seal(self, seg: int) -> None:
        """Have a child rewrite closed segment `seg` (same rows, same seqs) into a temp file, then rename it
        over the segment and swap the index: no sealing CPU in this (serving) process."""
        with self._cond:
            i, j = bisect.bisect_left(self._f_seg, seg), bisect.bisect_right(self._f_seg, seg)
            end = self._f_first[j] if j < len(self._f_first) else self._last_seq + 1
            if j <= i or j - i <= -(-(end - self._f_first[i]) // _SEAL_ROWS):
                return  # empty or sealed already
            path, first = self._segments[seg], self._f_first[i]
        frames = _seal_in_child(path)
        if not frames or frames[0][0] != first or sum(f[1] for f in frames) != end - first:
            raise WorkspaceError(
                f"sealing {path.name}: the sealed copy does not hold seqs {first}..{end - 1}"
            )
        os.replace(path.with_name(path.name + ".tmp"), path)
        fresh = os.open(path, os.O_RDONLY)
        with self._cond:  # readers holding the old descriptor still read the old (identical) rows
            for arr, k in ((self._f_first, 0), (self._f_off, 2), (self._f_len, 3)):
                arr[i:j] = array("q", [f[k] for f in frames])
            self._f_seg[i:j] = array("q", [seg] * len(frames))
            self._retired_fds.append(self._seg_fds[seg])
            self._seg_fds[seg] = fresh
        fsync_dir(self.directory)

    @property
    def pending(self) -> int:
        """Rows handed to ``append`` and not yet acknowledged (what ``max_pending`` bounds)."""
        with self._cond:
            return self._pending

    # --- reading ---
    @property
    def last_seq(self) -> int:
        """The seq of the last acknowledged row (0 when empty)."""
        with self._cond:
            return self._last_seq

    def read(self, after_seq: int = 0) -> pa.Table:
        """Committed rows with ``seq > after_seq``, in seq order (one IPC decode per segment)."""
        with self._cond:
            n = len(self._f_first)
            if n == 0 or after_seq >= self._last_seq:
                return LOG_SCHEMA.empty_table()
            i = max(bisect.bisect_right(self._f_first, after_seq) - 1, 0)
            first, seg_of, offs, lens = (
                a[i:n] for a in (self._f_first, self._f_seg, self._f_off, self._f_len)
            )
            fds = list(self._seg_fds)
        tables = []
        j = 0
        while j < len(seg_of):
            k = bisect.bisect_right(seg_of, seg_of[j], j)
            tables.append(self._decode(self._load(fds[seg_of[j]], offs[j:k], lens[j:k])))
            j = k
        out = pa.concat_tables(tables)
        if first[0] <= after_seq:
            out = out.filter(pc.greater(out["seq"], after_seq))
        return out

    def _load(self, fd: int, offsets: array, lengths: array) -> bytes:
        """One IPC stream: the schema message, then the frames' batch messages (frame headers left out)."""
        lo, hi = offsets[0], offsets[-1] + lengths[-1]
        data = memoryview(os.pread(fd, hi - lo, lo))
        parts = [data[o - lo : o - lo + n] for o, n in zip(offsets, lengths, strict=True)]
        return segment.ipc_stream(self._schema_bytes, parts)

    @staticmethod
    def _decode(stream: bytes) -> pa.Table:
        return pa.ipc.open_stream(stream).read_all()

    # --- closing ---
    def close(self) -> None:
        """Finish the pending appends, stop the writer, release the files. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        with self._seal_cond:
            self._seal_cond.notify_all()
        for name in ("_writer", "_sealer"):
            thread = getattr(self, name)
            if thread is not None:
                thread.join()
                setattr(self, name, None)
        with self._cond:
            fds, self._seg_fds, self._retired_fds = self._seg_fds + self._retired_fds, [], []
        for fd in fds:
            os.close(fd)
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
