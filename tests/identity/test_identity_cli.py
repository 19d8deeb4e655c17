"""`cxi identity resolve | lookup` over a tiny workspace; records imported with `cxi import records`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from identity_tables import events_table
from typer.testing import CliRunner

from contract import Workspace
from contract.normalize import sha256_hex
from cxi.commands.identity import app
from cxi.commands.imports import app as imports_app
from identity import IdentityIndex

runner = CliRunner()


def test_resolve_then_lookup(ws: Workspace) -> None:
    ws.replace(
        "events",
        events_table(
            [
                {"anonymous_id": "a1"},
                {
                    "anonymous_id": "a1",
                    "user_id": "u1",
                    "email_sha256": sha256_hex("ada@example.org"),
                    "type": "login",
                },
            ]
        ),
    )
    out = runner.invoke(app, ["resolve", "--workspace", str(ws.root)])
    assert out.exit_code == 0, out.output
    assert "customers" in out.output and "identifiers" in out.output
    out = runner.invoke(app, ["lookup", "email", "Ada@Example.org", "--workspace", str(ws.root)])
    assert out.exit_code == 0, out.output
    assert "u1" in out.output and "a1" in out.output
    out = runner.invoke(app, ["lookup", "user_id", "nobody", "-w", str(ws.root)])
    assert out.exit_code == 1 and "no customer" in out.output


def test_resolve_without_events_fails_clearly(ws: Workspace) -> None:
    out = runner.invoke(app, ["resolve", "--workspace", str(ws.root)])
    assert out.exit_code == 1 and "events" in out.output


def _crm_files(tmp_path: Path) -> list[Path]:
    """One person in two systems: the CRM writes her phone internationally, the shop nationally."""
    paths = []
    for source, record_id, phone in (("crm", "r1", "+44 20 7946 0958"), ("shop", "s7", "020 7946 0958")):
        path = tmp_path / f"{source}.csv"
        pd.DataFrame([{"record_id": record_id, "first_name": "Ann", "phone": phone}]).to_csv(
            path, index=False
        )
        paths.append(path)
    return paths


@pytest.mark.parametrize("region", ["GB", None])
def test_records_with_national_and_international_phones_resolve_to_one_customer(
    ws: Workspace, tmp_path: Path, region: str | None
) -> None:
    """`cxi import records --phone-region GB` hashes '020 7946 0958' as '+44 20 7946 0958'; without a region
    the national form keeps its digits and the two records stay apart, as before."""
    ws.replace("events", events_table([{"anonymous_id": "a1"}]))
    option = ["--phone-region", region] if region else []
    for path in _crm_files(tmp_path):
        out = runner.invoke(imports_app, ["records", str(path), "--workspace", str(ws.root), *option])
        assert out.exit_code == 0, out.output
    hashes = ws.read("records").column("phone_sha256").to_pylist()
    assert (len(set(hashes)) == 1) == (region is not None)
    assert runner.invoke(app, ["resolve", "--workspace", str(ws.root)]).exit_code == 0
    index = IdentityIndex.load(ws)
    crm, shop = index.customer_for("record", "crm:r1"), index.customer_for("record", "shop:s7")
    assert (crm == shop) == (region is not None)
    assert index.customer_for_phone("020 7946 0958", region) == shop


def test_lookup_and_import_default_to_the_phone_region_setting(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXI_DEFAULT_PHONE_REGION", "gb")
    ws.replace("events", events_table([{"anonymous_id": "a1"}]))
    for path in _crm_files(tmp_path):
        assert runner.invoke(imports_app, ["records", str(path), "--workspace", str(ws.root)]).exit_code == 0
    assert runner.invoke(app, ["resolve", "--workspace", str(ws.root)]).exit_code == 0
    out = runner.invoke(app, ["lookup", "phone", "020 7946 0958", "--workspace", str(ws.root)])
    assert out.exit_code == 0, out.output
    assert "crm:r1" in out.output and "shop:s7" in out.output
