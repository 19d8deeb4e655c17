"""The real Feast store (one per session): point-in-time reads, online == offline, errors, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from features_testdata import FeatureEnv, make_settings, seed_workspace, synthetic_events
from typer.testing import CliRunner

from contract.errors import NotFoundError, WorkspaceError
from features.definitions import feature_names

pytestmark = pytest.mark.integration
NAMES = feature_names("churn_v1")


def rows_at(env: FeatureEnv, customer: str, as_of: pd.Timestamp) -> pd.Series:
    s = env.snapshots
    return s[(s.customer_id == customer) & (s.event_timestamp == as_of)].iloc[0]


def test_historical_is_point_in_time(feature_env: FeatureEnv) -> None:
    s = feature_env.snapshots
    customer = s.groupby("customer_id").size().idxmax()
    first = s[s.customer_id == customer].event_timestamp.min()
    day = first + pd.Timedelta(days=5)  # a snapshot instant (23:59:59)
    entity = pd.DataFrame(
        {
            "customer_id": [customer, customer, customer, customer],
            "event_timestamp": [
                day - pd.Timedelta(hours=12),
                day,
                day + pd.Timedelta(seconds=1),
                first - pd.Timedelta(hours=1),
            ],
            "label": [1, 2, 3, 4],
        }
    )
    out = feature_env.repo.historical(entity)
    assert out["label"].tolist() == [1, 2, 3, 4]  # order and extra columns kept
    expected = [day - pd.Timedelta(days=1), day, day]
    for i, as_of in enumerate(expected):
        want = rows_at(feature_env, customer, as_of)[NAMES].astype(float)
        assert out.loc[i, NAMES].astype(float).tolist() == pytest.approx(want.tolist(), nan_ok=True)
    assert out.loc[3, NAMES].isna().all()  # before the first snapshot: nothing, not a later one


def test_historical_gives_feasts_own_point_in_time_join(feature_env: FeatureEnv) -> None:
    """`historical` runs the join in DuckDB over the registered source; Feast's `get_historical_features` is
    the reference: same rows, same values, for instants before, on, between and after snapshots."""
    s = feature_env.snapshots
    rng = np.random.default_rng(5)
    ids = [*s.customer_id.unique(), "nobody"]
    lo, hi = s.event_timestamp.min() - pd.Timedelta(days=2), s.event_timestamp.max() + pd.Timedelta(days=2)
    seconds = rng.integers(0, int((hi - lo).total_seconds()), 120)
    at = lo + pd.to_timedelta(seconds, unit="s")
    at = at.where(
        rng.random(120) < 0.7, s.event_timestamp.sample(120, replace=True, random_state=1).to_numpy()
    )
    entity = pd.DataFrame({"customer_id": rng.choice(ids, 120), "event_timestamp": at, "label": range(120)})
    ours = feature_env.repo.historical(entity)
    job = feature_env.repo.store.get_historical_features(
        entity_df=entity, features=feature_env.repo._service("churn_v1")
    )
    feast = job.to_df().sort_values("label", ignore_index=True)
    assert ours["label"].tolist() == list(range(120))
    assert 30 < ours[NAMES].notna().any(axis=1).sum() < 120  # found and not found
    np.testing.assert_allclose(
        ours[NAMES].astype(float).to_numpy(), feast[NAMES].astype(float).to_numpy(), equal_nan=True
    )


def test_online_equals_offline_for_the_latest_snapshot(feature_env: FeatureEnv) -> None:
    s = feature_env.snapshots
    latest = s.event_timestamp.max()
    ids = sorted(s.customer_id.unique())
    online = feature_env.repo.online(ids)
    offline = s[s.event_timestamp == latest].set_index("customer_id").loc[ids, NAMES].reset_index()
    assert online["customer_id"].tolist() == ids
    assert (online["features_as_of"] == latest).all()
    np.testing.assert_allclose(
        online[NAMES].astype(float).to_numpy(), offline[NAMES].astype(float).to_numpy()
    )
    hist = feature_env.repo.historical(pd.DataFrame({"customer_id": ids, "event_timestamp": latest}))
    np.testing.assert_allclose(hist[NAMES].astype(float).to_numpy(), online[NAMES].astype(float).to_numpy())


def test_unknown_customer_and_service(feature_env: FeatureEnv) -> None:
    out = feature_env.repo.online(["nobody"])
    assert len(out) == 1 and out.loc[0, NAMES].isna().all() and pd.isna(out.loc[0, "features_as_of"])
    with pytest.raises(NotFoundError, match="churn_v9"):
        feature_env.repo.online(["nobody"], service="churn_v9")


def test_a_store_never_applied_says_what_to_run(tmp_path: Path, feature_env: FeatureEnv) -> None:
    from features.store import FeatureRepo

    repo = FeatureRepo(make_settings(tmp_path))
    entity = pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [pd.Timestamp("2024-05-01", tz="UTC")]})
    with pytest.raises(WorkspaceError, match="cxi features apply"):
        repo.historical(entity)


def test_a_registry_from_an_older_catalogue_names_the_missing_features_and_what_to_run(
    feature_env: FeatureEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import features.store as store

    newer = [*NAMES, "feature_added_later"]  # this CXI's catalogue has a feature the registry lacks
    monkeypatch.setattr(store, "feature_names", lambda service="churn_v1": newer)
    repo = store.FeatureRepo(feature_env.repo.settings)
    reads = (
        lambda: repo.online(["c1"]),
        lambda: repo.historical(feature_env.snapshots.head(1)),
        repo.open_online,  # not skipped as "not registered yet": a service built on it is not ready
    )
    for read in reads:
        with pytest.raises(
            store.StaleRegistryError, match=r"lacks feature_added_later .*run `cxi features apply`"
        ):
            read()


def test_open_online_reads_every_registered_service_and_skips_the_rest(
    tmp_path: Path, feature_env: FeatureEnv
) -> None:
    from features.definitions import SERVICES
    from features.store import FeatureRepo

    assert feature_env.repo.open_online() == list(SERVICES)
    assert FeatureRepo(make_settings(tmp_path)).open_online() == []  # never applied: nothing to open yet


def test_cli_build_apply_materialize(tmp_path: Path, feature_env: FeatureEnv) -> None:
    from cxi.commands.features import app

    settings = make_settings(tmp_path)
    seed_workspace(
        settings,
        synthetic_events(
            customers=5, days=10, per_customer=8, start=pd.Timestamp("2024-05-01", tz="UTC").to_pydatetime()
        ),
    )
    runner = CliRunner()
    ws = ["--workspace", str(settings.workspace)]
    for command in ("build", "apply", "materialize"):
        result = runner.invoke(app, [command, *ws])
        assert result.exit_code == 0, result.output
    assert "customers" in runner.invoke(app, ["build", *ws]).output
    assert "Materialized 5 customers" in runner.invoke(app, ["materialize", *ws]).output
    assert (settings.feast_dir / "online.db").exists() and (settings.feast_dir / "registry.db").exists()
