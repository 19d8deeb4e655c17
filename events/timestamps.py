"""Column-wise timestamp parsing into UTC.

Accepted, per value (a column may mix them):

* ISO 8601 with ``Z`` or an offset (``2024-05-01T10:00:00+02:00``, ``2024-05-01 10:00Z``): converted to UTC.
* naive ISO 8601 (``2024-05-01T10:00:00``, ``2024-05-01``) and ``YYYYMMDD`` dates: read as local time in
  ``tz`` (the importers' ``--tz``, default UTC); with ``tz=None`` they are rejected, as the contract's
  ``AwareDatetime`` does.
* epoch numbers (or digit strings), unit by magnitude like pydantic: ``|v| < 2e10`` seconds, then
  milliseconds, microseconds, nanoseconds. An 8-digit value that is a valid date in 1900-2199 is
  ``YYYYMMDD`` instead (epoch seconds that small would be 1970).
* numeric day/month/year dates with ``/``, ``.`` or ``-`` and an optional time (``1/12/2010 8:26``,
  ``31.12.1980``, ``12-01-24 08:26:00 PM``), read in ``tz``. The order is taken from the column: a first
  number above 12 anywhere means day first, a second one month first; a column where every value could be
  either (or that shows both) is rejected with the reason, not guessed. Two-digit years pivot as ``%y`` does
  (69-99 -> 1900s, 00-68 -> 2000s).
* datetime objects and datetime columns (aware: converted; naive: as above).

``date_format`` (the importers' ``--date-format``, a ``strftime`` format such as ``%d/%m/%Y %H:%M``)
replaces the guessing for text values: each must match it (naive results are read in ``tz``).

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
UNPARSEABLE = (
    "not a recognised timestamp (ISO 8601, YYYYMMDD, day/month/year or epoch seconds/milliseconds);"
    " give its format with --date-format"
)
NAIVE = "no timezone (naive timestamp); give an offset or import with --tz"
AMBIGUOUS = (
    "day/month order is ambiguous (no value in the column has a day above 12); give --date-format,"
    " e.g. %d/%m/%Y or %m/%d/%Y"
)
MIXED = "the column mixes day-first and month-first dates; give --date-format"
NOT_A_DATE = "not a valid date or time"

_YMD = r"^\d{8}$"
_EPOCH = r"^[+-]?\d+(\.\d+)?$"
_AWARE = r"\d[Tt ]\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"
_DMY = (
    r"^(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<y>\d{4}|\d{2})"
    r"(?:[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,6}))?)?\s*(?P<p>[AaPp][Mm])?)?$"
)


@dataclass
class ParsedTimes:
    values: pd.Series  # datetime64[ns, UTC], NaT where invalid
    error: np.ndarray  # object: None or the reason


def check_date_format(date_format: str | None) -> None:
    """Refuse a `date_format` without a strftime directive (``ContractError`` naming the option)."""
    from contract.errors import ContractError

    if date_format is not None and "%" not in date_format:
        raise ContractError("date_format", "must be a strftime format such as %d/%m/%Y %H:%M", date_format)


def parse_timestamps(s: pd.Series, *, tz: str | None = "UTC", date_format: str | None = None) -> ParsedTimes:
    """Parse a column of timestamps into UTC; see the module docstring for the accepted forms."""
    check_date_format(date_format)
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
        _parse_objects(raw, tz, date_format, out, err)
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


def _parse_objects(
    raw: pd.Series, tz: str | None, date_format: str | None, out: np.ndarray, err: np.ndarray
) -> None:
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
        strings = pc.utf8_trim_whitespace(pc.take(text, pa.array(str_pos)))
        if date_format is None:
            _parse_strings(strings, str_pos, tz, out, err)
        else:
            _parse_formatted(strings, str_pos, tz, date_format, out, err)


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
    ymd = np.asarray(pc.match_substring_regex(text, _YMD).to_numpy(zero_copy_only=False), dtype=bool)
    epoch = (
        np.asarray(pc.match_substring_regex(text, _EPOCH).to_numpy(zero_copy_only=False), dtype=bool) & ~ymd
    )
    aware = np.asarray(pc.match_substring_regex(text, _AWARE).to_numpy(zero_copy_only=False), dtype=bool)
    dmy = np.asarray(pc.match_substring_regex(text, _DMY).to_numpy(zero_copy_only=False), dtype=bool)
    iso = ~ymd & ~epoch & ~dmy
    if dmy.any():
        wall, why = _day_month_year(pc.filter(text, pa.array(dmy)))
        o, e = _localize(pd.Series(wall), tz)
        _put(out, err, pos[dmy], o, np.where(why == None, e, why))  # noqa: E711 (element-wise)
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


def _day_month_year(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Naive datetimes of `_DMY` values (all matching), the day/month order read from the column itself."""
    parts = pc.extract_regex(text, _DMY)
    num = {
        k: pd.to_numeric(pd.Series(parts.field(k).to_numpy(zero_copy_only=False)), errors="coerce").to_numpy(
            "float64"
        )
        for k in ("a", "b", "y", "H", "M", "S")
    }
    n = len(text)
    err = np.full(n, None, dtype=object)
    day_first, month_first = bool((num["a"] > 12).any()), bool((num["b"] > 12).any())
    if day_first == month_first:
        err[:] = MIXED if day_first else AMBIGUOUS
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"), err
    day, month = (num["a"], num["b"]) if day_first else (num["b"], num["a"])
    year = num["y"]
    short = np.char.str_len(parts.field("y").to_numpy(zero_copy_only=False).astype(str)) == 2
    year = np.where(short, np.where(year >= 69, 1900 + year, 2000 + year), year)
    hour = np.nan_to_num(num["H"])
    meridiem = pd.Series(parts.field("p").to_numpy(zero_copy_only=False)).str.lower().to_numpy()
    pm, am = meridiem == "pm", meridiem == "am"
    bad_hour = (pm | am) & ((hour < 1) | (hour > 12))
    hour = np.where(am & (hour == 12), 0, np.where(pm & (hour < 12), hour + 12, hour))
    fraction = pd.Series(parts.field("f").to_numpy(zero_copy_only=False)).str.ljust(6, "0")
    micro = pd.to_numeric(fraction, errors="coerce").fillna(0).to_numpy("float64")
    frame = pd.DataFrame(
        {
            "year": year,
            "month": month,
            "day": day,
            "hour": hour,
            "minute": np.nan_to_num(num["M"]),
            "second": np.nan_to_num(num["S"]),
            "microsecond": micro,
        }
    )
    values = pd.to_datetime(frame, errors="coerce").to_numpy(dtype="datetime64[ns]")
    values[bad_hour] = np.datetime64("NaT")
    err[np.isnat(values)] = NOT_A_DATE
    return values, err


def _parse_formatted(
    text: pa.Array, pos: np.ndarray, tz: str | None, date_format: str, out: np.ndarray, err: np.ndarray
) -> None:
    """Text values read with `date_format` (strftime); aware results converted, naive ones read in `tz`."""
    values = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
    parsed = pd.to_datetime(values, format=date_format, errors="coerce", utc="%z" in date_format)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        out[pos] = parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    else:
        _put(out, err, pos, *_localize(parsed, tz))
    miss = np.flatnonzero(parsed.isna().to_numpy() & values.notna().to_numpy())
    err[pos[miss]] = f"does not match the date format {date_format!r} (--date-format)"
