"""When an online feature row stops being exact without any new event, and which rows to refresh first.

A row computed at `as_of` from a customer's events stays exactly what the batch function says until the
earliest of: an event counted in `events_30m` leaves the 30-minute window (its time + 30 min), the session
ends (last event + SESSION_GAP, just after), a UTC midnight passes while `events_today` > 0, or an event
stamped after `as_of` falls due. Day-sized windows and recencies drift slowly instead; `Schedule` orders rows
by age so a sweeper refreshes the oldest first. Instants are int64 microseconds since the epoch (UTC).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict

import numpy as np

from features.compute import SESSION_GAP_MINUTES

#: "Never" as an instant: a row without short-window content and without future events.
NEVER = np.iinfo(np.int64).max
_US_MINUTE = 60_000_000
_US_DAY = 86_400_000_000
_WINDOW_30M = 30 * _US_MINUTE  # the `events_30m` window
_GAP = SESSION_GAP_MINUTES * _US_MINUTE


def next_change(owner: np.ndarray, ts: np.ndarray, as_of: np.ndarray) -> np.ndarray:
    """Per row of `as_of` (one per customer), the first instant its short windows differ from the row.

    `owner[i]` is the index into `as_of` of the customer of event `i` at instant `ts[i]`. Returns NEVER
    for a row with nothing to expire. A row is exact for `now < next_change`."""
    due = np.full(len(as_of), NEVER, dtype=np.int64)
    if len(ts) == 0:
        return due
    t = as_of[owner]
    future = ts > t
    np.minimum.at(due, owner[future], ts[future])
    in_30m = ~future & (ts > t - _WINDOW_30M)
    np.minimum.at(due, owner[in_30m], ts[in_30m] + _WINDOW_30M)
    last = np.full(len(as_of), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, owner[~future], ts[~future])
    has = last > np.iinfo(np.int64).min
    in_session = np.zeros(len(as_of), dtype=bool)
    in_session[has] = as_of[has] - last[has] <= _GAP
    due = np.where(in_session, np.minimum(due, last + _GAP + 1), due)  # session_minutes is 0 after the gap
    midnight = as_of - as_of % _US_DAY
    today = ~future & (ts >= midnight[owner])
    np.minimum.at(due, owner[today], midnight[owner[today]] + _US_DAY)
    return due


class Schedule:
    """Rows this process wrote: their as_of (oldest first) and next change; customers not written yet."""

    def __init__(self) -> None:
        self.written: OrderedDict[str, int] = OrderedDict()  # customer -> as_of, in write order
        self.due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self.unknown: set[str] = set()  # held customers whose online row this process has not written

    def record(self, customers: list[str], as_of: int, due: np.ndarray) -> None:
        """`customers` were written at `as_of`; each row's content changes at `due` (NEVER: only drifts)."""
        for customer, when in zip(customers, due.tolist(), strict=True):
            self.written.pop(customer, None)
            self.written[customer] = as_of
            self.unknown.discard(customer)
            if when == NEVER:
                self.due.pop(customer, None)
            else:
                self.due[customer] = when
                heapq.heappush(self._heap, (when, customer))

    def forget(self, customer: str) -> None:
        """A customer with no events and an empty row: nothing about it changes with time."""
        self.written.pop(customer, None)
        self.due.pop(customer, None)
        self.unknown.discard(customer)

    def expired(self, now: int) -> list[str]:
        """Customers whose rows changed by `now`, taken off the heap (their `due` stays until rewritten)."""
        out: dict[str, None] = {}
        while self._heap and self._heap[0][0] <= now:
            when, customer = heapq.heappop(self._heap)
            if self.due.get(customer) == when:
                out[customer] = None
        return list(out)

    def retry(self, customers: list[str], now: int) -> None:
        """Put back on the heap those of `customers` still due by `now` (a sweep skipped or failed them)."""
        for customer in customers:
            when = self.due.get(customer)
            if when is not None and when <= now:
                heapq.heappush(self._heap, (when, customer))

    def oldest(self, older_than: int, limit: int) -> list[str]:
        """At most `limit` customers whose row is unknown or written before `older_than`, oldest first."""
        out = list(self.unknown)[:limit]
        for customer, as_of in self.written.items():
            if len(out) >= limit or as_of >= older_than:
                break
            out.append(customer)
        return out
