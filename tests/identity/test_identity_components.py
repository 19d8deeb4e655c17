"""Connected components and the stitching invariants, checked on random graphs and random event logs."""

from __future__ import annotations

import duckdb
import networkx as nx
import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from identity_tables import events_table

from identity import StitchConfig, Stitcher, connected_components

edges_strategy = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60)
    )
)


@settings(max_examples=60, deadline=None)
@given(edges_strategy)
def test_components_match_networkx(case: tuple[int, list[tuple[int, int]]]) -> None:
    n, edges = case
    src = np.array([a for a, _ in edges], dtype=np.int64)
    dst = np.array([b for _, b in edges], dtype=np.int64)
    labels = connected_components(n, src, dst)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    ours = {frozenset(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels)}
    assert ours == {frozenset(c) for c in nx.connected_components(g)}


ID_POOLS = {"user_id": 4, "anonymous_id": 5, "device_id": 3, "email_sha256": 2, "loyalty_id": 2}
value = {t: st.sampled_from([*(f"{t[:2]}{i}" for i in range(k)), "null"]) for t, k in ID_POOLS.items()}
event_strategy = st.fixed_dictionaries({}, optional=value).filter(bool)


def stitch(table: pa.Table, config: StitchConfig) -> pa.Table:
    con = duckdb.connect()
    try:
        con.register("events", table)
        return Stitcher(config).run(con).identity_map
    finally:
        con.close()


def reference(rows: list[dict[str, str]], max_users: int) -> set[frozenset[tuple[str, str]]]:
    """The stitching rules written plainly with networkx: the oracle for the SQL/scipy implementation."""
    nodes = {(t, v) for r in rows for t, v in r.items()}
    ok = {n for n in nodes if n[1] != "null"}
    stats: dict[tuple[str, str], dict[str, list[int]]] = {}  # identifier -> user -> [events, first minute]
    for minute, r in enumerate(rows):
        if ("user_id", r.get("user_id")) in ok:
            for t, v in r.items():
                if t != "user_id" and (t, v) in ok:
                    s = stats.setdefault((t, v), {}).setdefault(r["user_id"], [0, minute])
                    s[0] += 1
    strong: dict[
        tuple[str, str], set[str]
    ] = {}  # carrier -> emails seen with it (StitchConfig.guarded_links)
    for r in rows:
        for c in ("anonymous_id", "device_id"):
            if (c, r.get(c)) in ok and ("email_sha256", r.get("email_sha256")) in ok:
                strong.setdefault((c, r[c]), set()).add(r["email_sha256"])
    for n, emails in strong.items():
        if len(emails) > max_users:  # a carrier with too many emails is shared, as with too many user_ids
            ok.discard(n)
    g = nx.Graph()
    g.add_nodes_from(nodes)
    user_of: dict[tuple[str, str], tuple[str, str]] = {}
    for n, users in stats.items():
        if len(users) > max_users or n not in ok:
            ok.discard(n)
            continue
        best = min(users, key=lambda u: (-users[u][0], users[u][1], u))
        user_of[n] = ("user_id", best)
        g.add_edge(n, ("user_id", best))
    for r in rows:
        a, d = ("anonymous_id", r.get("anonymous_id")), ("device_id", r.get("device_id"))
        if a in ok and d in ok:
            g.add_edge(a, d)
        e = ("email_sha256", r.get("email_sha256"))
        if ("user_id", r.get("user_id")) not in ok and e in ok:  # guarded: no login, one email per carrier
            for c in (a, d):
                if c in ok and len(strong[c]) == 1:
                    g.add_edge(c, e)
    for comp in list(nx.connected_components(g)):
        if sum(t == "user_id" for t, _ in comp) > 1:
            for x, y in list(g.subgraph(comp).edges):
                if x[0] != "user_id" and y[0] != "user_id" and user_of.get(x) != user_of.get(y):
                    g.remove_edge(x, y)
    return {frozenset(c) for c in nx.connected_components(g)}


@settings(max_examples=40, deadline=None)
@given(st.lists(event_strategy, min_size=3, max_size=40), st.integers(1, 4))
def test_stitching_matches_the_reference_and_keeps_its_invariants(
    rows: list[dict[str, str]], max_users: int
) -> None:
    config = StitchConfig(max_users={t: max_users for t in ID_POOLS if t != "user_id"})
    m = stitch(events_table(rows), config).to_pylist()
    keys = [(r["identifier_type"], r["identifier_value"]) for r in m]
    assert len(keys) == len(set(keys))  # one customer per identifier
    assert set(keys) == {(t, v) for row in rows for t, v in row.items()}  # every identifier mapped
    profiles: dict[str, set[tuple[str, str]]] = {}
    for k, r in zip(keys, m, strict=True):
        profiles.setdefault(r["customer_id"], set()).add(k)
    assert max(sum(t == "user_id" for t, _ in p) for p in profiles.values()) <= 1  # never two users
    assert {frozenset(p) for p in profiles.values()} == reference(rows, max_users)
