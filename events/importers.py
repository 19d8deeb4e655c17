"""Importers: frame or file -> validated, deduplicated rows in the workspace; rejects to ``quarantine``.

Every input row ends up in exactly one bucket: accepted (appended), quarantined (with the field and the
reason, and the original row as JSON), or duplicate (same key earlier in the file, or already in the
workspace: first wins). So ``accepted + quarantined + duplicates == rows`` and re-importing adds nothing.
Keys: ``event_id`` (events, transactions), ``(source, record_id)`` (records), ``decision_id`` (decisions).
With ``strict=True`` a single rejected row means nothing at all is written.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import ContractError
from contract.normalize import check_phone_region
from contract.schemas import (
    DECISIONS_BASE_COLUMNS,
    EVENTS_SCHEMA,
    QUARANTINE_SCHEMA,
    RECORDS_SCHEMA,
    Transaction,
)
from contract.workspace import Workspace
from events.properties import KNOWN_PROPS, to_json
from events.readers import apply_mapping, read_frame
from events.timestamps import check_date_format
from events.transactions import check_transactions
from events.validate import EVENT_FIELDS, RECORD_FIELDS, Checked, check_decisions, check_events, check_records

Kind = Literal["events", "records", "transactions", "decisions"]
KINDS: tuple[str, ...] = ("events", "records", "transactions", "decisions")
TABLES: dict[str, str] = {
    "events": "events",
    "transactions": "events",
    "records": "records",
    "decisions": "decisions",
}
FIELDS: dict[str, tuple[str, ...]] = {
    "events": (*EVENT_FIELDS, *KNOWN_PROPS),
    "records": RECORD_FIELDS,
    "transactions": (*Transaction.model_fields, "channel"),
    "decisions": DECISIONS_BASE_COLUMNS,
}
_SEP = "\x1f"


@dataclass
class ImportReport:
    """What one import did. ``reasons`` counts quarantined rows by ``"field: reason"``."""

    kind: str
    source: str
    rows: int
    accepted: int
    duplicates: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    written: bool = True
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Something usable came in (new or already present) and, if strict, nothing was rejected."""
        return (self.accepted + self.duplicates) > 0 and (self.written or self.quarantined == 0)


def import_file(
    ws: Workspace,
    kind: Kind,
    path: Path | str,
    *,
    mapping: dict[str, str] | None = None,
    source: str | None = None,
    strict: bool = False,
    tz: str | None = "UTC",
    date_format: str | None = None,
    phone_region: str | None = None,
) -> ImportReport:
    """Read a CSV / JSON-lines / Parquet file and import it; `source` defaults to the file's stem."""
    path = Path(path)
    return import_frame(
        ws,
        kind,
        read_frame(path),
        source=source or path.stem,
        mapping=mapping,
        strict=strict,
        tz=tz,
        date_format=date_format,
        phone_region=phone_region,
    )


def import_frame(
    ws: Workspace,
    kind: Kind,
    frame: pd.DataFrame,
    *,
    source: str,
    mapping: dict[str, str] | None = None,
    strict: bool = False,
    tz: str | None = "UTC",
    date_format: str | None = None,
    phone_region: str | None = None,
) -> ImportReport:
    """Validate, deduplicate and append one frame; naive timestamps are read in `tz` (None rejects them),
    text dates with `date_format` when given (else the forms `events.timestamps` recognises), raw phones
    without a country code in `phone_region` (ISO 3166 alpha-2, e.g. GB; else kept as digits)."""
    if kind not in KINDS:
        raise ContractError("kind", f"must be one of {', '.join(KINDS)}", kind)
    if tz is not None:
        _check_tz(tz)
    check_date_format(date_format)
    phone_region = check_phone_region(phone_region)
    started = time.perf_counter()
    plain = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
    original = frame if plain else frame.reset_index(drop=True)
    df = apply_mapping(original, mapping, FIELDS[kind])
    checked = _check(kind, df, source, tz, date_format, phone_region)
    ok = checked.ok
    keys = _keys(kind, checked.table)
    dup = np.zeros(len(df), dtype=bool)
    pos = np.flatnonzero(ok)
    dup[pos] = _repeated(keys.take(pa.array(pos)))
    fresh = np.flatnonzero(ok & ~dup)
    dup[fresh[_existing(ws, kind, keys.take(pa.array(fresh)))]] = True
    accepted = ok & ~dup
    bad = ~ok

    reasons = Counter(f"{f}: {r}" for f, r in zip(checked.field[bad], checked.reason[bad], strict=True))
    written = not (strict and bad.any())
    if written:
        stamp = datetime.now(UTC)
        ws.append(TABLES[kind], stored_rows(kind, checked, accepted, source, stamp))
        ws.append(
            "quarantine", new_quarantine(ws, quarantine_rows(kind, source, original, checked, bad, stamp))
        )
    return ImportReport(
        kind=kind,
        source=source,
        rows=len(df),
        accepted=int(accepted.sum()),
        duplicates=int(dup.sum()),
        quarantined=int(bad.sum()),
        reasons=dict(reasons.most_common()),
        written=written,
        seconds=time.perf_counter() - started,
    )


def _check_tz(tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ContractError("tz", "not a known time zone (e.g. UTC, Europe/Paris)", tz) from exc


def _check(
    kind: str,
    df: pd.DataFrame,
    source: str,
    tz: str | None,
    date_format: str | None,
    phone_region: str | None,
) -> Checked:
    if kind == "events":
        return check_events(df, tz=tz, date_format=date_format, phone_region=phone_region)
    if kind == "transactions":
        return check_transactions(df, tz=tz, date_format=date_format, phone_region=phone_region)
    if kind == "records":
        return check_records(df, source=source, date_format=date_format, phone_region=phone_region)
    return check_decisions(df, tz=tz, date_format=date_format)


def _keys(kind: str, t: pa.Table) -> pa.Array:
    if kind == "records":
        key = pc.binary_join_element_wise(t["source"], t["record_id"], _SEP)
    else:
        key = t["event_id" if kind in ("events", "transactions") else "decision_id"]
    return key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key


def _repeated(keys: pa.Array) -> np.ndarray:
    """True for every occurrence of a key after its first."""
    return pd.Series(keys, dtype=pd.ArrowDtype(pa.string())).duplicated(keep="first").to_numpy(dtype=bool)


def _existing(ws: Workspace, kind: str, keys: pa.Array) -> np.ndarray:
    """Which keys the workspace already holds (a DuckDB semi-join against the stored table)."""
    table = TABLES[kind]
    if len(keys) == 0 or not ws.exists(table):
        return np.zeros(len(keys), dtype=bool)
    stored = (
        f"source || '{_SEP}' || record_id"
        if kind == "records"
        else ("decision_id" if kind == "decisions" else "event_id")
    )
    new = pa.table({"k": keys, "i": pa.array(np.arange(len(keys)))})
    with ws.connect(table) as con:
        con.register("new_keys", new)
        hit = con.sql(
            f"SELECT i FROM new_keys SEMI JOIN (SELECT {stored} AS k FROM {table}) s USING (k)"
        ).fetchnumpy()
    out = np.zeros(len(keys), dtype=bool)
    out[hit["i"]] = True
    return out


def stored_rows(kind: str, checked: Checked, accepted: np.ndarray, source: str, stamp: datetime) -> pa.Table:
    """The accepted rows in their stored schema (events: properties as JSON, source, ingested_at)."""
    t = checked.table if accepted.all() else checked.table.filter(pa.array(accepted))
    n = t.num_rows
    now = pa.array(
        np.full(n, np.datetime64(stamp.replace(tzinfo=None), "us")), type=pa.timestamp("us", tz="UTC")
    )
    extra = {c.removeprefix("x:"): t[c] for c in checked.extra_columns}
    if kind in ("events", "transactions"):
        nested = (
            checked.extras[accepted]
            if checked.extras is not None
            else pd.Series(np.full(n, None, dtype=object))
        )
        typed = {k: t[k] for k in KNOWN_PROPS}
        props = to_json(typed, extra, nested.reset_index(drop=True), raw_json=("consent",))
        present = set(t.column_names)
        cols = {name: t[name] for name in EVENTS_SCHEMA.names if name in present}
        cols.update(
            properties=props,
            source=pa.array(np.full(n, source, dtype=object), type=pa.string()),
            ingested_at=now,
        )
        return _as_schema(pa.table(cols).select(EVENTS_SCHEMA.names), EVENTS_SCHEMA)
    if kind == "records":
        present = set(t.column_names)
        cols = {name: t[name] for name in RECORDS_SCHEMA.names if name in present}
        cols.update(extra_ids=to_json({}, extra, pd.Series(np.full(n, None, dtype=object))), ingested_at=now)
        return pa.table(cols).select(RECORDS_SCHEMA.names).cast(RECORDS_SCHEMA)
    base = {name: t[name] for name in DECISIONS_BASE_COLUMNS}
    return pa.table({**base, **{k: v for k, v in extra.items() if k not in base}, "ingested_at": now})


def _as_schema(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast to `schema` (a no-op cast still costs ~0.1 ms, a lot for one live event)."""
    return t if t.schema.equals(schema, check_metadata=True) else t.cast(schema)


def new_quarantine(ws: Workspace, q: pa.Table) -> pa.Table:
    """Leave out rejects already quarantined (same kind, source, row and content): re-imports add nothing."""
    if q.num_rows == 0 or not ws.exists("quarantine"):
        return q
    with ws.connect("quarantine") as con:
        con.register("new_q", q)
        return (
            con.sql(
                "SELECT * FROM new_q ANTI JOIN (SELECT kind, source, row_index, raw FROM quarantine) o "
                "USING (kind, source, row_index, raw)"
            )
            .to_arrow_table()
            .cast(QUARANTINE_SCHEMA)
        )


def quarantine_rows(
    kind: str, source: str, original: pd.DataFrame, checked: Checked, bad: np.ndarray, stamp: datetime
) -> pa.Table:
    """Quarantine rows for the rejected input rows: index, field, reason and the original row as JSON."""
    pos = np.flatnonzero(bad)
    if not len(pos):
        return QUARANTINE_SCHEMA.empty_table()
    rows = original.iloc[pos]
    n = len(pos)
    raw = (  # (pandas writes no lines at all for a frame without columns)
        rows.to_json(orient="records", lines=True, date_format="iso", default_handler=str).splitlines()
        if len(rows.columns)
        else ["{}"] * n
    )
    return pa.table(
        {
            "kind": pa.array([kind] * n, type=pa.string()),
            "source": pa.array([source] * n, type=pa.string()),
            "row_index": pa.array(pos, type=pa.int64()),
            "field": pa.array(checked.field[pos].tolist(), type=pa.string()),
            "reason": pa.array(checked.reason[pos].tolist(), type=pa.string()),
            "raw": pa.array(raw, type=pa.string()),
            "quarantined_at": pa.array([stamp] * n, type=pa.timestamp("us", tz="UTC")),
        },
        schema=QUARANTINE_SCHEMA,
    )
