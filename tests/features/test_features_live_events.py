"""HeldEvents: the live path's per-customer event tables; merges and unmerges never lose or duplicate an event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.errors import ContractError, NotFoundError
from features.live_events import HeldEvents, concat_owned, final_survivors

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CUSTOMERS = ("c0", "c1", "c2", "c3")


def events(ids: list[str], minutes: list[int] | None = None) -> pa.Table:
    minutes = minutes or list(range(len(ids)))
    return pa.table(
        {
            "event_id": pa.array(ids, pa.string()),
            "occurred_at": pa.array(
                [T0 + timedelta(minutes=m) for m in minutes], pa.timestamp("us", tz="UTC")
            ),
            "type": pa.array(["page_view"] * len(ids), pa.string()),
        }
    )


def held_ids(held: HeldEvents) -> dict[str, list[str]]:
    return {c: sorted(held.of(c)["event_id"].to_pylist()) for c in held}


def test_add_groups_by_customer_and_skips_an_event_already_held() -> None:
    held = HeldEvents()
    held.add(events(["e1", "e2", "e3"]), pa.array(["a", "b", "a"]))
    held.add(events(["e1", "e4"]), pa.array(["a", "a"]))  # e1 replayed
    assert held_ids(held) == {"a": ["e1", "e3", "e4"], "b": ["e2"]}
    assert held.rows == 4 and len(held) == 2
    assert held.of("nobody").num_rows == 0 and held.get("nobody") is None
    # property columns absent from the input are nulls of the held schema
    assert held.of("a").column("revenue").null_count == 3


def test_a_caller_that_guarantees_unique_events_skips_the_replay_check() -> None:
    held = HeldEvents()
    held.add(events(["e1", "e2"]), pa.array(["a", "a"]), unique=True)
    held.add(events(["e3"]), pa.array(["a"]), unique=True)
    assert held_ids(held) == {"a": ["e1", "e2", "e3"]}


def test_history_needs_customer_ids_and_skips_rows_without_one() -> None:
    with pytest.raises(ContractError, match="customer_id"):
        HeldEvents(events(["e1"]))
    history = events(["e1", "e2"]).append_column("customer_id", pa.array(["a", None], pa.string()))
    assert held_ids(HeldEvents(history)) == {"a": ["e1"]}


def test_fold_follows_merge_chains_and_move_names_missing_events() -> None:
    assert final_survivors({"a": "b", "b": "c", "d": "d"}) == {"a": "c", "b": "c"}
    held = HeldEvents()
    held.add(events(["e1", "e2", "e3"]), pa.array(["a", "b", "c"]))
    assert held.fold(final_survivors({"a": "b", "b": "c"})) == {"a", "b", "c"}
    assert held_ids(held) == {"c": ["e1", "e2", "e3"]}
    with pytest.raises(NotFoundError, match="e9"):
        held.move({"e1": "a", "e9": "a"})
    assert held_ids(held) == {"c": ["e1", "e2", "e3"]}  # nothing moved
    assert held.move({"e1": "a", "e2": "a"}) == ["c"]
    assert held_ids(held) == {"a": ["e1", "e2"], "c": ["e3"]}
    body, owner = concat_owned([held.get(c) for c in ("c", "nobody", "a")])
    assert body["event_id"].to_pylist()[:1] == ["e3"] and owner.tolist() == [0, 2, 2]


@st.composite
def operations(draw: st.DrawFn) -> list[tuple]:
    ops: list[tuple] = []
    next_id = 0
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(("add", "fold", "move")))
        if kind == "add":
            n = draw(st.integers(1, 4))
            ids = [f"e{draw(st.integers(0, next_id + n))}" for _ in range(n)]  # replays included
            next_id += n
            ops.append(("add", ids, [draw(st.sampled_from(CUSTOMERS)) for _ in ids]))
        elif kind == "fold":
            a, b = draw(st.sampled_from(CUSTOMERS)), draw(st.sampled_from(CUSTOMERS))
            ops.append(("fold", {a: b}))
        else:
            ops.append(("move", draw(st.sampled_from(CUSTOMERS))))
    return ops


@settings(max_examples=150, deadline=None)
@given(operations())
def test_merges_and_unmerges_never_lose_or_duplicate_an_event(ops: list[tuple]) -> None:
    held = HeldEvents()
    seen: set[str] = set()
    for op in ops:
        if op[0] == "add":
            # one batch names each event once (the live identity dedupes a batch before it gets here)
            first = dict(zip(op[1], op[2], strict=True))
            fresh = {e: c for e, c in first.items() if e not in seen}
            if fresh:
                held.add(events(list(fresh)), pa.array(list(fresh.values())))
            seen |= set(first)
        elif op[0] == "fold":
            held.fold(final_survivors(op[1]))
        else:
            owner = next(iter(held), None)
            if owner is not None:
                some = held.of(owner)["event_id"].to_pylist()[:1]
                held.move({e: op[1] for e in some})
        all_ids = [e for c in held for e in held.of(c)["event_id"].to_pylist()]
        assert sorted(all_ids) == sorted(seen)  # every event once, whatever moved
        assert all(held.of(c).num_rows for c in held)  # no empty tables kept
