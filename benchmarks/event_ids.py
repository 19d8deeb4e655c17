"""The event log's id index at scale: per-commit latency and memory of idempotency checks over millions of ids.

Every commit of the event log asks which of its event_ids are stored, then adds the new ones. The workload
here is that loop alone: ``--ids`` distinct ids in commits of ``--batch``, each one `contains` then `add`.
Baseline: a plain Python ``set`` of the ids (exact, the obvious way). Candidate: `events.id_index.IdIndex`
(16-byte hashes in sorted runs, merged in the background). Each variant runs in its own process so that its
peak memory (growth of max RSS over the loop, the ids' own strings included for the set) is its own; medians
over ``--repeats`` runs of: per-commit latency p50 / p99.9 / max, the whole loop's ids/s, and memory.

    .venv/bin/python -m benchmarks.event_ids --ids 5000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

VARIANTS = ("set", "id_index")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(variant: str, n: int, batch: int) -> dict[str, float]:
    """One run of the commit loop in this process; latencies in ms, memory in MB."""
    from events.id_index import IdIndex, hashes

    if variant == "set":
        seen: set[str] = set()

        def check(ids: list[str]) -> None:
            np.fromiter((i in seen for i in ids), dtype=bool, count=len(ids))
            seen.update(ids)

        def size() -> int:
            return len(seen)
    else:
        index = IdIndex()

        def check(ids: list[str]) -> None:  # as the log's commit does it: hash once, look up, add the new
            hashed = hashes(np.array(ids, dtype=object))
            new = np.flatnonzero(~index.contains(ids, hashed))
            index.add([ids[j] for j in new], (hashed[0][new], hashed[1][new]))

        def size() -> int:
            index.wait_merged()
            return len(index)

    before = _maxrss_mb()
    lat = np.empty((n + batch - 1) // batch)
    started = time.perf_counter()
    for j, i in enumerate(range(0, n, batch)):
        ids = [f"evt-{k:012d}" for k in range(i, min(i + batch, n))]
        t = time.perf_counter()
        check(ids)
        lat[j] = time.perf_counter() - t
    total = time.perf_counter() - started
    assert size() == n
    return {
        "p50_ms": float(np.median(lat)) * 1e3,
        "p999_ms": float(np.quantile(lat, 0.999)) * 1e3,
        "max_ms": float(lat.max()) * 1e3,
        "ids_per_s": n / total,
        "memory_mb": _maxrss_mb() - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one run, in a child
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.ids, args.batch)))
        return
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for v in VARIANTS:  # interleaved, so host noise falls on both
            cmd = [sys.executable, "-m", "benchmarks.event_ids", "--variant", v]
            cmd += ["--ids", str(args.ids), "--batch", str(args.batch)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            results[v].append(json.loads(out.strip().splitlines()[-1]))
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in results.items()}
    base = med["set"]
    table = Table(
        title=f"event id index: {args.ids:,} ids in commits of {args.batch} (median of {args.repeats} runs)"
    )
    for col in ("method", "p50 ms", "p99.9 ms", "max ms", "ids/s", "memory MB", "memory vs set"):
        table.add_column(col)
    for v, label in (("set", "Python set (baseline)"), ("id_index", "IdIndex")):
        m = med[v]
        table.add_row(
            label,
            f"{m['p50_ms']:.3f}",
            f"{m['p999_ms']:.2f}",
            f"{m['max_ms']:.1f} ({m['max_ms'] / base['max_ms']:.2f}x)",
            f"{m['ids_per_s']:,.0f} ({m['ids_per_s'] / base['ids_per_s']:.2f}x)",
            f"{m['memory_mb']:.0f}",
            f"{m['memory_mb'] / base['memory_mb']:.2f}x",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
