"""Kept, continued per-customer state gives exactly the from-scratch engine's rows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_features_compute_live import EVENT, MINUTE, T0, TYPES, WHO

from features.compute_live import customer_features_now
from features.live_events import EVENTS_SCHEMA, concat_owned
from features.live_state import FeatureStates

#: Amounts whose running sums round differently when added in another order.
AMOUNT = st.sampled_from([None, 20.0, -5.0, 0.0, -0.0, 0.1, 0.7, 33.33, 1e9 / 3])
LIVE_EVENT = st.fixed_dictionaries(
    {
        "who": st.sampled_from(WHO),
        "minute": st.one_of(st.sampled_from([0, 1, 29, 30, 31, 24 * 60 - 1, 24 * 60]), st.integers(0, 4000)),
        "second": st.sampled_from([0, 0, 1, 17]),
        "type": st.sampled_from(TYPES),
        "category": st.sampled_from([None, "shoes", "hats", "Bags"]),
        "revenue": AMOUNT,
        "price": st.sampled_from([None, 2.5, 0.3]),
        "quantity": st.sampled_from([None, 1, 3]),
    }
)
#: One step: events appended (anywhere in time, or each just after its customer's latest: a live stream), or
#: one customer's events rewritten (an unmerge moved some away) and forgotten.
STEP = st.one_of(
    st.tuples(
        st.just("append"), st.lists(st.one_of(EVENT, LIVE_EVENT), min_size=1, max_size=8), st.booleans()
    ),
    st.tuples(st.just("rewrite"), st.sampled_from(WHO), st.integers(0, 3)),
)


def table(rows: list[dict], start: int) -> pa.Table:
    return pa.table(
        {
            "event_id": [f"e{start + i}" for i in range(len(rows))],
            "occurred_at": [T0 + timedelta(minutes=r["minute"], seconds=r["second"]) for r in rows],
            **{k: [r[k] for r in rows] for k in ("type", "category", "revenue", "price", "quantity")},
        },
        schema=EVENTS_SCHEMA,
    )


def exact(want: pd.DataFrame, got: pd.DataFrame) -> None:
    """Equal frames, floats bit for bit (assert_frame_equal alone takes -0.0 for 0.0)."""
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    for name in want.select_dtypes("float").columns:
        assert (np.signbit(want[name].to_numpy()) == np.signbit(got[name].to_numpy())).all(), name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=8), MINUTE, st.integers(0, 2**31 - 1))
def test_continued_state_equals_the_state_built_from_scratch(steps, minute: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    """After every step, at an instant that moves on: every column, bit for bit (sums in the same order)."""
    rng = np.random.default_rng(seed)
    held: dict[str, pa.Table] = {}
    states = FeatureStates()
    ids = [*WHO, "nobody"]
    n = 0
    for k, step in enumerate(steps):
        if step[0] == "append":
            _, rows, later = step
            if later:  # a live stream: minutes (and seconds) after the customer's latest event
                for r in rows:
                    if r["who"] in held:
                        latest = pd.Timestamp(held[r["who"]]["occurred_at"].to_numpy().max(), tz="UTC")
                        r["minute"] += int((latest - pd.Timestamp(T0)).total_seconds() // 60) + 1
            for who in WHO:
                mine = [r for r in rows if r["who"] == who]
                if mine:
                    part = table(mine, n)
                    n += len(mine)
                    held[who] = pa.concat_tables([held[who], part]) if who in held else part
        else:
            _, who, drop = step
            if who in held:
                t = held[who]
                keep = rng.permutation(t.num_rows)[: max(t.num_rows - drop, 0)]
                states.invalidate([who])
                if len(keep):
                    held[who] = t.take(pa.array(np.sort(keep)))
                else:
                    del held[who]
        at = pd.Timestamp(T0 + timedelta(minutes=minute + 4000 * k))
        tables = [held.get(c) for c in ids]
        body, owner = concat_owned(tables)
        exact(customer_features_now(body, owner, ids, at), states.features(ids, tables, at))


def test_a_stream_is_continued_and_late_or_rewritten_customers_are_built_whole() -> None:
    def ev(minute: int, start: int, kind: str = "purchase") -> pa.Table:
        row = {"minute": minute, "second": 0, "type": kind, "category": "hats", "revenue": 0.1, "price": None}
        return table([{**row, "quantity": None}], start)

    states = FeatureStates()
    at = pd.Timestamp(T0 + timedelta(days=400))
    a = ev(10, 0)
    states.features(["a"], [a], at)
    assert (states.built, states.continued) == (1, 0)
    a = pa.concat_tables([a, ev(20, 1)])
    states.features(["a"], [a], at)
    assert (states.built, states.continued) == (1, 1)  # later than its last instant: continued
    a = pa.concat_tables([a, ev(20, 2)])  # the same instant as its last: built whole
    states.features(["a"], [a], at)
    assert (states.built, states.continued) == (2, 1)
    states.features(["a"], [a], at)  # unchanged: nothing built
    assert (states.built, states.continued) == (2, 1)
    states.invalidate(["a"])
    got = states.features(["a"], [a.slice(1)], at)
    assert states.built == 3
    body, owner = concat_owned([a.slice(1)])
    exact(customer_features_now(body, owner, ["a"], at), got)


def test_purchase_days_count_a_day_once_when_its_purchases_arrive_in_separate_batches() -> None:
    def buy(minute: int, start: int, revenue: float = 5.0) -> pa.Table:
        row = {"minute": minute, "second": 0, "type": "purchase", "category": None, "price": None}
        return table([{**row, "revenue": revenue, "quantity": None}], start)

    states = FeatureStates()
    at = pd.Timestamp(T0 + timedelta(days=3))
    a = buy(60, 0)
    states.features(["a"], [a], at)
    seen = []
    for minute, start, revenue in (
        (300, 1, 5.0),
        (1500, 2, -5.0),
        (1600, 3, 5.0),
    ):  # same day; a return; next
        a = pa.concat_tables([a, buy(minute, start, revenue)])
        got = states.features(["a"], [a], at)
        body, owner = concat_owned([a])
        exact(customer_features_now(body, owner, ["a"], at), got)
        seen.append((int(got["purchases_total"].iloc[0]), int(got["purchase_days_total"].iloc[0])))
    assert states.continued == 3
    assert seen == [(2, 1), (2, 1), (3, 2)]


def test_the_least_recently_used_customers_are_dropped_past_the_bound() -> None:
    states = FeatureStates(max_instants=3)
    at = pd.Timestamp(T0 + timedelta(days=400))
    rows = [{"who": "a", "minute": m, "second": 0, "type": "page_view", "category": None} for m in (1, 2)]
    rows = [{**r, "revenue": None, "price": None, "quantity": None} for r in rows]
    states.features(["a"], [table(rows, 0)], at)
    states.features(["b"], [table(rows, 2)], at)
    assert len(states) == 1  # a's two instants and b's two exceed three: a goes
    states.features(["b"], [table(rows, 2)], at)
    assert states.built == 2


def test_a_continued_revenue_total_rounds_as_the_total_summed_from_the_start() -> None:
    """Amounts appended to a non-round total are summed from it in order, not summed apart and then added;
    a total of +0.0 continued by -0.0 keeps the sign the from-scratch sum gives."""
    base = {"who": "a", "second": 0, "type": "purchase", "category": None, "price": None, "quantity": None}
    states = FeatureStates()
    at = pd.Timestamp(T0 + timedelta(days=30))
    held = table([{**base, "minute": 0, "revenue": 1e9 / 3}], 0)
    states.features(["a"], [held], at)
    n = 1
    for amounts in ([0.1, 0.7], [0.1], [33.33, 0.7, 0.1]):
        rows = [{**base, "minute": n + i, "revenue": r} for i, r in enumerate(amounts)]
        held = pa.concat_tables([held, table(rows, n)])
        n += len(rows)
        got = states.features(["a"], [held], at)
        body, owner = concat_owned([held])
        exact(customer_features_now(body, owner, ["a"], at), got)
    assert states.continued == 3
    for k, later in enumerate(([-0.0], [-0.0, 0.5])):  # a +0.0 total continued by -0.0 (whole, fractional)
        held = table([{**base, "minute": 0, "revenue": 0.0}], 100 + 10 * k)
        states.features([f"z{k}"], [held], at)
        rows = [{**base, "minute": 5 + i, "revenue": r} for i, r in enumerate(later)]
        held = pa.concat_tables([held, table(rows, 101 + 10 * k)])
        between = pd.Timestamp(T0 + timedelta(minutes=5, seconds=30))  # reads the -0.0 instant's total
        got = states.features([f"z{k}"], [held], between)
        body, owner = concat_owned([held])
        exact(customer_features_now(body, owner, [f"z{k}"], between), got)


def test_event_times_come_from_the_kept_state_or_the_tables() -> None:
    rows = [{"who": "a", "minute": m, "second": 0, "type": "page_view", "category": None} for m in (1, 5)]
    rows = [{**r, "revenue": None, "price": None, "quantity": None} for r in rows]
    a, b = table(rows, 0), table(rows[:1], 2)
    states = FeatureStates()
    states.features(["a"], [a], pd.Timestamp(T0))
    owner, ts = states.event_times(["b", "a", "none"], [b, a, None])  # a kept, b read
    want = {(1, 60_000_000), (1, 300_000_000), (0, 60_000_000)}
    base = pd.Timestamp(T0).value // 1000
    assert {(int(o), int(t) - base) for o, t in zip(owner, ts, strict=True)} == want


def test_tables_taken_before_an_invalidate_are_built_whole_and_not_kept() -> None:
    """A sweep's snapshot overtaken by an unmerge must not be read as the new state plus appended rows."""
    base = {"who": "a", "second": 0, "type": "page_view", "category": None, "revenue": None}
    base = {**base, "price": None, "quantity": None}
    at = pd.Timestamp(T0 + timedelta(days=1))
    old = table([{**base, "minute": m} for m in (1, 2, 3, 50, 60)], 0)
    states = FeatureStates()
    tokens = states.generations(["a"])  # taken with `old`
    states.invalidate(["a"])  # an unmerge moved events away
    new = pa.concat_tables([old.slice(1, 2), table([{**base, "minute": 4}], 9)])
    states.features(["a"], [new], at)  # the update stores state for `new` (3 rows)
    got = states.features(["a"], [old], at, generations=tokens)
    body, owner = concat_owned([old])
    exact(customer_features_now(body, owner, ["a"], at), got)
    body, owner = concat_owned([new])
    exact(customer_features_now(body, owner, ["a"], at), states.features(["a"], [new], at))


def test_invalidation_stamps_stay_bounded_and_a_forgotten_one_never_matches_an_old_token() -> None:
    """A service invalidates customers for months: the stamps kept are capped, and forgetting one only ever
    costs a rebuild, never a state kept for tables an invalidate overtook."""
    base = {"who": "a", "second": 0, "type": "page_view", "category": None, "revenue": None}
    base = {**base, "price": None, "quantity": None}
    at = pd.Timestamp(T0 + timedelta(days=1))
    old = table([{**base, "minute": m} for m in (1, 2, 3, 50, 60)], 0)
    states = FeatureStates(max_stamps=3)
    tokens = states.generations(["a"])  # taken with `old`, before any invalidate of "a"
    states.invalidate(["a"])  # overtaken ...
    states.invalidate(["x", "y", "z"])  # ... and its stamp forgotten
    assert len(states._stamps) == 3 and "a" not in states._stamps
    new = pa.concat_tables([old.slice(1, 2), table([{**base, "minute": 4}], 9)])
    states.features(["a"], [new], at)  # state for `new` kept, under the forgotten stamp
    got = states.features(["a"], [old], at, generations=tokens)
    body, owner = concat_owned([old])
    exact(customer_features_now(body, owner, ["a"], at), got)
    body, owner = concat_owned([new])
    exact(customer_features_now(body, owner, ["a"], at), states.features(["a"], [new], at))
