"""Real decision logs: numbers arrive as text (CSV files, the importer's extra columns) and the control action
has the brand's own name. The policy encodes text numbers as numbers, reports the context columns it drops,
and measures uplift against the named control, or reports none when the log has no such action."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from nba_synthetic import make_log
from typer.testing import CliRunner

from contract import Settings, Workspace
from cxi.commands.nba import app, train_nba_command
from events.importers import import_frame
from events.readers import read_frame
from training.nba.data import ContextEncoder, load_decisions
from training.nba.policy import NBAPolicy
from training.nba.train import load_policy, train_nba

SMALL = {"method": "direct", "n_estimators": 30, "learning_rate": 0.1, "min_child_samples": 50}
NUMERIC = ["noise", "tenure_days", "consent"]


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return make_log(2000, 11)[0]


def _as_csv(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The frame as `cxi` reads it back from a CSV file: every cell text."""
    df.to_csv(path, index=False)
    return read_frame(path)


def _renamed(df: pd.DataFrame, control: str) -> pd.DataFrame:
    return df.assign(action=df["action"].replace({"no_offer": control}))


def test_text_numbers_are_numeric_features(log: pd.DataFrame, tmp_path: Path) -> None:
    text = _as_csv(log, tmp_path / "log.csv")
    assert all(pd.api.types.is_object_dtype(t) for t in text.dtypes)
    typed_enc, text_enc = ContextEncoder().fit(log), ContextEncoder().fit(text)
    assert typed_enc.numeric_ == text_enc.numeric_ == NUMERIC
    assert typed_enc.categories_ == text_enc.categories_ == {"segment": ["s0", "s1", "s2"]}
    X = typed_enc.transform(log)
    assert np.array_equal(X, text_enc.transform(text), equal_nan=True)
    assert np.array_equal(X, typed_enc.transform(text), equal_nan=True)  # same rule at transform
    # blanks are missing, not a reason to call the column text; one word among numbers is
    blank = text.assign(tenure_days=text["tenure_days"].where(text.index % 5 != 0, " "))
    assert ContextEncoder().fit(blank).numeric_ == NUMERIC
    assert np.isnan(typed_enc.transform(blank)[::5, NUMERIC.index("tenure_days")]).all()
    worded = text.assign(tenure_days=text["tenure_days"].where(text.index != 3, "unknown"))
    assert "tenure_days" not in ContextEncoder().fit(worded).numeric_


def test_imported_csv_log_learns_the_same_policy(log: pd.DataFrame, ws: Workspace, tmp_path: Path) -> None:
    """`cxi import decisions FILE` keeps context columns as text: the policy is the typed log's policy."""
    import_frame(ws, "decisions", _as_csv(log, tmp_path / "log.csv"), source="csv_log")
    imported = load_decisions(ws)
    typed = NBAPolicy(**SMALL).fit(log)
    from_csv = NBAPolicy(**SMALL).fit(imported)
    assert from_csv.encoder_.to_dict() == typed.encoder_.to_dict()
    ctx = log.drop(columns=["action", "propensity", "reward"]).head(300)
    ctx_text = _as_csv(ctx, tmp_path / "ctx.csv")
    expected = typed.recommend(ctx, epsilon=0.1, rng=np.random.default_rng(4))
    for policy in (typed, from_csv):
        for frame in (ctx, ctx_text):
            got = policy.recommend(frame, epsilon=0.1, rng=np.random.default_rng(4))
            pd.testing.assert_frame_equal(got, expected)


def test_dropped_category_is_reported(log: pd.DataFrame, tmp_path: Path, caplog) -> None:
    df = log.assign(coupon_code=[f"C{i:05d}" for i in range(len(log))])
    with caplog.at_level(logging.WARNING, logger="training.nba.data"):
        policy = NBAPolicy(**SMALL).fit(df)
    assert policy.encoder_.dropped_ == {"coupon_code": len(df)}
    assert "coupon_code" in caplog.text and "coupon_code" not in policy.encoder_.columns_
    spec = json.loads((policy.save(tmp_path / "p") / "policy.json").read_text())
    assert spec["encoder"]["dropped"] == {"coupon_code": len(df)}
    assert NBAPolicy.load(tmp_path / "p").encoder_.dropped_ == {"coupon_code": len(df)}


def test_uplift_against_a_named_control(log: pd.DataFrame) -> None:
    df = _renamed(log, "control")
    policy = NBAPolicy(control="control", **SMALL).fit(df)
    assert policy.control_ == "control"
    ctx = df.head(200)
    q = policy.expected_rewards(ctx)
    recs = policy.recommend(ctx, rng=np.random.default_rng(0))
    chosen = q.to_numpy()[np.arange(len(ctx)), pd.Categorical(recs["action"], categories=q.columns).codes]
    assert np.allclose(recs["uplift"], chosen - q["control"].to_numpy())
    assert not np.allclose(recs["uplift"], recs["expected_reward"])
    assert np.allclose(policy.uplift(ctx)["control"], 0.0)


def test_missing_control_trains_with_a_warning_and_null_uplift(log: pd.DataFrame, caplog) -> None:
    df = _renamed(log, "holdout")
    with caplog.at_level(logging.WARNING, logger="training.nba.policy"):
        policy = NBAPolicy(**SMALL).fit(df)  # the default control, "no_offer", is not in this log
    assert policy.control_ is None
    assert "'no_offer'" in caplog.text and "gift, holdout, promo_a, promo_b" in caplog.text
    recs = policy.recommend(df.head(100), rng=np.random.default_rng(0))
    assert recs["uplift"].isna().all() and recs["expected_reward"].notna().all()
    assert policy.uplift(df.head(100)).isna().all().all()


def test_control_from_settings(log: pd.DataFrame, settings: Settings, ws: Workspace) -> None:
    df = _renamed(log, "control")
    named = settings.model_copy(update={"nba_control_action": "control"})
    result = train_nba(named, ws, decisions=df, n_bootstrap=50, register=False)
    assert result.policy.control == result.policy.control_ == "control"
    assert train_nba(settings, ws, decisions=df, n_bootstrap=50, register=False).policy.control_ is None


def test_cli_control_option_on_a_csv_log(
    log: pd.DataFrame, settings: Settings, tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The review's path: import a CSV log whose control is "control", `cxi train nba --control control`,
    `cxi nba recommend` on a CSV of contexts: numeric features used, uplift against the control."""
    ws = Workspace(settings.workspace)
    df = _renamed(log, "control")
    import_frame(ws, "decisions", _as_csv(df, tmp_path / "log.csv"), source="csv_log")
    monkeypatch.setenv("CXI_MLFLOW_DIR", str(settings.mlflow_dir))
    cli = typer.Typer()
    cli.command()(train_nba_command)
    args = ["--workspace", str(settings.workspace), "--bootstrap", "50", "--method", "direct"]
    res = CliRunner().invoke(cli, [*args, "--control", "control"])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output
    _, policy = load_policy(settings, alias="challenger" if "ship: no" in res.output else "champion")
    assert policy.control_ == "control" and policy.encoder_.numeric_ == NUMERIC

    ctx = df.drop(columns=["action", "propensity", "reward"]).head(100)
    ctx.to_csv(tmp_path / "ctx.csv", index=False)
    out = tmp_path / "recs.csv"
    alias = "challenger" if "ship: no" in res.output else "champion"
    rec_args = ["--contexts", str(tmp_path / "ctx.csv"), "--out", str(out), "--seed", "1", "--alias", alias]
    res = CliRunner().invoke(app, [*rec_args, "--workspace", str(settings.workspace)])
    assert res.exit_code == 0, res.output
    recs = pd.read_csv(out)
    assert recs["uplift"].notna().all()
    assert np.allclose(recs.loc[recs["action"] == "control", "uplift"], 0.0)
    assert not np.allclose(recs["uplift"], recs["expected_reward"])

    with caplog.at_level(logging.WARNING):  # without --control: the default "no_offer" is not in this log
        res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "'no_offer'" in caplog.text and "control, gift, promo_a, promo_b" in caplog.text
    assert "'no_offer'" not in res.output  # said once, by the library's log (cxi.cli shows it), not twice
