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


def test_a_cluster_split_twice_gives_every_part_its_own_id(ws: Workspace) -> None:
    """u1's cluster loses its device to u2 (earlier), then its cookie to u3 (earlier): the second split's
    natural id is taken and its first split id too, so it walks further down the split chain."""
    rows = [
        {"user_id": "u1", "anonymous_id": "a1", "device_id": "d1", "type": "login", "minute": 1},
        {"user_id": "u2", "device_id": "d1", "type": "login", "minute": 0},
        {"user_id": "u3", "anonymous_id": "a1", "type": "login", "minute": 0},
    ]
    table = events_table(rows)
    for n in (1, 2, 3):
        ws.replace("events", table.slice(0, n))
        IdentityResolver(ws).resolve()
    got = {
        (r["identifier_type"], r["identifier_value"]): r["customer_id"]
        for r in ws.read("identity_map").to_pylist()
    }
    users = [got[("user_id", u)] for u in ("u1", "u2", "u3")]
    assert len(set(users)) == 3
    assert got[("device_id", "d1")] == got[("user_id", "u2")]
    assert got[("anonymous_id", "a1")] == got[("user_id", "u3")]
