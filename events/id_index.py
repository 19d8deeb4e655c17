"""The event log's index of stored event ids: a log-structured set of 128-bit hashes.

Idempotency needs every stored event_id at hand on the commit path, for the life of the service. A set of
Python strings costs ~100 bytes per id and stalls while it resizes; here an id costs 16 bytes (two 64-bit
hashes under different keys, so a false "already stored" needs a 128-bit collision) once it is in a sorted
*run*. New ids are kept exactly in a small recent set, with their hashes, until `RUN_IDS` of them have
gathered; those are then sorted into a run (a few ms). Runs are merged tiered, as in an LSM tree: the newest
runs merge once the run before them is at most twice their total size, so there are about log2(n / RUN_IDS)
runs and a lookup is a binary search in each. Merges run on a background thread (their concatenation and
stable sort of presorted runs release the interpreter), so the commit path never waits for a merge of
everything: before this design the log folded all recent ids into one sorted array on its writer thread,
which at 2 million ids held every acknowledgement for ~0.4 s (`benchmarks/event_ids.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import pandas as pd

#: Ids gathered (exactly, in a set) before they are hashed and sorted into a run.
RUN_IDS = 65_536
_KEYS = ("cxi-event-id-k1!", "cxi-event-id-k2!")

Run = tuple[np.ndarray, np.ndarray]  # (h1 sorted, h2 in h1's order), both uint64


def hashes(ids: np.ndarray) -> Run:
    """The two 64-bit hashes of an object array of ids (vectorised)."""
    h1, h2 = (pd.util.hash_array(ids, hash_key=k, categorize=False) for k in _KEYS)
    return h1, h2


def _sorted_run(h1: np.ndarray, h2: np.ndarray) -> Run:
    order = np.argsort(h1, kind="stable")
    return h1[order], h2[order]


def _merge(runs: list[Run]) -> Run:
    """One run holding every hash of ``runs``; the stable sort finds the presorted runs and merges them."""
    if len(runs) == 1:
        return runs[0]
    h1 = np.concatenate([r[0] for r in runs])
    order = np.argsort(h1, kind="stable")
    h1 = h1[order]
    return h1, np.concatenate([r[1] for r in runs])[order]


def _tail_to_merge(sizes: list[int]) -> int | None:
    """Start of the newest runs to merge into one: extend the tail backwards while the run before it is at
    most twice the tail's total (so each run ends up more than twice the next one); None when nothing is."""
    k = len(sizes) - 1
    if k < 1:
        return None
    total = sizes[k]
    while k > 0 and sizes[k - 1] <= 2 * total:
        k -= 1
        total += sizes[k]
    return k if k < len(sizes) - 1 else None


class IdIndex:
    """Stored event ids (see the module docstring). `add` and `contains` are called from one thread (the log's
    writer, or its opener before the writer starts); merges run on their own thread and only ever replace
    runs by an equal merged one, so a lookup taken from either list of runs gives the same answer."""

    def __init__(self, run_ids: int = RUN_IDS, *, background: bool = True) -> None:
        self.run_ids = run_ids
        self.background = background
        self._runs: list[Run] = []  # oldest (largest) first; the list is replaced, never changed in place
        self._recent: set[str] = set()
        self._pending: list[Run] = []  # hashes of the recent ids, in the order they were added
        self._pending_n = 0
        self._lock = threading.Lock()  # guards replacing ``_runs`` and starting the merge thread
        self._merger: threading.Thread | None = None

    def __len__(self) -> int:
        return sum(len(r[0]) for r in self._runs) + len(self._recent)

    @property
    def runs(self) -> int:
        return len(self._runs)

    def add_many(self, ids: np.ndarray) -> None:
        """Add an object array of ids as one run (the log's stored ids, at open)."""
        if len(ids):
            self._append(_sorted_run(*hashes(ids)))

    def add(self, ids: Iterable[str], hashed: Run | None = None) -> None:
        """Add ids not yet in the index (the log adds each commit's new ids); ``hashed``: their `hashes`, when
        the caller has them already (from its `contains`)."""
        fresh = list(ids)
        if not fresh:
            return
        self._recent.update(fresh)
        self._pending.append(hashed if hashed is not None else hashes(np.array(fresh, dtype=object)))
        self._pending_n += len(fresh)
        if self._pending_n >= self.run_ids:
            h1 = np.concatenate([p[0] for p in self._pending])
            h2 = np.concatenate([p[1] for p in self._pending])
            self._append(_sorted_run(h1, h2))
            self._recent, self._pending, self._pending_n = set(), [], 0

    def contains(self, ids: list[str], hashed: Run | None = None) -> np.ndarray:
        """Whether each id is in the index; ``hashed``: their `hashes`, when the caller has them already."""
        out = np.fromiter((i in self._recent for i in ids), dtype=bool, count=len(ids))
        runs = self._runs
        if not runs or not ids:
            return out
        q1, q2 = hashed if hashed is not None else hashes(np.array(ids, dtype=object))
        for h1, h2 in runs:
            lo = np.searchsorted(h1, q1, side="left")
            hi = np.searchsorted(h1, q1, side="right")
            first = np.minimum(lo, len(h1) - 1)
            out |= (lo < hi) & (h2[first] == q2)
            for i in np.flatnonzero((hi - lo > 1) & ~out):  # equal first hashes: look at the whole stretch
                out[i] = bool((h2[lo[i] : hi[i]] == q2[i]).any())
        return out

    def wait_merged(self) -> None:
        """Wait for the background merges (tests and benchmarks)."""
        while (merger := self._merger) is not None:
            merger.join()

    def _append(self, run: Run) -> None:
        with self._lock:
            self._runs = [*self._runs, run]
            if not self.background:
                while (k := _tail_to_merge([len(r[0]) for r in self._runs])) is not None:
                    self._runs = [*self._runs[:k], _merge(self._runs[k:])]
            elif self._merger is None:
                self._merger = threading.Thread(target=self._merge_loop, name="cxi-eventlog-ids", daemon=True)
                self._merger.start()

    def _merge_loop(self) -> None:
        while True:
            with self._lock:
                runs = self._runs
                k = _tail_to_merge([len(r[0]) for r in runs])
                if k is None:
                    self._merger = None
                    return
            try:
                merged = _merge(runs[k:])
            except BaseException:  # (memory) the runs stay correct; the next new run retries the merge
                with self._lock:
                    self._merger = None
                raise
            with (
                self._lock
            ):  # runs before k are unchanged (only this thread merges); newer ones were appended
                self._runs = [*self._runs[:k], merged, *self._runs[len(runs) :]]
