"""A durable outbox (SQLite, WAL) of webhook deliveries: one row per (destination, membership event).

Enqueueing only writes rows (never network I/O), so a destination that is down never slows ingestion. The
row's idempotency key is derived from the event, so enqueueing the same event twice adds nothing. States:

- ``pending``: waiting for its first or next attempt (``next_attempt_at``; a claimed row is leased by
  moving ``next_attempt_at`` past the request timeout, so a crashed sender's rows come back by themselves);
- ``delivered``: the destination answered 2xx;
- ``dead``: a permanent refusal (4xx) or ``max_attempts`` used up: the dead-letter queue (view
  ``dead_letters``), put back by ``revive_dead`` (``cxi destinations retry``);
- ``suppressed``: never sent because the customer lacks the destination's consent purpose.

Per destination, deliveries leave in enqueue order: a destination is due only when its oldest pending row is,
so an exit never overtakes the entry before it while the receiver is down.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activation.membership import delivery_rows, idempotency_key, normalise_event
from contract.errors import ContractError

if TYPE_CHECKING:
    from activation.config import Destination
    from contract.workspace import Workspace

STATES = ("pending", "delivered", "dead", "suppressed")
#: Rows per enqueue transaction.
ENQUEUE_CHUNK = 5_000
__all__ = ["STATES", "Delivery", "Outbox", "idempotency_key", "normalise_event"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL UNIQUE,
    destination     TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    segment         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (destination, state, id);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state, destination);
CREATE VIEW IF NOT EXISTS dead_letters AS
    SELECT id, key, destination, customer_id, segment, kind, attempts, last_error, updated_at
    FROM deliveries WHERE state = 'dead';
"""


@dataclass(frozen=True)
class Delivery:
    """One row of the outbox, as the deliverer sends it."""

    id: int
    key: str
    destination: str
    customer_id: str
    segment: str
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None


class Outbox:
    """The outbox database. Thread-safe: each thread gets its own SQLite connection.

    Durability: an ``enqueue`` commit fsyncs the WAL (synchronous=FULL), so a queued delivery survives even
    power loss once ``enqueue`` returns. Claims and outcomes commit with synchronous=NORMAL: they survive a
    process crash, and one lost to power loss only means a redelivery, which receivers dedup anyway
    (``durable_enqueue=False`` relaxes enqueue the same way, when the caller can replay its events).
    """

    def __init__(self, path: Path | str, *, durable_enqueue: bool = True) -> None:
        self.path = Path(path)
        self.durable_enqueue = durable_enqueue
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._con().executescript(_SCHEMA)  # idempotent DDL (executescript manages its own transaction)

    @classmethod
    def for_workspace(cls, workspace: Workspace | Path | str) -> Outbox:
        """The workspace's outbox: ``<workspace>/activation/outbox.sqlite``."""
        root = Path(workspace) if isinstance(workspace, str | Path) else workspace.root
        return cls(root / "activation" / "outbox.sqlite")

    # --- connections ---
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
            self._local.sync = "NORMAL"
            with self._lock:
                self._conns.append(con)
        return con

    @contextmanager
    def _tx(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction. ``durable``: the commit fsyncs the WAL (and with it every earlier commit)."""
        con = self._con()
        sync = "FULL" if durable and self.durable_enqueue else "NORMAL"
        if self._local.sync != sync:
            con.execute(f"PRAGMA synchronous={sync}")
            self._local.sync = sync
        # One writer at a time inside this process, handed over by a lock: SQLite's busy handler would make a
        # waiting writer sleep up to 100 ms per retry, so the deliverer could starve behind fsyncing enqueues.
        with self._write_lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for con in self._conns:
                con.close()
            self._conns.clear()
        self._local = threading.local()

    # --- producer side ---
    def enqueue(self, events: Any, destinations: Sequence[Destination]) -> int:
        """Add one delivery per (destination that wants the segment, event); returns how many are new.

        ``events``: membership events (customer_id, segment, kind entry|exit, reason, at, build_id; optional
        ``seq``) as mappings, objects, a DataFrame or an Arrow table. No network I/O happens here. Large
        inputs commit in chunks of ``ENQUEUE_CHUNK`` rows; re-enqueueing after a crash adds only what is missing.
        """
        if not destinations:
            return 0
        now = time.time()
        rows = [(*r, now, now, now) for r in delivery_rows(events, destinations)]
        added = 0
        # a batch build's many rows commit in chunks, so the deliverer's own writes interleave with them
        for i in range(0, len(rows), ENQUEUE_CHUNK):
            with self._tx(durable=True) as con:
                before = con.total_changes
                con.executemany(
                    "INSERT OR IGNORE INTO deliveries (key, destination, customer_id, segment, kind, payload,"
                    " next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    rows[i : i + ENQUEUE_CHUNK],
                )
                added += con.total_changes - before
        return added

    # --- deliverer side ---
    def heads(self) -> dict[str, float]:
        """Per destination with pending deliveries: when its oldest one is due (epoch seconds)."""
        sql = (
            "SELECT d.destination, d.next_attempt_at FROM deliveries d JOIN (SELECT min(id) AS head"
            " FROM deliveries WHERE state='pending' GROUP BY destination) h ON d.id = h.head"
        )
        return {r[0]: float(r[1]) for r in self._con().execute(sql)}

    def claim(self, destination: str, limit: int, lease_s: float, now: float | None = None) -> list[Delivery]:
        """Take the oldest ``limit`` pending deliveries of a due destination, counting an attempt each.

        They stay ``pending`` but leased for ``lease_s``: if the sender dies they are retried afterwards.
        """
        now = time.time() if now is None else now
        with self._tx() as con:
            rows = con.execute(
                "SELECT id, key, destination, customer_id, segment, kind, payload, state, attempts,"
                " next_attempt_at, last_error FROM deliveries WHERE destination=? AND state='pending'"
                " ORDER BY id LIMIT ?",
                (destination, limit),
            ).fetchall()
            if not rows or rows[0][9] > now:
                return []
            ids = [r[0] for r in rows]
            con.executemany(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? WHERE id = ?",
                [(now + lease_s, now, i) for i in ids],
            )
        return [
            Delivery(
                r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8] + 1, now + lease_s, r[10]
            )
            for r in rows
        ]

    def _set(self, ids: Sequence[int], sql: str, args: tuple[Any, ...]) -> None:
        if not ids:
            return
        with self._tx() as con:
            con.executemany(f"UPDATE deliveries SET {sql} WHERE id = ?", [(*args, i) for i in ids])

    def mark_delivered(self, ids: Sequence[int]) -> None:
        self._set(ids, "state='delivered', last_error=NULL, updated_at=?", (time.time(),))

    def mark_retry(self, ids: Sequence[int], next_attempt_at: float, error: str) -> None:
        self._set(ids, "next_attempt_at=?, last_error=?, updated_at=?", (next_attempt_at, error, time.time()))

    def mark_dead(self, ids: Sequence[int], error: str) -> None:
        self._set(ids, "state='dead', last_error=?, updated_at=?", (error, time.time()))

    def mark_suppressed(self, ids: Sequence[int], reason: str) -> None:
        self._set(ids, "state='suppressed', last_error=?, updated_at=?", (reason, time.time()))

    def revive_dead(self, destination: str | None = None) -> int:
        """Put dead letters back in the queue with fresh attempts, due now; returns how many."""
        now = time.time()
        where, args = (
            ("state='dead'", ())
            if destination is None
            else ("state='dead' AND destination=?", (destination,))
        )
        with self._tx() as con:
            cur = con.execute(
                f"UPDATE deliveries SET state='pending', attempts=0, next_attempt_at=?, updated_at=? WHERE {where}",
                (now, now, *args),
            )
            return cur.rowcount

    # --- reporting ---
    def counts(self) -> dict[str, dict[str, int]]:
        """Deliveries per destination and state (every state present, zeros included)."""
        out: dict[str, dict[str, int]] = {}
        for dest, state, n in self._con().execute(
            "SELECT destination, state, count(*) FROM deliveries GROUP BY destination, state"
        ):
            out.setdefault(dest, dict.fromkeys(STATES, 0))[state] = n
        return out

    def pending_counts(self) -> dict[str, int]:
        """Pending deliveries per destination (an index lookup, cheap to poll)."""
        sql = "SELECT destination, count(*) FROM deliveries WHERE state='pending' GROUP BY destination"
        return {d: n for d, n in self._con().execute(sql)}

    def purge(self, older_than_s: float) -> int:
        """Delete delivered and suppressed rows settled more than ``older_than_s`` ago; returns how many.

        Their idempotency keys go with them: an event enqueued again after the purge is delivered again
        (receivers dedup by key). Pending and dead rows are never purged.
        """
        cutoff = time.time() - older_than_s
        with self._tx() as con:
            cur = con.execute(
                "DELETE FROM deliveries WHERE state IN ('delivered', 'suppressed') AND updated_at < ?",
                (cutoff,),
            )
            return cur.rowcount

    def deliveries(self, destination: str | None = None, state: str | None = None) -> list[Delivery]:
        """Rows of the outbox (for reports and tests), in enqueue order."""
        clauses, args = [], []
        if destination is not None:
            clauses.append("destination=?")
            args.append(destination)
        if state is not None:
            if state not in STATES:
                raise ContractError("state", f"one of {', '.join(STATES)}", state)
            clauses.append("state=?")
            args.append(state)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._con().execute(
            "SELECT id, key, destination, customer_id, segment, kind, payload, state, attempts, next_attempt_at,"
            f" last_error FROM deliveries {where} ORDER BY id",
            args,
        )
        return [Delivery(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), *r[7:]) for r in rows]
