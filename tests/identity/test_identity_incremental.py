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


def test_incremental_equals_batch_when_a_record_makes_an_email_a_household(tmp_path) -> None:
    from datetime import date

    from identity_tables import records_table

    events = events_table(
        [
            {"user_id": "u_ann", "email_sha256": "family", "type": "login"},
            {"user_id": "u_bob", "email_sha256": "bob-mail", "type": "login"},
        ]
    )
    ann = {
        "record_id": "r1",
        "first_name": "Ann",
        "date_of_birth": date(1980, 1, 1),
        "email_sha256": "family",
    }
    bob = {"record_id": "r2", "first_name": "Robert", "email_sha256": "family", "phone_sha256": "bob-phone"}
    inc, full = Workspace(tmp_path / "inc"), Workspace(tmp_path / "full")
    for w in (inc, full):
        w.replace("events", events)
        w.replace("records", records_table([ann]))
        IdentityResolver(w).resolve()
    IdentityResolver(inc).resolve_incremental(new_records=records_table([bob]))
    full.replace("records", records_table([ann, bob]))
    IdentityResolver(full).resolve()
    assert state(inc) == state(full)
    assert any(g[0] == "household" for g in state(full)[1])
