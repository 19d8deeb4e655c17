"""Shared fixtures. Heavy components (Feast store, MLflow registry, BentoML server) are built once per
session by the fixtures of the test packages that need them; this file holds only the cheap basics."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import Settings, Workspace


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing every store into a fresh temporary folder (nothing is written into the repo)."""
    return Settings(workspace=tmp_path / "ws", mlflow_dir=tmp_path / "mlflow")


@pytest.fixture
def ws(settings: Settings) -> Workspace:
    return Workspace(settings.workspace)
