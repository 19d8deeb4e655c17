"""Graph health, explain and the identity CLI's explain / unmerge / health commands."""

from __future__ import annotations

import pytest
from identity_tables import events_table
from typer.testing import CliRunner

from contract import Workspace
from cxi.commands.identity import app
from identity import IdentityIndex, IdentityResolver
from identity.explain import explain
from identity.health import HealthConfig, health

runner = CliRunner()


def chain(ws: Workspace) -> None:
    # cookie c1 - device d - cookie c2 (d is a bridge), a second customer of one cookie, a shared kiosk
    rows = [
        {"anonymous_id": "c1", "device_id": "d"},
        {"anonymous_id": "c2", "device_id": "d"},
        {"anonymous_id": "solo"},
    ]
    rows += [{"device_id": "kiosk", "user_id": f"u{i}", "type": "login"} for i in range(5)]
    ws.replace("events", events_table(rows))
    IdentityResolver(ws).resolve()


def test_health_reports_bridges_giants_and_guards(ws: Workspace) -> None:
    chain(ws)
    report = health(ws, HealthConfig(giant_cluster_size=2, max_guard_share={"shared": 0.0}))
    assert report.customers == 8 and report.identifiers == 10
    assert report.size_distribution["3-5"] == 1 and report.size_distribution["1"] == 7
    assert [c for c, _ in report.giant_clusters] == [IdentityIndex.load(ws).customer_for("device_id", "d")]
    assert [(t, v) for _, t, v in report.bridges] == [("device_id", "d")]
    assert report.guard_firings == {"shared": 1}
    assert any("giant" in w for w in report.warnings) and any("shared" in w for w in report.warnings)
    assert not health(ws, HealthConfig(max_bridge_share=1.0, max_guard_share={})).warnings
    with pytest.raises(ValueError, match="extra"):
        HealthConfig(giant=3)  # type: ignore[call-arg]


def test_explain_by_identifier_and_customer(ws: Workspace) -> None:
    chain(ws)
    ex = explain(ws, "anonymous_id:c1")
    assert (
        len(ex.identifiers) == 3 and ex.edges.num_rows == 2 and set(ex.edges["rule"].to_pylist()) == {"pair"}
    )
    assert explain(ws, ex.customer_id).identifiers == ex.identifiers
    assert explain(ws, "device_id:kiosk").guards["guard"].to_pylist() == ["shared"]


def test_cli_explain_unmerge_health(ws: Workspace) -> None:
    chain(ws)
    w = ["--workspace", str(ws.root)]
    out = runner.invoke(app, ["explain", "device_id:d", *w])
    assert out.exit_code == 0 and "pair" in out.output and "anonymous_id" in out.output, out.output
    assert runner.invoke(app, ["explain", "nobody", *w]).exit_code == 1
    cid = IdentityIndex.load(ws).customer_for("device_id", "d")
    out = runner.invoke(app, ["unmerge", cid, "--identifier", "anonymous_id:c2", *w])
    assert out.exit_code == 0 and "rebuild features for" in out.output, out.output
    assert IdentityIndex.load(ws).customer_for("anonymous_id", "c2") != cid
    assert runner.invoke(app, ["unmerge", cid, "-i", "bad", *w]).exit_code == 1
    out = runner.invoke(app, ["health", "--giant", "2", *w])
    assert out.exit_code == 0 and "bridge identifiers" in out.output and "warning" in out.output, out.output
