"""One real Feast store per test session (Feast import + apply are slow): built from a tiny seeded workspace."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from features_testdata import FeatureEnv, make_settings, seed_workspace, synthetic_events

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def feature_env(tmp_path_factory: pytest.TempPathFactory) -> FeatureEnv:
    from features.store import FeatureRepo

    settings = make_settings(tmp_path_factory.mktemp("features"))
    events = synthetic_events(customers=40, days=45, per_customer=25, start=START, seed=11)
    ws = seed_workspace(settings, events)
    repo = FeatureRepo(settings)
    path = repo.build(ws)
    repo.apply()
    repo.materialize()
    return FeatureEnv(settings, ws, events, pd.read_parquet(path), repo)
