"""Incremental identity resolution of a 1% batch vs a full rerun, on a synthetic event log.

Seeded synthetic log: people with cookies and devices, logins on some events, a few shared devices; events
are split at random into a base (99%) and a batch (1%). The baseline is a full `IdentityResolver.resolve()`
over base + batch; the candidate is `resolve_incremental(batch)` after resolving the base; both start from
the same state, and the identity maps and guard logs must be identical. Medians over ``--repeats``.

    .venv/bin/python -m benchmarks.identity_incremental --events 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from contract import EVENTS_SCHEMA, Workspace
from identity import IdentityResolver


def synthetic_events(n: int, seed: int = 7) -> pa.Table:
    """n events of n/8 people: 2 cookies and 1.5 devices each, logins on 10%, 0.1% on shared kiosks."""
    rng = np.random.default_rng(seed)
    people = max(n // 8, 1)
    person = rng.integers(0, people, n)
    anon = np.char.add(
        np.char.add("a", person.astype(str)), np.char.add("-", rng.integers(0, 2, n).astype(str))
    )
    dev = np.char.add(
        np.char.add("d", person.astype(str)), np.char.add("-", rng.integers(0, 2, n).astype(str))
    )
    kiosk = rng.random(n) < 0.001
    dev = np.where(kiosk, np.char.add("kiosk", rng.integers(0, 20, n).astype(str)), dev)
    has_dev = rng.random(n) < 0.6
    login = rng.random(n) < 0.1
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    cols = {
        "event_id": pa.array(np.char.add("e", np.arange(n).astype(str))),
        "occurred_at": pa.array(
            [t0 + timedelta(seconds=int(s)) for s in rng.integers(0, 86400 * 365, n)],
            EVENTS_SCHEMA.field("occurred_at").type,
        ),
        "type": pa.array(np.where(login, "login", "page_view")),
        "channel": pa.array(np.full(n, "web")),
        "anonymous_id": pa.array(anon),
        "device_id": pa.array(np.where(has_dev, dev, None)),
        "user_id": pa.array(np.where(login, np.char.add("u", person.astype(str)), None)),
        "source": pa.array(np.full(n, "bench")),
    }
    return pa.Table.from_arrays(
        [cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in EVENTS_SCHEMA], schema=EVENTS_SCHEMA
    )


def state(ws: Workspace) -> tuple[pa.Table, pa.Table]:
    m = ws.read("identity_map").sort_by([("identifier_type", "ascending"), ("identifier_value", "ascending")])
    g = ws.read("identity_guard_log")
    g = g.sort_by([(c, "ascending") for c in g.column_names])
    return m, g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    log = synthetic_events(args.events)
    in_batch = pa.array(np.random.default_rng(1).random(log.num_rows) < args.batch)
    base, batch = log.filter(pa.compute.invert(in_batch)), log.filter(in_batch)
    root = Path(tempfile.mkdtemp(prefix="cxi-inc-"))
    seed_ws = Workspace(root / "seed")
    seed_ws.replace("events", base)
    IdentityResolver(seed_ws).resolve()
    full_s, inc_s, same = [], [], True
    for i in range(args.repeats):
        a, b = Workspace(root / f"full{i}"), Workspace(root / f"inc{i}")
        shutil.copytree(seed_ws.root, a.root)
        shutil.copytree(seed_ws.root, b.root)
        a.append("events", batch)
        t = time.perf_counter()
        IdentityResolver(a).resolve()
        full_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        IdentityResolver(b).resolve_incremental(batch)
        inc_s.append(time.perf_counter() - t)
        (ma, ga), (mb, gb) = state(a), state(b)
        same = same and ma.equals(mb) and ga.equals(gb)
    shutil.rmtree(root, ignore_errors=True)
    full, inc = statistics.median(full_s), statistics.median(inc_s)
    table = Table(
        title=f"identity: {args.batch:.0%} batch of {args.events:,} events ({batch.num_rows:,} new)"
    )
    for col in ("method", "median s", "ratio vs full rerun", "identical result"):
        table.add_column(col)
    table.add_row("full rerun (baseline)", f"{full:.2f}", "1.0x", "-")
    table.add_row("resolve_incremental", f"{inc:.2f}", f"{full / inc:.1f}x faster", str(same))
    Console().print(table)


if __name__ == "__main__":
    main()
