"""The batch job: spine shape, cadence, and no label leakage (later events never change earlier snapshots)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from features_testdata import make_settings, seed_workspace, synthetic_events

from contract.errors import WorkspaceError
from contract.workspace import Workspace
from features.snapshots import build_snapshots, write_snapshots

START = datetime(2024, 1, 1, tzinfo=UTC)


def snapshots(
    events: pd.DataFrame, path: Path, every_days: int = 1, part_rows: int = 200_000
) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("resolved_events", events)
    write_snapshots(con, "resolved_events", path, every_days=every_days, part_rows=part_rows)
    return pd.read_parquet(path).drop(columns="created")


def test_customer_parts_give_the_one_query_result(tmp_path: Path) -> None:
    """The batch job splits customers into parts to bound memory; the rows are the same as in one query."""
    events = synthetic_events(customers=15, days=20, per_customer=10, start=START, seed=2)
    keys = ["customer_id", "event_timestamp"]
    whole = snapshots(events, tmp_path / "one.parquet").sort_values(keys, ignore_index=True)
    parted = snapshots(events, tmp_path / "parts.parquet", part_rows=40).sort_values(keys, ignore_index=True)
    assert len(whole) > 4 * 40 and not list(tmp_path.glob(".*"))  # several parts, nothing left behind
    pd.testing.assert_frame_equal(parted, whole, check_exact=False, rtol=1e-12)


def test_spine_is_every_customer_every_day_from_first_event(tmp_path: Path) -> None:
    events = synthetic_events(customers=15, days=20, per_customer=10, start=START, seed=2)
    out = snapshots(events, tmp_path / "s.parquet")
    first = events.groupby("customer_id").occurred_at.min().dt.floor("D")
    last = events.occurred_at.max().floor("D")
    assert len(out) == int(((last - first).dt.days + 1).sum())
    assert (out.event_timestamp.dt.strftime("%H:%M:%S") == "23:59:59").all()
    assert out.groupby("customer_id").event_timestamp.max().eq(last + pd.Timedelta("23:59:59")).all()
    assert (out.events_90d >= 1).all()  # a customer enters the spine on the day of their first event


def test_cadence_counts_back_from_the_last_day(tmp_path: Path) -> None:
    events = synthetic_events(customers=15, days=20, per_customer=10, start=START, seed=2)
    out = snapshots(events, tmp_path / "s.parquet", every_days=3)
    last = events.occurred_at.max().floor("D") + pd.Timedelta("23:59:59")
    assert ((last - out.event_timestamp).dt.days % 3 == 0).all()
    first = events.groupby("customer_id").occurred_at.min()
    lag = out.groupby("customer_id").event_timestamp.min() - first
    assert (lag >= pd.Timedelta(0)).all() and (lag < pd.Timedelta(days=3)).all()


def test_no_label_leakage_later_events_change_nothing_before_them(tmp_path: Path) -> None:
    events = synthetic_events(customers=30, days=30, per_customer=20, start=START, seed=3)
    cutoff = events.occurred_at.max().floor("D") + pd.Timedelta("23:59:59")
    later = synthetic_events(
        customers=40,
        days=20,
        per_customer=20,
        start=(cutoff + pd.Timedelta(seconds=1)).to_pydatetime(),
        seed=4,
    )
    before = snapshots(events, tmp_path / "a.parquet")
    after = snapshots(pd.concat([events, later], ignore_index=True), tmp_path / "b.parquet")
    assert len(after) > len(before) and after.event_timestamp.max() > cutoff
    key = ["customer_id", "event_timestamp"]
    kept = after[after.event_timestamp <= cutoff].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before.sort_values(key).reset_index(drop=True))
    # and the check can fail: a snapshot after the cutoff does see the new events
    last_before = before[before.event_timestamp == cutoff].set_index("customer_id").events_90d
    next_day = (
        after[after.event_timestamp == cutoff + pd.Timedelta(days=1)].set_index("customer_id").events_90d
    )
    assert (next_day.reindex(last_before.index) > last_before).any()


def test_build_from_a_workspace_uses_the_identity_map(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    events = synthetic_events(customers=10, days=15, per_customer=10, start=START, seed=6)
    report = build_snapshots(settings, seed_workspace(settings, events))
    assert report.customers == 10 and report.rows == len(pd.read_parquet(report.path))
    direct = snapshots(events, tmp_path / "direct.parquet")
    built = pd.read_parquet(report.path).drop(columns="created")
    key = ["customer_id", "event_timestamp"]
    pd.testing.assert_frame_equal(
        built.sort_values(key).reset_index(drop=True), direct.sort_values(key).reset_index(drop=True)
    )


def test_build_without_events_says_what_is_missing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(WorkspaceError, match="'events' is empty or missing"):
        build_snapshots(settings, Workspace(settings.workspace))
