"""`train_nba` logs and registers through the real MLflow registry; `cxi nba recommend` writes one row per
context row with its ids, action and probability."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from nba_synthetic import make_log
from typer.testing import CliRunner

from contract import Settings, Workspace
from cxi.commands.nba import app, train_nba_command
from events.importers import import_frame
from training.nba.policy import NBAPolicy
from training.nba.train import load_policy, train_nba


def test_train_register_and_recommend(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    ws = Workspace(settings.workspace)
    df, _ = make_log(3000, 5)
    import_frame(ws, "decisions", df, source="test_log")
    result = train_nba(
        settings,
        ws,
        policy=NBAPolicy(method="direct", n_estimators=40, min_child_samples=50),
        n_bootstrap=100,
    )
    assert result.version == "1" and result.alias in ("champion", "challenger")
    assert result.evaluation.ship == (result.alias == "champion")
    version, policy = load_policy(settings, alias=result.alias)
    assert version == "1" and policy.actions_ == result.policy.actions_

    contexts = df.drop(columns=["action", "propensity", "reward"]).head(120)
    contexts.to_csv(tmp_path / "ctx.csv", index=False)
    monkeypatch.setenv("CXI_MLFLOW_DIR", str(settings.mlflow_dir))
    out = tmp_path / "recs.parquet"
    args = ["--contexts", str(tmp_path / "ctx.csv"), "--out", str(out), "--seed", "1"]
    args += ["--alias", result.alias, "--workspace", str(settings.workspace)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = pd.read_parquet(out)
    assert len(recs) == len(contexts)
    assert (recs["decision_id"].to_numpy() == contexts["decision_id"].to_numpy()).all()
    assert (recs["customer_id"].to_numpy() == contexts["customer_id"].to_numpy()).all()
    assert recs["action"].isin(policy.actions_).all() and (recs["probability"] > 0).all()

    bad = CliRunner().invoke(app, [*args[:2], "--out", str(tmp_path / "x.txt")])
    assert bad.exit_code == 1 and "--out" in bad.output


def test_train_command_reports_missing_decisions(settings: Settings, monkeypatch) -> None:
    cli = typer.Typer()
    cli.command()(train_nba_command)
    monkeypatch.setenv("CXI_MLFLOW_DIR", str(settings.mlflow_dir))
    res = CliRunner().invoke(cli, ["--workspace", str(settings.workspace)])
    assert res.exit_code == 1 and "decisions" in res.output
