"""`simulate_brand`: generate, write the brand's exports through the importers, and the truth to ``truth/``."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.parquet as pq

from contract.workspace import Workspace
from simulator.behaviour import Progress
from simulator.config import ImportCounts, SimConfig, SimData, SimSummary
from simulator.generate import generate

#: Source names the exports are imported under.
EVENTS_SOURCE = "sim_web_app"
TRANSACTIONS_SOURCE = "sim_pos"
DECISIONS_SOURCE = "sim_nba_log"


def write_truth(ws: Workspace, data: SimData, config: SimConfig) -> None:
    """One Parquet file per truth table (replacing a previous simulation's), plus the config as JSON."""
    d = ws.truth_dir
    d.mkdir(parents=True, exist_ok=True)
    for name, frame in data.truth.items():
        tmp = d / f".{name}.parquet.tmp"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, compression="zstd")
        tmp.replace(d / f"{name}.parquet")
    (d / "config.json").write_text(config.model_dump_json(indent=2))


def simulate_brand(ws: Workspace, config: SimConfig, progress: Progress | None = None) -> SimSummary:
    """Simulate the brand into `ws`: events, records, transactions and decisions via the importers."""
    from events.importers import import_frame

    t0 = time.perf_counter()
    data = generate(config, progress)
    t1 = time.perf_counter()
    jobs = [
        *[("records", df, source) for source, df in data.records.items()],
        ("events", data.events, EVENTS_SOURCE),
        ("transactions", data.transactions, TRANSACTIONS_SOURCE),
        ("decisions", data.decisions, DECISIONS_SOURCE),
    ]
    counts = []
    for i, (kind, frame, source) in enumerate(jobs):
        if progress:
            progress(f"import {kind} ({source})", i / len(jobs))
        rep = import_frame(ws, kind, frame, source=source)  # type: ignore[arg-type]
        counts.append(
            ImportCounts(
                table=kind,
                source=source,
                rows=rep.rows,
                accepted=rep.accepted,
                duplicates=rep.duplicates,
                quarantined=rep.quarantined,
            )
        )
    if progress:
        progress("import", 1.0)
    write_truth(ws, data, config)
    t2 = time.perf_counter()
    return SimSummary(
        customers=config.customers,
        days=config.days,
        seed=config.seed,
        workspace=ws.root,
        truth_dir=ws.truth_dir,
        generated={k: len(v) for k, v in data.tables().items()},
        imports=counts,
        seconds_generate=round(t1 - t0, 3),
        seconds_import=round(t2 - t1, 3),
    )
