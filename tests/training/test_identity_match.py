"""`cxi train identity`: the identity-match model trained on deterministic labels, logged and gated in MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from contract import Settings, Workspace
from identity import IdentityResolver
from identity.match.anonymous import AnonymousMatcher
from identity.match.supervised import SupervisedModel
from simulator.brand import simulate_brand
from simulator.config import SimConfig
from training.identity_match import MODEL_NAME, train_identity_match
from training.registry import CHALLENGER, CHAMPION, Registry


@pytest.fixture(scope="module")
def brand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Workspace]:
    root = tmp_path_factory.mktemp("identity-match")
    settings = Settings(workspace=root / "ws", mlflow_dir=root / "mlflow")
    ws = Workspace(settings.workspace)
    simulate_brand(ws, SimConfig(customers=2000, days=45, seed=5))
    IdentityResolver(ws).resolve()
    return settings, ws


def test_first_model_is_champion_logged_with_its_card_plots_and_files(
    brand: tuple[Settings, Workspace], tmp_path: Path
) -> None:
    settings, ws = brand
    result = train_identity_match(settings, ws)
    assert (result.name, result.alias, result.champion_before) == (MODEL_NAME, CHAMPION, None)
    m = result.metrics
    assert 0.0 <= m["precision_at_0_80"] <= 1.0 and 0.0 <= m["recall_at_0_80"] <= 1.0
    assert m["holdout_brier"] < 0.25 and m["holdout_ece"] < 0.1  # calibrated on held-out pairs
    assert result.rows["matches"] >= 20 and result.rows["non_matches"] >= 20
    registry = Registry(settings)
    run = registry.client.get_run(result.run_id)
    assert run.data.params["link_threshold"] == "0.8" and "git_sha" in run.data.tags
    artifacts = {a.path for a in registry.client.list_artifacts(result.run_id)}
    assert {"model", "plots", "model_card.md"} <= artifacts
    # the registered files load back into the very model: same probabilities
    _, folder = registry.download_artifact_model(MODEL_NAME, tmp_path)
    loaded = SupervisedModel.load(folder)
    x = np.random.default_rng(0).random((50, len(loaded.feature_names_)))
    np.testing.assert_allclose(loaded.predict_proba(x), result.model.predict_proba(x))
    assert loaded.feature_names_ == result.model.feature_names_


def test_a_challenger_is_champion_only_when_it_wins_on_the_same_pairs(
    brand: tuple[Settings, Workspace],
) -> None:
    """The same settings give the same model (a tie: promoted, "not above"); other settings are judged by
    their log-loss on the new run's evaluation pairs against the champion scored on those very pairs."""
    settings, ws = brand
    registry = Registry(settings)
    first = train_identity_match(settings, ws)
    same = train_identity_match(settings, ws)
    assert same.metrics["holdout_log_loss"] == pytest.approx(same.metrics["champion_holdout_log_loss"])
    assert same.alias == CHAMPION and same.champion_before is not None
    for other in (AnonymousMatcher(num_boost_round=1, holdout=0.9), AnonymousMatcher(calibration="platt")):
        before = registry.alias_version(MODEL_NAME, CHAMPION)
        run = train_identity_match(settings, ws, matcher=other)
        wins = run.metrics["holdout_log_loss"] <= run.metrics["champion_holdout_log_loss"]
        assert run.alias == (CHAMPION if wins else CHALLENGER)
        assert registry.alias_version(MODEL_NAME, CHAMPION) == (run.version if wins else before)
    assert first.version != same.version


def test_cli_trains_and_names_a_missing_workspace(brand: tuple[Settings, Workspace], tmp_path: Path) -> None:
    from cxi.commands.train import app

    settings, ws = brand
    env = {"CXI_MLFLOW_DIR": str(settings.mlflow_dir)}
    ok = CliRunner().invoke(app, ["identity", "--workspace", str(ws.root)], env=env)
    assert ok.exit_code == 0, ok.output
    assert "identity_match v" in ok.output and "held-out precision at 0.8" in ok.output
    bad = CliRunner().invoke(app, ["identity", "--workspace", str(tmp_path / "empty")], env=env)
    assert bad.exit_code == 1 and "events" in bad.output
