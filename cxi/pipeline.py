"""The whole chain on the embedded default, as one incremental job: simulate -> stitch -> features -> train
-> segments.

Each step records a fingerprint of its inputs in ``<workspace>/run_state.json``; a re-run skips a step whose
inputs have not changed, and every write goes through atomic workspace/Feast/MLflow operations, so an
interrupted run never leaves a half-written table behind.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contract import REPO_ROOT, Settings, Workspace
from contract.errors import WorkspaceError


@dataclass
class StepResult:
    name: str
    seconds: float
    skipped: bool
    detail: str


@dataclass
class RunReport:
    steps: list[StepResult] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


def code_fingerprint(*packages: str) -> str:
    """Changes whenever the source of a step's packages changes, so a code update re-runs the step."""
    h = hashlib.sha256()
    for package in packages:
        for p in sorted((REPO_ROOT / package).rglob("*.py")):
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def table_fingerprint(ws: Workspace, *tables: str) -> str:
    """Changes whenever a part is added to, removed from or rewritten in any of the tables."""
    h = hashlib.sha256()
    for name in tables:
        d = ws.table_dir(name)
        for p in sorted(d.glob("*.parquet")) if d.is_dir() else []:
            st = p.stat()
            h.update(f"{name}/{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


class RunState:
    """Fingerprints of the inputs each step last ran on (JSON, written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def fresh(self, step: str, fingerprint: str) -> bool:
        return self.data.get(step) == fingerprint

    def mark(self, step: str, fingerprint: str) -> None:
        self.data[step] = fingerprint
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        tmp.replace(self.path)


Progress = Callable[[str], None]


def run_chain(
    settings: Settings,
    *,
    customers: int = 10_000,
    days: int = 90,
    seed: int = 7,
    force: bool = False,
    on_step: Progress | None = None,
) -> RunReport:
    """Run every offline step; the caller starts the service afterwards."""
    ws = Workspace(settings.workspace)
    state = RunState(ws.root / "run_state.json")
    report = RunReport()
    say = on_step or (lambda _msg: None)

    def step(name: str, fingerprint: str, fn: Callable[[], str]) -> None:
        if not force and state.fresh(name, fingerprint):
            report.steps.append(StepResult(name, 0.0, True, "inputs unchanged"))
            say(f"{name}: up to date")
            return
        say(f"{name} ...")
        t0 = time.perf_counter()
        detail = fn()
        report.steps.append(StepResult(name, time.perf_counter() - t0, False, detail))
        state.mark(name, fingerprint)
        say(f"{name}: {detail}")

    def simulate() -> str:
        from simulator import SimConfig, simulate_brand

        # The brand's history ends today (UTC), so live features and scores computed "now" continue it.
        start = datetime.now(UTC).date() - timedelta(days=days)
        summary = simulate_brand(ws, SimConfig(customers=customers, days=days, seed=seed, start=start))
        return str(summary)

    if ws.exists("events"):
        report.steps.append(StepResult("simulate", 0.0, True, "workspace already has events"))
        say("simulate: workspace already has events")
    else:
        step("simulate", f"{customers}:{days}:{seed}", simulate)

    def stitch() -> str:
        from identity import IdentityResolver, StitchConfig

        return str(IdentityResolver(ws, StitchConfig.from_settings(settings)).resolve())

    step("identity", table_fingerprint(ws, "events", "records") + code_fingerprint("identity"), stitch)

    def features() -> str:
        from features.store import FeatureRepo

        repo = FeatureRepo(settings)
        repo.apply()
        path = repo.build(ws)
        repo.materialize()
        return f"offline snapshots at {path}; online store materialized"

    step("features", table_fingerprint(ws, "events", "identity_map") + code_fingerprint("features"), features)

    def train() -> str:
        from training.churn import train_churn

        return str(train_churn(settings, ws))

    step(
        "train_churn",
        table_fingerprint(ws, "events", "identity_map") + f":{settings.churn_horizon_days}",
        train,
    )

    def segments() -> str:
        from segments.build import build_segments

        return build_segments(settings, ws).summary()

    step(
        "segments",
        table_fingerprint(ws, "events", "identity_map") + f":{settings.churn_horizon_days}",
        segments,
    )
    return report


def replay(settings: Settings, *, from_scratch: bool = False, on_step: Progress | None = None) -> RunReport:
    """Rebuild every derived store from the events: log -> events table -> identity -> offline + online features.

    Events acknowledged by the real-time API live in the durable event log first; they are compacted into the
    workspace `events` table (idempotent by event_id), then identity is re-resolved (stable ids, unmerge
    decisions and history are inputs and kept) and the Feast snapshots and online store are rebuilt. With
    ``from_scratch`` the Feast folder (registry, online store, snapshots: all derived) is deleted first, as if
    it had been lost. A running service picks the result up on restart.
    """
    import shutil

    ws = Workspace(settings.workspace)
    report = RunReport()
    say = on_step or (lambda _msg: None)

    def step(name: str, fn: Callable[[], str]) -> None:
        say(f"{name} ...")
        t0 = time.perf_counter()
        detail = fn()
        report.steps.append(StepResult(name, time.perf_counter() - t0, False, detail))
        say(f"{name}: {detail}")

    def compact() -> str:
        from events.ingest import compact as compact_log
        from events.log import EventLog

        event_log = EventLog.open(ws, read_only=True)  # compaction only reads the log; a service may hold it
        try:
            added = compact_log(ws, event_log)
            return f"{added} logged events added to the events table ({event_log.last_seq} in the log)"
        finally:
            event_log.close()

    def stitch() -> str:
        from identity import IdentityResolver, StitchConfig

        return str(IdentityResolver(ws, StitchConfig.from_settings(settings)).resolve())

    def features() -> str:
        from features.store import FeatureRepo

        if from_scratch and settings.feast_dir.exists():
            shutil.rmtree(settings.feast_dir)
        repo = FeatureRepo(settings)
        repo.apply()
        path = repo.build(ws)
        end = repo.materialize()
        return f"offline snapshots at {path}; online store materialized up to {end:%Y-%m-%d}"

    step("compact", compact)
    if not ws.exists("events"):
        raise WorkspaceError(f"no events in workspace {ws.root}: nothing to replay")
    step("identity", stitch)
    step("features", features)
    return report


def example_identifier(ws: Workspace) -> dict[str, Any]:
    """A real identifier from the identity map, for the printed curl example (a user_id when there is one)."""
    with ws.connect("identity_map") as con:
        row = con.execute(
            "SELECT identifier_type, identifier_value FROM identity_map "
            "ORDER BY identifier_type <> 'user_id', identifier_value LIMIT 1"
        ).fetchone()
    return {row[0]: row[1]} if row else {}
