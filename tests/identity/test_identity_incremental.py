"""Incremental resolution gives exactly what a full rerun gives, from the same previous state."""

from __future__ import annotations

import tempfile

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from identity_tables import events_table, random_events

from contract import Workspace
from identity import IdentityResolver


def state(ws: Workspace) -> tuple[list[tuple], list[tuple], list[tuple]]:
    m = sorted(tuple(r.values()) for r in ws.read("identity_map").to_pylist())
    g = (
        sorted(tuple(r.values()) for r in ws.read("identity_guard_log").to_pylist())
        if ws.exists("identity_guard_log")
        else []
    )
    a = (
        sorted(tuple(r.values())[:2] for r in ws.read("identity_aliases").to_pylist())
        if ws.exists("identity_aliases")
        else []
    )
    return m, g, a


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.3, 0.97))
def test_incremental_equals_batch_on_random_splits(seed: int, share: float) -> None:
    log = random_events(seed, n=300)
    first = pa.array(np.random.default_rng(seed).random(log.num_rows) < share)
    inc, full = Workspace(tempfile.mkdtemp()), Workspace(tempfile.mkdtemp())
    for w in (inc, full):
        w.replace("events", log.filter(first))
        IdentityResolver(w).resolve()
    rest = log.filter(pa.compute.invert(first))
    IdentityResolver(inc).resolve_incremental(rest)
    full.append("events", rest)
    IdentityResolver(full).resolve()
    assert state(inc) == state(full)
    # and the clusters (as sets) equal a from-scratch run on the whole log
    scratch = Workspace(tempfile.mkdtemp())
    scratch.replace("events", log)
    IdentityResolver(scratch).resolve()

    def clusters(ws: Workspace) -> set[frozenset[tuple[str, str]]]:
        out: dict[str, set[tuple[str, str]]] = {}
        for r in ws.read("identity_map").to_pylist():
            out.setdefault(r["customer_id"], set()).add((r["identifier_type"], r["identifier_value"]))
        return {frozenset(c) for c in out.values()}

    assert clusters(inc) == clusters(scratch)


def test_incremental_touches_only_linked_clusters_and_keeps_ids(ws: Workspace) -> None:
    ws.replace("events", events_table([{"anonymous_id": "a1"}, {"anonymous_id": "a2", "device_id": "d2"}]))
    r = IdentityResolver(ws)
    r.resolve()
    before = {
        (x["identifier_type"], x["identifier_value"]): x["customer_id"]
        for x in ws.read("identity_map").to_pylist()
    }
    new = events_table([{"anonymous_id": "a2", "user_id": "u2", "type": "login", "minute": 99}])
    r.resolve_incremental(new.set_column(0, "event_id", pa.array(["n1"])))
    after = {
        (x["identifier_type"], x["identifier_value"]): x["customer_id"]
        for x in ws.read("identity_map").to_pylist()
    }
    assert {k: after[k] for k in before} == before  # clusters only grew: no id changed
    assert after[("user_id", "u2")] == before[("anonymous_id", "a2")]
    assert ws.count("events") == 3


def test_incremental_on_an_unresolved_workspace_runs_a_full_resolve(ws: Workspace) -> None:
    report = IdentityResolver(ws).resolve_incremental(events_table([{"anonymous_id": "a1"}]))
    assert report.customers == 1 and ws.exists("identity_map")
