"""Live segments in a child process: a run there appends exactly what the in-process hook appends (consent
statements, merges, rows the applier did not compute), the parent goes on in-process when the child dies,
and a child whose set-up fails turns live segments off with the reason instead of failing every run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from contract import Settings, Workspace
from identity.live import LiveUpdate
from segments.build import build_from_frame
from segments.consent import COLUMNS
from segments.definitions import parse
from segments.store import SegmentStore
from serving.realtime import AppliedBatch
from serving.segments_live import SegmentHook
from serving.segments_process import SegmentProcess

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
DEFS = {
    "segments": [
        {
            "name": "engaged",
            "description": "At least one event in the last 30 days.",
            "conditions": [{"feature": "events_30d", "op": ">=", "value": 1}],
            "consent": ["personalization"],
        }
    ]
}


def _workspace(root: Path) -> Settings:
    (root / "segments.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "segments.yaml").write_text(json.dumps(DEFS))  # YAML is a superset of JSON
    settings = Settings(
        workspace=root / "ws", mlflow_dir=root / "mlflow", segments_file=root / "segments.yaml"
    )
    frame = pd.DataFrame({"customer_id": ["c0", "c3"], "events_30d": [0, 5]})
    build_from_frame(
        Workspace(settings.workspace),
        parse(DEFS),
        frame.assign(**{c: True for c in COLUMNS.values()}),
        as_of=T0,
        now=T0,
    )
    return settings


def _rows(ids: list[str], events_30d: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ids, "events_30d": events_30d})


def _batches() -> list[AppliedBatch]:
    withdraw = pa.table(
        {
            "event_id": ["k1", "v1"],
            "occurred_at": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
            "type": ["consent_update", "page_view"],
            "channel": ["web", "web"],
            "user_id": ["u1", "u0"],
            "properties": [json.dumps({"consent": {"personalization": False}}), None],
        }
    )
    first = AppliedBatch(
        events=withdraw,
        update=LiveUpdate(pa.array(["c1", "c0"]), [], ["c1", "c0"], {}),
        customers=["c0", "c1", "c2"],  # c2's row was not computed by the applier
        applied_at=T0 + timedelta(minutes=1),
        seconds=0.01,
        features=_rows(["c0", "c1"], [2, 4]),
    )
    merge = AppliedBatch(
        events=withdraw.slice(0, 0),
        update=LiveUpdate(pa.array([], pa.string()), [], ["c0"], {"c3": "c0"}),
        customers=["c0"],
        applied_at=T0 + timedelta(minutes=2),
        seconds=0.01,
        features=None,
    )
    return [first, merge]


class Compute:
    """Feature rows of customers the applier did not compute: one event each; the calls are kept."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], datetime]] = []

    def __call__(self, ids: list[str], at: datetime) -> pd.DataFrame:
        self.calls.append((list(ids), at))
        return _rows(ids, [1] * len(ids))


def _changes(settings: Settings) -> pd.DataFrame:
    build = SegmentStore(Workspace(settings.workspace)).latest_build()
    assert build is not None
    rows = SegmentStore(Workspace(settings.workspace)).changes(since=build.last_seq, limit=100).rows
    return rows.sort_values("seq").reset_index(drop=True)


def test_a_run_in_the_child_appends_what_the_in_process_hook_appends(tmp_path: Path) -> None:
    child_settings = _workspace(tmp_path / "child")
    shutil.copytree(tmp_path / "child", tmp_path / "here")  # the same build (and build id) in both
    here_settings = child_settings.model_copy(
        update={
            "workspace": tmp_path / "here" / "ws",
            "mlflow_dir": tmp_path / "here" / "mlflow",
            "segments_file": tmp_path / "here" / "segments.yaml",
        }
    )
    compute, compute_here = Compute(), Compute()
    process = SegmentProcess(child_settings, compute)
    try:
        process(_batches())
        assert process.child.alive and process.fallback is None and process.off is None
    finally:
        process.close()
    hook = SegmentHook.open(here_settings, compute_here)
    try:
        hook(_batches())
    finally:
        hook.close()

    got, expected = _changes(child_settings), _changes(here_settings)
    pd.testing.assert_frame_equal(got, expected)
    assert compute.calls == [(["c2"], T0 + timedelta(minutes=2))]  # only the row the applier did not compute
    kinds = got[["customer_id", "kind", "reason"]].values.tolist()
    assert ["c3", "exit", "customer: merged into c0"] in kinds
    assert {("c0", "entry"), ("c2", "entry")} <= {(c, k) for c, k, _ in kinds}
    assert not any(c == "c1" and k == "entry" for c, k, _ in kinds)  # withdrew personalization consent


def test_the_parent_goes_on_in_process_when_the_child_dies_and_a_bad_set_up_turns_segments_off(
    tmp_path: Path,
) -> None:
    settings = _workspace(tmp_path / "a")
    first, merge = _batches()
    process = SegmentProcess(settings, Compute())
    try:
        process([first])
        os.kill(process.child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.child.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        process([merge])  # in-process now, from the state the child left in the store
        assert process.fallback is not None
    finally:
        process.close()
    assert ["c3", "exit"] in _changes(settings)[["customer_id", "kind"]].values.tolist()

    (tmp_path / "bad.yaml").write_text("segments: [{name: x, conditions: [{feature: f, op: '~', value: 1}]}]")
    off = SegmentProcess(settings.model_copy(update={"segments_file": tmp_path / "bad.yaml"}), Compute())
    try:
        assert not off.wait_ready()  # the engine then drops the hook; ingestion and scores go on
        assert off.off is not None and "did not start" in off.off and "conditions[0].op" in off.off
        off([first])  # and a run does nothing, without an exception
    finally:
        off.close()
