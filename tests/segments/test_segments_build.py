"""End to end on a tiny trained workspace (real Feast + MLflow): `build_segments` scores every customer with
the champions, skips segments whose model is missing, is stable on a rebuild, and the CLI lists and exports
(consent held after a merge of a consenting and a non-consenting profile)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import typer
from segments_workspace import activity_log, consent_event, write_events, write_map
from typer.testing import CliRunner

from contract import Settings, Workspace
from contract.normalize import sha256_hex

pytestmark = [pytest.mark.integration, pytest.mark.slow]
START = datetime(2024, 1, 1, tzinfo=UTC)
YES = {"analytics": True, "personalization": True, "marketing": True, "advertising": True}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Workspace]:
    from features.store import FeatureRepo
    from training.churn import train_churn
    from training.model import ChurnModel
    from training.value import ValueModel, train_value

    root = tmp_path_factory.mktemp("segbuild")
    settings = Settings(workspace=root / "ws", mlflow_dir=root / "mlflow")
    ws = Workspace(settings.workspace)
    log = activity_log(400, 100, START, seed=2)
    consent_at = (START + timedelta(days=60)).isoformat()
    extra = [consent_event(f"k{i}", consent_at, YES, user_id=f"u{i}") for i in range(0, 400, 2)]
    # c6: a cookie that granted everything, merged with the user u6 who refused marketing afterwards
    extra += [
        consent_event("k6a", consent_at, YES, anonymous_id="a6"),
        consent_event("k6b", consent_at, {"marketing": False}, user_id="u6"),
    ]
    rows = log.drop(columns=["customer_id"]).to_dict("records") + extra
    write_events(ws, rows)
    ids = sorted(set(log["customer_id"]))
    mapping = [("user_id", f"u{c[1:]}", c) for c in ids] + [("anonymous_id", "a6", "c6")]
    mapping += [("email_sha256", sha256_hex(f"user{c[1:]}@example.com"), c) for c in ids]
    write_map(ws, mapping, START)
    repo = FeatureRepo(settings)
    repo.build(ws)
    repo.apply()
    train_churn(settings, ws, horizon_days=21, max_train_dates=4, model=ChurnModel(num_threads=1))
    train_value(settings, ws, horizon_days=21, max_train_dates=4, model=ValueModel(num_threads=1))
    return settings, ws


def test_build_scores_everyone_and_is_stable(trained: tuple[Settings, Workspace]) -> None:
    from segments.build import build_segments
    from segments.definitions import load
    from segments.store import SegmentStore
    from training.scoring import score_customers

    settings, ws = trained
    report = build_segments(settings, ws)
    assert set(report.models) == {"churn", "value"}  # no intent champion: its segments are skipped
    assert set(report.skipped) == {"high_intent_no_purchase_14d", "first_time_buyer_repeat_intent"}
    as_of = report.build.as_of
    scored = score_customers(settings, ws, "churn", as_of=as_of)
    assert report.customers == len(scored) and report.with_consent_statement >= 200
    store = SegmentStore(ws)
    current = store.current()
    defs = load()
    offers = current[current["segment"].isin([s.name for s in defs.segments if s.offer_bearing])]
    assert offers.empty or offers.groupby("customer_id").size().max() == 1
    stages = current[current["segment"].str.startswith("lifecycle_")]
    assert len(stages) == report.customers and stages["customer_id"].is_unique
    # the at-risk segment follows the churn champion's own scores and the frozen value percentile
    th = report.build.thresholds.values["at_risk_high_value/conditions/1"]
    value = score_customers(settings, ws, "value", as_of=as_of).set_index("customer_id")["predicted_value"]
    risky = set(current.loc[current["segment"] == "at_risk_high_value", "customer_id"])
    churn = scored.set_index("customer_id")["churn_probability"]
    assert all(churn[c] >= 0.6 and value[c] >= th[0] for c in risky)
    again = build_segments(settings, ws, as_of=as_of)
    assert again.previous_build == report.build_id
    assert again.stats["entered"].sum() == 0 and again.stats["exited"].sum() == 0


def test_cli_lists_and_exports_with_consent(trained: tuple[Settings, Workspace], tmp_path: Path) -> None:
    from cxi.commands.segments import app as segments_app

    settings, ws = trained
    app = typer.Typer()
    app.add_typer(segments_app, name="segments")
    env = {"CXI_MLFLOW_DIR": str(settings.mlflow_dir), "COLUMNS": "220"}
    runner = CliRunner()
    listed = runner.invoke(app, ["segments", "list", "--workspace", str(ws.root)], env=env)
    assert listed.exit_code == 0, listed.output
    assert "lifecycle_active" in listed.output and "consent exclusions" in listed.output
    out = tmp_path / "active.parquet"
    res = runner.invoke(
        app,
        [
            "segments",
            "export",
            "lifecycle_active",
            "--format",
            "parquet",
            "--out",
            str(out),
            "--workspace",
            str(ws.root),
        ],
        env=env,
    )
    assert res.exit_code == 0, res.output
    exported = pd.read_parquet(out)
    ids = set(exported["customer_id"])
    assert ids and all(int(c[1:]) % 2 == 0 for c in ids)  # only the customers who granted marketing
    assert "c6" not in ids  # merged: the refusal wins over the cookie's grant
    assert set(exported["identifier_type"]) == {"email_sha256"}
    assert set(exported["sha256"]) <= {sha256_hex(f"user{c[1:]}@example.com") for c in ids}
    bad = runner.invoke(app, ["segments", "export", "nope", "--workspace", str(ws.root)], env=env)
    assert bad.exit_code == 1 and "nope" in bad.output
