"""Live anonymous matching: one pass over the anonymous profiles a stretch of traffic touched, against the
batch matcher scoring every anonymous profile of the same log (what a resolve with matching does).

Seeded simulated brand (`simulator`), resolved deterministically; the anonymous matcher is trained once and
shared by both sides (training is not timed). Baseline: `AnonymousMatcher.links` over the whole workspace.
Candidate: `LiveMatcher.links` for ``--share`` of the anonymous profiles (those a pass would have been told
about), its events held in memory. Medians over ``--repeats``; the links of the asked profiles must agree.

    .venv/bin/python -m benchmarks.live_match --customers 10000 --days 90 --share 0.01
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--share", type=float, default=0.01, help="Share of anonymous profiles touched.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from contract.workspace import Workspace
    from identity import IdentityResolver
    from identity.live import LiveIdentity
    from identity.live_match import LiveMatcher
    from simulator.brand import simulate_brand
    from simulator.config import SimConfig

    console = Console(width=160)
    ws = Workspace(Path(tempfile.mkdtemp(prefix="cxi-live-match-")) / "ws")
    simulate_brand(ws, SimConfig(customers=args.customers, days=args.days, seed=args.seed))
    IdentityResolver(ws).resolve()
    matcher, note = LiveMatcher.train(ws, mode="on")
    console.log(note)
    if matcher is None:
        return
    t0 = time.perf_counter()
    held = matcher.load(ws)
    load_s = time.perf_counter() - t0
    identity = LiveIdentity.load(ws)
    m = ws.read("identity_map").to_pandas()
    known = m.groupby("customer_id")["identifier_type"].agg(
        lambda t: (~t.isin(["device_id", "anonymous_id"])).any()
    )
    anonymous = sorted(known[~known].index)
    rng = np.random.default_rng(args.seed)
    asked = list(rng.choice(anonymous, max(1, int(len(anonymous) * args.share)), replace=False))

    batch_s, live_s = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        with ws.connect("events", "identity_map", "identity_guard_log") as con:
            batch = matcher.matcher.links(con)
        batch_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        live = matcher.links(identity, asked)
        live_s.append(time.perf_counter() - t0)
    # the profiles the batch matcher linked, asked live: the links must be the same ones
    linked = sorted(
        {identity.customer_for(t, v) for t, v in zip(batch["left_type"], batch["left_value"], strict=True)}
        - {None}
    )
    t0 = time.perf_counter()
    again = matcher.links(identity, linked)
    linked_s = time.perf_counter() - t0

    def same(frame: object, customers: list[str]) -> bool:
        mine = {v for c in customers for _, v in identity.identifiers_of(c)}
        want = batch[batch["left_value"].isin(mine)].sort_values("left_value").reset_index(drop=True)
        got = frame.sort_values("left_value").reset_index(drop=True)  # type: ignore[attr-defined]
        return bool(want[["left_value", "right_value"]].equals(got[["left_value", "right_value"]]))

    b, c = statistics.median(batch_s), statistics.median(live_s)
    table = Table(
        title=f"live anonymous matching: {held:,} events held (loaded in {load_s:.1f}s), "
        f"{len(anonymous):,} anonymous profiles"
    )
    for col in ("method", "profiles", "median s", "ratio vs batch", "links", "same links as batch"):
        table.add_column(col)
    table.add_row(
        "batch matcher, every profile (baseline)",
        f"{len(anonymous):,}",
        f"{b:.2f}",
        "1.0x",
        f"{len(batch):,}",
        "-",
    )
    table.add_row(
        f"LiveMatcher.links, {args.share:.0%} touched",
        f"{len(asked):,}",
        f"{c:.2f}",
        f"{b / c:.1f}x faster",
        f"{len(live):,}",
        str(same(live, asked)),
    )
    table.add_row(
        "LiveMatcher.links, the batch-linked ones (one run)",
        f"{len(linked):,}",
        f"{linked_s:.2f}",
        f"{b / linked_s:.1f}x faster",
        f"{len(again):,}",
        str(same(again, linked)),
    )
    console.print(table)


if __name__ == "__main__":
    main()
