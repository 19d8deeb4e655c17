"""The durable event log: round trips, durability across handles, idempotency, torn tails, concurrency,
back-pressure, and a kill -9 of a process appending in a loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from contract.errors import ContractError, WorkspaceError
from contract.schemas import EVENTS_SCHEMA
from contract.settings import REPO_ROOT
from contract.workspace import Workspace
from events.log import LOG_SCHEMA, EventLog, Overloaded


def rows(ids: list[str]) -> pa.Table:
    """Stored-events rows with the given ids (other columns filled or null)."""
    n = len(ids)
    cols = {name: pa.nulls(n, f.type) for name, f in zip(EVENTS_SCHEMA.names, EVENTS_SCHEMA, strict=True)}
    cols["event_id"] = pa.array(ids, pa.string())
    cols["type"] = pa.array(["page_view"] * n)
    cols["channel"] = pa.array(["web"] * n)
    cols["anonymous_id"] = pa.array([f"a-{i}" for i in ids])
    cols["occurred_at"] = pa.array(
        np.full(n, np.datetime64("2024-05-01T10:00:00", "us")), EVENTS_SCHEMA.field("occurred_at").type
    )
    return pa.table(cols, schema=EVENTS_SCHEMA)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def segments(ws: Workspace) -> list[Path]:
    return sorted((ws.root / "eventlog").glob("seg-*.log"))


def test_append_read_round_trip(ws: Workspace) -> None:
    with EventLog.open(ws) as log:
        assert log.read().equals(LOG_SCHEMA.empty_table()) and log.last_seq == 0
        a = log.append(rows(["e1", "e2", "e3"]))
        b = log.append(rows(["e4", "e5"]))
        assert a.table["seq"].to_pylist() == [1, 2, 3] and b.table["seq"].to_pylist() == [4, 5]
        assert a.duplicates == [] and log.last_seq == 5
        out = log.read()
        assert out.schema == LOG_SCHEMA
        assert out["seq"].to_pylist() == [1, 2, 3, 4, 5]
        assert out.drop_columns(["seq"]).equals(
            pa.concat_tables([rows(["e1", "e2", "e3"]), rows(["e4", "e5"])])
        )
        assert log.read(3)["event_id"].to_pylist() == ["e4", "e5"]
        assert log.read(2)["seq"].to_pylist() == [3, 4, 5]
        assert log.read(5).num_rows == 0


def test_acknowledged_rows_are_on_disk_for_another_handle(ws: Workspace) -> None:
    log = EventLog.open(ws)
    try:
        log.append(rows(["e1", "e2"]))
        with pytest.raises(WorkspaceError, match="open for writing"):
            EventLog.open(ws)
        with EventLog.open(ws, read_only=True) as reader:
            assert reader.read()["event_id"].to_pylist() == ["e1", "e2"] and reader.last_seq == 2
            with pytest.raises(WorkspaceError, match="read-only"):
                reader.append(rows(["x"]))
    finally:
        log.close()
    with EventLog.open(ws) as again:  # the lock is released on close
        assert again.last_seq == 2


def test_bad_rows_are_refused(ws: Workspace) -> None:
    with EventLog.open(ws) as log:
        with pytest.raises(ContractError, match="missing column"):
            log.append(rows(["e1"]).drop_columns(["type"]))
        with pytest.raises(ContractError, match="event_id"):
            log.append(rows(["e1"]).set_column(0, "event_id", pa.nulls(1, pa.string())))
        assert log.last_seq == 0


def test_idempotent_by_event_id(ws: Workspace) -> None:
    ws.append("events", rows(["old1", "old2"]))  # already imported by the batch path
    with EventLog.open(ws) as log:
        r = log.append(rows(["n1", "n1", "old1", "n2"]))
        assert r.table["event_id"].to_pylist() == ["n1", "n2"] and r.table["seq"].to_pylist() == [1, 2]
        assert r.duplicates == ["n1", "old1"]
        again = log.append(rows(["n2", "n1", "old2"]))
        assert again.table.num_rows == 0 and sorted(again.duplicates) == ["n1", "n2", "old2"]
        assert log.last_seq == 2
    with EventLog.open(ws) as log:  # after a restart the log's ids are known too
        r = log.append(rows(["n1", "n3"]))
        assert r.duplicates == ["n1"] and r.table["seq"].to_pylist() == [3]
        assert log.read()["event_id"].to_pylist() == ["n1", "n2", "n3"]


def test_many_ids_known_through_hashes(ws: Workspace) -> None:
    ids = [f"w{i}" for i in range(20_000)]
    ws.append("events", rows(ids))
    with EventLog.open(ws) as log:
        r = log.append(rows(["w0", "w19999", "w20000", "fresh"]))
        assert r.duplicates == ["w0", "w19999"]
        assert r.table["event_id"].to_pylist() == ["w20000", "fresh"]


@pytest.mark.parametrize("damage", ["cut", "flip", "garbage"])
def test_torn_tail_is_cut_off_and_seq_continues(ws: Workspace, damage: str) -> None:
    with EventLog.open(ws) as log:
        log.append(rows(["e1", "e2"]))
        log.append(rows(["e3"]))
        log.append(rows(["e4", "e5"]))
    (seg,) = segments(ws)
    size = seg.stat().st_size
    if damage == "cut":
        os.truncate(seg, size - 7)
    elif damage == "flip":
        with open(seg, "r+b") as fh:
            fh.seek(size - 3)
            byte = fh.read(1)
            fh.seek(size - 3)
            fh.write(bytes([byte[0] ^ 0xFF]))
    else:
        with open(seg, "ab") as fh:
            fh.write(b"CXFR\x10\x00")
    with EventLog.open(ws) as log:
        assert log.recovered_bytes > 0
        kept = ["e1", "e2", "e3"] if damage != "garbage" else ["e1", "e2", "e3", "e4", "e5"]
        assert log.read()["event_id"].to_pylist() == kept
        r = log.append(rows(["e6"]))
        assert r.table["seq"].to_pylist() == [len(kept) + 1]
    with EventLog.open(ws) as log:
        assert log.recovered_bytes == 0
        assert log.read()["seq"].to_pylist() == list(range(1, len(kept) + 2))


def test_torn_segment_header_is_dropped(ws: Workspace) -> None:
    with EventLog.open(ws, segment_bytes=4096) as log:
        log.append(rows(["e1"]))
    (ws.root / "eventlog" / f"seg-{2:020d}.log").write_bytes(b"CXIEV")  # crash while rolling
    with EventLog.open(ws, segment_bytes=4096) as log:
        assert log.read()["event_id"].to_pylist() == ["e1"]
        assert log.append(rows(["e2"])).table["seq"].to_pylist() == [2]


def test_segments_roll_and_are_sealed_into_few_frames(ws: Workspace) -> None:
    with EventLog.open(ws, segment_bytes=8192) as log:
        reads: list[list[int]] = []
        stop = threading.Event()

        def reader() -> None:  # reads while segments are being sealed see whole, ordered prefixes
            while not stop.is_set():
                reads.append(log.read()["seq"].to_pylist())

        t = threading.Thread(target=reader)
        t.start()
        for i in range(120):
            log.append(rows([f"e{i}-{j}" for j in range(3)]))
        stop.set()
        t.join()
        assert all(r == list(range(1, len(r) + 1)) for r in reads) and reads
        assert len(segments(ws)) > 3
        log._wait_sealed()
        assert log.seal_error is None
        assert len(log._f_first) <= len(segments(ws)) + 10  # closed segments: one frame each
        assert log.read()["seq"].to_pylist() == list(range(1, 361))
        assert log.read(100)["seq"].to_pylist() == list(range(101, 361))
        before = log.read()
    (ws.root / "eventlog" / f"seg-{1:020d}.log.tmp").write_bytes(b"half a seal")  # a seal cut short
    with EventLog.open(ws, segment_bytes=8192) as log:
        assert not list((ws.root / "eventlog").glob("*.tmp"))
        assert log.read().equals(before) and log.last_seq == 360
        assert log.read(359)["event_id"].to_pylist() == ["e119-2"]
        assert log.append(rows(["e120"])).table["seq"].to_pylist() == [361]
    os.truncate(segments(ws)[0], segments(ws)[0].stat().st_size - 1)
    with pytest.raises(WorkspaceError, match="corrupt"):  # damage before the tail is not repaired
        EventLog.open(ws, read_only=True)


def test_concurrent_appends_exactly_once_gap_free(ws: Workspace) -> None:
    acked: list[list[str]] = [[] for _ in range(8)]
    dups: list[list[str]] = [[] for _ in range(8)]

    def worker(k: int) -> None:
        for i in range(40):
            ids = [f"t{k}-{i}-{j}" for j in range(1 + i % 4)] + [f"shared-{i}"]  # a contended id
            r = log.append(rows(ids))
            acked[k] += r.table["event_id"].to_pylist()
            dups[k] += r.duplicates

    with EventLog.open(ws) as log:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out = log.read()
    got = out["event_id"].to_pylist()
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(i for a in acked for i in a)
    assert out["seq"].to_pylist() == list(range(1, len(got) + 1))
    assert sorted(i for d in dups for i in d) == sorted(f"shared-{i}" for i in range(40) for _ in range(7))
    assert len(list((ws.root / "eventlog").glob("seg-*"))) == 1


def test_overloaded_when_the_queue_is_full(ws: Workspace) -> None:
    log = EventLog.open(ws, max_pending=10, retry_after=0.25, commit_interval_ms=300)
    try:
        first = threading.Thread(target=log.append, args=(rows([f"a{i}" for i in range(6)]),))
        first.start()
        deadline = time.monotonic() + 5
        while log._pending == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        started = time.perf_counter()
        with pytest.raises(Overloaded) as info:
            log.append(rows([f"b{i}" for i in range(5)]))
        assert time.perf_counter() - started < 0.1  # refused at once, not queued
        assert info.value.retry_after == 0.25
        first.join()
        assert log.append(rows([f"b{i}" for i in range(5)])).table.num_rows == 5  # drained: accepted
        assert log.last_seq == 11
    finally:
        log.close()


CHILD = """
import sys, threading
from contract.workspace import Workspace
from events.log import EventLog
sys.path.insert(0, {tests!r})
from test_events_log import rows
log = EventLog.open(Workspace({root!r}), segment_bytes={segment_bytes})
lock = threading.Lock()
def run(k):
    i = 0
    while True:
        ids = [f"k{{k}}-{{i}}-{{j}}" for j in range(1 + i % 3)]
        r = log.append(rows(ids))
        with lock:
            sys.stdout.write("".join(e + "\\n" for e in r.table["event_id"].to_pylist()))
            sys.stdout.flush()
        i += 1
for k in range(4):
    threading.Thread(target=run, args=(k,), daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.parametrize("segment_bytes", [2**24, 8192], ids=["one-segment", "rolling-and-sealing"])
def test_kill_9_loses_no_acknowledged_event(ws: Workspace, segment_bytes: int) -> None:
    code = CHILD.format(tests=str(Path(__file__).parent), root=str(ws.root), segment_bytes=segment_bytes)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT)
    assert proc.stdout is not None
    printed: list[bytes] = []
    try:
        while len(printed) < 400:
            line = proc.stdout.readline()
            assert line, "the appending process died"
            printed.append(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait()
    acked = [ln.decode().strip() for ln in [*printed, *rest.splitlines(keepends=True)] if ln.endswith(b"\n")]
    with EventLog.open(ws, segment_bytes=segment_bytes) as log:
        out = log.read()
        got = out["event_id"].to_pylist()
        assert out["seq"].to_pylist() == list(range(1, len(got) + 1))
        assert len(got) == len(set(got))
        assert set(acked) <= set(got)
        assert log.append(rows(["after"])).table["seq"].to_pylist() == [len(got) + 1]
