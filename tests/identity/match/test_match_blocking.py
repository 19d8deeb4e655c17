"""Blocking: recall on noisy duplicates, vectorised pair generation against brute force, the size cap."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.match.blocking import (
    BlockingRule,
    _within_blocks,
    blocking_recall,
    candidate_pairs,
    default_rules,
    true_pair_count,
)
from identity.match.records import prepare


def _entity_in_prepared_order(records: pd.DataFrame, entity: pd.Series, prep: pd.DataFrame) -> np.ndarray:
    key = records["source"] + ":" + records["record_id"]
    return (prep["source"] + ":" + prep["record_id"]).map(dict(zip(key, entity, strict=True))).to_numpy()


def test_blocking_recall_on_noisy_duplicates(noisy: tuple[pd.DataFrame, pd.Series]) -> None:
    records, entity = noisy
    prep = prepare(records)
    cands = candidate_pairs(prep)
    ent = _entity_in_prepared_order(records, entity, prep)
    assert blocking_recall(cands, ent) >= 0.97
    n = len(prep)
    assert len(cands) < n * (n - 1) // 2 / 50  # far fewer than all pairs
    assert (cands.i < cands.j).all()
    assert len(np.unique(cands.i * n + cands.j)) == len(cands)


def test_single_rule_recall_is_lower(noisy: tuple[pd.DataFrame, pd.Series]) -> None:
    """The union of rules is what buys recall: one exact rule alone misses the typo'd pairs."""
    records, entity = noisy
    prep = prepare(records)
    ent = _entity_in_prepared_order(records, entity, prep)
    one = blocking_recall(candidate_pairs(prep, [BlockingRule(("last_name", "first_initial"))]), ent)
    assert one < blocking_recall(candidate_pairs(prep), ent)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1, 6), min_size=0, max_size=40), st.integers(2, 8))
def test_within_blocks_matches_brute_force(codes: list[int], cap: int) -> None:
    arr = np.asarray(codes, dtype=np.int64)
    a, b, skipped_blocks, _, _ = _within_blocks(arr, cap)
    sizes = pd.Series(arr[arr >= 0]).value_counts()
    expect = {
        (x, y)
        for x, y in itertools.combinations(range(len(arr)), 2)
        if arr[x] >= 0 and arr[x] == arr[y] and sizes[arr[x]] <= cap
    }
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == expect
    assert len(a) == len(expect)
    assert skipped_blocks == int((sizes > cap).sum())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1, 3), min_size=0, max_size=40), st.integers(2, 6), st.randoms())
def test_window_pairs_sorted_neighbours_only(codes: list[int], window: int, rnd: object) -> None:
    """Blocks up to the window give all pairs; a bigger block pairs each record with the next window-1
    records in rank order, so pairs grow linearly with block size."""
    arr = np.asarray(codes, dtype=np.int64)
    rank = np.asarray(rnd.sample(range(len(arr)), len(arr)), dtype=np.int64)  # type: ignore[attr-defined]
    a, b, _, _, windowed = _within_blocks(arr, 100, window, rank)
    expect = set()
    for code in set(arr[arr >= 0].tolist()):
        members = sorted(np.flatnonzero(arr == code).tolist(), key=lambda r: rank[r])
        for p, left in enumerate(members):
            for right in members[p + 1 : p + window]:
                expect.add((min(left, right), max(left, right)))
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == expect
    assert len(a) == len(expect) and (a < b).all()
    sizes = pd.Series(arr[arr >= 0]).value_counts()
    assert windowed == int((sizes > window).sum())


def test_window_bounds_candidates_per_record() -> None:
    """One date of birth shared by 300 people: 300·(w-1) pairs at most instead of 300·299/2."""
    records = pd.DataFrame(
        {
            "source": "s",
            "record_id": [f"r{k:03d}" for k in range(300)],
            "last_name": [f"name{k % 150}" for k in range(300)],
            "date_of_birth": ["1980-01-01"] * 300,
        }
    )
    prep = prepare(records)
    cands = candidate_pairs(prep, [BlockingRule(("dob",))], window=5)
    assert len(cands) <= 300 * 4 and cands.stats[0].windowed_blocks == 1
    same = prep["last_name"].to_numpy()
    hit = {(same[i], same[j]) for i, j in zip(cands.i, cands.j, strict=True) if same[i] == same[j]}
    assert len(hit) == 150  # every same-name pair sits side by side in name order
    assert len(candidate_pairs(prep, [BlockingRule(("dob",))], window=None)) == 300 * 299 // 2


def test_giant_blocks_are_skipped_and_counted() -> None:
    records = pd.DataFrame(
        {"source": "s", "record_id": [f"r{k}" for k in range(30)], "date_of_birth": ["1980-01-01"] * 30}
    )
    cands = candidate_pairs(prepare(records), [BlockingRule(("dob",))], max_block_size=10)
    assert len(cands) == 0
    assert cands.stats[0].skipped_blocks == 1
    assert cands.stats[0].skipped_pairs == 30 * 29 // 2


def test_link_only_keeps_cross_source_pairs() -> None:
    records = pd.DataFrame(
        {"source": ["a", "a", "b"], "record_id": ["1", "2", "3"], "last_name": ["Ng", "Ng", "Ng"]}
    )
    prep = prepare(records)
    rule = [BlockingRule(("last_name",))]
    assert len(candidate_pairs(prep, rule)) == 3
    cands = candidate_pairs(prep, rule, link_only=True)
    assert {(prep.source[i], prep.source[j]) for i, j in zip(cands.i, cands.j, strict=True)} == {("a", "b")}
    assert true_pair_count(np.array([1, 1, 1]), np.array(["a", "a", "b"])) == 2


def test_only_identifier_like_extra_columns_block() -> None:
    """A house number repeats across people: compared as a noisy id, but never a blocking key."""
    records = pd.DataFrame(
        {
            "source": "s",
            "record_id": [f"r{k}" for k in range(100)],
            "street_number": [str(k % 5) for k in range(100)],
            "national_id": [f"n{k}" for k in range(100)],
        }
    )
    names = [r.name for r in default_rules(prepare(records))]
    assert "id:national_id" in names and "id:street_number" not in names
