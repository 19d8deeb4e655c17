"""The event log's id index: exact membership through recent ids, runs and (background) merges; the tiered
merge keeps few runs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from events.id_index import IdIndex, _tail_to_merge


def ids(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + n)]


def test_ids_are_known_in_the_recent_set_in_runs_and_after_merges() -> None:
    index = IdIndex(run_ids=100, background=False)
    index.add_many(np.array(ids("old", 1000), dtype=object))
    for start in range(0, 2_000, 50):
        index.add(ids("new", 50, start))
    index.add(ids("tail", 30))  # fewer than a run: still only in the recent set
    assert len(index) == 3_030
    probe = ["old0", "old999", "new0", "new1999", "tail0", "tail29", "new2000", "old1000", "tail30", "x"]
    assert index.contains(probe).tolist() == [True] * 6 + [False] * 4


def test_tiered_merges_keep_each_run_over_twice_the_next_one() -> None:
    index = IdIndex(run_ids=64, background=False)
    for start in range(0, 64 * 200, 64):
        index.add(ids("e", 64, start))
    sizes = [len(h1) for h1, _ in index._runs]
    assert sum(sizes) == 64 * 200
    assert all(sizes[i] > 2 * sizes[i + 1] for i in range(len(sizes) - 1))
    assert index.runs <= int(np.log2(200)) + 2  # logarithmic in the number of ids, not linear
    for h1, _ in index._runs:
        assert (np.diff(h1.astype(np.float64)) >= 0).all()


def test_tail_to_merge_rule() -> None:
    assert _tail_to_merge([]) is None and _tail_to_merge([10]) is None
    assert _tail_to_merge([100, 10]) is None  # the older run is more than twice the newer one
    assert _tail_to_merge([110, 30, 20]) == 1  # 30 <= 2 * 20; then 110 > 2 * 50
    assert _tail_to_merge([100, 40, 20, 20]) == 0  # 20 <= 40, 40 <= 80, 100 <= 160


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60), st.booleans())
def test_membership_is_exact_while_merges_run_in_the_background(sizes: list[int], wait: bool) -> None:
    index = IdIndex(run_ids=16)  # background merges race with the adds and lookups below
    added: list[str] = []
    start = 0
    for n in sizes:
        batch = ids("k", n, start)
        start += n
        assert not index.contains(batch).any()
        index.add(batch)
        added += batch
        assert index.contains(added[-3 * n :]).all()
    if wait:
        index.wait_merged()
        assert index.runs <= int(np.log2(max(len(added) / 16, 1))) + 2
    assert index.contains(added).all()
    assert not index.contains(ids("k", 20, start)).any()
    assert len(index) == len(added)
    index.wait_merged()


def test_hashes_given_by_the_caller_are_the_ones_it_would_compute() -> None:
    from events.id_index import hashes

    a, b = IdIndex(run_ids=8, background=False), IdIndex(run_ids=8, background=False)
    for start in range(0, 40, 5):
        batch = ids("h", 5, start)
        hashed = hashes(np.array(batch, dtype=object))
        assert a.contains(batch, hashed).tolist() == b.contains(batch).tolist() == [False] * 5
        a.add(batch, hashed)
        b.add(batch)
    probe = ids("h", 45)
    assert a.contains(probe).tolist() == b.contains(probe).tolist() == [True] * 40 + [False] * 5
    assert [h1.tolist() for h1, _ in a._runs] == [h1.tolist() for h1, _ in b._runs]
