"""Durable event log: acknowledgement latency and sustained events/s, against fsync-per-event in the same run.

Baseline: the plain way to be durable, one ``write`` + ``fsync`` per event (the event's JSON line) in a loop.
Candidate: ``EventLog.append`` from N concurrent threads (closed loop: each thread appends again as soon as
its previous append is acknowledged), with batches of 1 and of 50 events; group commit writes whatever
is pending as one frame with one fsync. Also the full live path ``Ingestor.ingest`` (the importer's
validation + append). Every number is for acknowledged = fsynced events.

    .venv/bin/python -m benchmarks.eventlog --seconds 5 --threads 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from contract import EVENTS_SCHEMA, Workspace
from events.ingest import Ingestor
from events.log import EventLog


def record(i: str) -> dict:
    return {
        "event_id": i,
        "occurred_at": "2026-04-01T10:00:00Z",
        "type": "product_view",
        "channel": "web",
        "anonymous_id": f"a-{i}",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "properties": {"product_id": "p-17", "category": "shoes", "price": 59.9},
    }


def rows(ids: list[str]) -> pa.Table:
    n = len(ids)
    cols = {
        "event_id": pa.array(ids),
        "occurred_at": pa.array(
            np.full(n, np.datetime64("2026-04-01T10:00:00", "us")), EVENTS_SCHEMA.field("occurred_at").type
        ),
        "type": pa.array(["product_view"] * n),
        "channel": pa.array(["web"] * n),
        "anonymous_id": pa.array([f"a-{i}" for i in ids]),
        "user_agent": pa.array(["Mozilla/5.0 (X11; Linux x86_64)"] * n),
        "product_id": pa.array(["p-17"] * n),
        "category": pa.array(["shoes"] * n),
        "price": pa.array([59.9] * n),
        "properties": pa.array(['{"product_id": "p-17", "category": "shoes", "price": 59.9}'] * n),
        "source": pa.array(["bench"] * n),
    }
    return pa.Table.from_arrays(
        [cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in EVENTS_SCHEMA], schema=EVENTS_SCHEMA
    )


def fsync_per_event(root: Path, seconds: float) -> dict[str, float]:
    """The baseline: append one JSON line, fsync, next event."""
    path = root / "baseline.ndjson"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    lat: list[float] = []
    try:
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            t = time.perf_counter()
            os.write(fd, (json.dumps(record(f"b{i}")) + "\n").encode())
            os.fsync(fd)
            lat.append(time.perf_counter() - t)
            i += 1
    finally:
        os.close(fd)
    return summary(lat, 1, sum(lat))


def concurrent(
    threads: int, batch: int, seconds: float, call: Callable[[int, int], None]
) -> dict[str, float]:
    """`threads` closed-loop callers of call(thread, i) for `seconds`; latency per call (= per ack)."""
    lats: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds

    def loop(k: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            t = time.perf_counter()
            call(k, i)
            lats[k].append(time.perf_counter() - t)
            i += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return summary([x for lat in lats for x in lat], batch, time.perf_counter() - started)


def summary(lat: list[float], batch: int, wall: float) -> dict[str, float]:
    a = np.asarray(lat) * 1000
    return {
        "events": len(a) * batch,
        "events_s": len(a) * batch / wall,
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="Duration of each scenario.")
    p.add_argument("--threads", type=int, default=8, help="Concurrent appenders.")
    p.add_argument("--dir", type=Path, default=None, help="Where to write (a real disk; default: temp dir).")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cxi-eventlog-", dir=args.dir))
    console = Console(width=150)
    results: dict[str, dict[str, float]] = {}
    reads: dict[str, float] = {}
    try:
        console.print(f"writing under {root} ({args.threads} threads, {args.seconds:g} s per scenario)")
        results["baseline: write+fsync per event (1 thread)"] = fsync_per_event(root, args.seconds)
        for batch in (1, 50):
            ws = Workspace(root / f"log{batch}")
            pre = [
                [rows([f"t{k}-{i}-{j}" for j in range(batch)]) for i in range(64)]
                for k in range(args.threads)
            ]
            with EventLog.open(ws, max_pending=1_000_000, segment_bytes=2**20) as log:

                def append(k: int, i: int, log: EventLog = log, pre: list = pre, batch: int = batch) -> None:
                    t = pre[k][i % 64]
                    if i >= 64:  # fresh ids (repeats would be duplicates)
                        t = t.set_column(0, "event_id", pa.array([f"t{k}-{i}-{j}" for j in range(batch)]))
                    log.append(t)

                name = f"EventLog.append, batch {batch}, {args.threads} threads"
                results[name] = concurrent(args.threads, batch, args.seconds, append)
                log._wait_sealed()  # closed 1 MiB segments are rewritten as one frame each, in the background
                frames = len(log._f_first)
                started = time.perf_counter()
                n = log.read().num_rows
                reads[f"read() of {n:,} events in {frames:,} frames"] = time.perf_counter() - started
        for batch, threads in ((1, args.threads), (1, 8 * args.threads), (50, args.threads)):
            ws = Workspace(root / f"ingest{batch}-{threads}")
            with EventLog.open(ws, max_pending=1_000_000) as log:
                ing = Ingestor(ws, log)

                def post(k: int, i: int, ing: Ingestor = ing, batch: int = batch) -> None:
                    ing.ingest([record(f"t{k}-{i}-{j}") for j in range(batch)])

                name = f"Ingestor.ingest (validate+append), batch {batch}, {threads} threads"
                results[name] = concurrent(threads, batch, args.seconds, post)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = results["baseline: write+fsync per event (1 thread)"]["events_s"]
    table = Table(title=f"Durable acknowledgement (after fsync), {os.cpu_count()} cores, closed-loop callers")
    for col in ("scenario", "events", "events/s", "× baseline", "ack p50 ms", "ack p99 ms"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['events']:,}",
            f"{r['events_s']:,.0f}",
            f"{r['events_s'] / base:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
        )
    console.print(table)
    for name, seconds in reads.items():
        console.print(f"{name}: {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
