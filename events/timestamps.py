"""Column-wise timestamp parsing into UTC.

Accepted, per value (a column may mix them):

* ISO 8601 with ``Z`` or an offset (``2024-05-01T10:00:00+02:00``, ``2024-05-01 10:00Z``): converted to UTC.
* naive ISO 8601 (``2024-05-01T10:00:00``, ``2024-05-01``) and ``YYYYMMDD`` dates: read as local time in
  ``tz`` (the importers' ``--tz``, default UTC); with ``tz=None`` they are rejected, as the contract's
  ``AwareDatetime`` does.
* epoch numbers (or digit strings), unit by magnitude like pydantic: ``|v| < 2e10`` seconds, then
  milliseconds, microseconds, nanoseconds. An 8-digit value that is a valid date in 1900-2199 is
  ``YYYYMMDD`` instead (epoch seconds that small would be 1970).
* datetime objects and datetime columns (aware: converted; naive: as above).

Values come back as ``datetime64[ns, UTC]`` floored to microseconds (the stored precision).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MISSING = "required"
UNPARSEABLE = "not a recognised timestamp (ISO 8601, YYYYMMDD or epoch seconds/milliseconds)"
NAIVE = "no timezone (naive timestamp); give an offset or import with --tz"

_YMD = r"^\d{8}$"
_EPOCH = r"^[+-]?\d+(\.\d+)?$"
_AWARE = r"\d[Tt ]\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"


@dataclass
class ParsedTimes:
    values: pd.Series  # datetime64[ns, UTC], NaT where invalid
    error: np.ndarray  # object: None or the reason


def parse_timestamps(s: pd.Series, *, tz: str | None = "UTC") -> ParsedTimes:
    """Parse a column of timestamps into UTC; see the module docstring for the accepted forms."""
    n = len(s)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    err = np.full(n, None, dtype=object)
    raw = s.reset_index(drop=True)
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        out[:] = raw.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    elif pd.api.types.is_datetime64_dtype(raw.dtype):
        _put(out, err, np.arange(n), *_localize(raw, tz))
    elif pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        _put(out, err, np.arange(n), *_from_numbers(raw.astype("float64")))
    else:
        _parse_objects(raw, tz, out, err)
    naive = np.flatnonzero(err == "naive")  # YYYYMMDD dates found among numbers and strings
    if len(naive):
        _put(out, err, naive, *_localize(pd.Series(out[naive]), tz))
    missing = raw.isna().to_numpy()
    err[missing] = MISSING
    values = pd.Series(out, index=s.index).dt.floor("us").dt.tz_localize("UTC")
    bad = pd.isna(values).to_numpy() & (err == None)  # noqa: E711 (element-wise)
    err[bad] = UNPARSEABLE
    return ParsedTimes(values, err)


def _put(out: np.ndarray, err: np.ndarray, pos: np.ndarray, values: np.ndarray, errors: np.ndarray) -> None:
    out[pos] = values
    err[pos] = errors


def _localize(naive: pd.Series, tz: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Naive datetimes read in `tz` (or rejected when tz is None)."""
    n = len(naive)
    err = np.full(n, None, dtype=object)
    if tz is None:
        err[naive.notna().to_numpy()] = NAIVE
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"), err
    local = pd.to_datetime(naive, errors="coerce").dt.tz_localize(
        tz, ambiguous=np.zeros(n, dtype=bool), nonexistent="shift_forward"
    )
    return local.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"), err


def _from_numbers(v: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Epoch by magnitude, or YYYYMMDD for 8-digit dates."""
    x = v.to_numpy(dtype="float64")
    n = len(x)
    err = np.full(n, None, dtype=object)
    a = np.abs(x)
    scale = np.select([a < 2e10, a < 2e13, a < 2e16], [1e6, 1e3, 1.0], 1e-3)  # -> microseconds
    with np.errstate(invalid="ignore", over="ignore"):
        us = np.round(x * scale)
    ok = np.isfinite(us) & (np.abs(us) < 9.2e15)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    out[ok] = us[ok].astype("int64").astype("datetime64[us]").astype("datetime64[ns]")
    ymd = np.isfinite(x) & (x >= 19000101) & (x <= 21991231) & (x == np.floor(x))
    if ymd.any():
        text = pd.Series(np.where(ymd, x, 0).astype("int64").astype(str))
        dates = pd.to_datetime(text, format="%Y%m%d", errors="coerce").to_numpy()
        as_date = ymd & ~np.isnat(dates)
        out[as_date] = dates[as_date]
        err[as_date] = "naive"
    return out, err


def _parse_objects(raw: pd.Series, tz: str | None, out: np.ndarray, err: np.ndarray) -> None:
    try:
        text: pa.Array | None = pa.array(raw, type=pa.string(), from_pandas=True)
        str_pos = np.flatnonzero(raw.notna().to_numpy())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        text = None
    if text is None:  # mixed column: split by value type
        kinds = raw.map(_kind, na_action="ignore").to_numpy()
        str_pos = np.flatnonzero(kinds == "str")
        text = pa.array(raw.iloc[str_pos], type=pa.string())
        full = pa.array([None] * len(raw), type=pa.string())
        full = pc.replace_with_mask(full, _mask(len(raw), str_pos), text)
        text = full
        for kind, pos in (("num", np.flatnonzero(kinds == "num")), ("dt", np.flatnonzero(kinds == "dt"))):
            if len(pos):
                sub = raw.iloc[pos]
                if kind == "num":
                    _put(out, err, pos, *_from_numbers(sub.astype("float64")))
                else:
                    _put(out, err, pos, *_from_datetimes(sub, tz))
    if len(str_pos):
        _parse_strings(pc.take(text, pa.array(str_pos)), str_pos, tz, out, err)


def _mask(n: int, pos: np.ndarray) -> pa.Array:
    m = np.zeros(n, dtype=bool)
    m[pos] = True
    return pa.array(m)


def _kind(v: object) -> str:
    if isinstance(v, str):
        return "str"
    if isinstance(v, dt.datetime):
        return "dt"
    if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_):
        return "num"
    return "other"


def _from_datetimes(sub: pd.Series, tz: str | None) -> tuple[np.ndarray, np.ndarray]:
    aware = sub.map(lambda d: d.tzinfo is not None and d.utcoffset() is not None).to_numpy(dtype=bool)
    out = np.full(len(sub), np.datetime64("NaT"), dtype="datetime64[ns]")
    err = np.full(len(sub), None, dtype=object)
    if aware.any():
        conv = pd.to_datetime(sub[aware], utc=True, errors="coerce").dt.tz_localize(None)
        out[aware] = conv.to_numpy(dtype="datetime64[ns]")
    if (~aware).any():
        naive = pd.to_datetime(sub[~aware].map(lambda d: d.replace(tzinfo=None)), errors="coerce")
        out[~aware], err[~aware] = _localize(naive, tz)
    return out, err


def _parse_strings(text: pa.Array, pos: np.ndarray, tz: str | None, out: np.ndarray, err: np.ndarray) -> None:
    text = pc.utf8_trim_whitespace(text)
    ymd = np.asarray(pc.match_substring_regex(text, _YMD).to_numpy(zero_copy_only=False), dtype=bool)
    epoch = (
        np.asarray(pc.match_substring_regex(text, _EPOCH).to_numpy(zero_copy_only=False), dtype=bool) & ~ymd
    )
    aware = np.asarray(pc.match_substring_regex(text, _AWARE).to_numpy(zero_copy_only=False), dtype=bool)
    iso = ~ymd & ~epoch
    values = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
    nums = ymd | epoch
    if nums.any():
        o, e = _from_numbers(pd.to_numeric(values[nums], errors="coerce"))
        _put(out, err, pos[nums], o, e)
    if (iso & aware).any():
        conv = pd.to_datetime(values[iso & aware], format="ISO8601", utc=True, errors="coerce")
        out[pos[iso & aware]] = conv.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    if (iso & ~aware).any():  # wall-clock times, read in tz (utc=True only keeps odd mixes from raising)
        wall = pd.to_datetime(values[iso & ~aware], format="ISO8601", utc=True, errors="coerce")
        _put(out, err, pos[iso & ~aware], *_localize(wall.dt.tz_localize(None), tz))
