"""Shared fixtures. Heavy components (Feast store, MLflow registry, BentoML server) are built once per
session by the fixtures of the test packages that need them; this file holds only the cheap basics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contract import Settings, Workspace
from tests.chain import CHAIN_CUSTOMERS, CHAIN_DAYS, CHAIN_HORIZON_DAYS, CHAIN_SEED, Chain, start_server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing every store into a fresh temporary folder (nothing is written into the repo)."""
    return Settings(workspace=tmp_path / "ws", mlflow_dir=tmp_path / "mlflow")


@pytest.fixture
def ws(settings: Settings) -> Workspace:
    return Workspace(settings.workspace)


# --- the walking skeleton, shared by every test that needs a trained workspace and a live server ------------
@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """The same job `make run` runs (cxi.pipeline.run_chain), on a tiny brand."""
    from cxi.pipeline import run_chain

    root = tmp_path_factory.mktemp("chain")
    settings = Settings(
        workspace=root / "ws", mlflow_dir=root / "mlflow", churn_horizon_days=CHAIN_HORIZON_DAYS
    )
    report = run_chain(settings, customers=CHAIN_CUSTOMERS, days=CHAIN_DAYS, seed=CHAIN_SEED)
    assert [s.name for s in report.steps] == ["simulate", "identity", "features", "train_churn", "segments"]
    assert not any(s.skipped for s in report.steps)
    return Chain(settings, Workspace(settings.workspace))


@pytest.fixture(scope="session")
def chain_url(chain: Chain) -> Iterator[str]:
    from serving import server

    proc, url = start_server(chain.settings, chain.ws.root.parent / "server.log")
    try:
        yield url
    finally:
        server.stop(proc)
