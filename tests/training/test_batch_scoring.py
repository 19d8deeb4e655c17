"""Batch scoring: one row per known customer, scores equal to the champion's, reasons, files, the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from predictive_fixture import Trained, shared
from typer.testing import CliRunner

from contract import Settings
from contract.errors import ContractError
from features.definitions import snapshot_path
from training.registry import Registry
from training.scoring import as_of_instant, score_customers, write_scores

AS_OF = date(2024, 3, 20)


@pytest.fixture(scope="session")
def predictive(make_settings: Callable[..., Settings]) -> Trained:
    return shared(make_settings)


def test_as_of_is_the_snapshot_instant() -> None:
    assert as_of_instant(AS_OF) == datetime(2024, 3, 20, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(ContractError, match=r"^out: must end in \.csv or \.parquet"):
        write_scores(pd.DataFrame({"a": [1]}), Path("scores.xlsx"))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("model", "column"), [("intent", "intent_probability"), ("value", "predicted_value")]
)
def test_scores_join_back_one_to_one(predictive: Trained, model: str, column: str) -> None:
    from features.store import FeatureRepo

    settings = predictive.settings
    out = score_customers(settings, predictive.ws, model, as_of=AS_OF, horizon_days=None)
    t = pd.Timestamp(as_of_instant(AS_OF))
    snaps = pd.read_parquet(snapshot_path(settings), columns=["customer_id", "event_timestamp"])
    known = set(snaps.loc[snaps["event_timestamp"] <= t, "customer_id"])
    assert not out["customer_id"].duplicated().any()
    assert set(out["customer_id"]) == known and len(known) < snaps["customer_id"].nunique()
    assert (out["user_id"] == "u" + out["customer_id"].str[1:]).all()  # the synthetic brand's ids

    champ = Registry(settings).champion(model)
    entity = pd.DataFrame({"customer_id": out["customer_id"], "event_timestamp": t})
    vectors = FeatureRepo(settings).historical(entity, champ.feature_service)
    expected = champ.booster.predict(vectors[champ.feature_names].astype("float64"))
    np.testing.assert_allclose(out[column].to_numpy(), expected, rtol=1e-12)

    reasons = [json.loads(r) for r in out["reasons"]]
    assert all(1 <= len(r) <= 3 for r in reasons) and max(len(r) for r in reasons) == 3
    first = max(reasons, key=len)
    assert {item["feature"] for item in first} <= set(champ.feature_names)
    mags = [abs(item["contribution"]) for item in first]
    assert mags == sorted(mags, reverse=True) and all(item["text"] for item in first)


@pytest.mark.integration
def test_cli_writes_csv_and_parquet_and_checks_the_horizon(predictive: Trained, tmp_path: Path) -> None:
    from cxi.commands.score import score

    app = typer.Typer()
    app.command()(score)
    env = {"CXI_MLFLOW_DIR": str(predictive.settings.mlflow_dir)}
    ws = str(predictive.settings.workspace)
    base = ["intent", "--as-of", "2024-03-20", "--workspace", ws]
    runner = CliRunner()
    for suffix in ("csv", "parquet"):
        path = tmp_path / f"intent.{suffix}"
        result = runner.invoke(app, [*base, "--out", str(path), "--horizon-days", "7"], env=env)
        assert result.exit_code == 0, result.output
        frame = pd.read_csv(path) if suffix == "csv" else pd.read_parquet(path)
        assert {"customer_id", "user_id", "intent_probability", "reasons"} <= set(frame.columns)
        assert frame["intent_probability"].between(0, 1).all()
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "x.csv"), "--horizon-days", "30"], env=env)
    assert bad.exit_code == 1 and "horizon_days" in bad.output
    early = runner.invoke(
        app, ["value", "--as-of", "2023-06-01", "--workspace", ws, "--out", "y.csv"], env=env
    )
    assert early.exit_code == 1 and "as_of" in early.output


@pytest.mark.integration
def test_churn_scores_and_its_horizon_check(predictive: Trained) -> None:
    from training.churn import train_churn
    from training.model import ChurnModel

    settings, ws = predictive.settings, predictive.ws
    train_churn(settings, ws, horizon_days=21, max_train_dates=4, model=ChurnModel(num_threads=1))
    out = score_customers(settings, ws, "churn", as_of=AS_OF, horizon_days=21)
    assert out["churn_probability"].between(0, 1).all() and not out["customer_id"].duplicated().any()
    with pytest.raises(
        ContractError, match=r"^horizon_days: the churn champion v1 predicts a 21-day horizon"
    ):
        score_customers(settings, ws, "churn", as_of=AS_OF, horizon_days=30)
    with pytest.raises(ContractError, match=r"^model: must be one of"):
        score_customers(settings, ws, "ltv", as_of=AS_OF)
