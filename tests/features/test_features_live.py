"""Streaming features through the real Feast store: online after streaming == batch at the same instant."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from features_testdata import FeatureEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.errors import ContractError, NotFoundError
from features.compute import customer_features
from features.definitions import feature_names
from features.live import LiveFeatures
from features.live_events import EVENTS_SCHEMA

pytestmark = pytest.mark.integration
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
SERVICES = ("churn_v1", "live_v1")
_run = itertools.count()


def events_table(rows: list[dict]) -> pa.Table:
    """Rows (event_id, occurred_at, type, category?, revenue?, price?, quantity?) as the log would hand them."""
    cols = {f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in EVENTS_SCHEMA}
    return pa.table(cols, schema=EVENTS_SCHEMA)


def batch_features(log: list[dict], owner: dict[str, str], ids: list[str], at: datetime) -> pd.DataFrame:
    """The batch function over the whole log (final customer of each event), spine = ids × at."""
    table = events_table(log).append_column(
        "customer_id", pa.array([owner[r["event_id"]] for r in log], pa.string())
    )
    spine = pa.table({"customer_id": ids, "as_of": pa.array([at] * len(ids), pa.timestamp("us", tz="UTC"))})
    con = duckdb.connect()
    con.register("ev", table)
    con.register("sp", spine)
    return customer_features(con, "ev", "sp", live=True).df()


def assert_same(online: pd.DataFrame, batch: pd.DataFrame, names: list[str]) -> None:
    assert online["customer_id"].tolist() == batch["customer_id"].tolist()
    for name in names:
        got, want = online[name].tolist(), batch[name].tolist()
        for g, w, c in zip(got, want, batch["customer_id"], strict=True):
            if w is None or (isinstance(w, float) and np.isnan(w)):
                assert g is None or (isinstance(g, float) and np.isnan(g)), (c, name, g, w)
            elif isinstance(w, str):
                assert g == w, (c, name, g, w)
            else:
                assert float(g) == pytest.approx(float(w), rel=1e-9, abs=1e-9), (c, name, g, w)


@pytest.fixture(scope="session")
def repo(feature_env: FeatureEnv):  # the session's Feast store; live tests use their own customer ids
    return feature_env.repo


event = st.fixed_dictionaries(
    {
        "who": st.sampled_from(["a", "b", "c", "anon1", "anon2"]),
        "minute": st.integers(0, 3 * 24 * 60),
        "type": st.sampled_from(["purchase", "add_to_cart", "remove_from_cart", "product_view", "page_view"]),
        "category": st.sampled_from([None, "shoes", "hats"]),
        "quantity": st.sampled_from([None, 1, 3]),
        "revenue": st.sampled_from([None, 20.0, -5.0]),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(event, min_size=1, max_size=30),
    st.lists(st.integers(1, 30), max_size=4),
    st.dictionaries(
        st.sampled_from(["anon1", "anon2"]), st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 4))
    ),
    st.integers(0, 2 * 24 * 60),
    st.booleans(),
)
def test_streamed_online_features_equal_batch_features(
    repo,
    raw: list[dict],
    cuts: list[int],
    merges: dict[str, tuple[str, int]],
    later_minutes: int,
    behind: bool,
) -> None:
    """Any log, streamed in micro-batches (with anonymous profiles merged on the way), read at any instant,
    gives the batch function's numbers from the whole log at that instant, for every feature of both views;
    with the online writes behind (never flushed until the end) as with them at once."""
    run = f"p{next(_run)}-"
    log = [
        {
            "event_id": f"{run}e{i}",
            "occurred_at": T0 + timedelta(minutes=r["minute"]),
            "type": r["type"],
            "category": r["category"],
            "quantity": r["quantity"],
            "revenue": r["revenue"],
            "who": run + r["who"],
        }
        for i, r in enumerate(raw)
    ]
    bounds = sorted({0, len(log), *(c for c in cuts if c < len(log))})
    batches = [log[i:j] for i, j in itertools.pairwise(bounds)]
    state = LiveFeatures(repo)  # default max_age: reads serve stored rows until their short windows run out
    if behind:
        state.start_writer(3600.0)  # the thread never writes during the test: reads see waiting rows
    owner = {r["event_id"]: r["who"] for r in log}
    now = T0
    for k, batch in enumerate(batches):
        # a merge folds the anonymous profile (and its earlier events) into a known customer
        relabel = {run + a: run + s for a, (s, at) in merges.items() if at == k}
        for absorbed, survivor in relabel.items():
            owner = {e: survivor if c == absorbed else c for e, c in owner.items()}
        ids = [owner[r["event_id"]] for r in batch]
        now = max([now, *(r["occurred_at"] for r in batch)]) + timedelta(seconds=k)
        state.update(events_table(batch), pa.array(ids), relabel, now)
    customers = sorted(set(owner.values()))
    check_reads(state, log, owner, customers, now)  # rows written by earlier batches are served as stored
    later = now + timedelta(minutes=later_minutes, seconds=2)
    state.sweep(later)
    state.stop_writer()  # writes what waits (nothing when the writes were not behind)
    assert state.writer.unwritten == 0
    # the sweep alone (no read) expired every short window in the store
    want = batch_features(log, owner, customers, later)
    stored = repo.online(customers, "live_v1")
    assert_same(stored, want, SHORT)
    assert not ((stored.session_minutes > 0) & (want.session_minutes == 0)).any()
    check_reads(state, log, owner, customers, later)


#: Live columns that are exact in any row served (the others drift with time, like a recency).
SHORT = ["events_30m", "events_today", "cart_items", "last_category"]


def check_reads(
    state: LiveFeatures, log: list[dict], owner: dict[str, str], customers: list[str], at: datetime
) -> None:
    """Reads at `at` (twice: the second hits what the first wrote back): every row equals the batch function
    at its own `features_as_of`, no older than max_age, with no expired short window."""
    want = batch_features(log, owner, customers, at)
    for _ in range(2):
        for service in SERVICES:
            got = state.read(customers, at, service)
            assert_as_of_batch(got, log, owner, service)
            assert (got.features_as_of >= pd.Timestamp(at) - state.max_age).all()
            assert (got.features_as_of <= pd.Timestamp(at)).all()
            if service == "live_v1":
                assert_same(got, want, SHORT)
                assert not ((got.session_minutes > 0) & (want.session_minutes == 0)).any()


def service_names(service: str) -> list[str]:
    return [n for n in feature_names(service) if n != "snapshot_at"]


def assert_as_of_batch(got: pd.DataFrame, log: list[dict], owner: dict[str, str], service: str) -> None:
    """Every row equals the batch function at that row's own `features_as_of`, for every feature."""
    for as_of, rows in got.groupby("features_as_of", sort=False):
        ids = rows.customer_id.tolist()
        assert_same(rows, batch_features(log, owner, ids, as_of.to_pydatetime()), service_names(service))


def test_windows_expire_without_new_events(repo) -> None:
    state = LiveFeatures(repo)
    t = T0 + timedelta(days=10)
    rows = [
        {"event_id": "w1", "occurred_at": t - timedelta(minutes=10), "type": "page_view"},
        {"event_id": "w2", "occurred_at": t, "type": "product_view", "category": "hats"},
    ]
    assert state.update(events_table(rows), pa.array(["win-1", "win-1"]), {}, t) == ["win-1"]
    now = state.read(["win-1"], t, "live_v1").iloc[0]
    assert (now.events_30m, now.session_minutes, now.minutes_since_last_event) == (2, 10.0, 0.0)
    later = state.read(["win-1"], t + timedelta(minutes=31), "live_v1").iloc[0]
    assert (later.events_30m, later.session_minutes, later.events_today) == (0, 0.0, 2)
    assert later.minutes_since_last_event == pytest.approx(31.0) and later.last_category == "hats"
    assert later.features_as_of == pd.Timestamp(t + timedelta(minutes=31))
    # the recompute was written back: the store itself now holds the expired windows
    stored = repo.online(["win-1"], "live_v1").iloc[0]
    assert stored.events_30m == 0 and stored.session_minutes == 0.0
    tomorrow = state.read(["win-1"], t + timedelta(days=1), "live_v1").iloc[0]
    assert tomorrow.events_today == 0


def test_the_sweeper_expires_windows_in_the_store_without_a_read(repo) -> None:
    state = LiveFeatures(repo)
    t = datetime(2025, 4, 7, 23, 40, tzinfo=UTC)
    rows = [
        {"event_id": "s1", "occurred_at": t - timedelta(minutes=20), "type": "page_view"},
        {
            "event_id": "s2",
            "occurred_at": t - timedelta(minutes=5),
            "type": "add_to_cart",
            "category": "bags",
        },
    ]
    state.update(events_table(rows), pa.array(["sw-1", "sw-1"]), {}, t)
    state.update(
        events_table([{"event_id": "s3", "occurred_at": t, "type": "page_view"}]), pa.array(["sw-2"]), {}, t
    )
    assert state.sweep(t + timedelta(minutes=5)) == 0  # nothing ran out yet
    stored = repo.online(["sw-1", "sw-2"], "live_v1")
    assert stored.events_30m.tolist() == [2, 1] and stored.events_today.tolist() == [2, 1]
    # 10:00 after the first event it leaves the 30-minute window: only sw-1's row changed
    assert state.sweep(t + timedelta(minutes=10)) == 1
    stored = repo.online(["sw-1", "sw-2"], "live_v1")
    assert stored.events_30m.tolist() == [1, 1] and stored.features_as_of.iloc[0] == pd.Timestamp(
        t + timedelta(minutes=10)
    )
    # past midnight and every session: both rows swept, today's counts back to 0, the cart stays
    assert state.sweep(t + timedelta(minutes=40)) == 2
    stored = repo.online(["sw-1", "sw-2"], "live_v1")
    assert stored.events_30m.tolist() == [0, 0] and stored.events_today.tolist() == [0, 0]
    assert stored.session_minutes.tolist() == [0.0, 0.0] and stored.cart_items.tolist() == [1, 0]
    assert state.sweep(t + timedelta(minutes=50)) == 0  # nothing left to expire; rows younger than 1 h
    # rows older than the refresh interval are refreshed (day windows and recencies drift)
    assert state.sweep(t + timedelta(hours=2)) == 2


def test_a_fresh_row_is_served_without_running_the_feature_query(repo, monkeypatch) -> None:
    calls = []
    state = LiveFeatures(repo)
    real = state.states.features
    monkeypatch.setattr(state.states, "features", lambda *a, **k: calls.append(1) or real(*a, **k))
    t = T0 + timedelta(days=30)
    rows = [{"event_id": "fr1", "occurred_at": t, "type": "product_view", "category": "hats"}]
    state.update(events_table(rows), pa.array(["fresh-1"]), {}, t)
    assert len(calls) == 1
    for minutes in (0, 1, 29):  # within the session and the 30-minute window: the stored row is served
        row = state.read(["fresh-1"], t + timedelta(minutes=minutes), "live_v1").iloc[0]
        assert row.events_30m == 1 and row.features_as_of == pd.Timestamp(t)
    assert len(calls) == 1
    row = state.read(["fresh-1"], t + timedelta(minutes=30), "live_v1").iloc[0]  # the event left the window
    assert row.events_30m == 0 and row.session_minutes == 30.0 and len(calls) == 2
    row = state.read(["fresh-1"], t + timedelta(minutes=31), "live_v1").iloc[0]  # the session ended
    assert row.session_minutes == 0.0 and len(calls) == 3
    state.read(["fresh-1"], t + timedelta(minutes=50), "churn_v1")  # nothing left to expire before midnight
    assert len(calls) == 3


def test_the_sweeper_thread_sweeps_on_its_clock(repo) -> None:
    state = LiveFeatures(repo)
    t = T0 + timedelta(days=40)
    state.update(
        events_table([{"event_id": "th1", "occurred_at": t, "type": "page_view"}]), pa.array(["th-1"]), {}, t
    )
    state.start_sweeper(0.02, clock=lambda: t + timedelta(minutes=45))
    try:
        for _ in range(500):
            if repo.online(["th-1"], "live_v1").events_30m.iloc[0] == 0:
                break
            time.sleep(0.01)
    finally:
        state.stop_sweeper()
    assert repo.online(["th-1"], "live_v1").events_30m.tolist() == [0]


def test_a_sweep_running_beside_updates_keeps_the_newer_rows(repo) -> None:
    """The sweep computes outside the lock: a customer updated meanwhile keeps the update's (newer) row."""
    state = LiveFeatures(repo)
    t = T0 + timedelta(days=50)
    ids = [f"bs-{i}" for i in range(40)]
    log = [
        {"event_id": f"bs{i}-{k}", "occurred_at": t - timedelta(hours=k), "type": "page_view"}
        for i in range(len(ids))
        for k in range(3)
    ]
    owner = {r["event_id"]: ids[int(r["event_id"][2:].split("-")[0])] for r in log}
    state.update(events_table(log), pa.array([owner[r["event_id"]] for r in log]), {}, t)
    later = t + timedelta(hours=2)
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            state.sweep(later)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=sweep)
    thread.start()
    for i in range(0, len(ids), 4):  # updates one second after the sweep's instant, while it runs
        row = {"event_id": f"bs-new-{i}", "occurred_at": later, "type": "add_to_cart"}
        log.append(row)
        owner[row["event_id"]] = ids[i]
        state.update(events_table([row]), pa.array([ids[i]]), {}, later + timedelta(seconds=1))
    thread.join()
    assert not errors
    stored = repo.online(ids, "live_v1")
    updated = stored.customer_id.isin(ids[::4])
    assert (stored.features_as_of[updated] == pd.Timestamp(later + timedelta(seconds=1))).all()
    assert (stored.features_as_of[~updated] == pd.Timestamp(later)).all()
    assert stored.cart_items[updated].tolist() == [1] * updated.sum()
    assert_as_of_batch(stored, log, owner, "live_v1")


def test_relabel_moves_pre_login_cart_and_views_to_the_survivor(repo) -> None:
    state = LiveFeatures(repo)
    t = T0 + timedelta(days=20)
    known = [{"event_id": "k1", "occurred_at": t - timedelta(days=3), "type": "purchase", "revenue": 30.0}]
    state.update(events_table(known), pa.array(["rl-cust"]), {}, t - timedelta(days=3))
    anonymous = [
        {"event_id": "a1", "occurred_at": t - timedelta(minutes=6), "type": "product_view", "category": "shoes"},
        {"event_id": "a2", "occurred_at": t - timedelta(minutes=5), "type": "add_to_cart", "category": "shoes"},
        {"event_id": "a3", "occurred_at": t - timedelta(minutes=4), "type": "add_to_cart", "category": "coats",
         "quantity": 2},
    ]  # fmt: skip
    state.update(events_table(anonymous), pa.array(["rl-anon"] * 3), {}, t - timedelta(minutes=4))
    before = state.read(["rl-cust", "rl-anon"], t - timedelta(minutes=4), "live_v1")
    assert before.cart_items.tolist() == [0, 3]
    login = [{"event_id": "l1", "occurred_at": t, "type": "login"}]
    written = state.update(events_table(login), pa.array(["rl-cust"]), {"rl-anon": "rl-cust"}, t)
    assert set(written) == {"rl-cust", "rl-anon"}
    after = state.read(["rl-cust", "rl-anon"], t, "live_v1").set_index("customer_id")
    cust, anon = after.loc["rl-cust"], after.loc["rl-anon"]
    assert (cust.cart_items, cust.events_30m, cust.last_category, cust.session_minutes) == (
        3,
        4,
        "coats",
        6.0,
    )
    churn = state.read(["rl-cust"], t, "churn_v1").iloc[0]
    assert churn.product_views_7d == 1 and churn.events_7d == 5 and churn.purchases_7d == 1
    recent = state.recent_events("rl-cust", limit=2)
    assert recent.event_id.tolist() == ["l1", "a3"] and len(state.recent_events("rl-cust", None)) == 5
    # the absorbed id keeps an empty row (what the batch function says about an id without events)
    assert anon.events_30m == 0 and anon.cart_items == 0 and pd.isna(anon.minutes_since_last_event)
    # an unmerge moves the events back
    assert set(state.assign(["a1", "a2", "a3"], ["rl-anon"] * 3, t)) == {"rl-cust", "rl-anon"}
    back = state.read(["rl-cust", "rl-anon"], t, "live_v1")
    assert back.cart_items.tolist() == [0, 3] and back.events_30m.tolist() == [1, 3]
    with pytest.raises(NotFoundError, match="nope"):
        state.assign(["nope"], ["rl-cust"], t)


def test_replayed_events_are_not_counted_twice(repo) -> None:
    state = LiveFeatures(repo)
    rows = [{"event_id": "d1", "occurred_at": T0, "type": "add_to_cart"}]
    for _ in range(2):
        state.update(events_table(rows), pa.array(["dup-1"]), {}, T0)
    assert state.read(["dup-1"], T0, "live_v1").cart_items.tolist() == [1]


def test_history_from_the_workspace_matches_the_snapshots(feature_env: FeatureEnv) -> None:
    """Loaded from the workspace, the live state computes the very rows the batch job wrote (all columns)."""
    state = LiveFeatures.from_workspace(feature_env.repo, feature_env.workspace)
    assert state.events == len(feature_env.events)
    s = feature_env.snapshots
    latest = s.event_timestamp.max()
    ids = sorted(s.customer_id.unique())
    got = state.compute(ids, latest.to_pydatetime())
    want = s[s.event_timestamp == latest].set_index("customer_id").loc[ids].reset_index()
    names = [*feature_names("churn_v1"), *feature_names("live_v1")]
    assert_same(got, want, names)


def test_bad_input_names_the_field(repo) -> None:
    state = LiveFeatures(repo)
    rows = events_table([{"event_id": "x", "occurred_at": T0, "type": "page_view"}])
    with pytest.raises(ContractError, match="customer_ids"):
        state.update(rows, pa.array(["a", "b"]), {}, T0)
    with pytest.raises(ContractError, match="now"):
        state.update(rows, pa.array(["a"]), {}, datetime(2025, 1, 1))
    with pytest.raises(ContractError, match=r"events\.type"):
        state.update(rows.drop_columns(["type"]), pa.array(["a"]), {}, T0)


def test_writes_behind_through_a_child_process_and_in_process_once_it_is_gone(repo) -> None:
    from features.write_process import WriterProcessError

    state = LiveFeatures(repo)
    state.start_writer(3600.0, process=True)
    process = state.writer.process
    assert process is not None and process.pid != os.getpid()
    t = T0 + timedelta(days=41)
    first = [{"event_id": "wp1", "occurred_at": t, "type": "add_to_cart", "category": "shoes", "quantity": 3}]
    state.update(events_table(first), pa.array(["wp-1"]), {}, t)
    assert state.writer.flush() == 1 and state.writer.unwritten == 0
    stored = repo.online(["wp-1"], "live_v1").iloc[0]  # written by the child, read here
    assert (stored.cart_items, stored.last_category, stored.features_as_of) == (3, "shoes", pd.Timestamp(t))
    assert repo.online(["wp-1"], "churn_v1").features_as_of.tolist() == [pd.Timestamp(t)]

    with pytest.raises(WriterProcessError, match="KeyError"):  # a row without the views' columns
        process.write(pd.DataFrame({"customer_id": ["wp-1"]}), pd.Series([pd.Timestamp(t)]))
    assert process.alive  # an error answer leaves the child serving
    os.kill(process.pid, signal.SIGTERM)  # as BentoML's supervisor does when it stops the service
    seen = t + timedelta(seconds=30)
    view = [{"event_id": "wp1b", "occurred_at": seen, "type": "page_view", "category": "shoes"}]
    state.update(events_table(view), pa.array(["wp-1"]), {}, seen)
    assert state.writer.flush() == 1 and state.writer.process is process  # still the child's: it ends at EOF

    process.child.answer_timeout_s = 1.0
    os.kill(process.pid, signal.SIGSTOP)  # hung: it never answers, so the writer kills it
    later = t + timedelta(minutes=1)
    second = [{"event_id": "wp2", "occurred_at": later, "type": "add_to_cart", "category": "bags"}]
    state.update(events_table(second), pa.array(["wp-1"]), {}, later)
    assert state.writer.flush() == 1 and state.writer.process is None  # the row was written here instead
    assert not process.alive
    assert repo.online(["wp-1"], "live_v1").cart_items.tolist() == [4]
    state.stop_writer()


def test_writes_behind_serve_the_waiting_row_and_flush_the_latest(repo) -> None:
    state = LiveFeatures(repo)
    state.start_writer(3600.0)
    t = T0 + timedelta(days=40)
    first = [{"event_id": "wb1", "occurred_at": t, "type": "add_to_cart", "category": "hats", "quantity": 2}]
    state.update(events_table(first), pa.array(["wb-1"]), {}, t)
    assert state.writer.unwritten == 1
    assert repo.online(["wb-1"], "live_v1").cart_items.isna().all()  # not in the store yet
    assert state.read(["wb-1"], t, "live_v1").cart_items.tolist() == [2]  # but served
    later = t + timedelta(minutes=1)
    second = [{"event_id": "wb2", "occurred_at": later, "type": "add_to_cart", "category": "bags"}]
    state.update(events_table(second), pa.array(["wb-1"]), {}, later)
    assert state.writer.unwritten == 1  # the newer row replaced the waiting one
    assert state.writer.flush() == 1 and state.writer.unwritten == 0
    stored = repo.online(["wb-1"], "live_v1").iloc[0]
    assert (stored.cart_items, stored.last_category) == (3, "bags")
    assert stored.features_as_of == pd.Timestamp(later)
    state.stop_writer()
    state.update(events_table([{**second[0], "event_id": "wb3"}]), pa.array(["wb-1"]), {}, later)
    assert state.writer.unwritten == 0 and repo.online(["wb-1"], "live_v1").cart_items.tolist() == [4]


def test_a_read_that_raced_an_update_never_puts_an_older_row_in_its_place(repo, monkeypatch) -> None:
    """A read whose store row was fetched before an update landed, for an instant before that update, serves
    its own instant but must not queue its row over the update's (seen as a stale score under load)."""
    state = LiveFeatures(repo)
    state.start_writer(3600.0)
    t = T0 + timedelta(days=60)
    first = [{"event_id": "rc1", "occurred_at": t, "type": "page_view", "category": "hats"}]
    state.update(events_table(first), pa.array(["rc-1"]), {}, t)
    assert state.writer.flush() == 1
    names = service_names("live_v1")
    fetched = state._served(["rc-1"], "live_v1", names)  # the store's row (as of t), read first ...
    assert fetched is not None and fetched.features_as_of.tolist() == [pd.Timestamp(t)]
    later = t + timedelta(minutes=40)
    second = [{"event_id": "rc2", "occurred_at": later, "type": "add_to_cart", "category": "bags"}]
    state.update(events_table(second), pa.array(["rc-1"]), {}, later)  # ... then an update lands
    monkeypatch.setattr(state, "_served", lambda *_: fetched)
    raced = state.read(["rc-1"], t + timedelta(minutes=35), "live_v1").iloc[0]  # its 30-minute window ran out
    assert raced.features_as_of == pd.Timestamp(t + timedelta(minutes=35)) and raced.events_30m == 0
    monkeypatch.undo()
    assert state.writer.flush() == 1  # the update's row, not the raced read's older one
    assert repo.online(["rc-1"], "live_v1").features_as_of.tolist() == [pd.Timestamp(later)]
    now = state.read(["rc-1"], later, "live_v1").iloc[0]
    assert now.features_as_of == pd.Timestamp(later) and (now.cart_items, now.last_category) == (1, "bags")
    state.stop_writer()
