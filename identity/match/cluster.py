"""Clustering of scored pairs under constraints, and stable customer ids.

Records sharing a constraint id (user_id) are always together (must-link); records with two different
constraint ids are never together (cannot-link). Connected components over the pairs at or above the
threshold are taken vectorised (`components`: numpy hooking and pointer jumping, so linking imports
neither scipy nor the stitcher); only components that would hold two constraint ids are redone, with a
union-find over their edges by descending probability that refuses any union joining two ids, so the
weakest links are the ones dropped. A cluster's customer id is
``"c_" + sha256("record:<source>:<record_id>")[:16]`` of its first record in (source, record_id) order: the
same data gives the same ids whatever the input order, as the stitcher's ids do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Clusters:
    labels: np.ndarray  # cluster per record (0..k-1)
    linked: np.ndarray  # bool per pair: the pair is inside one final cluster and at/above the threshold
    refused: int  # pairs at/above the threshold the cannot-link constraint kept apart


def components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Connected-component label per node (0..k-1, in order of each component's smallest node) of the
    undirected graph on ``n`` nodes given by edge arrays: hook every root onto the smallest root it shares an
    edge with, then jump pointers until each node points at its root; repeat until no edge joins two roots."""
    parent = np.arange(n, dtype=np.int64)
    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    while len(src):
        ps, pd_ = parent[src], parent[dst]
        cross = ps != pd_
        if not cross.any():
            break
        src, dst, ps, pd_ = src[cross], dst[cross], ps[cross], pd_[cross]
        np.minimum.at(parent, np.maximum(ps, pd_), np.minimum(ps, pd_))
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
    return pd.factorize(parent)[0].astype(np.int64)


def _must_link(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges tying each record of a group to the group's first record."""
    idx = np.flatnonzero(group >= 0)
    if len(idx) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    first = pd.Series(idx).groupby(group[idx]).transform("min").to_numpy()
    keep = first != idx
    return first[keep], idx[keep]


def _resolve_conflicts(
    nodes: np.ndarray, src: np.ndarray, dst: np.ndarray, prob: np.ndarray, group: np.ndarray
) -> dict[int, int]:
    """Union-find over one set of conflicted components: strongest edges first, no two groups joined."""
    parent = {int(v): int(v) for v in nodes}
    owner = {int(v): int(group[v]) for v in nodes}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k in np.argsort(-prob, kind="stable"):
        a, b = find(int(src[k])), find(int(dst[k]))
        if a == b:
            continue
        ga, gb = owner[a], owner[b]
        if ga >= 0 and gb >= 0 and ga != gb:
            continue
        if b < a:
            a, b = b, a
        parent[b] = a
        owner[a] = ga if ga >= 0 else gb
    return {v: find(v) for v in parent}


def cluster_pairs(
    n: int, i: np.ndarray, j: np.ndarray, prob: np.ndarray, threshold: float, group: np.ndarray
) -> Clusters:
    """Cluster ``n`` records from pairs (i, j, prob); ``group``: constraint id code per record (-1 none)."""
    keep = prob >= threshold
    mi, mj = _must_link(group)
    src = np.concatenate([mi, i[keep]])
    dst = np.concatenate([mj, j[keep]])
    p = np.concatenate([np.full(len(mi), 2.0), prob[keep]])  # must-link edges first
    labels = components(n, src, dst)
    has = group >= 0
    comp_groups = pd.DataFrame({"c": labels[has], "g": group[has]}).drop_duplicates()["c"].value_counts()
    bad = comp_groups.index[comp_groups.to_numpy() > 1].to_numpy()
    refused = 0
    if len(bad):
        in_bad = np.isin(labels, bad)
        e = np.flatnonzero(in_bad[src])
        roots = _resolve_conflicts(np.flatnonzero(in_bad), src[e], dst[e], p[e], group)
        nodes = np.fromiter(roots.keys(), dtype=np.int64, count=len(roots))
        # relabel: fresh labels for the split components, then compact
        new = labels.copy()
        new[nodes] = labels.max() + 1 + np.fromiter(roots.values(), dtype=np.int64, count=len(roots))
        labels = pd.factorize(new)[0].astype(np.int64)
    linked = keep & (labels[i] == labels[j])
    refused = int((keep & ~linked).sum())
    return Clusters(labels, linked, refused)


def customer_ids(source: np.ndarray, record_id: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Customer id per record from its cluster's first record (rows must be in (source, record_id) order)."""
    n = len(labels)
    if n == 0:
        return np.empty(0, dtype=object)
    first_row = pd.Series(np.arange(n)).groupby(labels).transform("min").to_numpy()
    anchors, inverse = np.unique(first_row, return_inverse=True)
    ids = np.array(
        [
            "c_" + hashlib.sha256(f"record:{source[a]}:{record_id[a]}".encode()).hexdigest()[:16]
            for a in anchors
        ],
        dtype=object,
    )
    return ids[inverse]
