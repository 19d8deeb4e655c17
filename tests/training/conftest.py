"""A real MLflow SQLite store per test, cheaply: the schema migrations (~15 s) run once per session into a
template database, which each test copies into its own tmp folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from contract import Settings
from training.registry import Registry


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mlflow_template")
    registry = Registry(Settings(workspace=root / "ws", mlflow_dir=root / "mlflow"))
    registry.client.search_experiments()  # creates and migrates the schema
    return root / "mlflow" / "mlflow.db"


def fresh_settings(root: Path, template: Path, **overrides: object) -> Settings:
    """Settings under ``root`` whose MLflow store starts as an empty, already-migrated copy of the template."""
    (root / "mlflow").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, root / "mlflow" / "mlflow.db")
    return Settings(workspace=root / "ws", mlflow_dir=root / "mlflow", **overrides)


SettingsFactory = Callable[..., Settings]


@pytest.fixture(scope="session")
def make_settings(mlflow_template: Path, tmp_path_factory: pytest.TempPathFactory) -> SettingsFactory:
    """``make_settings(**overrides)``: Settings in a new tmp folder with a fresh MLflow store."""
    return lambda **overrides: fresh_settings(tmp_path_factory.mktemp("t"), mlflow_template, **overrides)


@pytest.fixture
def settings(tmp_path: Path, mlflow_template: Path) -> Settings:
    return fresh_settings(tmp_path, mlflow_template)
