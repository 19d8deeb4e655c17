"""Small batches row by row: ``check_events``' verdicts and columns without pandas/Arrow per column.

The column-wise checker costs ~11-16 ms a call whatever the row count (dozens of pandas Series, Arrow
kernels, a DuckDB round trip), which a live ``POST /v1/events`` of one event cannot afford. This module
applies the same rules to plain Python values for the shapes live clients send: text fields, ISO 8601
timestamps (``Z``/offset, or naive read in UTC), numbers (also as text), properties as objects or JSON
text, raw emails/phones hashed with ``hashlib``. Where it could read a value differently from the
column-wise code it does not guess: other timestamp forms send that column to ``parse_timestamps``, and
shapes whose meaning depends on pandas' dtype inference (booleans or huge integers as numbers, extension
dtypes) raise :class:`Unsupported`, upon which ``check_events`` uses the column-wise checker. So results
are identical; ``tests/events/test_events_validate_small.py`` pins that on generated events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from contract.normalize import _EMAIL_RE, JUNK_VALUES, normalize_phone
from contract.schemas import AUTHENTICATED_TYPES, IDENTIFIER_TYPES, PURCHASE_TYPES, Channel, EventType
from events.columns import PY_WHITESPACE, _to_text, column, is_junk
from events.properties import KNOWN_PROPS, consent_value, nested_value
from events.timestamps import MISSING, NAIVE, parse_timestamps

if TYPE_CHECKING:
    from events.validate import Checked

#: Largest batch checked row by row (~12 µs a row; the column-wise checker costs ~11 ms + ~2 µs a row).
SMALL_BATCH = 512

_TS = pa.timestamp("us", tz="UTC")
_EVENT_TYPES = frozenset(t.value for t in EventType)
_CHANNELS = frozenset(c.value for c in Channel)
_AUTH = frozenset(AUTHENTICATED_TYPES - {"purchase"})
_BUY = frozenset(PURCHASE_TYPES)
_SHA = re.compile(r"[0-9a-f]{64}\n?")
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_EPOCH = dt.datetime(1970, 1, 1)
_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")  # pandas may read these as integers (context-dependent)
_SMALL_INT = re.compile(r"\+?[0-9]{1,15}|-0*[1-9][0-9]{0,14}")  # ... but these give the same float anyway
_IDS_REASON = "at least one of " + ", ".join(IDENTIFIER_TYPES) + " is required"
_SHA_REASON = "must be a lower-case hex SHA-256 digest (64 characters)"
_PLAIN = (str, int, float, bool, type(None), dict, list)


class Unsupported(Exception):
    """This batch has a shape the row-wise path does not cover; use the column-wise checker."""


def _values(df: pd.DataFrame, name: str, n: int) -> list[object]:
    if name not in df.columns:
        return [None] * n
    s = df[name]
    if (
        not isinstance(s.dtype, np.dtype) or s.dtype.kind not in "Oifb"
    ):  # `as_text` reads these like `_to_text`
        raise Unsupported(name)
    values = s.tolist()
    for v in values:
        if type(v) not in _PLAIN:
            raise Unsupported(name)
    return values


def _absent(v: object) -> bool:
    return v is None or (type(v) is float and math.isnan(v))


def _texts(values: list[object]) -> list[str | None]:
    return [_to_text(v) for v in values]


def _junk(v: str) -> bool:
    if not v.isascii():  # Unicode case rules differ between Arrow and Python: ask the column code
        return bool(is_junk(pa.array([v], pa.string()))[0])
    return v.strip(PY_WHITESPACE).lower() in JUNK_VALUES


def _numbers(values: list[object]) -> tuple[list[float], list[bool]]:
    """``as_number`` for one property: values (NaN where absent) and "present but not a number"."""
    out: list[float] = []
    bad: list[bool] = []
    text: list[int] = []
    for i, v in enumerate(values):
        if v is None or (type(v) is float and math.isnan(v)):
            out.append(math.nan)
        elif type(v) is float:
            out.append(v)
        elif type(v) is int and abs(v) < 2**53:
            out.append(float(v))
        elif type(v) is str and _INT_TEXT.fullmatch(v) is None:
            out.append(math.nan)
            text.append(i)
        elif type(v) is str and _SMALL_INT.fullmatch(v):
            out.append(float(int(v)))
        else:  # booleans, huge ints, odd integer text: pandas' coercions depend on the whole column
            raise Unsupported("number")
        bad.append(False)
    if text:  # text that is no integer parses (or not) the same whatever else the column holds
        parsed = pd.to_numeric(pd.Series([values[i] for i in text] + [0.5], dtype=object), errors="coerce")
        for i, x in zip(text, parsed.astype("float64").tolist(), strict=False):
            out[i] = x
            bad[i] = math.isnan(x)
    return out, bad


def _times(values: list[object], tz: str | None, df: pd.DataFrame) -> tuple[pa.Array, list]:
    """The parsed times (UTC, microseconds) and errors; other forms go to ``parse_timestamps``."""
    out: list[int | None] = []
    err: list[str | None] = []
    for v in values:
        if _absent(v):
            out.append(None)
            err.append(MISSING)
            continue
        m = _ISO.fullmatch(v) if type(v) is str else None
        if m is None or not 1700 <= int(m[1]) <= 2200 or (m[8] is None and tz not in (None, "UTC")):
            return _times_columnwise(df, tz)
        if m[8] is None and tz is None:
            out.append(None)
            err.append(NAIVE)
            continue
        try:
            t = dt.datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4] or 0), int(m[5] or 0), int(m[6] or 0))
        except ValueError:
            return _times_columnwise(df, tz)
        us = (t - _EPOCH) // dt.timedelta(microseconds=1) + int((m[7] or "0")[:6].ljust(6, "0"))
        if m[8] and m[8] != "Z":
            hh, mm = int(m[8][1:3]), int(m[8][4:6])
            if hh > 18 or mm > 59:
                return _times_columnwise(df, tz)
            us -= (1 if m[8][0] == "+" else -1) * (hh * 3600 + mm * 60) * 1_000_000
        out.append(us)
        err.append(None)
    return pa.array(out, _TS), err


def _times_columnwise(df: pd.DataFrame, tz: str | None) -> tuple[pa.Array, list]:
    parsed = parse_timestamps(column(df, "occurred_at"), tz=tz)
    return pa.array(parsed.values, type=_TS, from_pandas=True), list(parsed.error)


def _pii(
    raw: object, given: str | None, normalize: Callable[[str], str], ok: Callable[[str], bool]
) -> tuple[str | None, bool]:
    """``_raw_pii`` for one value: the digest to keep and whether the raw value is invalid."""
    if _absent(raw) or given:
        return given, False
    norm = normalize(_to_text(raw))  # type: ignore[arg-type]
    if not ok(norm):
        return None, True
    return hashlib.sha256(norm.encode("utf-8")).hexdigest(), False


def _email_norm(v: str) -> str:
    return v.strip().lower()


def _email_ok(v: str) -> bool:
    return _EMAIL_RE.match(v) is not None


def _phone_ok(v: str) -> bool:
    return 6 <= len(v.lstrip("+")) <= 15


def check_events_small(
    df: pd.DataFrame, tz: str | None, negative_revenue: bool, phone_region: str | None = None
) -> Checked:
    """``check_events`` row by row; raises :class:`Unsupported` for shapes left to the column-wise code."""
    from events.validate import EVENT_FIELDS, Checked, _arrow, _length_reason

    phone_norm = partial(normalize_phone, region=phone_region)
    n = len(df)
    if not df.columns.is_unique or any(type(c) is not str for c in df.columns):
        raise Unsupported("columns")
    col = {c: _values(df, c, n) for c in (*EVENT_FIELDS, *KNOWN_PROPS, "properties")}
    ids = {k: _texts(col[k]) for k in IDENTIFIER_TYPES}
    event_id, type_, channel = _texts(col["event_id"]), _texts(col["type"]), _texts(col["channel"])
    ip, agent = _texts(col["ip"]), _texts(col["user_agent"])
    times, time_err = _times(col["occurred_at"], tz, df)
    extra_columns = [
        c for c in df.columns if c not in EVENT_FIELDS and c not in KNOWN_PROPS and c != "properties"
    ]

    field: list[str | None] = [None] * n
    reason: list[str | None] = [None] * n
    props: dict[str, list[object]] = {k: [None] * n for k in KNOWN_PROPS}
    consent: list[str | None] = [None] * n
    extras: list[dict | None] = [None] * n
    perr: list[str | None] = [None] * n
    for i in range(n):  # properties: flat columns win over the same key nested in `properties`
        nested, extras[i], perr[i] = nested_value(col["properties"][i])
        for k in KNOWN_PROPS:
            v = col[k][i]
            if _absent(v) and k in nested:
                v = nested[k]
                if type(v) not in _PLAIN or (type(v) is int and abs(v) >= 2**53):
                    raise Unsupported(k)  # the column-wise code reads these through a frame's dtypes
            props[k][i] = v
    nums = {k: _numbers(props[k]) for k in ("price", "quantity", "revenue")}
    for i in range(n):
        fails: list[tuple[str, str]] = []
        ids["email_sha256"][i], bad = _pii(col["email"][i], ids["email_sha256"][i], _email_norm, _email_ok)
        if bad:
            fails.append(("email", "not a valid email address"))
        ids["phone_sha256"][i], bad = _pii(col["phone"][i], ids["phone_sha256"][i], phone_norm, _phone_ok)
        if bad:
            fails.append(("phone", "not a valid phone number"))
        e = event_id[i]
        if e is None:
            fails.append(("event_id", "required"))
        elif not 1 <= len(e) <= 128:
            fails.append(("event_id", "must have 1 to 128 characters"))
        terr = time_err[i]
        if terr is not None:
            fails.append(("occurred_at", terr))
        t = type_[i]
        if t is None:
            fails.append(("type", "required"))
        elif t not in _EVENT_TYPES:
            fails.append(("type", "not a known event type"))
        c = channel[i]
        if c is None:
            fails.append(("channel", "required"))
        elif c not in _CHANNELS:
            fails.append(("channel", "not a known channel"))
        for k in IDENTIFIER_TYPES:
            v = ids[k][i]
            if v is None:
                continue
            if not 1 <= len(v) <= 256:
                fails.append((k, "must have 1 to 256 characters"))
            if k in ("email_sha256", "phone_sha256"):
                if _SHA.fullmatch(v) is None:
                    fails.append((k, _SHA_REASON))
            elif _junk(v):
                fails.append((k, "placeholder value is not an identifier"))
        address, ua = ip[i], agent[i]
        if address is not None and len(address) > 64:
            fails.append(("ip", _length_reason(0, 64)))
        if ua is not None and len(ua) > 1024:
            fails.append(("user_agent", _length_reason(0, 1024)))

        pe = perr[i]
        if pe is not None:
            fails.append(("properties", pe))
        for k, lo in (("price", 0), ("quantity", 1), ("revenue", None if negative_revenue else 0)):
            x, bad = nums[k][0][i], nums[k][1][i]
            label = f"properties.{k}"
            if bad:
                fails.append((label, "not a number"))
            if k == "quantity" and not math.isnan(x) and not (math.isfinite(x) and x == math.floor(x)):
                fails.append((label, "must be a whole number"))
            if lo is not None and x < lo:
                fails.append((label, f"must be >= {lo:g}"))
        parsed, cerr = (None, None) if _absent(props["consent"][i]) else consent_value(props["consent"][i])
        if cerr is not None:
            fails.append(("properties.consent", cerr))
        if parsed is not None:
            consent[i] = json.dumps(parsed)

        if not any(ids[k][i] for k in IDENTIFIER_TYPES):
            fails.append(("identifiers", _IDS_REASON))
        if t in _AUTH and ids["user_id"][i] is None:
            fails.append(("user_id", "required for login and signup events"))
        if t in _BUY and math.isnan(nums["revenue"][0][i]) and math.isnan(nums["price"][0][i]):
            fails.append(("properties.revenue", "required for purchase events (or properties.price)"))
        if t == "consent_update" and not parsed:
            fails.append(("properties.consent", "required for consent_update events"))
        if fails:
            field[i], reason[i] = fails[0]

    q = nums["quantity"][0]
    quantity = [int(x) if math.isfinite(x) and abs(x) < 2**62 and x == math.floor(x) else None for x in q]
    cols: dict[str, pa.Array] = {
        "event_id": pa.array(event_id, pa.string()),
        "occurred_at": times,
        "type": pa.array(type_, pa.string()),
        "channel": pa.array(channel, pa.string()),
        **{k: pa.array(ids[k], pa.string()) for k in IDENTIFIER_TYPES},
        "ip": pa.array(ip, pa.string()),
        "user_agent": pa.array(agent, pa.string()),
        "product_id": _text_prop(props["product_id"]),
        "category": _text_prop(props["category"]),
        "price": pa.array(nums["price"][0], pa.float64(), from_pandas=True),
        "quantity": pa.array(quantity, pa.int64()),
        "order_id": _text_prop(props["order_id"]),
        "revenue": pa.array(nums["revenue"][0], pa.float64(), from_pandas=True),
        "offer_id": _text_prop(props["offer_id"]),
        "query": _text_prop(props["query"]),
        "consent": pa.array(consent, pa.string()),
    }
    extra = {f"x:{c}": _arrow(df[c]) for c in extra_columns}
    f = np.array(field, dtype=object)
    r = np.array(reason, dtype=object)
    return Checked(
        pa.table({**cols, **extra}), f, r, pd.Series(extras, index=df.index, dtype=object), list(extra)
    )


def _text_prop(values: list[object]) -> pa.Array:
    return pa.array(_texts(values), pa.string())
