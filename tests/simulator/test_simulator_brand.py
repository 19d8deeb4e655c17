"""`simulate_brand` writes through the real importers, and the truth beside the tables; the CLI wraps it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from contract import Workspace
from cxi.commands.simulate import simulate
from simulator import SimConfig, simulate_brand

SMALL = SimConfig(customers=200, days=30, seed=11)


def test_simulate_brand_imports_everything_and_writes_truth(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    steps: list[str] = []
    summary = simulate_brand(ws, SMALL, progress=lambda step, _f: steps.append(step))
    assert {r.table for r in summary.imports} == {"records", "events", "transactions", "decisions"}
    assert all(r.quarantined == 0 and r.accepted == r.rows for r in summary.imports), summary.imports
    n_events = summary.generated["events"] + summary.generated["transactions"]
    assert ws.count("events") == n_events  # transactions arrive as purchase events
    assert ws.count("records") == sum(summary.generated[f"records_{s}"] for s in ("crm", "ecom", "loyalty"))
    assert ws.count("decisions") == summary.generated["decisions"]
    assert ws.count("quarantine") == 0
    for name in ("persons", "identifiers", "records", "events", "transactions", "churn", "offers"):
        assert (ws.truth_dir / f"{name}.parquet").is_file(), name
    truth_events = pd.read_parquet(ws.truth_dir / "events.parquet")
    stored = ws.read("events", columns=["event_id"]).to_pandas()
    assert set(truth_events["event_id"]) <= set(stored["event_id"])
    assert SimConfig.model_validate_json((ws.truth_dir / "config.json").read_text()) == SMALL
    assert any(s.startswith("import") for s in steps) and any(s.startswith("simulate") for s in steps)


def test_cli_simulate(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(simulate)
    ws = tmp_path / "ws"
    args = [
        "--customers",
        "150",
        "--days",
        "14",
        "--seed",
        "2",
        "--workspace",
        str(ws),
        "--start",
        "2026-03-01",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "events" in result.output and "quarantined" in result.output
    assert Workspace(ws).count("events") > 0
    first = Workspace(ws).read("events", columns=["occurred_at"]).to_pandas()["occurred_at"].min()
    assert first >= pd.Timestamp("2026-03-01", tz="UTC")
    bad = CliRunner().invoke(app, ["--customers", "3", "--workspace", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "customers" in bad.output
