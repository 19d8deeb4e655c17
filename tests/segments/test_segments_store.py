"""The pull API's reads: keyset pages over 100k members without duplicates or gaps (also while live changes
land between pages), deltas since a seq or a time, and builds with their frozen thresholds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from contract import Workspace
from contract.errors import ContractError, NotFoundError
from segments.build import build_from_frame
from segments.consent import COLUMNS
from segments.definitions import parse
from segments.evaluate import EVENT_COLUMNS
from segments.store import COMPACT_PARTS, MAX_LIMIT, SegmentStore

T0 = datetime(2024, 3, 1, tzinfo=UTC)
N = 100_000
DEFS = parse(
    {
        "segments": [
            {"name": "everyone", "conditions": [{"feature": "churn_probability", "op": ">=", "value": 0.0}]},
            {"name": "top", "conditions": [{"percentile": "churn_probability", "op": ">=", "value": 0.9}]},
        ]
    }
)


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n)  # ids not in sorted order: the store must sort
    return pd.DataFrame(
        {
            "customer_id": np.char.add("c", ids.astype(str).astype("U12")).astype(object),
            "churn_probability": rng.random(n),
            **{c: True for c in COLUMNS.values()},
        }
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("store") / "ws")
    build_from_frame(ws, DEFS, _frame(N), as_of=T0, now=T0)
    return ws


def _live(segment: str, kind: str, ids: list[str], at: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "segment": segment,
            "kind": kind,
            "reason": "test",
            "at": pd.Timestamp(at),
            "build_id": "live",
            **{c: True for c in COLUMNS.values()},
        }
    )[list(EVENT_COLUMNS)]


def test_pages_through_100k_members_without_duplicates_or_gaps(built: Workspace) -> None:
    store = SegmentStore(built)
    seen, cursor, pages = [], None, 0
    while True:
        page = store.members("everyone", cursor, limit=1000)
        seen.extend(page.rows["customer_id"])
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == N // 1000 and len(seen) == N and len(set(seen)) == N
    assert seen == sorted(seen)
    assert store.sizes() == {"everyone": N, "top": N // 10}


def test_live_changes_between_pages_neither_duplicate_nor_hide_stable_members(built: Workspace) -> None:
    store = SegmentStore(built)
    base = set(store.members("everyone", limit=10_000).rows["customer_id"])
    first = store.members("everyone", limit=5000)
    boundary = first.rows["customer_id"].iloc[-1]
    # while a client pages: one member leaves, a newcomer joins (beyond the cursor), one left behind leaves
    behind = first.rows["customer_id"].iloc[10]
    ahead = store.members("everyone", first.next_cursor, limit=1).rows["customer_id"].iloc[0]
    store.append_events(_live("everyone", "exit", [behind, ahead], T0 + timedelta(hours=1)))
    store.append_events(_live("everyone", "entry", ["c~new"], T0 + timedelta(hours=2)))
    seen, cursor = list(first.rows["customer_id"]), first.next_cursor
    while cursor is not None:
        page = store.members("everyone", cursor, limit=5000)
        seen.extend(page.rows["customer_id"])
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert ahead not in seen and "c~new" in seen and all(c > boundary for c in seen[5000:])
    assert store.sizes()["everyone"] == N - 1  # two left, one joined
    assert "c~new" in set(store.current(["c~new"])["customer_id"]) and len(base) == 10_000

    # deltas: by seq cursor and by time, oldest first; the resume cursor is the last seq
    build = store.latest_build()
    delta = store.members("everyone", since=build.last_seq)
    assert delta.rows["kind"].tolist() == ["exit", "exit", "entry"]
    assert delta.rows["seq"].tolist() == list(range(build.last_seq + 1, build.last_seq + 4))
    assert delta.next_cursor == str(build.last_seq + 3) and not delta.more
    by_time = store.changes("everyone", since=T0 + timedelta(minutes=90))
    assert by_time.rows["customer_id"].tolist() == ["c~new"]
    empty = store.changes("everyone", cursor=delta.next_cursor)
    assert empty.rows.empty and empty.next_cursor == delta.next_cursor
    two = store.changes("everyone", since=build.last_seq, limit=2)
    assert two.more and len(two.rows) == 2 and two.records()[0]["at"].endswith("Z")


def test_builds_keep_thresholds_and_counts(built: Workspace) -> None:
    store = SegmentStore(built)
    build = store.latest_build()
    assert build is not None and build.customers == N
    (lo, hi) = build.thresholds.values["top/conditions/0"]
    assert lo == hi and 0.85 < lo < 0.95
    stats = {s["segment"]: s for s in build.stats}
    assert stats["everyone"]["size"] == N and stats["everyone"]["entered"] == N
    with pytest.raises(NotFoundError, match="'nope' is not in the latest build"):
        store.members("nope")
    with pytest.raises(ContractError, match=r"^limit"):
        store.members("top", limit=0)
    with pytest.raises(ContractError, match=r"^cursor"):
        store.members("top", cursor="@@not-base64@@")
    with pytest.raises(ContractError, match=r"^since: must be timezone-aware"):
        store.changes("top", since=datetime(2024, 1, 1))


def test_no_build_yet(tmp_path) -> None:
    store = SegmentStore(Workspace(tmp_path))
    assert store.latest_build() is None and store.current().empty
    with pytest.raises(NotFoundError, match="no build yet"):
        store.members("x")


def _small_build(tmp_path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    build_from_frame(ws, DEFS, _frame(200), as_of=T0, now=T0)
    return ws


def _event_parts(ws: Workspace) -> list:
    return sorted(ws.table_dir("segment_events").glob("*.parquet"))


def test_live_parts_are_compacted_and_every_event_stays_once(tmp_path) -> None:
    ws = _small_build(tmp_path)
    store = SegmentStore(ws)
    first = store.latest_build().last_seq
    for i in range(COMPACT_PARTS + 5):  # one part per live append, as the hook runs write them
        store.append_events(
            _live("everyone", "exit" if i % 2 else "entry", [f"c{i % 50}"], T0 + timedelta(i))
        )
    assert len(_event_parts(ws)) < 10  # the build's part, the merged one and the appends since
    rows = store.changes(since=first, limit=MAX_LIMIT).rows
    assert rows["seq"].tolist() == list(range(first + 1, first + COMPACT_PARTS + 6))
    assert rows["customer_id"].tolist() == [f"c{i % 50}" for i in range(COMPACT_PARTS + 5)]
    n = COMPACT_PARTS + 5
    last_kind = {c: "exit" if max(i for i in range(n) if i % 50 == c) % 2 else "entry" for c in range(50)}
    assert store.sizes()["everyone"] == 150 + sum(k == "entry" for k in last_kind.values())


def test_readers_never_see_a_compaction_half_done(tmp_path) -> None:
    ws = _small_build(tmp_path)
    writer, reader = SegmentStore(ws), SegmentStore(ws)
    first = writer.latest_build().last_seq
    done, problems = threading.Event(), []

    def read() -> None:
        while not done.is_set():
            try:
                seqs = reader.changes(since=first, limit=MAX_LIMIT).rows["seq"].tolist()
            except Exception as exc:  # a part removed under the query
                problems.append(repr(exc))
                continue
            if seqs != list(range(first + 1, first + 1 + len(seqs))):
                problems.append(f"not gap-free and unique: {len(seqs)} rows, {len(set(seqs))} distinct")

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(3 * 40):
            writer.append_events(_live("everyone", "entry", [f"n{i}"], T0 + timedelta(hours=i)))
            if i % 40 == 39:
                assert writer.compact_events(min_parts=2) > 0
    finally:
        done.set()
        thread.join()
    assert problems == []


def test_a_compaction_cut_short_is_finished_by_the_next_writer(tmp_path) -> None:
    ws = _small_build(tmp_path)
    store = SegmentStore(ws)
    first = store.latest_build().last_seq
    for i in range(6):
        store.append_events(_live("everyone", "entry", [f"n{i}"], T0))
    before = _event_parts(ws)
    real = store._finish_compaction
    store._finish_compaction = lambda: None  # the process dies after writing its intent
    assert store.compact_events(min_parts=2) == len(before)
    store._finish_compaction = real
    assert (ws.root / "segments" / "compaction.json").exists()
    assert len(store.changes(since=first).rows) == 6  # nothing swapped yet: the old parts stand
    store.append_events(_live("everyone", "entry", ["n6"], T0))  # the next writer finishes it first
    assert not (ws.root / "segments" / "compaction.json").exists()
    assert len(_event_parts(ws)) == 2  # the merged part and the new one
    assert store.changes(since=first).rows["seq"].tolist() == list(range(first + 1, first + 8))


@pytest.mark.parametrize("counter", ["", "3", "garbage"])
def test_a_stale_seq_counter_never_reissues_a_seq(tmp_path, counter: str) -> None:
    """After a crash the counter file (written without fsync) may be empty, behind or torn; a new store checks
    it against the events once, so seqs stay unique and increasing and no cursor skips an event."""
    ws = _small_build(tmp_path)
    store = SegmentStore(ws)
    first = store.latest_build().last_seq
    store.append_events(_live("everyone", "entry", ["a1", "a2"], T0 + timedelta(hours=1)))
    (ws.root / "segments" / "seq").write_text(counter)
    again = SegmentStore(ws)  # as after a restart
    out = again.append_events(_live("everyone", "exit", ["a1"], T0 + timedelta(hours=2)))
    assert out["seq"].tolist() == [first + 3]
    rows = again.changes(since=first, limit=MAX_LIMIT).rows
    assert rows["seq"].tolist() == [first + 1, first + 2, first + 3]
