"""Live ingestion: an HTTP body -> events checked with the importer's rules -> the durable event log.

Every posted event ends in exactly one bucket: accepted (appended to the log, acknowledged after fsync),
duplicate (its event_id is already stored: a replay adds nothing), or rejected (kept in the workspace
``quarantine`` table with its index, field and reason, exactly as the batch importer quarantines rows).
``compact`` later moves logged events into the workspace ``events`` table for the batch steps.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from contract.errors import ContractError
from contract.normalize import check_phone_region
from contract.schemas import EVENTS_SCHEMA, QUARANTINE_SCHEMA
from contract.workspace import Workspace
from events.importers import FIELDS, new_quarantine, stored_rows
from events.log import LOG_SCHEMA, EventLog, Overloaded
from events.readers import apply_mapping
from events.validate import check_events

JSON_TYPES = frozenset({"application/json", "text/json"})
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)


@dataclass
class Rejection:
    """One rejected event: its position in the request, the field it failed on and why."""

    index: int
    field: str
    reason: str
    event_id: str | None = None


@dataclass
class IngestResult:
    """Newly logged rows (with ``seq``), the event_ids already stored, and the rejected events."""

    accepted: pa.Table
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def parse_body(body: bytes, content_type: str | None) -> list[dict]:
    """One JSON object, a JSON array of objects, or NDJSON (one object a line) -> a list of dicts.

    ``application/json`` whose body is several lines of objects is read as NDJSON too; without a
    content type the shape is guessed. Errors are ``ContractError("body", reason)``.
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime and mime not in JSON_TYPES | NDJSON_TYPES:
        raise ContractError("content-type", "use application/json or application/x-ndjson", content_type)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContractError("body", f"not UTF-8 text (bad byte at offset {exc.start})") from exc
    if not text.strip():
        raise ContractError("body", "empty (send one event object, a JSON array of them, or NDJSON)")
    if mime in NDJSON_TYPES:
        return _ndjson(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and len([ln for ln in text.splitlines() if ln.strip()]) > 1:
            return _ndjson(text)
        raise ContractError(
            "body", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise ContractError("body", "must be a JSON object or an array of objects", type(data).__name__)
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ContractError("body", f"item {i} of the array is not a JSON object", item)
    return data


def _ndjson(text: str) -> list[dict]:
    out: list[dict] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ContractError("body", f"line {n}: not valid JSON: {exc.msg} at column {exc.colno}") from exc
        if not isinstance(item, dict):
            raise ContractError("body", f"line {n}: not a JSON object", item)
        out.append(item)
    return out


@dataclass
class _Waiting:
    """One ``ingest`` call waiting for its group's validation."""

    records: list[dict]
    done: threading.Event = field(default_factory=threading.Event)
    taken: bool = False
    rows: pa.Table | None = None  # its accepted rows, stored form, to append
    rejected: list[Rejection] = field(default_factory=list)
    error: BaseException | None = None


class Ingestor:
    """Validates posted events like ``import_frame`` does, quarantines rejects, appends the rest durably.

    Validation costs about the same for 1 row as for 100 (column-wise pandas/Arrow), so concurrent calls
    are checked together: whoever finds no check running leads and validates everything queued by then,
    while the previous group is being fsynced; each call then appends its own accepted rows, and the
    log's group commit writes them together. Thread-safe.
    """

    def __init__(
        self,
        ws: Workspace,
        log: EventLog,
        *,
        source: str = "api",
        tz: str | None = "UTC",
        phone_region: str | None = None,
    ) -> None:
        """`phone_region`: the region raw phones without a country code are read in (setting
        `default_phone_region`), as `cxi import` reads them, so live and imported events hash one number alike."""
        self.ws = ws
        self.log = log
        self.source = source
        self.tz = tz
        self.phone_region = check_phone_region(phone_region)
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._pending = 0
        self._busy = False

    def ingest(self, records: list[dict]) -> IngestResult:
        """Check, quarantine rejects (durably), append the accepted rows; returns after the log's fsync.

        Raises ``events.log.Overloaded`` (nothing of this call is written then) when the rows waiting for
        validation or for the log exceed the log's ``max_pending``.
        """
        if not records:
            return IngestResult(LOG_SCHEMA.empty_table())
        for i, r in enumerate(records):  # checked here, so one bad call cannot fail a whole group
            if not isinstance(r, dict):
                raise ContractError("body", f"event {i} is not a JSON object", r)
        me = _Waiting(records)
        with self._cond:
            pending = self._pending + self.log.pending
            if pending and pending + len(records) > self.log.max_pending:
                raise Overloaded(f"{pending} events wait to be logged", retry_after=self.log.retry_after)
            self._pending += len(records)
            self._queue.append(me)
            while self._busy and not me.taken:
                self._cond.wait()
            group: list[_Waiting] = []
            if not me.taken:  # lead: check everything queued so far
                self._busy = True
                group, self._queue = self._queue, []
                for w in group:
                    w.taken = True
        if group:
            try:
                self._check(group)
            except BaseException as exc:
                for w in group:
                    w.error = exc
            finally:
                with self._cond:
                    self._busy = False
                    self._pending -= sum(len(w.records) for w in group)
                    self._cond.notify_all()
                for w in group:
                    w.done.set()
        me.done.wait()
        if me.error is not None:
            raise me.error
        if me.rows is None or me.rows.num_rows == 0:
            return IngestResult(LOG_SCHEMA.empty_table(), [], me.rejected)
        result = self.log.append(me.rows)
        return IngestResult(result.table, result.duplicates, me.rejected)

    def _check(self, group: list[_Waiting]) -> None:
        """Validate a group's records in one pass, quarantine the rejects, hand each call its rows."""
        records = [r for w in group for r in w.records]
        offsets = np.cumsum([0, *(len(w.records) for w in group)])
        original = pd.DataFrame.from_records(records, index=pd.RangeIndex(len(records)))
        checked = check_events(
            apply_mapping(original, None, FIELDS["events"]), tz=self.tz, phone_region=self.phone_region
        )
        ok = checked.ok
        bad = ~ok
        stamp = datetime.now(UTC)
        if bad.any():
            pos = np.flatnonzero(bad)
            owner = np.searchsorted(offsets, pos, side="right") - 1
            local = pos - offsets[owner]
            ids = checked.table["event_id"].take(pa.array(pos)).to_pylist()
            for p, o, i, e in zip(pos, owner, local, ids, strict=True):
                group[o].rejected.append(Rejection(int(i), str(checked.field[p]), str(checked.reason[p]), e))
            n = len(pos)
            q = pa.table(  # the importer's quarantine rows; index within the call, raw = the record as posted
                {
                    "kind": pa.array(["events"] * n, pa.string()),
                    "source": pa.array([self.source] * n, pa.string()),
                    "row_index": pa.array(local, pa.int64()),
                    "field": pa.array(checked.field[pos].tolist(), pa.string()),
                    "reason": pa.array(checked.reason[pos].tolist(), pa.string()),
                    "raw": pa.array([json.dumps(records[p], default=str, ensure_ascii=False) for p in pos]),
                    "quarantined_at": pa.array([stamp] * n, pa.timestamp("us", tz="UTC")),
                },
                schema=QUARANTINE_SCHEMA,
            )
            self.ws.append("quarantine", new_quarantine(self.ws, q))
        if ok.any():
            stored = stored_rows("events", checked, ok, self.source, stamp)
            start = 0
            for w, n in zip(group, np.add.reduceat(ok.astype(np.int64), offsets[:-1]), strict=True):
                w.rows = stored.slice(start, int(n))
                start += int(n)


def compact(ws: Workspace, log: EventLog, *, full: bool = False) -> int:
    """Copy logged events that the workspace ``events`` table lacks into it; returns the rows added.

    Idempotent (an anti-join on event_id). A watermark file remembers the last seq compacted so later
    calls read only the log's tail; ``full=True`` ignores it (e.g. after the events table was rebuilt).
    """
    mark = log.directory / "compacted"
    after = 0 if full or not mark.exists() else int(mark.read_text().strip() or 0)
    tail = log.read(after)
    if tail.num_rows == 0:
        return 0
    last = int(tail["seq"][-1].as_py())
    rows = tail.select(EVENTS_SCHEMA.names)
    if ws.exists("events"):
        with ws.connect("events") as con:
            con.register("tail", rows)
            rows = con.sql(
                "SELECT * FROM tail ANTI JOIN (SELECT event_id FROM events) e USING (event_id)"
            ).to_arrow_table()
        rows = rows.cast(EVENTS_SCHEMA)
    ws.append("events", rows)
    _write_mark(mark, last)
    return rows.num_rows


def _write_mark(mark: Path, seq: int) -> None:
    tmp = mark.with_suffix(".tmp")
    tmp.write_text(str(seq))
    tmp.replace(mark)
