"""`cxi import ...` through typer's CliRunner: summary, exit codes, strict mode, mapping files, env workspace."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from contract.workspace import Workspace

RUNNER = CliRunner()


def _app() -> tuple[typer.Typer, list[str]]:
    """The full `cxi` app when its modules import, else the `import` sub-app on its own."""
    try:
        return importlib.import_module("cxi.cli").app, ["import"]
    except ImportError:
        return importlib.import_module("cxi.commands.imports").app, []


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "web.csv"
    pd.DataFrame(
        {
            "id": ["e1", "e2", "e3"],
            "ts": ["2024-05-01T10:00:00Z", "1714557600", "garbage"],
            "type": ["page_view", "search", "page_view"],
            "channel": ["web", "web", "web"],
            "cookie": ["a1", "a2", "a3"],
        }
    ).to_csv(path, index=False)
    return path


def test_import_prints_summary_and_reasons(tmp_path: Path, csv: Path) -> None:
    app, prefix = _app()
    ws = tmp_path / "ws"
    args = [
        *prefix,
        "events",
        str(csv),
        "--map",
        "event_id=id,occurred_at=ts",
        "--map",
        "anonymous_id=cookie",
        "--workspace",
        str(ws),
    ]
    result = RUNNER.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output and "occurred_at: not a recognised timestamp" in result.output
    assert Workspace(ws).count("events") == 2 and Workspace(ws).count("quarantine") == 1
    again = RUNNER.invoke(app, args)  # idempotent re-import is not a failure
    assert again.exit_code == 0 and Workspace(ws).count("events") == 2


def test_strict_exits_1_and_writes_nothing(tmp_path: Path, csv: Path) -> None:
    app, prefix = _app()
    ws = tmp_path / "ws"
    result = RUNNER.invoke(
        app,
        [
            *prefix,
            "events",
            str(csv),
            "--map",
            "event_id=id,occurred_at=ts,anonymous_id=cookie",
            "--strict",
            "--workspace",
            str(ws),
        ],
    )
    assert result.exit_code == 1
    assert Workspace(ws).tables() == []


def test_map_file_and_env_workspace(tmp_path: Path, csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app, prefix = _app()
    mapping = tmp_path / "map.yaml"
    mapping.write_text("event_id: id\noccurred_at: ts\nanonymous_id: cookie\n")
    monkeypatch.setenv("CXI_WORKSPACE", str(tmp_path / "env_ws"))
    result = RUNNER.invoke(app, [*prefix, "events", str(csv), "--map-file", str(mapping)])
    assert result.exit_code == 0, result.output
    assert Workspace(tmp_path / "env_ws").count("events") == 2


def test_nothing_accepted_exits_1_and_bad_mapping_exits_2(tmp_path: Path, csv: Path) -> None:
    app, prefix = _app()
    ws = ["--workspace", str(tmp_path / "ws")]
    all_bad = RUNNER.invoke(app, [*prefix, "events", str(csv), "--map", "event_id=id", *ws])  # no occurred_at
    assert all_bad.exit_code == 1
    bad_map = RUNNER.invoke(app, [*prefix, "events", str(csv), "--map", "event_id=missing", *ws])
    assert bad_map.exit_code == 2 and "missing" in bad_map.output


def test_date_format_option_reads_day_first_text(tmp_path: Path) -> None:
    app, prefix = _app()
    path = tmp_path / "till.csv"
    pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "occurred_at": ["01/02/2024 10:00", "03/04/2024 11:30"],
            "amount": [5, 7],
        }
    ).to_csv(path, index=False)
    ws = tmp_path / "ws"
    base = [*prefix, "transactions", str(path), "--workspace", str(ws)]
    guessed = RUNNER.invoke(app, base)
    assert guessed.exit_code == 1 and "day/month order is ambiguous" in guessed.output
    given = RUNNER.invoke(app, [*base, "--date-format", "%d/%m/%Y %H:%M"])
    assert given.exit_code == 0, given.output
    times = Workspace(ws).read("events").column("occurred_at").to_pylist()
    assert sorted(t.isoformat() for t in times) == ["2024-02-01T10:00:00+00:00", "2024-04-03T11:30:00+00:00"]


def test_phone_region_option_reads_national_phones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app, prefix = _app()
    path = tmp_path / "shop.csv"
    pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "occurred_at": ["2024-05-01T10:00:00Z"] * 2,
            "amount": [5, 7],
            "phone": ["020 7946 0958", "+44 20 7946 0958"],
        }
    ).to_csv(path, index=False)
    for option, ws in (([], "ws_none"), (["--phone-region", "gb"], "ws_gb"), ([], "ws_env")):
        if ws == "ws_env":
            monkeypatch.setenv("CXI_DEFAULT_PHONE_REGION", "GB")
        args = [*prefix, "transactions", str(path), "--workspace", str(tmp_path / ws), *option]
        result = RUNNER.invoke(app, args)
        assert result.exit_code == 0, result.output
    hashes = {
        ws: set(Workspace(tmp_path / ws).read("events")["phone_sha256"].to_pylist())
        for ws in ("ws_none", "ws_gb", "ws_env")
    }
    assert len(hashes["ws_none"]) == 2 and len(hashes["ws_gb"]) == 1 and hashes["ws_env"] == hashes["ws_gb"]
    bad = RUNNER.invoke(
        app, [*prefix, "transactions", str(path), "--phone-region", "UK", "--workspace", str(tmp_path / "w")]
    )
    assert bad.exit_code == 2 and "phone_region: not a known region" in bad.output
