"""Column coercions and checks shared by the validators: text, numbers, lengths, placeholders.

Everything works on whole columns (pyarrow compute / pandas), never row by row, except the fallback that
casts a mixed-type object column to text. Nulls (None, NaN, NA) always mean "absent".
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.normalize import JUNK_VALUES

if TYPE_CHECKING:
    import duckdb

#: Characters Python's ``str.strip()`` removes (``str.isspace``), so trimming here matches the scalar rules.
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_JUNK = pa.array(sorted(JUNK_VALUES))
_DUCK: dict[int, duckdb.DuckDBPyConnection] = {}  # pid -> the process's in-memory DuckDB (made on use)
_DUCK_LOCK = threading.Lock()


def duck() -> duckdb.DuckDBPyConnection:
    """A cursor (own connection, close it after use) on one shared in-memory DuckDB.

    ``duckdb.connect()`` costs ~35 ms, which dominated small live batches; a cursor costs microseconds.
    """
    import duckdb

    pid = os.getpid()  # a forked child makes its own: a parent's connection is not fork-safe
    with _DUCK_LOCK:
        if pid not in _DUCK:  # (a parent's entry is left alone: closing it in a child is not safe either)
            _DUCK[pid] = duckdb.connect()
        return _DUCK[pid].cursor()


def column(df: pd.DataFrame, name: str) -> pd.Series:
    """The column, or an all-null object column when the frame lacks it."""
    if name in df.columns:
        return df[name]
    return pd.Series(np.full(len(df), None, dtype=object), index=df.index, dtype=object)


def blank_as_missing(s: pd.Series) -> pd.Series:
    """Text cells that are empty or only whitespace become None: a blank optional field is a missing value
    (as a CSV's empty cell already is), not a malformed one."""
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return s
    blank = s.astype("string").str.strip().eq("").fillna(False).to_numpy(bool)
    return s.where(~blank, None) if blank.any() else s


def text(df: pd.DataFrame, name: str) -> pa.Array:
    """The column as a string array (see `as_text`); all-null when the frame lacks it."""
    if name not in df.columns:
        return pa.nulls(len(df), pa.string())
    return as_text(df[name])


def _to_text(v: object) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def as_text(s: pd.Series) -> pa.StringArray:
    """A string array; non-string scalars (ids read as numbers) are cast to their text form, nulls stay null."""
    if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_string(s.dtype.pyarrow_dtype):
        return pa.array(s)
    if pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.ArrowDtype):
        return pc.cast(pa.array(s, from_pandas=True), pa.string())
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        try:
            return pa.array(s, type=pa.string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            pass
    return pa.array([_to_text(v) for v in s.tolist()], type=pa.string())


def to_numpy_bool(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Null -> False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def is_null(arr: pa.Array) -> np.ndarray:
    return to_numpy_bool(pc.is_null(arr))


def length_outside(arr: pa.Array, lo: int, hi: int | None) -> np.ndarray:
    """Non-null values whose length in code points (pydantic's rule) is outside [lo, hi]."""
    if arr.null_count == len(arr):
        return np.zeros(len(arr), dtype=bool)
    n = pc.utf8_length(arr)
    bad = pc.less(n, lo)
    if hi is not None:
        bad = pc.or_(bad, pc.greater(n, hi))
    return to_numpy_bool(bad)


def truthy(arr: pa.Array) -> np.ndarray:
    """Non-null, non-empty strings (Python truthiness)."""
    if arr.null_count == len(arr):
        return np.zeros(len(arr), dtype=bool)
    return to_numpy_bool(pc.greater(pc.utf8_length(arr), 0))


def is_junk(arr: pa.Array) -> np.ndarray:
    """``v.strip().lower() in JUNK_VALUES``, column-wise (U+0130 lower-cases to two code points in Python)."""
    if arr.null_count == len(arr):
        return np.zeros(len(arr), dtype=bool)
    low = pc.utf8_lower(pc.utf8_trim(arr, characters=PY_WHITESPACE))
    junk = pc.and_(pc.is_in(low, value_set=_JUNK), pc.invert(pc.match_substring(arr, "\u0130")))
    return to_numpy_bool(junk)


def as_number(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values (NaN where absent) and a mask of present values that are not numbers."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64").to_numpy(), np.zeros(len(s), dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        values = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        return values, np.zeros(len(s), dtype=bool)
    present = s.notna().to_numpy()
    values = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
    return values, present & np.isnan(values)


def sha256_text(arr: pa.Array | pd.Series) -> pa.Array:
    """SHA-256 hex of each UTF-8 string (DuckDB, column-wise); nulls stay null. Same as ``sha256_hex``."""
    if isinstance(arr, pd.Series):
        arr = pa.array(arr.astype(object).where(arr.notna(), None).tolist(), type=pa.string())
    con = duck()
    try:
        con.register("hash_in", pa.table({"v": arr}))
        return con.sql("SELECT sha256(v) AS h FROM hash_in").to_arrow_table().column("h").combine_chunks()
    finally:
        con.close()
