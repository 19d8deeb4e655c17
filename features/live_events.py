"""The resolved events the live feature path holds in memory, one Arrow table per customer.

`HeldEvents` keeps a dict customer_id -> table (EVENTS_SCHEMA; the id is the key, not a column), so a live
recompute gathers only the touched customers' rows: no scan of the whole log. Tables are immutable once
stored (an append stores a new table), so a reader may keep one outside the caller's lock. Merges fold an
absorbed customer's rows into its survivor; an unmerge moves chosen events to other customers. Not
thread-safe by itself: `features.live.LiveFeatures` calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import ContractError, NotFoundError
from features.definitions import JOIN_KEY

#: One customer's events as kept in memory (the customer id is the dict key, not a column).
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("type", pa.string()),
        ("category", pa.string()),
        ("revenue", pa.float64()),
        ("price", pa.float64()),
        ("quantity", pa.int64()),
    ]
)
_MAX_CHUNKS = 32  # a customer's table is compacted once this many appends have piled up


def conform(table: pa.Table) -> pa.Table:
    """`table`'s columns cast to EVENTS_SCHEMA (missing property columns become nulls)."""
    cols = []
    for field in EVENTS_SCHEMA:
        if field.name in table.column_names:
            cols.append(table[field.name].cast(field.type))
        elif field.name in ("event_id", "occurred_at", "type"):
            raise ContractError(f"events.{field.name}", "column is missing")
        else:
            cols.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(cols, schema=EVENTS_SCHEMA)


def split_by_customer(rows: pa.Table, customer_ids: pa.Array | pa.ChunkedArray) -> dict[str, pa.Table]:
    """Rows grouped by customer: one zero-copy slice of the customer-sorted table each."""
    if rows.num_rows == 0:
        return {}
    ids = pa.chunked_array([customer_ids]) if isinstance(customer_ids, pa.Array) else customer_ids
    order = pc.sort_indices(ids)
    rows, ids = rows.take(order), ids.take(order).combine_chunks()
    runs = pc.run_end_encode(ids)
    ends = runs.run_ends.to_numpy()
    starts = np.concatenate([[0], ends[:-1]])
    return {
        c: rows.slice(int(s), int(e - s))
        for c, s, e in zip(runs.values.to_pylist(), starts, ends, strict=True)
    }


def newest_first(table: pa.Table, limit: int | None = 20) -> pd.DataFrame:
    """Events newest first (ties: by event_id), at most `limit` (None: all)."""
    order = pc.sort_indices(table, sort_keys=[("occurred_at", "descending"), ("event_id", "descending")])
    table = table.take(order)
    return (table if limit is None else table.slice(0, limit)).to_pandas()


def final_survivors(relabel: dict[str, str]) -> dict[str, str]:
    """absorbed -> final survivor, following chains (a -> b -> c gives a -> c); self-maps dropped."""
    out: dict[str, str] = {}
    for absorbed, survivor in relabel.items():
        seen = {absorbed}
        while survivor in relabel and survivor not in seen:
            seen.add(survivor)
            survivor = relabel[survivor]
        if survivor != absorbed:
            out[absorbed] = survivor
    return out


class HeldEvents:
    """customer_id -> that customer's events (EVENTS_SCHEMA), with merge and unmerge moves."""

    def __init__(self, history: pa.Table | None = None) -> None:
        """`history`: resolved events (event_id, customer_id + the EVENTS_SCHEMA columns), loaded as is;
        rows without a customer id are skipped."""
        self._by_customer: dict[str, pa.Table] = {}
        if history is not None and history.num_rows:
            if JOIN_KEY not in history.column_names:
                raise ContractError(f"history.{JOIN_KEY}", "column is missing")
            history = history.filter(pc.is_valid(history[JOIN_KEY]))
            self._by_customer = split_by_customer(conform(history), history[JOIN_KEY].cast(pa.string()))

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._by_customer

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_customer)

    def __len__(self) -> int:
        return len(self._by_customer)

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self._by_customer.values())

    def get(self, customer_id: str) -> pa.Table | None:
        """The customer's table as stored (the same object until it changes), or None."""
        return self._by_customer.get(customer_id)

    def of(self, customer_id: str) -> pa.Table:
        """The customer's events (empty when none)."""
        return self._by_customer.get(customer_id, EVENTS_SCHEMA.empty_table())

    # --- changes ---
    def add(self, events: pa.Table, customer_ids: pa.Array, *, unique: bool = False) -> None:
        """Append `events` (one customer id each); an event_id one of their customers already holds (a replay) is skipped.

        The replay check is one membership test for the whole batch, not one per customer: every Arrow call
        gives up the interpreter and, under load, waits up to a switch interval to get it back. `unique`: the
        caller guarantees no event is held already (the real-time engine: its log dedupes by event_id), and
        the check, the costliest step here, is skipped."""
        events = conform(events)
        ids = (
            pa.array(customer_ids)
            if not isinstance(customer_ids, pa.Array | pa.ChunkedArray)
            else customer_ids
        )
        held = (
            []
            if unique
            else [self._by_customer[c] for c in pc.unique(ids).to_pylist() if c in self._by_customer]
        )
        if held:
            fresh = pc.invert(pc.is_in(events["event_id"], value_set=_event_ids(held)))
            events, ids = events.filter(fresh), ids.filter(fresh)
        for customer, part in split_by_customer(events, ids).items():
            self._append(customer, part)

    def fold(self, final: dict[str, str]) -> set[str]:
        """Move each absorbed customer's events to its survivor (`final`: absorbed -> final survivor);
        returns every customer involved."""
        moved: set[str] = set()
        for absorbed, survivor in final.items():
            moved |= {absorbed, survivor}
            part = self._by_customer.pop(absorbed, None)
            if part is not None:
                self._append(survivor, part)
        return moved

    def move(self, target: dict[str, str]) -> list[str]:
        """Move events to other customers (event_id -> customer_id: an unmerge); returns their previous
        owners. NotFoundError, and nothing moved, when an event is not held."""
        if not target:
            return []
        wanted = pa.array(list(target), pa.string())
        owners = self.owners(wanted)
        parts = {c: self._by_customer[c] for c in owners}
        masks = {c: pc.is_in(t["event_id"], value_set=wanted) for c, t in parts.items()}
        found = {e for c in owners for e in parts[c].filter(masks[c])["event_id"].to_pylist()}
        missing = sorted(set(target) - found)
        if missing:
            raise NotFoundError(f"events not held by the live features: {', '.join(missing[:10])}")
        moving = pa.concat_tables([parts[c].filter(masks[c]) for c in owners])
        for c in owners:
            rest = parts[c].filter(pc.invert(masks[c]))
            if rest.num_rows:
                self._by_customer[c] = rest
            else:
                del self._by_customer[c]
        new_ids = pa.array([target[e] for e in moving["event_id"].to_pylist()], pa.string())
        for customer, part in split_by_customer(moving, new_ids).items():
            self._append(customer, part)
        return owners

    def _append(self, customer: str, part: pa.Table) -> None:
        old = self._by_customer.get(customer)
        if old is None:
            self._by_customer[customer] = part
            return
        new = pa.concat_tables([old, part])
        self._by_customer[customer] = new.combine_chunks() if new.column(0).num_chunks > _MAX_CHUNKS else new

    # --- reads for the feature query ---
    def owners(self, event_ids: pa.Array) -> list[str]:
        """Customers holding any of `event_ids`: one vectorised membership test over every table."""
        keys = list(self._by_customer)
        if not keys:
            return []
        tables = [self._by_customer[k] for k in keys]
        hits = np.flatnonzero(
            pc.is_in(_event_ids(tables), value_set=event_ids).to_numpy(zero_copy_only=False)
        )
        ends = np.cumsum([t.num_rows for t in tables])
        return list(dict.fromkeys(keys[i] for i in np.searchsorted(ends, hits, side="right")))


def _event_ids(tables: list[pa.Table]) -> pa.ChunkedArray:
    """The tables' event_id columns as one column, without copying."""
    return pa.chunked_array([chunk for t in tables for chunk in t["event_id"].chunks], pa.string())


def concat_owned(tables: list[pa.Table | None]) -> tuple[pa.Table, np.ndarray]:
    """`tables` (None: no events) as one table and, per row, the index of the table it came from."""
    held = [(i, t) for i, t in enumerate(tables) if t is not None]
    if not held:
        return EVENTS_SCHEMA.empty_table(), np.empty(0, np.int64)
    body = pa.concat_tables([t for _, t in held])
    owner = np.repeat(np.array([i for i, _ in held], np.int64), [t.num_rows for _, t in held])
    return body, owner
