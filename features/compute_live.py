"""The feature definition's NumPy engine: `features.spec` for the customers an event touched, in milliseconds.

The live path recomputes the customers an event touched. DuckDB runs the batch statement (`features.compute`)
in ~30 ms whatever the input size (binding, optimising and planning a statement of a dozen joins and ~90
formulas), which alone would spend the whole event-to-score budget. This engine builds the same state with
array operations over the touched customers' events (sorted by customer and instant) and evaluates the very
same `features.expr` formulas the SQL renders, so the two agree by construction of the formulas and, for the
state, by a property test over random logs (`tests/features/test_features_compute_live.py`).

The state, as the SQL builds it: events rolled up per (customer, instant) (counters summed, `PER_INSTANT` ones
maxed, the greatest category of the instant), flags for the first instant of a session and of a UTC day,
running totals and running latest-instants per customer, then read *as of* an instant (the last instant at or
before it; strictly before for "today") at as_of, at each window start, 30 minutes back, the day's start, the
last purchase and the cart window's start; distinct categories from (customer, category, day) spans.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.expr import Coded, Fn
from features.spec import (
    COUNTERS,
    LAST_OF,
    LIVE,
    OUTPUTS,
    PAID,
    PER_INSTANT,
    RUNNING,
    SESSION_GAP_MINUTES,
    WINDOW_DAYS,
    output_kind,
)

_US = 1_000_000
_DAY_US = 86_400 * _US


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (nulls as 0: callers drop them first)."""
    us = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(us.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _coded(column: pa.ChunkedArray | pa.Array) -> Coded:
    """A text column dictionary-encoded by Arrow: per-row work stays in C, text is compared per value."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(array)
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    return Coded(codes, np.asarray(encoded.dictionary.to_pylist(), dtype=object))


def _rows(value: np.ndarray | Coded, order: np.ndarray) -> np.ndarray | Coded:
    return Coded(value.codes[order], value.values) if isinstance(value, Coded) else value[order]


def _asof(
    owner: np.ndarray, ts: np.ndarray, q_owner: np.ndarray, q_ts: np.ndarray, strict: bool = False
) -> np.ndarray:
    """For each query (owner, instant): the index of its owner's last instant at or before it (strictly before
    with `strict`), -1 when none; `ts` sorted within each owner, NaN queries find none. An ASOF join."""
    known = ~np.isnan(q_ts)
    q = np.where(known, q_ts, 0).astype(np.int64)
    n = len(owner)
    # instants before queries at equal times (at-or-before), queries first when strict
    kind = np.concatenate([np.full(n, 1 if strict else 0), np.full(len(q), 0 if strict else 1)])
    all_owner = np.concatenate([owner, q_owner])
    all_ts = np.concatenate([ts, q])
    order = np.lexsort((kind, all_ts, all_owner))
    is_inst = order < n
    last = np.maximum.accumulate(np.where(is_inst, order, -1))
    found = np.empty(len(q), dtype=np.int64)
    found[order[~is_inst] - n] = last[~is_inst]
    ok = known & (found >= 0)
    ok[ok] = owner[found[ok]] == q_owner[ok]
    return np.where(ok, found, -1)


def _take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx], NULL (NaN / None) where idx is -1."""
    out = np.full(len(idx), None, dtype=object) if values.dtype == object else np.full(len(idx), np.nan)
    hit = idx >= 0
    out[hit] = values[idx[hit]]
    return out


def _owner_time_key(owner: np.ndarray, ts: np.ndarray, pad: int = 0) -> tuple[np.ndarray | None, int, int]:
    """(customer, instant) as one int64, ordered as the pair: owner * span + (ts - lo), with `pad` spare
    offsets past the latest instant; (None, lo, span) when customers x span would overflow it."""
    lo = int(ts.min())
    span = int(ts.max()) - lo + 1 + pad
    if (int(owner.max()) + 1) * span >= 2**62:
        return None, lo, span
    return owner * span + (ts - lo), lo, span


def _by_owner_and_time(owner: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Row order by (customer, instant), stable. Events come grouped by customer, mostly in time order, so a
    stable sort of one int64 key runs near linear; a lexsort when the key would overflow."""
    if not len(ts):
        return np.zeros(0, dtype=np.int64)
    key, _, _ = _owner_time_key(owner, ts)
    return np.lexsort((ts, owner)) if key is None else np.argsort(key, kind="stable")


#: The per-instant state columns held as float64 rows of `_Instants.F` (instants as float µs; NaN: none).
FLOAT_STATE: tuple[str, ...] = (
    *(f"c_{name}" for name in RUNNING),
    "ts",
    "last_purchase_ts",
    "first_purchase_ts",
    *(f"last_{k}_ts" for k in LAST_OF),
    "session_start_ts",
    "first_ts",
)
ROW = {name: i for i, name in enumerate(FLOAT_STATE)}


@dataclass
class EventArrays:
    """The events' columns the state needs, as arrays: owner (index of the customer), instant (µs), the
    evaluation environment of the counters and the category codes; rows without an instant are dropped."""

    owner: np.ndarray
    ts: np.ndarray
    env: dict[str, Any]
    category: Coded

    @classmethod
    def from_table(cls, events: pa.Table, owner: np.ndarray) -> EventArrays:
        owner = np.asarray(owner, dtype=np.int64)
        stamp = events.column("occurred_at")
        if stamp.null_count:
            keep = np.asarray(stamp.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            events, owner = events.filter(pa.array(keep)), owner[keep]
            stamp = events.column("occurred_at")
        qty = _floats(events.column("quantity"))
        price = _floats(events.column("price"))
        revenue = _floats(events.column("revenue"))
        amount = np.where(np.isnan(revenue), price * np.where(np.isnan(qty), 1.0, qty), revenue)
        # -0.0 -> 0.0: else a sum of only -0.0 keeps its sign or not with the events summed beside it
        amount += 0.0
        env = {"e.type": _coded(events.column("type")), "e.amount": amount, "e.quantity": qty}
        return cls(owner, _micros(stamp), env, _coded(events.column("category")))

    def subset(self, index: np.ndarray) -> EventArrays:
        """These events' rows at `index` (positions or a boolean mask), in that order."""
        env = {k: _rows(v, index) for k, v in self.env.items()}
        return EventArrays(self.owner[index], self.ts[index], env, _rows(self.category, index))  # type: ignore[arg-type]


class _Instants:
    """Events rolled up per (customer, instant) with running state, sorted by customer then instant.

    `F` holds the float state (rows named by `FLOAT_STATE`), `cat` the latest category so far. Built from
    events (`build`), optionally continuing each customer from its previous last instant (`prev`: what the
    customer's earlier events left, for events all later than those), or stacked from per-customer parts."""

    def __init__(self, owner: np.ndarray, ts: np.ndarray, F: np.ndarray, cat: np.ndarray) -> None:
        self.owner, self.ts, self.F, self.cat = owner, ts, F, cat
        self.state: dict[str, np.ndarray] = {name: F[i] for name, i in ROW.items()}
        self.state["last_category"] = cat
        # the instants' sorted (customer, instant) key for `at`; one spare offset past the latest instant
        self._key, self._lo, self._span = _owner_time_key(owner, ts, pad=1) if len(ts) else (None, 0, 1)

    @classmethod
    def stack(cls, parts: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> _Instants:
        """Per-customer parts (owner index, ts, F columns, cat), already each in instant order."""
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((len(ROW), 0)), _NONE)
        owner = np.repeat(
            np.fromiter((p[0] for p in parts), np.int64, len(parts)), [len(p[1]) for p in parts]
        )
        return cls(
            owner,
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts], axis=1),
            np.concatenate([p[3] for p in parts]),
        )

    @classmethod
    def build(cls, rows: EventArrays, prev: Previous | None = None) -> _Instants:
        owner, ts, env, category = rows.owner, rows.ts, rows.env, rows.category
        m = len(owner)
        by_name = np.asarray(sorted(range(len(category.values)), key=category.values.__getitem__), np.int64)
        cats = category.values[by_name]  # the distinct categories in text order (DuckDB's max)
        rank_of = np.empty(len(by_name), dtype=np.int64)
        rank_of[by_name] = np.arange(len(by_name))
        rank = np.where(category.codes >= 0, np.append(rank_of, -1)[category.codes], -1)
        order = _by_owner_and_time(owner, ts)
        owner, ts, rank = owner[order], ts[order], rank[order]
        env = {k: _rows(v, order) for k, v in env.items()}
        new = np.ones(m, dtype=bool)
        new[1:] = (owner[1:] != owner[:-1]) | (ts[1:] != ts[:-1])
        starts = np.flatnonzero(new)
        i_owner, i_ts = owner[starts], ts[starts]
        tsf = i_ts.astype(np.float64)
        k = len(starts)

        n: dict[str, np.ndarray] = {}
        for name, expr in COUNTERS.items():
            v = np.broadcast_to(np.asarray(expr.evaluate(env), dtype=np.float64), (m,))
            n[name] = (np.maximum if name in PER_INSTANT else np.add).reduceat(v, starts)
        paid = np.broadcast_to(np.asarray(PAID.evaluate(env), dtype=bool), (m,))
        purchase_ts = np.where(np.logical_or.reduceat(paid, starts), tsf, np.nan)
        kinds = {
            kind: np.logical_or.reduceat(
                np.broadcast_to(np.asarray(which.evaluate(env), dtype=bool), (m,)), starts
            )
            for kind, which in LAST_OF.items()
        }
        # the greatest category of an instant (DuckDB's max); rank -1 (none at the instant): None
        cat = np.append(cats, None)[np.maximum.reduceat(rank, starts)]

        seg = _Segments(i_owner)
        # what each instant's customer had before this call (NaN / None: nothing)
        before = (
            prev.F[:, i_owner[seg.start]] if prev is not None else np.full((len(ROW), len(seg.start)), np.nan)
        )
        before_cat = prev.cat[i_owner[seg.start]] if prev is not None else np.full(len(seg.start), None)
        before_ts = before[ROW["ts"]]
        continued = ~np.isnan(before_ts)  # per segment: the customer has earlier instants
        # gap and UTC day of each instant's predecessor (the customer's previous instant, if any)
        prev_ts = np.empty(k, dtype=np.float64)
        prev_ts[1:] = tsf[:-1]
        prev_ts[seg.start] = before_ts
        day = np.floor_divide(i_ts, _DAY_US)
        first = np.isnan(prev_ts)  # the customer's very first instant
        gap = tsf - prev_ts
        n["sessions"] = (first | (gap > SESSION_GAP_MINUTES * 60 * _US)).astype(np.float64)
        n["active_days"] = (first | (day != np.floor_divide(prev_ts, _DAY_US))).astype(np.float64)
        last_purchase = seg.ffill(purchase_ts, before[ROW["last_purchase_ts"]])
        prev_purchase = np.empty(k, dtype=np.float64)  # the customer's latest purchase before each instant
        prev_purchase[1:] = last_purchase[:-1]
        prev_purchase[seg.start] = before[ROW["last_purchase_ts"]]
        new_day = np.isnan(prev_purchase) | (day != np.floor_divide(prev_purchase, _DAY_US))
        n["purchase_days"] = (~np.isnan(purchase_ts) & new_day).astype(np.float64)

        F = np.empty((len(ROW), k), dtype=np.float64)
        for name in RUNNING:
            F[ROW[f"c_{name}"]] = seg.running(n[name], before[ROW[f"c_{name}"]], continued)
        F[ROW["ts"]] = tsf
        F[ROW["last_purchase_ts"]] = last_purchase
        F[ROW["first_purchase_ts"]] = seg.first_valid(purchase_ts, before[ROW["first_purchase_ts"]])
        for kind, has in kinds.items():
            F[ROW[f"last_{kind}_ts"]] = seg.ffill(np.where(has, tsf, np.nan), before[ROW[f"last_{kind}_ts"]])
        F[ROW["session_start_ts"]] = seg.ffill(
            np.where(n["sessions"] > 0, tsf, np.nan), before[ROW["session_start_ts"]]
        )
        first_ts = before[ROW["first_ts"]]
        F[ROW["first_ts"]] = np.where(continued, first_ts, tsf[seg.start])[seg.of]
        return cls(i_owner, i_ts, F, seg.ffill(cat, before_cat))

    def parts(self) -> list[tuple[int, slice]]:
        """(owner index, its instants) per customer present, in order."""
        return [(int(self.owner[s]), slice(s, e)) for s, e in _Segments(self.owner).spans()]

    def state_at(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Every state column at instants `idx` (from `at`), NULL (NaN / None) where -1: one gather."""
        hit = idx >= 0
        F = np.full((len(ROW), len(idx)), np.nan)
        F[:, hit] = self.F[:, idx[hit]]
        out: dict[str, np.ndarray] = {name: F[i] for name, i in ROW.items()}
        out["last_category"] = _take(self.cat, idx)
        return out

    def at(self, q_owner: np.ndarray, q_ts: np.ndarray, strict: bool = False) -> np.ndarray:
        """`_asof` over these instants: a binary search on one (customer, instant) key when it fits in int64."""
        if not len(self.ts):
            return np.full(len(q_owner), -1, dtype=np.int64)
        if self._key is None:
            return _asof(self.owner, self.ts, q_owner, q_ts, strict)
        known = ~np.isnan(q_ts)
        offset = np.clip(np.where(known, q_ts, 0) - self._lo, -1, self._span - 1).astype(np.int64)
        pos = np.searchsorted(self._key, q_owner * self._span + offset, "left" if strict else "right") - 1
        ok = known & (pos >= 0)
        ok[ok] = self.owner[pos[ok]] == q_owner[ok]
        return np.where(ok, pos, -1)


_NONE = np.zeros(0, dtype=object)


@dataclass
class Previous:
    """Per customer (by owner index): the state of its last instant so far, `F` columns (ts NaN: none)
    and the latest category; what `_Instants.build` continues from."""

    F: np.ndarray
    cat: np.ndarray


class _Segments:
    """The runs of one customer in owner-sorted instants, and running operations within them."""

    def __init__(self, owner: np.ndarray) -> None:
        starts = np.ones(len(owner), dtype=bool)
        starts[1:] = owner[1:] != owner[:-1]
        self.start = np.flatnonzero(starts)
        self.of = np.cumsum(starts) - 1  # segment of each instant

    def spans(self) -> list[tuple[int, int]]:
        """(start, end) of each segment."""
        starts = self.start.tolist()
        return list(zip(starts, [*starts[1:], len(self.of)], strict=True))

    def running(self, x: np.ndarray, carry: np.ndarray, continued: np.ndarray) -> np.ndarray:
        """Running total within each segment, from `carry` where the segment is `continued` (per segment).
        Whole numbers (counts) sum exactly in one pass; other amounts are summed segment by segment from their
        carry, in order, so one customer's total never carries another's rounding and a continued total equals
        the one summed from the start (to the sign of a zero)."""
        carry = np.where(continued, carry, 0.0)
        if np.array_equal(x, np.floor(x)) and np.array_equal(carry, np.floor(carry)):
            total = np.cumsum(x)
            before = total[self.start] - x[self.start]
            out = total - before[self.of]
            more = continued[self.of]
            out[more] += carry[self.of][more]
            return out
        out = np.empty_like(x)
        for (s, e), c, cont in zip(self.spans(), carry.tolist(), continued.tolist(), strict=True):
            if cont:
                out[s:e] = np.cumsum(np.concatenate([[c], x[s:e]]))[1:]
            else:
                np.cumsum(x[s:e], out=out[s:e])
        return out

    def ffill(self, x: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """The latest non-null value so far within each segment (ts order); before the first, `initial`."""
        valid = np.not_equal(x, None) if x.dtype == object else ~np.isnan(x)
        idx = np.maximum.accumulate(np.where(valid, np.arange(len(x)), -1))
        out = _take(x, np.where(idx >= self.start[self.of], idx, -1))
        missing = idx < self.start[self.of]
        if missing.any():
            out[missing] = np.asarray(initial, dtype=out.dtype)[self.of[missing]]
        return out

    def first_valid(self, x: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """The first non-null value of each segment, from its instant on (a running minimum of instants);
        `initial` where the customer already had one."""
        pos = np.arange(len(x))
        first = np.minimum.reduceat(np.where(~np.isnan(x), pos, len(x)), self.start)[self.of]
        out = _take(x, np.where(pos >= first, first, -1))
        had = ~np.isnan(initial)[self.of]
        out[had] = initial[self.of[had]]
        return out


def _distinct_categories(
    owner: np.ndarray, ts: np.ndarray, codes: np.ndarray, n: int, t: int, t30: int
) -> np.ndarray:
    """Per customer: categories with a (category, UTC day) span of events reaching into (t30, t]. Only days
    from t30's on can reach into it, so only their events are grouped."""
    has = (codes >= 0) & (ts >= t30 - t30 % _DAY_US)
    if not has.any():
        return np.zeros(n)
    owner, ts, code = owner[has], ts[has], codes[has]
    day = np.floor_divide(ts, _DAY_US)
    order = np.lexsort((day, code, owner))
    owner, ts, code, day = owner[order], ts[order], code[order], day[order]
    new = np.ones(len(ts), dtype=bool)
    new[1:] = (owner[1:] != owner[:-1]) | (code[1:] != code[:-1]) | (day[1:] != day[:-1])
    starts = np.flatnonzero(new)
    ok = (np.maximum.reduceat(ts, starts) > t30) & (np.minimum.reduceat(ts, starts) <= t)
    g_owner, g_code = owner[starts][ok], code[starts][ok]
    distinct = np.ones(len(g_owner), dtype=bool)
    distinct[1:] = (g_owner[1:] != g_owner[:-1]) | (g_code[1:] != g_code[:-1])
    return np.bincount(g_owner[distinct], minlength=n).astype(np.float64)


def customer_features_now(
    events: pa.Table, owner: np.ndarray, ids: Sequence[str], at: pd.Timestamp, *, live: bool = True
) -> pd.DataFrame:
    """`features.compute.customer_features` for the spine `ids` × `at`, from `events` (occurred_at, type,
    category, revenue, price, quantity) whose row i belongs to ids[owner[i]]: the same columns, types and
    numbers (floating sums to rounding), in `ids` order. Events after `at` count as the SQL counts them."""
    rows = EventArrays.from_table(events, owner)
    inst = _Instants.build(rows) if len(rows.ts) else None
    return features_at(inst, rows.owner, rows.ts, rows.category.codes, ids, at, live=live)


def features_at(
    inst: _Instants | None,
    ev_owner: np.ndarray,
    ev_ts: np.ndarray,
    ev_category: np.ndarray,
    ids: Sequence[str],
    at: pd.Timestamp,
    *,
    live: bool = True,
) -> pd.DataFrame:
    """The feature rows of `ids` at `at` from their instants' state (None: no events at all) and, per event,
    owner, instant and category code (codes need only be consistent within a customer)."""
    n = len(ids)
    at = pd.Timestamp(at).tz_convert("UTC")
    t = at.value // 1000
    spine = np.arange(n, dtype=np.int64)
    now = np.full(n, float(t))
    state: dict[str, np.ndarray] = {"b.t": now, "b.as_of": now}
    if inst is not None and len(inst.ts):
        b = inst.state_at(inst.at(spine, now))
        for name in (
            "last_purchase_ts",
            "first_purchase_ts",
            "first_ts",
            "session_start_ts",
            "last_category",
        ):
            state[f"b.{name}"] = b[name]
        state["b.last_ts"] = b["ts"]
        for k in LAST_OF:
            state[f"b.last_{k}_ts"] = b[f"last_{k}_ts"]
        for name in RUNNING:
            state[f"b.c_{name}"] = b[f"c_{name}"]
        for d in WINDOW_DAYS:
            w = inst.state_at(inst.at(spine, now - d * _DAY_US))
            for name in RUNNING:
                state[f"b.w{d}_{name}"] = w[f"c_{name}"]
        state["b.m30_events"] = _take(inst.state["c_events"], inst.at(spine, now - 30 * 60 * _US))
        day_start = float(t - t % _DAY_US)
        state["b.day_events"] = _take(
            inst.state["c_events"], inst.at(spine, np.full(n, day_start), strict=True)
        )
        last_purchase = state["b.last_purchase_ts"]
        state["p.c_cart_qty"] = _take(inst.state["c_cart_qty"], inst.at(spine, last_purchase))
        t30 = now - 30 * _DAY_US
        t_cart = np.fmax(t30, np.where(np.isnan(last_purchase), t30, last_purchase))
        since = _take(inst.state["c_cart_adds"], inst.at(spine, t_cart))
        state["k.cart_adds_no_purchase_30d"] = np.nan_to_num(state["b.c_cart_adds"]) - np.nan_to_num(since)
        state["c.distinct_categories_30d"] = _distinct_categories(
            ev_owner, ev_ts, ev_category, n, t, t - 30 * _DAY_US
        )
    out: dict[str, np.ndarray | list[str] | pd.DatetimeIndex] = {
        "customer_id": list(ids),
        "as_of": pd.DatetimeIndex(np.full(n, t, dtype="datetime64[us]")).tz_localize("UTC"),
    }
    env = _NullState(state, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, fn, kind in _program(live):
            value = np.broadcast_to(fn(env), (n,))
            if kind == "BIGINT":
                if np.isnan(value).any():  # every BIGINT formula coalesces; a NULL here is a spec error
                    raise ValueError(f"feature {name}: NULL where the definition promises a BIGINT")
                out[name] = value.astype(np.int64)
            elif kind == "VARCHAR":
                out[name] = np.asarray(value, dtype=object)
            else:
                out[name] = value.astype(np.float64)
            env.outputs[name] = out[name]
    return pd.DataFrame(out)


@functools.cache
def _program(live: bool) -> list[tuple[str, Fn, str]]:
    """The output formulas compiled once: (name, NumPy function, SQL type)."""
    outputs = {**OUTPUTS, **(LIVE if live else {})}
    return [(name, expr.fn, output_kind(expr)) for name, expr in outputs.items()]


class _NullState(dict):
    """The state columns (all NULL when there are no events at all) and the outputs computed so far by bare
    name; any other name is a spec error (KeyError), never a silent NULL."""

    def __init__(self, state: dict[str, np.ndarray], n: int) -> None:
        super().__init__(state)
        self.n = n
        self.empty = len(state) == 2  # only b.t and b.as_of: no events
        self.outputs: dict[str, np.ndarray] = {}

    def __missing__(self, key: str) -> np.ndarray:
        if key in self.outputs:
            return self.outputs[key]
        if not self.empty or not key.startswith(("b.", "k.", "c.", "p.")):
            raise KeyError(key)
        return np.full(self.n, None, dtype=object) if key == "b.last_category" else np.full(self.n, np.nan)
