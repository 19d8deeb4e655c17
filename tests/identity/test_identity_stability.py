"""Customer ids are a function of the data: stable across re-runs and input order."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pyarrow as pa
from identity_tables import events_table, random_events

from contract import Workspace
from identity import IdentityResolver, StitchConfig, Stitcher


def stitch(table: pa.Table) -> dict[tuple[str, str], str]:
    con = duckdb.connect()
    con.register("events", table)
    m = Stitcher(StitchConfig()).run(con).identity_map
    con.close()
    return {(r["identifier_type"], r["identifier_value"]): r["customer_id"] for r in m.to_pylist()}


def test_shuffled_input_gives_the_same_ids() -> None:
    table = random_events(1)
    perm = np.random.default_rng(2).permutation(table.num_rows)
    assert stitch(table) == stitch(table.take(pa.array(perm)))


def test_rerun_on_a_workspace_gives_the_same_map(ws: Workspace) -> None:
    ws.replace("events", random_events(3))
    IdentityResolver(ws).resolve()
    first = ws.read("identity_map").to_pylist()
    IdentityResolver(ws).resolve()
    assert ws.read("identity_map").to_pylist() == first


def test_customer_id_comes_from_the_oldest_identifier() -> None:
    table = events_table(
        [
            {"anonymous_id": "late", "minute": 50},
            {"anonymous_id": "early", "minute": 8},
            {"anonymous_id": "early", "device_id": "dev", "minute": 10},
            {"anonymous_id": "late", "device_id": "dev", "user_id": "u1", "type": "login", "minute": 60},
            {"anonymous_id": "tie1", "device_id": "tie-dev", "minute": 5},  # same time: device_id outranks
        ]
    )
    ids = stitch(table)
    expected = "c_" + hashlib.sha256(b"anonymous_id:early").hexdigest()[:16]
    assert {ids[("user_id", "u1")], ids[("anonymous_id", "late")]} == {expected}
    assert ids[("anonymous_id", "tie1")] == "c_" + hashlib.sha256(b"device_id:tie-dev").hexdigest()[:16]


def test_adding_events_keeps_an_existing_customer_id() -> None:
    base = random_events(4)
    more = events_table([{"anonymous_id": "brand-new", "minute": 99_999}])
    before, after = stitch(base), stitch(pa.concat_tables([base, more]))
    assert {k: after[k] for k in before} == before
