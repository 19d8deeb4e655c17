"""Registry round-trip on a real MLflow SQLite store: log, register, alias, load the native booster."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from contract import Settings
from contract.errors import NotFoundError
from training.evaluation import diagnostic_figures, roc_auc
from training.model import ChurnModel
from training.promotion import decide
from training.registry import CHALLENGER, CHAMPION, Registry, TrainingRecord

REPO = Path(__file__).resolve().parents[2]


def _data(seed: int, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"recency": rng.exponential(20, n), "events_30d": rng.poisson(5, n).astype(float)})
    logit = 0.08 * X["recency"] - 0.3 * X["events_30d"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _record(X: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> TrainingRecord:
    return TrainingRecord(
        params={"learning_rate": 0.1},
        metrics={"holdout_roc_auc": 0.7},
        feature_service="churn_v1",
        data_window={"holdout_as_of": "2024-03-01T00:00:00+00:00"},
        row_counts={"train": len(X), "holdout": len(X)},
        input_example=X.head(5),
        model_card="# churn\n\ntest card",
        figures=diagnostic_figures(y, p),
    )


@pytest.fixture(scope="module")
def registry(make_settings: Callable[..., Settings]) -> Registry:
    return Registry(make_settings())


@pytest.fixture(scope="module")
def trained() -> tuple[ChurnModel, pd.DataFrame, np.ndarray]:
    X, y = _data(1)
    return ChurnModel(num_boost_round=30, min_data_in_leaf=10, num_threads=1).fit(X, y), X, y


def test_round_trip_native_booster(
    registry: Registry, trained: tuple[ChurnModel, pd.DataFrame, np.ndarray]
) -> None:
    model, X, y = trained
    assert registry.champion_version("churn") is None
    reg = registry.log_training("churn", model.booster_, _record(X, y, model.predict_proba(X)[:, 1]))
    registry.set_alias("churn", reg.version, CHAMPION)

    champ = registry.champion("churn")
    assert isinstance(champ.booster, lgb.Booster)
    assert (champ.version, champ.run_id, champ.feature_service) == (reg.version, reg.run_id, "churn_v1")
    assert champ.feature_names == ["recency", "events_30d"]
    np.testing.assert_allclose(champ.predict(X[::-1].iloc[:, ::-1]), model.predict_proba(X[::-1])[:, 1])
    assert registry.champion_version("churn") == reg.version

    # everything lands under the configured mlflow_dir
    mlflow_dir = registry.settings.mlflow_dir
    assert (mlflow_dir / "mlflow.db").is_file()
    artifacts = {p.name for p in (mlflow_dir / "artifacts").rglob("*") if p.is_file()}
    assert {"roc.png", "pr.png", "calibration.png", "model_card.md", "data.json"} <= artifacts

    client = registry.client
    run = client.get_run(reg.run_id)
    assert run.data.tags["feature_service"] == "churn_v1"
    assert run.data.metrics["holdout_roc_auc"] == 0.7
    assert run.data.metrics["rows_train"] == len(X)
    assert re.fullmatch(r"[0-9a-f]{40}", run.data.tags.get("git_sha", "0" * 40))


def test_second_version_and_challenger_alias(
    registry: Registry, trained: tuple[ChurnModel, pd.DataFrame, np.ndarray]
) -> None:
    model, X, y = trained
    first = (
        registry.champion_version("churn")
        or registry.log_training("churn", model.booster_, _record(X, y, model.predict_proba(X)[:, 1])).version
    )
    registry.set_alias("churn", first, CHAMPION)
    reg = registry.log_training("churn", model.booster_, _record(X, y, model.predict_proba(X)[:, 1]))
    assert int(reg.version) == int(first) + 1
    registry.set_alias("churn", reg.version, CHALLENGER)
    assert registry.champion_version("churn") == first
    assert registry.load("churn", CHALLENGER).version == reg.version


def test_missing_model_and_columns_are_clear_errors(
    registry: Registry, trained: tuple[ChurnModel, pd.DataFrame, np.ndarray]
) -> None:
    with pytest.raises(NotFoundError, match="no version of 'nope' has alias 'champion'"):
        registry.champion("nope")
    _, X, _ = trained
    if registry.champion_version("churn") is not None:
        with pytest.raises(NotFoundError, match=r"missing columns .*events_30d"):
            registry.champion("churn").predict(X[["recency"]])


def test_only_registry_imports_mlflow() -> None:
    """The registry and its pyfunc wrapper (imported by the registry only, lazily)."""
    pattern = re.compile(r"^\s*(import mlflow|from mlflow)", re.MULTILINE)
    allowed = {REPO / "training" / "registry.py", REPO / "training" / "registry_pyfunc.py"}
    offenders = [
        str(p.relative_to(REPO))
        for pkg in ("contract", "events", "identity", "features", "training", "serving", "simulator", "cxi")
        for p in (REPO / pkg).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8")) and p not in allowed
    ]
    assert offenders == []


def test_worse_model_is_not_promoted(
    registry: Registry, trained: tuple[ChurnModel, pd.DataFrame, np.ndarray]
) -> None:
    model, _, _ = trained
    name = "churn_promotion"
    assert decide(registry, name, *_data(2), new_roc_auc=0.5).alias == CHAMPION  # no champion yet
    reg = registry.log_training(
        name, model.booster_, _record(*trained[1:], model.predict_proba(trained[1])[:, 1])
    )
    registry.set_alias(name, reg.version, CHAMPION)

    X2, y2 = _data(2)  # the new holdout: the champion is scored on these very rows
    champ_auc = roc_auc(y2, model.predict_proba(X2)[:, 1])
    worse = decide(registry, name, X2, y2, new_roc_auc=champ_auc - 0.01)
    assert (worse.alias, worse.champion_before) == (CHALLENGER, reg.version)
    assert worse.champion_roc_auc == pytest.approx(champ_auc)
    assert decide(registry, name, X2, y2, new_roc_auc=champ_auc).alias == CHAMPION  # a tie promotes
    assert decide(registry, name, X2[["recency"]], y2, new_roc_auc=0.0).alias == CHAMPION  # incomparable


def test_a_model_boosted_from_a_prior_round_trips_as_one_pyfunc(registry: Registry) -> None:
    """The registered version holds booster + prior: CXI's load and MLflow's own pyfunc give one probability,
    and the reasons carry the prior's push."""
    import mlflow.pyfunc

    from training.prior import REASON, BTYDPrior

    rng = np.random.default_rng(5)
    n = 900
    first = rng.uniform(1, 120, n)
    X = pd.DataFrame(
        {
            "active_days_total": rng.integers(1, 12, n).astype(float),
            "days_since_first_seen": first,
            "days_since_last_event": first * rng.uniform(0, 1, n),
            "events_30d": rng.poisson(3, n).astype(float),
        }
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.04 * X["days_since_last_event"] - 1)))).astype(int)
    third = np.arange(n) % 3
    parts = [(X[third == k], y[third == k]) for k in range(3)]
    model = ChurnModel(num_boost_round=40, num_threads=1, prior=BTYDPrior("any", 30)).fit(
        *parts[0], eval_set=parts[1], calib_set=parts[2]
    )
    expected = model.predict_proba(X)[:, 1]
    reg = registry.log_training("churn_prior", model.booster_, _record(X, y, expected), prior=model.prior_)
    registry.set_alias("churn_prior", reg.version, CHAMPION)

    champ = registry.champion("churn_prior")
    assert champ.prior is not None and champ.prior.to_dict() == model.prior_.to_dict()
    np.testing.assert_allclose(champ.predict(X.iloc[:, ::-1]), expected, rtol=1e-12)
    # whoever loads the registered model with MLflow alone gets the same probability
    pyfunc = mlflow.pyfunc.load_model(f"models:/churn_prior/{reg.version}")
    np.testing.assert_allclose(np.asarray(pyfunc.predict(X)).reshape(-1), expected, rtol=1e-12)
    # logged as code with its two artifacts, nothing pickled
    files = {p.name for p in (registry.settings.mlflow_dir / "artifacts").rglob("*") if p.is_file()}
    assert {"registry_pyfunc.py", "booster.txt", "prior.json"} <= files and "python_model.pkl" not in files
    # the booster alone is not the model
    assert not np.allclose(champ.booster.predict(X[champ.feature_names]), expected)

    reasons = champ.reasons(champ.matrix(X.head(40)), k=len(champ.feature_names) + 1)
    assert all(any(r.feature == REASON for r in row) for row in reasons)
    said = next(r for r in reasons[0] if r.feature == REASON)
    assert said.text.startswith("Chance of no activity in the next 30 days") and "%" in said.text
