"""Webhook benchmark: membership event enqueued → webhook received, on loopback, against the reference receiver.

Run: ``python -m benchmarks.webhooks [--events 2000] [--rate 500] [--batch-size 100]``.

Scenarios, all measured in one run against the same receiver:

- ``baseline: bare httpx POST`` — one signed POST per event with a kept-alive ``httpx.Client``, sequentially:
  the floor any webhook sender pays on this machine (request + receiver + response).
- ``live`` — events enqueued one at a time at ``--rate`` per second (the real-time path) while the background
  deliverer runs: latency from the start of ``enqueue`` to the receiver reading the body. Includes the durable
  SQLite commit (WAL, synchronous=FULL), the wake-up, the claim, signing, the POST and the outcome commit.
- ``live, enqueue without fsync`` — the same with ``Outbox(durable_enqueue=False)`` (commits survive a process
  crash, not power loss): shows what the per-enqueue fsync costs on this disk.
- ``burst`` — all events enqueued in one call (a batch build's output), then delivered in batches.

Also reported: the ``enqueue`` call's own latency (what ingestion pays; no network I/O), and the time to
enqueue a batch build's output (``--batch-events`` rows as a DataFrame).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from activation.config import Destination
from activation.outbox import Outbox, idempotency_key, normalise_event
from activation.receiver import WebhookReceiver
from activation.runtime import Activation
from activation.webhooks import build_request

SECRET = "benchmark-secret-0123456789"


def events(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "customer_id": f"c{i}",
            "segment": "at_risk_high_value",
            "kind": "entry",
            "reason": "churn 0.71 >= 0.6 and value in top 20%",
            "at": f"2026-11-01T00:00:00.{i:06d}+00:00",
            "build_id": "bench",
        }
        for i in range(start, start + n)
    ]


def pct(xs: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def baseline(receiver: WebhookReceiver, dest: Destination, evs: list[dict]) -> dict[str, float]:
    """Sequential signed POSTs of one event each with a kept-alive client: round trip per request."""
    secret = dest.resolved_secret()
    lat = []
    with httpx.Client(timeout=5) as client:
        for e in evs:
            ev = normalise_event(e)
            body, headers = build_request(dest, [ev], [idempotency_key("baseline", ev)], secret)
            t0 = time.perf_counter()
            r = client.post(receiver.url, content=body, headers=headers)
            lat.append(time.perf_counter() - t0)
            r.raise_for_status()
    return pct(lat)


def live(
    receiver: WebhookReceiver,
    dest: Destination,
    evs: list[dict],
    rate: float,
    tmp: Path,
    durable: bool = True,
) -> dict:
    """One event per enqueue at ``rate``/s with the background deliverer: enqueue start → received."""
    outbox = Outbox(tmp / f"live-{durable}.sqlite", durable_enqueue=durable)
    sent: dict[str, float] = {}
    enqueue_lat = []
    with Activation(outbox, [dest], lambda ids, p: set(ids), poll_s=0.5) as act:
        t_start = time.perf_counter()
        for i, e in enumerate(evs):
            due = t_start + i / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(0.001, due - now))
            t0 = time.perf_counter()
            act.enqueue([e])
            enqueue_lat.append(time.perf_counter() - t0)
            sent[idempotency_key(dest.name, normalise_event(e))] = t0
        ok = act.deliverer.flush(120)
        requests = act.deliverer.stats.requests
    outbox.close()
    lat = [receiver.first_seen[k] - t for k, t in sent.items()]
    return {"ok": ok, "e2e": pct(lat), "enqueue": pct(enqueue_lat), "requests": requests}


def burst(receiver: WebhookReceiver, dest: Destination, evs: list[dict], tmp: Path) -> dict:
    """All events in one enqueue: per-event latency to the receiver and the time to drain."""
    outbox = Outbox(tmp / "burst.sqlite")
    with Activation(outbox, [dest], lambda ids, p: set(ids), poll_s=0.5) as act:
        t0 = time.perf_counter()
        act.enqueue(evs)
        t_enq = time.perf_counter() - t0
        ok = act.deliverer.flush(120)
        drained = time.perf_counter() - t0
        requests = act.deliverer.stats.requests
    outbox.close()
    keys = [idempotency_key(dest.name, normalise_event(e)) for e in evs]
    lat = [receiver.first_seen[k] - t0 for k in keys]
    return {"ok": ok, "e2e": pct(lat), "enqueue_s": t_enq, "drain_s": drained, "requests": requests}


def batch_enqueue(n: int, dest: Destination, tmp: Path) -> dict[str, float]:
    """A batch build's output (a DataFrame of ``n`` events with seq) into the outbox: seconds, both times."""
    import pandas as pd

    frame = pd.DataFrame(events(n, start=5 * 10**7))
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["seq"] = range(len(frame))
    outbox = Outbox(tmp / "batch.sqlite")
    t0 = time.perf_counter()
    added = outbox.enqueue(frame, [dest])
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = outbox.enqueue(frame, [dest])
    second = time.perf_counter() - t0
    outbox.close()
    assert added == n and again == 0
    return {"first_s": first, "again_s": second}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=500.0, help="live scenario: events per second")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--batch-events", type=int, default=100_000, help="batch enqueue scenario: events")
    a = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp, WebhookReceiver(SECRET) as receiver:
        dest = Destination(name="bench", url=receiver.url, secret=SECRET, batch_size=a.batch_size)
        baseline(receiver, dest, events(50, start=10**7))  # warm up the client path and the receiver
        base = baseline(receiver, dest, events(a.events, start=2 * 10**7))
        lv = live(receiver, dest, events(a.events), a.rate, Path(tmp))
        lv_fast = live(receiver, dest, events(a.events, start=3 * 10**7), a.rate, Path(tmp), durable=False)
        bu = burst(receiver, dest, events(a.events, start=10**6), Path(tmp))
        assert lv["ok"] and lv_fast["ok"] and bu["ok"], "not everything was delivered"
        be = batch_enqueue(a.batch_events, dest, Path(tmp))
        assert receiver.duplicates == 0

    table = Table(title=f"webhooks on loopback: {a.events} events, batch_size {a.batch_size} (ms)")
    for col in ("scenario", "p50", "p99", "max", "notes"):
        table.add_column(col, justify="left" if col in ("scenario", "notes") else "right")

    def row(name: str, s: dict[str, float], notes: str) -> None:
        table.add_row(name, f"{s['p50']:.2f}", f"{s['p99']:.2f}", f"{s['max']:.2f}", notes)

    row("baseline: bare httpx POST round trip", base, "1 event per request, sequential")
    row(f"live: enqueue → received ({a.rate:g}/s)", lv["e2e"], f"{lv['requests']} requests")
    row("live: enqueue call alone", lv["enqueue"], "durable SQLite commit (fsync), no network")
    row("live, enqueue without fsync: → received", lv_fast["e2e"], f"{lv_fast['requests']} requests")
    row("live, enqueue without fsync: call alone", lv_fast["enqueue"], "durable_enqueue=False")
    row(
        "burst: enqueue → received",
        bu["e2e"],
        f"enqueue {bu['enqueue_s'] * 1000:.0f} ms, drained in {bu['drain_s']:.2f} s, {bu['requests']} requests",
    )
    console.print(table)
    console.print(
        f"batch enqueue of {a.batch_events:,} events (DataFrame, vectorised keys): {be['first_s']:.2f} s;"
        f" the same again (all duplicates, nothing added): {be['again_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
