"""`IdentityResolver.resolve(probabilistic=True)` and `cxi identity resolve --probabilistic`: the matchers'
links join the graph with probability and evidence; matchers that cannot train fall back, with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from match_data import make_records
from test_anonymous_matcher import make_logs
from typer.testing import CliRunner

from contract import Workspace
from cxi.commands.identity import app
from events.importers import import_frame
from identity import IdentityResolver


@pytest.fixture(scope="module")
def linked_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    events, _ = make_logs(seed=3, households=200)
    records, _ = make_records(300, seed=3, user_id_rate=0.5)
    ws = Workspace(tmp_path_factory.mktemp("prob") / "ws")
    import_frame(ws, "events", events, source="test")
    import_frame(ws, "records", records, source="crm")
    return ws


def test_probabilistic_resolve_links_with_evidence(linked_ws: Workspace) -> None:
    ws = linked_ws
    det = IdentityResolver(ws).resolve()  # the Python default: deterministic
    assert det.probabilistic_edges == 0 and det.notes == ()
    rep = IdentityResolver(ws).resolve(probabilistic=True)
    assert rep.probabilistic_edges > 0, rep.notes
    assert any(n.startswith("anonymous matcher: trained") for n in rep.notes), rep.notes
    assert any(n.startswith("record matcher (supervised)") for n in rep.notes), rep.notes
    assert rep.customers < det.customers  # the links merged profiles
    edges = ws.read("identity_edges").to_pandas()
    prob = edges[edges["rule"] == "probabilistic"]
    assert len(prob) and prob["probability"].between(0, 1).all()
    methods = {json.loads(e)["method"] for e in prob["evidence"]}
    assert methods == {"anonymous_profile_match", "record_match"}
    users = ws.read("identity_map").to_pandas().query("identifier_type == 'user_id'")
    assert not users["customer_id"].duplicated().any()  # never two user_ids in one profile


def test_cli_falls_back_with_a_reason(tmp_path: Path) -> None:
    events, _ = make_logs(seed=4, households=3)
    ws = Workspace(tmp_path / "ws")
    import_frame(ws, "events", events, source="test")
    out = CliRunner().invoke(app, ["resolve", "-w", str(ws.root), "--probabilistic"])
    assert out.exit_code == 0, out.output
    assert "anonymous matcher skipped" in out.output and "record matcher skipped: no records" in out.output
    for flags in (["--no-probabilistic"], []):  # deterministic is the default
        out = CliRunner().invoke(app, ["resolve", "-w", str(ws.root), *flags])
        assert out.exit_code == 0 and "skipped" not in out.output
