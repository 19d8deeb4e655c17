"""Each live customer's feature state, kept between calls and continued with the events appended since.

The NumPy engine (`features.compute_live`) rolls a customer's events up into per-instant state (running
totals, latest instants, session starts) and then reads it at `now`. Building that state is the part that
grows with the customer's history, yet a live event only appends to it: `FeatureStates` keeps every customer's
state from the last call and builds state only for the events appended since (`_Instants.build` with the
customer's last instant as `Previous`), so a micro-batch costs O(its events), not O(the touched customers'
histories). Reading the state at `now` (`compute_live.features_at`) is the same code either way.

A customer is built from all its events instead when the appended events are not all later than its last
instant (an out-of-order or same-instant event, or a merge appending an absorbed profile's older events), and
when its events changed otherwise (`invalidate`: an unmerge moved some away, a profile was absorbed). The result
equals the from-scratch engine exactly (`tests/features/test_features_live_state.py`, a property over random
append sequences).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.compute_live import FLOAT_STATE, ROW, EventArrays, Previous, _Instants, features_at
from features.expr import Coded
from features.live_events import concat_owned


@dataclass(frozen=True)
class _Part:
    """A run of one customer's instants (ts, F columns, latest category) and of its events (ts, category)."""

    ts: np.ndarray
    F: np.ndarray
    cat: np.ndarray
    ev_ts: np.ndarray
    ev_cat: np.ndarray


@dataclass(frozen=True)
class _Entry:
    rows: int  # held events covered, rows without an instant included
    parts: tuple[_Part, ...]

    @property
    def instants(self) -> int:
        return sum(len(p.ts) for p in self.parts)


_MAX_PARTS = 8  # parts per customer before they are joined into one
#: Instants kept by default (`Settings.live_state_max_instants` in the service).
MAX_INSTANTS = 500_000
#: Invalidation stamps kept (the oldest are forgotten beyond it; see `FeatureStates.invalidate`).
MAX_STAMPS = 100_000


class FeatureStates:
    """Per-customer engine state keyed by customer id; see the module docstring.

    `features(ids, tables, at)` takes each customer's held events table (None: no events); a table with more
    rows than the state covers is taken as the covered rows plus appended ones, so whoever changes a held table
    in any other way must `invalidate` that customer. Thread-safe: state is replaced, never mutated; tables
    taken with `generations` tokens that an `invalidate` overtook are built whole and their state is not
    kept. At most
    `max_instants` instants are kept, the least recently used customers dropped first (built again when
    next asked)."""

    def __init__(self, max_instants: int = MAX_INSTANTS, max_stamps: int = MAX_STAMPS) -> None:
        self.max_instants = max_instants
        self.max_stamps = max_stamps
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._instants = 0
        # customer -> the clock at their last invalidate, oldest first; older stamps are forgotten, and read
        # as the newest forgotten one (an upper bound); a token is the clock when the tables were taken
        self._stamps: OrderedDict[str, int] = OrderedDict()
        self._clock = 0
        self._forgotten = 0
        self._codes: dict[str, int] = {}  # category -> code, one numbering for every customer
        self._lock = threading.Lock()
        # customers built from all their events / continued from their kept state: counters for tests and
        # benchmarks, updated outside the lock (concurrent calls may lose a count)
        self.built = 0
        self.continued = 0

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self, customers: Iterable[str]) -> None:
        """Forget these customers' state: their held events changed other than by appending.

        Each invalidate stamps the customer with the next value of one clock; state is used only for tables
        taken (token) at or after the customer's stamp. Only the newest `max_stamps` stamps are kept: a
        forgotten one reads as the newest forgotten stamp, never below the real one, so forgetting costs at
        most a rebuild, never state kept for tables an invalidate overtook."""
        with self._lock:
            for c in customers:
                self._clock += 1
                self._stamps.pop(c, None)
                self._stamps[c] = self._clock
                self._drop(c)
            while len(self._stamps) > self.max_stamps:
                _, stamp = self._stamps.popitem(last=False)
                self._forgotten = max(self._forgotten, stamp)

    def _current(self, customer: str, token: int) -> bool:
        """Whether no invalidate of `customer` came after `token` was taken (under the lock)."""
        return self._stamps.get(customer, self._forgotten) <= token

    def generations(self, ids: Sequence[str]) -> list[int]:
        """Tokens to take with the tables (under the lock that `invalidate` is called under) when `features`
        runs later: a state built from tables that an `invalidate` overtook is then not kept."""
        with self._lock:
            return [self._clock] * len(ids)

    def features(
        self,
        ids: Sequence[str],
        tables: Sequence[pa.Table | None],
        at: pd.Timestamp,
        *,
        live: bool = True,
        generations: list[int] | None = None,
    ) -> pd.DataFrame:
        """`compute_live.customer_features_now` for `ids` (tables[i]: ids[i]'s held events) at `at`;
        `generations` as taken with the tables (default: now)."""
        with self._lock:
            if generations is None:
                generations = [self._clock] * len(ids)
            # state kept after the tables were taken (an invalidate since) does not describe them: unused
            entries = [
                self._entries.get(c) if self._current(c, g) else None
                for c, g in zip(ids, generations, strict=True)
            ]
        n = len(ids)
        append: list[int] = []  # owners whose appended rows continue their state
        build: list[int] = []  # owners built from all their events
        for i, (table, entry) in enumerate(zip(tables, entries, strict=True)):
            rows = 0 if table is None else table.num_rows
            if rows == 0 or (entry is not None and entry.rows == rows):
                continue
            (append if entry is not None and entry.rows < rows else build).append(i)
        new: dict[int, list[_Part]] = {}
        if append:
            prev = self._previous(n, {i: entries[i] for i in append})
            arrays = _arrays([tables[i].slice(entries[i].rows) for i in append], append)  # type: ignore[union-attr]
            # continuing needs every appended instant after the customer's last one; else build it whole
            first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(first, arrays.owner, arrays.ts)
            late = first.astype(np.float64) <= prev.F[ROW["ts"]]
            if late.any():
                build.extend(i for i in append if late[i])
                arrays = arrays.subset(~late[arrays.owner])
            new.update(self._parts(arrays, prev))
        if build:
            new.update(self._parts(_arrays([tables[i] for i in build], build), None))  # type: ignore[misc]
        states: list[tuple[int, _Part]] = []
        fresh: dict[str, _Entry] = {}
        rebuilt, changed = set(build), {*append, *build}
        for i, (c, table, entry) in enumerate(zip(ids, tables, entries, strict=True)):
            if table is None or table.num_rows == 0:
                continue
            if i in changed:
                kept = () if (i in rebuilt or entry is None) else entry.parts
                entry = _Entry(table.num_rows, _joined((*kept, *new.get(i, ()))))
                fresh[c] = entry
            assert entry is not None
            states.extend((i, p) for p in entry.parts)
        self.built += len(build)
        self.continued += len(append) - len(rebuilt.intersection(append))
        self._keep_fresh(ids, generations, fresh)
        inst = _Instants.stack([(i, p.ts, p.F, p.cat) for i, p in states])
        ev_owner = np.repeat(
            np.fromiter((i for i, _ in states), np.int64, len(states)), [len(p.ev_ts) for _, p in states]
        )
        ev_ts = np.concatenate([p.ev_ts for _, p in states]) if states else np.zeros(0, np.int64)
        ev_cat = np.concatenate([p.ev_cat for _, p in states]) if states else np.zeros(0, np.int64)
        return features_at(inst, ev_owner, ev_ts, ev_cat, ids, at, live=live)

    def event_times(
        self, ids: Sequence[str], tables: Sequence[pa.Table | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(owner index, instant µs) of the customers' events: from their kept state where it covers
        `tables` (what `features` just computed), else read from the tables."""
        with self._lock:
            entries = [self._entries.get(c) for c in ids]
        kept: list[tuple[int, np.ndarray]] = []
        missing: list[int] = []
        for i, (table, entry) in enumerate(zip(tables, entries, strict=True)):
            if table is None or table.num_rows == 0:
                continue
            if entry is None or entry.rows != table.num_rows:
                missing.append(i)
            else:
                kept.extend((i, p.ev_ts) for p in entry.parts)
        owner = [np.repeat(np.asarray([i for i, _ in kept], np.int64), [len(t) for _, t in kept])]
        ts = [t for _, t in kept]
        if missing:
            read = _arrays([tables[i] for i in missing], missing)  # type: ignore[misc]
            owner.append(read.owner)
            ts.append(read.ts)
        return np.concatenate(owner), np.concatenate([np.zeros(0, np.int64), *ts])

    # --- helpers ---
    def _previous(self, n: int, entries: dict[int, _Entry]) -> Previous:
        F = np.full((len(FLOAT_STATE), n), np.nan)
        cat = np.full(n, None, dtype=object)
        for i, entry in entries.items():
            last = next((p for p in reversed(entry.parts) if len(p.ts)), None)
            if last is not None:
                F[:, i] = last.F[:, -1]
                cat[i] = last.cat[-1]
        return Previous(F, cat)

    def _parts(self, arrays: EventArrays, prev: Previous | None) -> dict[int, list[_Part]]:
        """The state of `arrays`' events as one part per owner (continuing `prev`)."""
        if not len(arrays.ts):
            return {}
        inst = _Instants.build(arrays, prev)
        codes = self._global(arrays.category)
        order = np.argsort(arrays.owner, kind="stable")
        ev_owner, ev_ts, ev_cat = arrays.owner[order], arrays.ts[order], codes[order]
        parts = inst.parts()
        owners = np.asarray([owner for owner, _ in parts], dtype=np.int64)
        bounds = np.searchsorted(ev_owner, owners, "left")
        ends = np.searchsorted(ev_owner, owners, "right")
        out: dict[int, list[_Part]] = {}
        for (owner, s), lo, hi in zip(parts, bounds.tolist(), ends.tolist(), strict=True):
            # copies: a view would keep the whole batch's arrays alive for as long as one customer is kept
            out[owner] = [
                _Part(
                    inst.ts[s].copy(),
                    inst.F[:, s].copy(),
                    inst.cat[s].copy(),
                    ev_ts[lo:hi].copy(),
                    ev_cat[lo:hi].copy(),
                )
            ]
        return out

    def _global(self, category: Coded) -> np.ndarray:
        with self._lock:
            mapping = [self._codes.setdefault(v, len(self._codes)) for v in category.values.tolist()]
        return np.append(np.asarray(mapping, dtype=np.int64), -1)[category.codes]

    def _keep_fresh(self, ids: Sequence[str], generations: list[int], fresh: dict[str, _Entry]) -> None:
        with self._lock:
            for c, g in zip(ids, generations, strict=True):
                entry = fresh.get(c)
                if entry is not None and self._current(c, g):
                    self._drop(c)
                    self._entries[c] = entry
                    self._instants += entry.instants
                elif c in self._entries:
                    self._entries.move_to_end(c)
            while self._instants > self.max_instants and self._entries:
                self._drop(next(iter(self._entries)))

    def _drop(self, customer: str) -> None:
        old = self._entries.pop(customer, None)
        if old is not None:
            self._instants -= old.instants


def _arrays(tables: list[pa.Table], owners: list[int]) -> EventArrays:
    """The tables' events as arrays, tables[k]'s rows owned by owners[k]."""
    body, pos = concat_owned(list(tables))
    return EventArrays.from_table(body, np.asarray(owners, dtype=np.int64)[pos])


def _joined(parts: tuple[_Part, ...]) -> tuple[_Part, ...]:
    """The parts, joined into one when there are too many (a customer's state stays a few arrays)."""
    if len(parts) <= _MAX_PARTS:
        return parts
    return (
        _Part(
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.F for p in parts], axis=1),
            np.concatenate([p.cat for p in parts]),
            np.concatenate([p.ev_ts for p in parts]),
            np.concatenate([p.ev_cat for p in parts]),
        ),
    )
