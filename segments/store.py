"""Segment membership in the workspace, and the reads behind the pull API.

Tables (Parquet parts, `contract.workspace`):

* ``segment_members`` — membership as of the latest build (customer_id, segment, entered_at, build_id),
  replaced by each build, grouped by segment and sorted by customer_id, in small row groups so a page is a
  pruned scan.
* ``segment_events`` — append-only entries and exits (seq, customer_id, segment, kind, reason, at, build_id,
  consent_<purpose>): a build's changes and the live path's. ``seq`` is gap-free and increasing (allocated
  under a file lock, so a build and a live process never share a number).
* ``segment_builds`` — one row per build: build_id, at, as_of, last_seq (the seq of the build's last event:
  later events are live deltas on top of its membership), percentile thresholds and counts (JSON).

Current membership = the latest build's members, with each customer's latest live event after ``last_seq``
applied (an entry adds, an exit removes). `members` pages it with a keyset cursor on customer_id (stable
under concurrent changes: no duplicates, no gaps); `changes` pages entry/exit deltas by seq or time.

A build reads the current membership when it starts and replaces it when it ends: live events appended in
between stay in the event history but not in the new membership (run builds when the live path is quiet, or
`LiveSegments.reload` and re-evaluate the customers touched meanwhile).

The live path appends one small part per hook run (up to one a second), and every read globs the parts, so
a day's 86,400 parts would make each page a scan of as many files (250 ms a page at 2,000 parts). Once
`COMPACT_PARTS` parts are under `COMPACT_BYTES`, the writer merges them into one (sorted by seq). Reads hold
a shared lock for their query and a swap of parts (compaction, a membership replace) holds it exclusively
for its renames, so a query sees the parts either before or after, never both or neither. A compaction
cut short is finished (or undone) by the next writer from its intent file.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contract.errors import ContractError, NotFoundError
from contract.schemas import TS
from contract.workspace import Workspace, fsync_dir
from segments.consent import COLUMNS as CONSENT_COLUMNS
from segments.evaluate import EVENT_COLUMNS, Evaluation, Thresholds

MEMBERS = "segment_members"
EVENTS = "segment_events"
BUILDS = "segment_builds"
ROW_GROUP = 16_384
MAX_LIMIT = 10_000
#: ``segment_events`` parts under `COMPACT_BYTES` are merged into one once there are this many.
COMPACT_PARTS = 128
COMPACT_BYTES = 4 << 20

MEMBERS_SCHEMA = pa.schema(
    [("segment", pa.string()), ("customer_id", pa.string()), ("entered_at", TS), ("build_id", pa.string())]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("customer_id", pa.string()),
        ("segment", pa.string()),
        ("kind", pa.string()),  # entry | exit
        ("reason", pa.string()),
        ("at", TS),
        ("build_id", pa.string()),
        *[(c, pa.bool_()) for c in CONSENT_COLUMNS.values()],
    ]
)
BUILDS_SCHEMA = pa.schema(
    [
        ("build_id", pa.string()),
        ("at", TS),
        ("as_of", TS),
        ("last_seq", pa.int64()),
        ("customers", pa.int64()),
        ("thresholds", pa.string()),  # Thresholds.to_json
        ("stats", pa.string()),  # JSON list of per-segment counts (Evaluation.stats)
        ("models", pa.string()),  # JSON: model -> version
        ("skipped", pa.string()),  # JSON: segment -> reason
    ]
)


@dataclass(frozen=True)
class Build:
    build_id: str
    at: datetime
    as_of: datetime
    last_seq: int
    customers: int
    thresholds: Thresholds
    stats: list[dict[str, Any]]
    models: dict[str, str]
    skipped: dict[str, str]

    @property
    def segments(self) -> list[str]:
        return [s["segment"] for s in self.stats] + list(self.skipped)


@dataclass(frozen=True)
class Page:
    """One page of a read: ``rows``, the cursor to pass back for the next page and whether more rows are
    waiting now. Members: ``next_cursor`` is None on the last page. Changes: ``next_cursor`` is always the
    resume point (the last seq returned), to poll for later deltas."""

    rows: pd.DataFrame
    next_cursor: str | None
    more: bool = False

    def records(self) -> list[dict[str, Any]]:
        out = self.rows.copy()
        for c in out.columns:
            if pd.api.types.is_datetime64_any_dtype(out[c]):
                out[c] = out[c].map(lambda t: t.isoformat().replace("+00:00", "Z"))
        return out.to_dict("records")


def encode_cursor(customer_id: str) -> str:
    return base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ContractError("cursor", "not a cursor returned by a previous page", cursor) from None


class SegmentStore:
    """Reads and writes of segment membership in one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._db: duckdb.DuckDBPyConnection | None = None
        self._views: set[str] = set()
        self._builds: tuple[tuple[str, ...], list[Build]] = ((), [])
        self._last = 0
        self._counter_checked = False  # the seq counter is checked against the events once per store

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on one long-lived DuckDB database holding a view per table (a fresh connection with its
        views costs ~50 ms, a page ~10 ms); views re-glob their parts on every query."""
        if self._db is None:
            self._db = duckdb.connect()
        for name in (MEMBERS, EVENTS):
            if name not in self._views and self.ws.exists(name):
                self._db.execute(
                    f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{self.ws.glob(name)}', "
                    "union_by_name=true)"
                )
                self._views.add(name)
        return self._db.cursor()

    @contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one query, holding the readers' lock shared (see the module docstring)."""
        with self._readers_lock(fcntl.LOCK_SH), self._cursor() as con:
            yield con

    @contextmanager
    def _readers_lock(self, mode: int) -> Iterator[None]:
        d = self.ws.root / "segments"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "readers.lock", "a") as lock:
            fcntl.flock(lock, mode)
            yield

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db, self._views = None, set()

    # --- writes -------------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[int]:
        """Exclusive section across processes; yields the last allocated event seq."""
        d = self.ws.root / "segments"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._finish_compaction()
            counter = d / "seq"
            text = counter.read_text().strip() if counter.exists() else ""
            last = int(text) if text.isdigit() else 0
            if not text.isdigit() or not self._counter_checked:
                # the counter is written without fsync (a crash may leave it stale or empty) while the parts
                # are fsynced: trusting it alone would hand out seqs that exist, and cursors would skip them
                last = max(last, self._max_seq())
                self._counter_checked = True
            self._last = last
            yield last
            tmp = d / ".seq.tmp"
            tmp.write_text(str(self._last))
            os.replace(tmp, counter)

    def _max_seq(self) -> int:
        if not self.ws.exists(EVENTS):
            return 0
        with self._reading() as con:
            return int(con.execute(f"SELECT coalesce(max(seq), 0) FROM {EVENTS}").fetchone()[0])  # type: ignore[index]

    def _append_events(self, events: pd.DataFrame, first: int) -> pa.Table:
        frame = events[list(EVENT_COLUMNS)].reset_index(drop=True)
        frame.insert(0, "seq", range(first, first + len(frame)))
        table = pa.Table.from_pandas(frame, schema=EVENTS_SCHEMA, preserve_index=False)
        self.ws.append(EVENTS, table)
        return table

    def append_events(self, events: pd.DataFrame) -> pd.DataFrame:
        """Append live entries/exits (`evaluate.EVENT_COLUMNS`); returns them with their ``seq``."""
        if events.empty:
            return events.assign(seq=pd.Series(dtype="int64"))
        with self._locked() as last:
            table = self._append_events(events, last + 1)
            self._last = last + len(events)
            self.compact_events()
        return table.to_pandas()

    def compact_events(self, min_parts: int = COMPACT_PARTS) -> int:
        """Merge the small ``segment_events`` parts into one when there are at least ``min_parts``; returns how
        many were merged. Called under the writer lock (`append_events` does it)."""
        d = self.ws.table_dir(EVENTS)
        names = [n for n in os.listdir(d) if n.endswith(".parquet")] if d.is_dir() else []
        if len(names) < max(min_parts, 2):  # the common case, without a stat per part
            return 0
        small = sorted(p for p in (d / n for n in names) if p.stat().st_size < COMPACT_BYTES)
        if len(small) < max(min_parts, 2):
            return 0
        with self._cursor() as con:  # no readers' lock: these parts stay until the swap below
            files = ", ".join(f"'{p}'" for p in small)
            merged = con.sql(
                f"SELECT * FROM read_parquet([{files}], union_by_name=true) ORDER BY seq"
            ).to_arrow_table()
        merged = pa.table(
            [
                merged.column(f.name).cast(f.type)
                if f.name in merged.column_names
                else pa.nulls(len(merged), f.type)
                for f in EVENTS_SCHEMA
            ],
            schema=EVENTS_SCHEMA,
        )
        part = uuid.uuid4().hex
        tmp, final = d / f".{part}.parquet.tmp", d / f"{part}.parquet"
        pq.write_table(merged, tmp, compression="zstd", row_group_size=ROW_GROUP)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        intent = self.ws.root / "segments" / "compaction.json"
        _write_durably(
            intent, json.dumps({"tmp": tmp.name, "final": final.name, "parts": [p.name for p in small]})
        )
        self._finish_compaction()
        return len(small)

    def _finish_compaction(self) -> None:
        """Complete the compaction its intent file describes (merged part in, small parts out), under the
        readers' lock; one whose merged part never reached the disk is dropped (its parts stay)."""
        intent = self.ws.root / "segments" / "compaction.json"
        if not intent.exists():
            return
        plan = json.loads(intent.read_text())
        d = self.ws.table_dir(EVENTS)
        tmp, final = d / plan["tmp"], d / plan["final"]
        with self._readers_lock(fcntl.LOCK_EX):
            if tmp.exists():
                os.replace(tmp, final)
            if final.exists():
                for name in plan["parts"]:
                    (d / name).unlink(missing_ok=True)
        fsync_dir(d)
        intent.unlink()

    def write_build(
        self,
        evaluation: Evaluation,
        thresholds: Thresholds,
        *,
        build_id: str,
        at: datetime,
        as_of: datetime,
        customers: int,
        models: dict[str, str],
    ) -> Build:
        """Persist a build: its events, the new membership (replacing the old) and the build row."""
        with self._locked() as last:
            self._append_events(evaluation.events, last + 1)
            self._last = last + len(evaluation.events)
            # already grouped by segment and sorted by customer_id within (`evaluate`): no sort needed
            members = evaluation.membership.assign(build_id=build_id)
            self._replace(MEMBERS, pa.Table.from_pandas(members, schema=MEMBERS_SCHEMA, preserve_index=False))
            build = Build(
                build_id=build_id,
                at=at,
                as_of=as_of,
                last_seq=self._last,
                customers=customers,
                thresholds=thresholds,
                stats=evaluation.stats.to_dict("records"),
                models=models,
                skipped=evaluation.skipped,
            )
            row = {
                "build_id": [build_id],
                "at": [pd.Timestamp(at)],
                "as_of": [pd.Timestamp(as_of)],
                "last_seq": [build.last_seq],
                "customers": [customers],
                "thresholds": [thresholds.to_json()],
                "stats": [json.dumps(build.stats, default=int)],
                "models": [json.dumps(models)],
                "skipped": [json.dumps(evaluation.skipped)],
            }
            self.ws.append(BUILDS, pa.table(row, schema=BUILDS_SCHEMA))
        return build

    def _replace(self, name: str, table: pa.Table) -> None:
        """Swap a whole table for ``table``, written in small row groups (keyset pages prune by stats)."""
        d = self.ws.table_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        old = list(d.glob("*.parquet"))
        part = uuid.uuid4().hex
        tmp, final = d / f".{part}.parquet.tmp", d / f"{part}.parquet"
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP)
        with self._readers_lock(fcntl.LOCK_EX):
            os.replace(tmp, final)
            for p in old:
                p.unlink()

    # --- reads --------------------------------------------------------------------------------------
    def builds(self) -> list[Build]:
        """Every build, oldest first."""
        if not self.ws.exists(BUILDS):
            return []
        parts = tuple(sorted(p.name for p in self.ws.table_dir(BUILDS).glob("*.parquet")))
        if parts == self._builds[0]:
            return list(self._builds[1])
        frame = self.ws.read(BUILDS).to_pandas().sort_values(["at", "last_seq"], kind="stable")
        builds = [
            Build(
                build_id=r.build_id,
                at=r.at.to_pydatetime(),
                as_of=r.as_of.to_pydatetime(),
                last_seq=int(r.last_seq),
                customers=int(r.customers),
                thresholds=Thresholds.from_json(r.thresholds),
                stats=json.loads(r.stats),
                models=json.loads(r.models),
                skipped=json.loads(r.skipped),
            )
            for r in frame.itertuples()
        ]
        self._builds = (parts, builds)
        return list(builds)

    def latest_build(self) -> Build | None:
        builds = self.builds()
        return builds[-1] if builds else None

    def _require(self, segment: str | None) -> Build:
        build = self.latest_build()
        if build is None:
            raise NotFoundError("segments: no build yet in this workspace (run `cxi segments build`)")
        if segment is not None and segment not in build.segments:
            raise NotFoundError(
                f"segment {segment!r} is not in the latest build (known: {', '.join(build.segments)})"
            )
        return build

    def _current_sql(self, build: Build, where: str) -> str:
        """Current membership (customer_id, segment, entered_at) of the rows matching ``where``."""
        deltas = (
            f"""SELECT customer_id, segment, arg_max(kind, seq) AS kind, arg_max("at", seq) AS "at"
                FROM {EVENTS} WHERE seq > {build.last_seq} AND {where} GROUP BY customer_id, segment"""
            if self.ws.exists(EVENTS)
            else 'SELECT NULL::VARCHAR customer_id, NULL::VARCHAR segment, NULL::VARCHAR kind, NULL::TIMESTAMPTZ AS "at" '
            "WHERE false"
        )
        base = (
            f"SELECT customer_id, segment, entered_at FROM {MEMBERS} WHERE {where}"
            if self.ws.exists(MEMBERS)
            else "SELECT NULL::VARCHAR customer_id, NULL::VARCHAR segment, NULL::TIMESTAMPTZ entered_at WHERE false"
        )
        return f"""
            WITH d AS ({deltas}), b AS ({base})
            SELECT b.* FROM b ANTI JOIN d USING (customer_id, segment)
            UNION ALL SELECT customer_id, segment, "at" AS entered_at FROM d WHERE kind = 'entry'"""

    def current(self, customer_ids: list[str] | None = None) -> pd.DataFrame:
        """Current membership (customer_id, segment, entered_at), of the given customers or everyone."""
        build = self.latest_build()
        if build is None:
            return pd.DataFrame(
                {"customer_id": [], "segment": [], "entered_at": pd.Series(dtype="datetime64[us, UTC]")}
            )
        with self._reading() as con:
            where = "true"
            if customer_ids is not None:
                con.register("_ids", pa.table({"customer_id": pa.array(customer_ids, pa.string())}))
                where = "customer_id IN (SELECT customer_id FROM _ids)"
            return con.execute(self._current_sql(build, where)).df()

    def sizes(self) -> dict[str, int]:
        """Current size of every segment of the latest build (live changes included)."""
        build = self._require(None)
        with self._reading() as con:
            rows = con.execute(
                f"SELECT segment, count(*) FROM ({self._current_sql(build, 'true')}) GROUP BY 1"
            ).fetchall()
        got = dict(rows)
        return {s: int(got.get(s, 0)) for s in build.segments}

    def members(
        self,
        segment: str,
        cursor: str | None = None,
        limit: int = 1000,
        since: int | datetime | None = None,
    ) -> Page:
        """One page of the segment's current members ordered by customer_id (customer_id, entered_at), after
        ``cursor``; with ``since``, the entry/exit deltas instead (`changes`)."""
        if since is not None:
            return self.changes(segment, since=since, cursor=cursor, limit=limit)
        if not 1 <= limit <= MAX_LIMIT:
            raise ContractError("limit", f"must be between 1 and {MAX_LIMIT}", limit)
        build = self._require(segment)
        after = decode_cursor(cursor) if cursor else None
        where = "segment = $segment" + (" AND customer_id > $after" if after is not None else "")
        params: dict[str, Any] = {"segment": segment, "limit": limit + 1}
        if after is not None:
            params["after"] = after
        with self._reading() as con:
            sql = f"SELECT customer_id, entered_at FROM ({self._current_sql(build, where)}) ORDER BY customer_id LIMIT $limit"
            rows = con.execute(sql, params).df()
        more = len(rows) > limit
        rows = rows.iloc[:limit].reset_index(drop=True)
        return Page(rows, encode_cursor(rows["customer_id"].iloc[-1]) if more else None, more)

    def changes(
        self,
        segment: str | None = None,
        *,
        since: int | datetime | None = None,
        cursor: str | None = None,
        limit: int = 1000,
    ) -> Page:
        """Entry/exit events after ``since`` (an event seq, or a time: events ``at`` after it), oldest first,
        of one segment or all; ``next_cursor`` is the last seq returned (pass it back as ``cursor``)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ContractError("limit", f"must be between 1 and {MAX_LIMIT}", limit)
        if segment is not None:
            self._require(segment)
        if cursor is not None:
            if not cursor.isdigit():
                raise ContractError("cursor", "a changes cursor is an event seq (digits)", cursor)
            since = int(cursor)
        cols = ", ".join(f'"{c}"' for c in EVENTS_SCHEMA.names)
        if not self.ws.exists(EVENTS):
            return Page(EVENTS_SCHEMA.empty_table().to_pandas(), None)
        conds, params = [], {"limit": limit + 1}
        if segment is not None:
            conds.append("segment = $segment")
            params["segment"] = segment
        if isinstance(since, datetime):
            if since.tzinfo is None:
                raise ContractError("since", "must be timezone-aware", since.isoformat())
            conds.append('"at" > $since')
            params["since"] = since
        elif since is not None:
            conds.append("seq > $since")
            params["since"] = int(since)
        where = " AND ".join(conds) or "true"
        with self._reading() as con:
            rows = con.execute(
                f"SELECT {cols} FROM {EVENTS} WHERE {where} ORDER BY seq LIMIT $limit", params
            ).df()
        more = len(rows) > limit
        rows = rows.iloc[:limit].reset_index(drop=True)
        if len(rows):
            resume: str | None = str(int(rows["seq"].iloc[-1]))
        else:
            resume = str(since) if isinstance(since, int) else None
        return Page(rows, resume, more)


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
