"""Segment build (evaluate + persist) for 100k and 1M synthetic customers, against a plain pandas filter.

Per size, each measurement runs in its own process (peak memory = that process's max RSS above its RSS once
the frame is generated):

* ``baseline`` — the same default definitions as plain pandas boolean filters at their enter thresholds
  (percentiles by ``quantile``, lifecycle by ``np.select``): no hysteresis, consent, suppression,
  exclusivity, reasons or persistence. The lower bound of any segment engine.
* ``first`` — `segments.build.build_from_frame` on an empty workspace: evaluate, then persist membership,
  every entry event and the build.
* ``rebuild`` — a second build after every score moved by up to ±0.05: hysteresis against the previous
  membership (read back from the store), entry/exit deltas, persist.
* ``pages`` — paging the largest segment through `SegmentStore.members` 1,000 at a time (the pull API).

    .venv/bin/python -m benchmarks.segments --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from segments.definitions import Condition

T0 = datetime(2024, 3, 1, tzinfo=UTC)
CONSENT_RATES = {"analytics": 0.95, "personalization": 0.9, "marketing": 0.6, "advertising": 0.5}


def population(n: int, seed: int = 0) -> pd.DataFrame:
    """n customers with the columns of the default definitions (scores, recency, purchases) and consent."""
    rng = np.random.default_rng(seed)
    first_seen = rng.uniform(0, 200, n)
    purchases = rng.poisson(1.2, n)
    first_purchase = np.where(purchases > 0, rng.uniform(0, 1, n) * first_seen, np.nan)
    frame = pd.DataFrame(
        {
            "customer_id": np.char.add("c_", rng.permutation(n).astype(str).astype("U16")).astype(object),
            "churn_probability": rng.beta(2, 3, n),
            "intent_probability": rng.beta(1.5, 4, n),
            "predicted_value": rng.gamma(2.0, 50.0, n),
            "days_since_first_seen": first_seen,
            "days_since_last_event": np.minimum(rng.exponential(20, n), first_seen),
            "days_since_first_purchase": first_purchase,
            "days_since_last_purchase": np.where(
                purchases > 0, np.minimum(first_purchase, rng.exponential(30, n)), np.nan
            ),
            "purchases_total": purchases,
            "purchases_30d": rng.binomial(purchases, 0.3),
            "share_active_days_30d_of_90d": rng.uniform(0, 1, n),
            "active_days_total": rng.integers(1, 60, n),
        }
    )
    for p, rate in CONSENT_RATES.items():
        frame[f"consent_{p}"] = rng.random(n) < rate
    return frame


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def baseline(frame: pd.DataFrame) -> int:
    """Plain pandas filters of the default definitions (enter thresholds only); returns member rows."""
    from segments.definitions import load

    defs = load()
    stage = np.full(len(frame), None, dtype=object)
    masks = []
    for st in defs.lifecycle:
        m = pd.Series(True, index=frame.index)
        for c in st.conditions:
            m &= _filter(frame, c)
        masks.append(m.to_numpy())
    stage = np.select(masks, [s.name for s in defs.lifecycle], default=None) if masks else stage
    rows = len(frame)  # one lifecycle stage each
    for seg in defs.segments:
        m = pd.Series(True, index=frame.index)
        for c in seg.conditions:
            m &= _filter(frame, c)
        if seg.lifecycle:
            m &= np.isin(stage, seg.lifecycle)
        rows += len(frame.loc[m, "customer_id"])
    return rows


def _filter(frame: pd.DataFrame, c: Condition) -> pd.Series:
    col = frame[c.column]
    value = c.thresholds[0]
    if c.percentile is not None:
        value = col.quantile(value)
    ops = {">=": col.ge, ">": col.gt, "<=": col.le, "<": col.lt, "==": col.eq, "!=": col.ne}
    if c.op == "is_null":
        return col.isna()
    if c.op == "not_null":
        return col.notna()
    return ops[c.op](value)


def one(mode: str, n: int, root: str) -> dict[str, float]:
    """Run one measurement in this process on the workspace ``root`` (``first`` builds into it, ``rebuild``
    and ``pages`` continue from it); returns seconds, peak MiB above the ready input, rows."""
    from contract.workspace import Workspace
    from segments.build import build_from_frame
    from segments.definitions import load
    from segments.store import SegmentStore

    ws = Workspace(root)
    defs = load()
    frame = population(n) if mode != "pages" else None
    if mode == "rebuild":
        rng = np.random.default_rng(1)
        for col in ("churn_probability", "intent_probability"):
            frame[col] = np.clip(frame[col] + rng.uniform(-0.05, 0.05, n), 0, 1)
    base = _rss_kib()
    t = time.perf_counter()
    if mode == "baseline":
        rows = baseline(frame)  # type: ignore[arg-type]
        detail = {}
    elif mode == "pages":
        store = SegmentStore(ws)
        sizes = store.sizes()
        name = max((s for s in sizes if not s.startswith("lifecycle_")), key=sizes.__getitem__)
        cursor, rows, pages = None, 0, 0
        while True:
            page = store.members(name, cursor, limit=1000)
            rows, pages = rows + len(page.rows), pages + 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        detail = {"pages": pages, "segment": name}
    else:
        report = build_from_frame(ws, defs, frame, as_of=T0)  # type: ignore[arg-type]
        rows = int(report.stats["size"].sum())
        detail = {
            "evaluate_s": report.seconds["evaluate"],
            "persist_s": report.seconds["persist"],
            "changes": int(report.stats["entered"].sum() + report.stats["exited"].sum()),
        }
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mib": max(peak - base, 0) / 1024, "rows": rows, **detail}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", nargs=3, metavar=("MODE", "N", "WORKSPACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2])))
        return
    console = Console(width=170)
    table = Table(title="segments: evaluate + persist vs a plain pandas filter (same run, own process each)")
    for col in ("customers", "run", "seconds", "x baseline", "peak MiB", "member rows", "detail"):
        table.add_column(col, justify="left" if col in ("run", "detail") else "right")
    for n in args.sizes:
        results = {}
        root = tempfile.mkdtemp(prefix="segbench")
        for mode in ("baseline", "first", "rebuild", "pages"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.segments", "--one", mode, str(n), root],
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        base = results["baseline"]["seconds"]
        for mode, r in results.items():
            extra = {k: v for k, v in r.items() if k not in ("seconds", "peak_mib", "rows")}
            detail = ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items()
            )
            table.add_row(
                f"{n:,}",
                mode,
                f"{r['seconds']:.2f}",
                f"{r['seconds'] / base:.1f}" if mode != "pages" else "-",
                f"{r['peak_mib']:.0f}",
                f"{r['rows']:,}",
                detail,
            )
        shutil.rmtree(root, ignore_errors=True)
    console.print(table)


if __name__ == "__main__":
    main()
