"""The real BentoML server picks up a new champion without a restart, and every score carries its reasons.

A tiny simulated brand (real identity map, real Feast online store) and a real MLflow store; the models are
small LightGBM boosters on the churn_v1 features, registered directly (training is tested elsewhere).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from contract import Settings, Workspace
from training.prior import boosted_contributions
from training.registry import CHAMPION, Registry, TrainingRecord

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROUTE = "/v1/scores/churn"
RELOAD_SECONDS = 0.2


@dataclass
class Served:
    settings: Settings
    ws: Workspace
    url: str
    customers: list[str]
    online: pd.DataFrame


def _register(registry: Registry, names: list[str], seed: int) -> tuple[str, lgb.Booster]:
    """A small booster on random rows of the churn_v1 features, registered as a new `churn` version."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.exponential(5, (400, len(names))), columns=names)
    y = (rng.random(400) < 1 / (1 + np.exp(-(X.iloc[:, 0] - X.iloc[:, 3]) / 3))).astype(int)
    params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 10, "num_threads": 1, "seed": seed}
    booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=10 + 10 * seed)
    record = TrainingRecord({}, {}, "churn_v1", {}, {"train": 400}, X.head(3))
    return registry.log_training("churn", booster, record).version, booster


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from features.definitions import feature_names
    from features.store import FeatureRepo
    from identity import IdentityResolver
    from serving import server
    from simulator import SimConfig, simulate_brand

    root = tmp_path_factory.mktemp("reload")
    settings = Settings(workspace=root / "ws", mlflow_dir=root / "mlflow")
    ws = Workspace(settings.workspace)
    simulate_brand(ws, SimConfig(customers=40, days=21, seed=5))
    IdentityResolver(ws).resolve()
    repo = FeatureRepo(settings)
    repo.apply()
    repo.build(ws)
    repo.materialize()
    registry = Registry(settings)
    names = [n for n in feature_names("churn_v1") if n != "snapshot_at"]
    version, _ = _register(registry, names, seed=1)
    registry.set_alias("churn", version, CHAMPION)
    with ws.connect("identity_map") as con:
        ids = [
            r[0] for r in con.execute("SELECT DISTINCT customer_id FROM identity_map ORDER BY 1").fetchall()
        ]
    online = repo.online(ids)
    online = online[online["features_as_of"].notna()].head(10)
    assert len(online) >= 3, "the tiny brand should have materialized features"

    port = server.free_port()
    log = root / "server.log"
    # scores from the materialized online store (the real-time engine, tested elsewhere, would recompute the
    # 2026-01 rows at today's date): this module pins the model swap and the reasons on a fixed vector
    env = {"CXI_SERVING_RELOAD_SECONDS": str(RELOAD_SECONDS), "CXI_REALTIME": "false"}
    proc = server.start(settings, host="127.0.0.1", port=port, log_path=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            server.wait_ready(url, proc, timeout=180)
        except server.ServerError as exc:
            raise AssertionError(f"{exc}\n--- server log ---\n{log.read_text()[-4000:]}") from exc
        yield Served(settings, ws, url, list(online["customer_id"]), online)
    finally:
        server.stop(proc)


def _score(url: str, customer_id: str) -> dict:
    r = httpx.post(f"{url}{ROUTE}", json={"customer_id": customer_id}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_scores_carry_their_top_reasons(served: Served) -> None:
    champion = Registry(served.settings).champion("churn")
    row = champion.matrix(served.online.iloc[[0]])
    # the model's contributions: the booster's, and the prior's push when it was boosted from one
    names, _, contrib = boosted_contributions(champion.booster, champion.prior, row)
    contrib = contrib[0, :-1]
    body = _score(served.url, served.customers[0])
    reasons = body["reasons"]
    assert 1 <= len(reasons) <= 3
    top = np.argsort(-np.abs(contrib), kind="stable")[: len(reasons)]
    assert [r["feature"] for r in reasons] == [names[j] for j in top]
    for r, j in zip(reasons, top, strict=True):
        assert r["contribution"] == pytest.approx(contrib[j])
        assert r["text"].endswith("(raises risk)" if contrib[j] > 0 else "(lowers risk)")


def test_a_moved_champion_is_served_without_restart(served: Served) -> None:
    registry = Registry(served.settings)
    before = registry.champion_version("churn")
    cid = served.customers[1]
    assert _score(served.url, cid)["model_version"] == before

    names = registry.champion("churn").feature_names
    version, booster = _register(registry, names, seed=2)
    registry.set_alias("churn", version, CHAMPION)

    deadline = time.monotonic() + 20
    body = _score(served.url, cid)
    while body["model_version"] != version and time.monotonic() < deadline:
        time.sleep(RELOAD_SECONDS)
        body = _score(served.url, cid)
    assert body["model_version"] == version, "the server kept the old champion"
    row = served.online.loc[served.online["customer_id"] == cid, names].astype("float64")
    assert body["churn_probability"] == pytest.approx(booster.predict(row)[0], abs=1e-12)
    # and it stays on the new one
    assert {_score(served.url, c)["model_version"] for c in served.customers} == {version}
