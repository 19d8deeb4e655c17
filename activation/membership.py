"""Membership events as the outbox takes them: validation, normalisation, idempotency keys, payloads.

Two paths give identical keys for the same event: a row path for the live engine's few events (mappings,
pydantic models, dataclasses) and a vectorised path for frames (a batch build's DataFrame or Arrow table:
pandas for the checks, DuckDB for ISO timestamps, ``sha256`` keys and JSON payloads).

Key = sha256(destination, customer_id, segment, kind, ``seq:<n>`` when the event has a seq, else ``at`` as
ISO-8601 UTC), fields joined by ``\\x1f``. The segments layer's ``consent_<purpose>`` flags are not shipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from contract.errors import ContractError

if TYPE_CHECKING:
    import pandas as pd

    from activation.config import Destination

KINDS = frozenset({"entry", "exit"})
#: The fields of a membership event that the outbox reads (others ride along in the payload).
FIELDS = ("customer_id", "segment", "kind", "reason", "at", "build_id")
REQUIRED = ("customer_id", "segment", "kind", "at")
SEP = "\x1f"
#: One delivery row before timestamps: (key, destination, customer_id, segment, kind, payload JSON).
Row = tuple[str, str, str, str, str, str]


def _iso(at: object) -> str:
    """A timestamp as ISO-8601 UTC, so one instant always gives one idempotency key."""
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ContractError("membership_event.at", "not an ISO-8601 timestamp", at) from exc
    if hasattr(at, "to_pydatetime"):  # pandas.Timestamp: nanoseconds dropped, as in the frame path
        at = at.to_pydatetime(warn=False)
    if not isinstance(at, datetime):
        raise ContractError("membership_event.at", "must be a datetime or ISO-8601 string", at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat()


def _records(events: Any) -> Iterator[Mapping[str, Any]]:
    """Membership events as mappings: a DataFrame, an Arrow table, mappings, pydantic models or dataclasses."""
    if hasattr(events, "to_pylist"):  # pyarrow.Table / RecordBatch
        yield from events.to_pylist()
    elif hasattr(events, "to_dict") and hasattr(events, "columns"):  # pandas.DataFrame
        yield from events.to_dict("records")
    else:
        for e in events if isinstance(events, Iterable) and not isinstance(events, Mapping) else [events]:
            if isinstance(e, Mapping):
                yield e
            elif hasattr(e, "model_dump"):
                yield e.model_dump()
            elif dataclasses.is_dataclass(e) and not isinstance(e, type):
                yield dataclasses.asdict(e)
            else:
                yield {f: getattr(e, f) for f in (*FIELDS, "seq") if hasattr(e, f)}


def _missing(v: object) -> bool:
    """None, NaN, NaT or pandas' NA (what a missing value looks like coming out of a DataFrame)."""
    if v is None:
        return True
    try:
        return bool(v != v)
    except TypeError:  # pd.NA refuses to be a bool
        return True
    except ValueError:  # an array: present
        return False


def _plain(v: object) -> object:
    """numpy scalars as Python ones, so they serialise as numbers, not strings."""
    return v.item() if hasattr(v, "item") and type(v).__module__ == "numpy" else v


def normalise_event(e: Mapping[str, Any]) -> dict[str, Any]:
    """Check one membership event and give its JSON payload (known fields first, extras such as ``seq`` kept;
    the segments layer's ``consent_<purpose>`` columns are dropped: destinations get no consent data)."""
    e = {k: None if _missing(v) else _plain(v) for k, v in e.items()}
    for f in ("customer_id", "segment", "kind", "at"):
        if e.get(f) is None or e.get(f) == "":
            raise ContractError(f"membership_event.{f}", "required", dict(e))
    kind = str(getattr(e["kind"], "value", e["kind"]))
    if kind not in KINDS:
        raise ContractError("membership_event.kind", "must be entry or exit", e["kind"])
    out: dict[str, Any] = {
        "customer_id": str(e["customer_id"]),
        "segment": str(e["segment"]),
        "kind": kind,
        "reason": None if e.get("reason") is None else str(e["reason"]),
        "at": _iso(e["at"]),
        "build_id": None if e.get("build_id") is None else str(e["build_id"]),
    }
    for k, v in e.items():
        if k not in out and not k.startswith("consent_"):  # consent flags are checked here, not shipped
            out[k] = v
    return out


def idempotency_key(destination: str, event: Mapping[str, Any]) -> str:
    """sha256(destination, customer, segment, kind, seq or at): stable across re-enqueues and retries."""
    seq = event.get("seq")
    when = event["at"] if seq is None else f"seq:{_seq(seq)}"
    raw = SEP.join((destination, event["customer_id"], event["segment"], event["kind"], when))
    return hashlib.sha256(raw.encode()).hexdigest()


def _seq(v: object) -> int:
    """A seq as an int (a float column of a frame with gaps holds 7.0 for 7)."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ContractError("membership_event.seq", "must be an integer", v) from exc
    if not f.is_integer():
        raise ContractError("membership_event.seq", "must be an integer", v)
    return int(f)


def _rows_of_records(events: Any, destinations: Sequence[Destination]) -> list[Row]:
    rows: list[Row] = []
    for raw in _records(events):
        ev = normalise_event(raw)
        if ev.get("seq") is not None:
            ev["seq"] = _seq(ev["seq"])
        body = None
        for d in destinations:
            if d.wants(ev["segment"]):
                body = body or json.dumps(ev, default=str, separators=(",", ":"))
                rows.append(
                    (idempotency_key(d.name, ev), d.name, ev["customer_id"], ev["segment"], ev["kind"], body)
                )
    return rows


#: ``at`` (naive UTC) as `_iso` writes it: ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``, microseconds only when non-zero.
_ISO_SQL = (
    """strftime("at", '%Y-%m-%dT%H:%M:%S') || CASE WHEN microsecond("at") % 1000000 <> 0"""
    """ THEN '.' || lpad((microsecond("at") % 1000000)::VARCHAR, 6, '0') ELSE '' END || '+00:00'"""
)


def _first_bad(frame: pd.DataFrame, bad: pd.Series) -> dict[str, Any]:
    return frame.loc[bad[bad].index[0]].to_dict()


def _frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Checked events of a frame: known fields typed (``at`` naive UTC, ``seq`` Int64), extras kept."""
    import pandas as pd

    for f in REQUIRED:
        if f not in frame.columns:
            raise ContractError(f"membership_event.{f}", "required column", list(frame.columns))
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    for f in ("customer_id", "segment", "kind"):
        col = frame[f]
        bad = col.isna() | (col.astype(str) == "")
        if bad.any():
            raise ContractError(f"membership_event.{f}", "required", _first_bad(frame, bad))
        out[f] = col.astype(str)
    bad = ~out["kind"].isin(KINDS)
    if bad.any():
        raise ContractError("membership_event.kind", "must be entry or exit", out["kind"][bad].iloc[0])
    for f in ("reason", "build_id"):
        out[f] = (
            frame[f].astype("string")
            if f in frame.columns
            else pd.Series(pd.NA, index=frame.index, dtype="string")
        )
    at = frame["at"]
    if at.isna().any():
        raise ContractError("membership_event.at", "required", _first_bad(frame, at.isna()))
    if isinstance(at.dtype, pd.DatetimeTZDtype):
        parsed = at.dt.tz_convert("UTC")
    elif at.dtype.kind == "M":  # naive: UTC, as on the row path
        parsed = at.dt.tz_localize("UTC")
    else:
        text = at.astype(str).str.replace("Z", "+00:00")
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601", cache=False)
    if parsed.isna().any():
        raise ContractError("membership_event.at", "not an ISO-8601 timestamp", at[parsed.isna()].iloc[0])
    out["at"] = parsed.dt.tz_convert(None).astype("datetime64[us]")
    skip = {*FIELDS, "seq"}
    for c in frame.columns:
        if c not in skip and not str(c).startswith("consent_"):
            col = frame[c]
            out[str(c)] = col.astype("Float64") if col.dtype.kind == "f" else col  # NaN → null
    if "seq" in frame.columns:
        seq = pd.to_numeric(frame["seq"], errors="coerce")
        bad = (seq.isna() & frame["seq"].notna()) | (seq.notna() & (seq % 1 != 0))
        if bad.any():
            raise ContractError("membership_event.seq", "must be an integer", frame["seq"][bad].iloc[0])
        out["seq"] = seq.astype("Int64")
    return out


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rows_of_frame(frame: pd.DataFrame, destinations: Sequence[Destination]) -> list[Row]:
    """Vectorised `_rows_of_records`: DuckDB formats ``at``, hashes the keys and writes the JSON payloads."""
    import duckdb

    ev = _frame(frame)
    if ev.empty:
        return []
    fields = [c for c in ev.columns if c != "at"]
    pairs = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}', {_q(c)}" for c in fields)
    payload = f"json_object({pairs}, 'at', at_iso)"
    instant = "coalesce('seq:' || seq::VARCHAR, at_iso)" if "seq" in ev.columns else "at_iso"
    rows: list[Row] = []
    con = duckdb.connect()
    try:
        con.register("raw", ev)
        con.execute(
            f"CREATE TEMP TABLE ev AS SELECT customer_id, segment, kind, {instant} AS instant, {payload} AS payload"
            f" FROM (SELECT *, {_ISO_SQL} AS at_iso FROM raw)"
        )
        for d in destinations:
            if not d.enabled:
                continue
            where = "" if d.segments == "*" else "WHERE list_contains($segments, segment)"
            params: dict[str, Any] = {"dest": d.name, "sep": SEP}
            if d.segments != "*":
                params["segments"] = list(d.segments)
            rows += con.execute(
                "SELECT sha256(concat_ws($sep, $dest, customer_id, segment, kind, instant)), $dest::VARCHAR,"
                f" customer_id, segment, kind, payload::VARCHAR FROM ev {where} ORDER BY rowid",
                params,
            ).fetchall()
    finally:
        con.close()
    return rows


def delivery_rows(events: Any, destinations: Sequence[Destination]) -> list[Row]:
    """One row per (destination that wants the event's segment, event): key, destination, customer,
    segment, kind and the JSON payload. Frames go the vectorised way; anything else row by row."""
    if hasattr(events, "to_pandas") and hasattr(events, "schema"):  # pyarrow Table / RecordBatch
        events = events.to_pandas()
    if hasattr(events, "to_dict") and hasattr(events, "columns"):  # pandas DataFrame
        return _rows_of_frame(events, destinations)
    return _rows_of_records(events, destinations)
