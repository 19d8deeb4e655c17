"""Real-time benchmark: event -> updated score visible, and maximum sustained ingestion, over real HTTP.

One run, one machine, against a baseline measured in the same run:

* **baseline**: the bare Feast path the engine builds on: ``write_to_online_store`` of one customer's feature
  row, then ``get_online_features`` of it (SQLite online store, in-process, no HTTP, no feature computation).
* **event -> visible score**: an open-loop client sends events at ``--rate`` events/s for ``--seconds``, after
  ``--warmup`` seconds at that rate that are not measured (steady state: the first seconds after a start also
  build each customer's kept feature state and import what is used first), ``--batch`` events per POST (as
  SDKs batch them) with ``wait=visible``; after each acknowledged POST it asks
  ``/v1/scores/churn`` for one of the customers and checks that the score's ``features_as_of`` is not older than
  the event. Latency = event sent -> that score received.
* **max sustained ingestion**: rising rates with ``wait=durable`` (fsync'ed, batches of ``--ingest-batch``);
  the highest rate whose achieved throughput is >= 95% of target with p99 ack < 100 ms.

    .venv/bin/python -m benchmarks.realtime --customers 2000 --days 60 --rate 1000 --seconds 60

``--workspace DIR`` keeps the built workspace in DIR and reuses it on the next run (the build takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from contract import Settings, Workspace

console = Console()
EVENT_TYPES = ("page_view", "product_view", "product_view", "add_to_cart", "search", "purchase")
CATEGORIES = ("shoes", "bags", "outdoor", "beauty", "home")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def build_workspace(root: Path, customers: int, days: int, seed: int) -> Settings:
    from cxi.pipeline import run_chain

    settings = Settings(workspace=root / "ws", mlflow_dir=root / "mlflow", churn_horizon_days=14)
    if Workspace(root / "ws").exists("events"):
        console.log(f"workspace: reusing {root}")
        return settings
    t0 = time.perf_counter()
    run_chain(settings, customers=customers, days=days, seed=seed)
    console.log(f"workspace: {customers} customers x {days} days built in {time.perf_counter() - t0:.0f}s")
    return settings


def known_users(ws: Workspace, n: int) -> list[str]:
    with ws.connect("identity_map") as con:
        rows = con.execute(
            "SELECT DISTINCT identifier_value FROM identity_map WHERE identifier_type = 'user_id' "
            "ORDER BY hash(identifier_value) LIMIT ?",
            [n],
        ).fetchall()
    return [r[0] for r in rows]


def feast_baseline(settings: Settings, customer_ids: list[str], n: int) -> dict[str, float]:
    """write_to_online_store + get_online_features of one row, on a copy of the workspace's Feast store."""
    from features.definitions import FEATURE_VIEW, JOIN_KEY
    from features.store import FeatureRepo

    root = Path(tempfile.mkdtemp(prefix="cxi-feast-baseline-"))
    try:
        shutil.copytree(settings.feast_dir, root / "ws" / "feast")
        copy = settings.model_copy(update={"workspace": root / "ws"})
        repo = FeatureRepo(copy)
        store = repo.store
        view = store.get_feature_view(FEATURE_VIEW)
        names = [f.name for f in view.features]
        template = repo.online(customer_ids[:1]).iloc[0]
        refs = [f"{FEATURE_VIEW}:{name}" for name in names]
        times: list[float] = []
        import pandas as pd

        for i in range(n):
            cid = customer_ids[i % len(customer_ids)]
            row = {name: template.get(name) for name in names}
            row["events_7d"] = i
            frame = pd.DataFrame([{JOIN_KEY: cid, **row}])
            t0 = time.perf_counter()
            repo.write_online(FEATURE_VIEW, frame, datetime.now(UTC))
            got = store.get_online_features(features=refs, entity_rows=[{JOIN_KEY: cid}]).to_dict()
            times.append((time.perf_counter() - t0) * 1000)
            assert got["events_7d"][0] == i, "the baseline must read back what it wrote"
        return {"p50": statistics.median(times[10:]), "p99": pct(times[10:], 99), "n": len(times)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _event(user: str, when: datetime) -> dict:
    kind = random.choice(EVENT_TYPES)
    props: dict = {"category": random.choice(CATEGORIES)}
    if kind in ("product_view", "add_to_cart"):
        props |= {"product_id": f"P{random.randint(1, 500)}", "price": 25.0, "quantity": 1}
    if kind == "purchase":
        props |= {"order_id": uuid.uuid4().hex[:12], "revenue": 60.0}
    return {
        "event_id": uuid.uuid4().hex,
        "occurred_at": when.isoformat(),
        "type": kind,
        "channel": "web",
        "user_id": user,
        "properties": props,
    }


async def sustained(url: str, users: list[str], rate: float, seconds: float, batch: int) -> dict[str, float]:
    """Open-loop load; per POST: ack latency; then a score request: event sent -> visible score latency."""
    import httpx

    interval = batch / rate
    ack: list[float] = []
    visible: list[float] = []
    stale = errors = sent = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one() -> None:
            nonlocal stale, errors
            sent_at = datetime.now(UTC)
            picked = [random.choice(users) for _ in range(batch)]
            body = [_event(u, sent_at) for u in picked]
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/events", json=body)
                t1 = time.perf_counter()
                if r.status_code != 200:
                    errors += 1
                    return
                ack.append((t1 - t0) * 1000)
                s = await client.post("/v1/scores/churn", json={"user_id": picked[-1]})
            except httpx.HTTPError:  # an overloaded server dropping a connection counts as an error
                errors += 1
                return
            t2 = time.perf_counter()
            if s.status_code != 200:
                errors += 1
                return
            as_of = s.json().get("features_as_of")
            if as_of is None or datetime.fromisoformat(as_of) < sent_at.replace(microsecond=0):
                stale += 1
                if stale <= 3:
                    console.log(
                        f"stale score: sent {sent_at.isoformat()}, features_as_of {as_of}, {s.json()}"
                    )
            visible.append((t2 - t0) * 1000)

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            tasks.append(asyncio.create_task(one()))
            sent += batch
            await asyncio.sleep(max(0.0, (len(tasks) * interval) - (time.perf_counter() - start)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "events": sent,
        "rate": sent / elapsed,
        "achieved": len(visible) * batch / elapsed,  # events whose score came back
        "ack_p50": statistics.median(ack) if ack else float("nan"),
        "ack_p99": pct(ack, 99),
        "visible_p50": statistics.median(visible) if visible else float("nan"),
        "visible_p99": pct(visible, 99),
        "stale": stale,
        "errors": errors,
        "elapsed": elapsed,
    }


async def ingest_rate(
    url: str, users: list[str], rate: float, seconds: float, batch: int
) -> dict[str, float]:
    import httpx

    interval = batch / rate
    ack: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one() -> None:
            nonlocal errors
            when = datetime.now(UTC)
            body = "\n".join(json.dumps(_event(random.choice(users), when)) for _ in range(batch))
            t0 = time.perf_counter()
            try:
                r = await client.post(
                    "/v1/events",
                    params={"wait": "durable"},
                    content=body,
                    headers={"content-type": "application/x-ndjson"},
                )
            except httpx.HTTPError:
                errors += 1
                return
            if r.status_code == 200:
                ack.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(max(0.0, (len(tasks) * interval) - (time.perf_counter() - start)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "target": rate,
        "achieved": len(ack) * batch / elapsed,
        "ack_p50": statistics.median(ack) if ack else float("nan"),
        "ack_p99": pct(ack, 99),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--workspace", type=Path, default=None, help="Keep (and reuse) the workspace here.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rate", default="1000", help="Events/s for the visibility test (comma-separated: one run each)."
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=10, help="Events per POST in the visibility test.")
    parser.add_argument(
        "--warmup",
        type=float,
        default=15.0,
        help="Seconds at each visibility rate before measuring (not measured; 0: none).",
    )
    parser.add_argument("--ingest-batch", type=int, default=50)
    parser.add_argument("--ingest-seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="1000,2000,4000,8000", help="Ingestion rates to try (events/s).")
    args = parser.parse_args()

    from serving import server

    root = args.workspace or Path(tempfile.mkdtemp(prefix="cxi-bench-realtime-"))
    root.mkdir(parents=True, exist_ok=True)
    settings = build_workspace(root, args.customers, args.days, args.seed)
    ws = Workspace(settings.workspace)
    users = known_users(ws, 500)
    with ws.connect("identity_map") as con:
        ids = [
            r[0] for r in con.execute("SELECT DISTINCT customer_id FROM identity_map LIMIT 200").fetchall()
        ]

    base = feast_baseline(settings, ids, 300)
    console.log(f"baseline Feast write+read: p50 {base['p50']:.2f} ms, p99 {base['p99']:.2f} ms")

    port = server.free_port()
    log_path = root / "server.log"
    proc = server.start(settings, host="127.0.0.1", port=port, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(url, proc, timeout=300)
        asyncio.run(sustained(url, users, 100, 3, args.batch))  # warm-up
        visibility = []
        for rate in (float(r) for r in args.rate.split(",")):
            if args.warmup:  # steady state: first-touch state builds and first-use imports are behind
                asyncio.run(sustained(url, users, rate, args.warmup, args.batch))
            vis = asyncio.run(sustained(url, users, rate, args.seconds, args.batch))
            console.log(f"visibility run at {rate:.0f}/s: {vis}")
            visibility.append((rate, vis))
        rates = []
        for rate in (float(r) for r in args.rates.split(",")):
            res = asyncio.run(ingest_rate(url, users, rate, args.ingest_seconds, args.ingest_batch))
            console.log(f"ingest {rate:.0f}/s: {res}")
            rates.append(res)
    finally:
        server.stop(proc)

    ok = [r for r in rates if r["achieved"] >= 0.95 * r["target"] and r["ack_p99"] < 100 and not r["errors"]]
    best = max((r["achieved"] for r in ok), default=0.0)
    table = Table(title=f"benchmarks.realtime ({args.customers} customers x {args.days} days, one run)")
    for col in ("measure", "p50 ms", "p99 ms", "x baseline p50", "x baseline p99", "note"):
        table.add_column(col)
    table.add_row(
        "baseline: Feast write_to_online_store + get_online_features",
        f"{base['p50']:.2f}",
        f"{base['p99']:.2f}",
        "1.0",
        "1.0",
        f"n={base['n']}, in-process",
    )
    for rate, vis in visibility:
        table.add_row(
            f"event -> visible churn score over HTTP, offered {rate:.0f} events/s",
            f"{vis['visible_p50']:.2f}",
            f"{vis['visible_p99']:.2f}",
            f"{vis['visible_p50'] / base['p50']:.1f}",
            f"{vis['visible_p99'] / base['p99']:.1f}",
            f"achieved {vis['achieved']:.0f}/s, {args.batch}/POST, {args.seconds:.0f}s after "
            f"{args.warmup:.0f}s warm-up, stale {vis['stale']}, errors {vis['errors']}",
        )
        table.add_row(
            "  of which: POST /v1/events ack (wait=visible)",
            f"{vis['ack_p50']:.2f}",
            f"{vis['ack_p99']:.2f}",
            "",
            "",
            "",
        )
    for r in rates:
        table.add_row(
            f"ingest {r['target']:.0f}/s (durable, {args.ingest_batch}/POST)",
            f"{r['ack_p50']:.2f}",
            f"{r['ack_p99']:.2f}",
            "",
            "",
            f"achieved {r['achieved']:.0f}/s, errors {r['errors']}",
        )
    console.print(table)
    console.print(f"max sustained ingestion with p99 ack < 100 ms: [bold]{best:.0f} events/s[/bold]")
    console.print("targets: p99 event->visible score <= 50 ms at 1,000 events/s; >= 2,000 events/s sustained")
    if args.workspace is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
