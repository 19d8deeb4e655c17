"""Customer records ready for matching: read (CustomerRecord contract), then normalised column-wise.

`read_records` reads CSV / JSON-lines / Parquet files with the events importers' reader, mapping and
validation (`source` defaults to the file's stem); a field that breaks the contract is cleared and counted
(or, with ``strict``, raises); a record without a record_id is an error, and of rows repeating a
(source, record_id) the first is kept and the others counted (an error with ``strict``). `prepare` turns a records frame (contract column names; any other column is an extra identifier)
into the normalised, canonically ordered frame every matching step works on; the text normalisation runs
as Arrow compute kernels (no Python loop over values).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import ContractError
from contract.schemas import RECORDS_SCHEMA

#: Contract columns that are not extra identifiers.
BASE_COLUMNS: tuple[str, ...] = tuple(RECORDS_SCHEMA.names)


@dataclass
class ReadReport:
    """What reading the record files did: rows per source and cleared fields by ``"field: reason"``."""

    rows: dict[str, int] = field(default_factory=dict)
    cleared: dict[str, int] = field(default_factory=dict)


def read_records(
    paths: list[Path],
    mapping: dict[str, str] | None = None,
    *,
    strict: bool = False,
    date_format: str | None = None,
    phone_region: str | None = None,
) -> tuple[pd.DataFrame, ReadReport]:
    """Read record files into one frame in the contract's column names (extra id columns kept as-is);
    `date_format` reads dates of birth (see ``events.timestamps``), `phone_region` phones without a country
    code (see ``contract.normalize``)."""
    from events.readers import apply_mapping, read_frame
    from events.validate import RECORD_FIELDS, check_records

    frames: list[pd.DataFrame] = []
    report = ReadReport()
    cleared: Counter[str] = Counter()
    for path in paths:
        path = Path(path)
        raw = read_frame(path)
        df = apply_mapping(raw.reset_index(drop=True), mapping, RECORD_FIELDS)
        checked = check_records(df, source=path.stem, date_format=date_format, phone_region=phone_region)
        bad = ~checked.ok
        for f, r in zip(checked.field[bad], checked.reason[bad], strict=True):
            if strict or f in ("record_id", "source"):
                raise ContractError(f, f"{r} ({path.name}, {int(bad.sum())} bad row(s))")
            cleared[f"{f}: {r}"] += 1
        out = checked.table.to_pandas(types_mapper=pd.ArrowDtype)
        out = out.rename(columns={c: c.removeprefix("x:") for c in checked.extra_columns})
        report.rows[path.stem] = len(out)
        frames.append(out)
    if not frames:
        raise ContractError("--records", "at least one record file is required")
    records = pd.concat(frames, ignore_index=True)
    repeated = records.duplicated(["source", "record_id"], keep="first").to_numpy(bool)
    if repeated.any():  # real exports repeat ids: the first row of an id is linked, the others reported
        if strict:
            first = records.loc[repeated, ["source", "record_id"]].iloc[0]
            raise ContractError(
                "record_id", "repeated within its source", f"{first.source}:{first.record_id}"
            )
        cleared["record_id: repeated within its source (later rows left out)"] += int(repeated.sum())
        records = records.loc[~repeated].reset_index(drop=True)
    report.cleared = dict(cleared.most_common())
    return records, report


def _arrow_raw(s: pd.Series) -> pa.Array:
    """A column as one Arrow array (Arrow-backed columns convert zero-copy); mixed Python objects as text."""
    s = s.reset_index(drop=True)
    try:
        arr = pa.array(s, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array(s.astype("string"), from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _arrow(s: pd.Series | None, n: int) -> pa.Array:
    """A column as an Arrow string array (all null when absent)."""
    if s is None:
        return pa.nulls(n, pa.string())
    arr = _arrow_raw(s)
    if pa.types.is_null(arr.type):
        return pa.nulls(n, pa.string())
    return arr if arr.type == pa.string() else pc.cast(arr, pa.string())


def _clean(arr: pa.Array) -> pa.Array:
    """Trimmed lower-case ASCII text (accents stripped, other symbols as spaces), blanks as null (Arrow
    kernels: no Python loop over values)."""
    t = arr
    if not pc.all(pc.string_is_ascii(t)).as_py():
        t = pc.utf8_normalize(t, "NFKD")
        t = pc.replace_substring_regex(t, r"[^\x00-\x7f]", "")
    t = pc.ascii_lower(t)
    t = pc.replace_substring_regex(t, r"[^a-z0-9@.+\- ]", " ")
    t = pc.replace_substring_regex(t, r"\s+", " ")
    t = pc.ascii_trim_whitespace(t)
    return pc.if_else(pc.greater(pc.binary_length(t), 0), t, pa.scalar(None, pa.string()))


def _objects(arr: pa.Array) -> np.ndarray:
    """Arrow strings as a numpy object array (None = missing), the form every matching step works on."""
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)


def _text(s: pd.Series | None, n: int) -> np.ndarray:
    """`_clean` of a column as a numpy object array."""
    return _objects(_clean(_arrow(s, n)))


#: Birth dates outside these years are placeholders (0001-01-01, 9999-12-31), not evidence: missing.
DOB_YEARS: tuple[int, int] = (1800, 2200)


def _dates(s: pd.Series | None, n: int) -> np.ndarray:
    """Dates as YYYY-MM-DD strings (None where missing, unparseable or outside `DOB_YEARS`)."""
    if s is None:
        return np.full(n, None, dtype=object)
    if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_date(s.dtype.pyarrow_dtype):
        arr = _arrow_raw(s)
        year = pc.year(arr)
        ok = pc.and_(pc.greater_equal(year, DOB_YEARS[0]), pc.less_equal(year, DOB_YEARS[1]))
        return _objects(pc.if_else(ok, pc.cast(arr, pa.string()), pa.scalar(None, pa.string())))
    dob = pd.to_datetime(s.reset_index(drop=True), errors="coerce")
    dob = dob.where((dob.dt.year >= DOB_YEARS[0]) & (dob.dt.year <= DOB_YEARS[1]))
    return dob.dt.strftime("%Y-%m-%d").astype(object).where(dob.notna(), None).to_numpy()


def _extra_columns(records: pd.DataFrame) -> pd.DataFrame:
    """Extra identifier columns: any non-contract column, plus the keys of an ``extra_ids`` JSON column."""
    extra = {c: records[c] for c in records.columns if c not in BASE_COLUMNS}
    if "extra_ids" in records.columns:
        parsed = records["extra_ids"].dropna().map(json.loads)
        if len(parsed):
            expanded = pd.DataFrame(parsed.tolist(), index=parsed.index).reindex(records.index)
            for c in expanded.columns:
                extra.setdefault(str(c), expanded[c])
    return pd.DataFrame(extra, index=records.index)


def prepare(records: pd.DataFrame) -> pd.DataFrame:
    """The normalised matching frame, sorted by (source, record_id) so results never depend on row order.

    Columns: source, record_id, first_name, last_name, dob (YYYY-MM-DD), postcode, address, city, email,
    email_local, phone (last 9 digits), user_id, loyalty_id, email_sha256, and ``id:<name>`` per extra id.
    """
    for col in ("source", "record_id"):
        if col not in records.columns:
            raise ContractError(col, "required column missing from the records")
        if records[col].isna().any():
            raise ContractError(col, f"missing in {int(records[col].isna().sum())} record(s)")
    key = records["source"].astype(str) + "\x1f" + records["record_id"].astype(str)
    if key.duplicated().any():
        first = key[key.duplicated()].iloc[0].replace("\x1f", ":")
        raise ContractError("record_id", "repeated within its source", first)
    order = np.lexsort(
        (records["record_id"].astype(str).to_numpy(), records["source"].astype(str).to_numpy())
    )
    rec = records.iloc[order].reset_index(drop=True)
    n = len(rec)
    get = rec.get
    out = pd.DataFrame(
        {
            "source": rec["source"].astype(str).to_numpy(dtype=object),
            "record_id": rec["record_id"].astype(str).to_numpy(dtype=object),
        }
    )
    for col in ("first_name", "last_name", "city"):
        out[col] = _text(get(col), n)
    line1 = pc.fill_null(_arrow(get("address_line1"), n), "")
    line2 = pc.fill_null(_arrow(get("address_line2"), n), "")
    out["address"] = _objects(_clean(pc.binary_join_element_wise(line1, line2, " ")))
    out["dob"] = _dates(get("date_of_birth"), n)
    pc_ = _clean(_arrow(get("postcode"), n))
    out["postcode"] = _objects(pc.replace_substring(pc_, " ", ""))
    email = _clean(_arrow(get("email"), n))
    out["email"] = _objects(email)
    local = pc.replace_substring_regex(email, r"@.*$", "")
    local = pc.replace_substring_regex(local, r"\+.*$", "")
    out["email_local"] = _objects(pc.replace_substring(local, ".", ""))
    phone = pc.replace_substring_regex(_arrow(get("phone"), n), r"\D", "")
    phone = pc.if_else(pc.greater_equal(pc.utf8_length(phone), 6), phone, pa.scalar(None, pa.string()))
    out["phone"] = _objects(pc.utf8_slice_codeunits(phone, -9))
    for col in ("user_id", "loyalty_id", "email_sha256"):
        v = pc.utf8_trim_whitespace(_arrow(get(col), n))
        out[col] = _objects(pc.if_else(pc.greater(pc.binary_length(v), 0), v, pa.scalar(None, pa.string())))
    extra = _extra_columns(rec)
    for c in extra.columns:
        out[f"id:{c}"] = _text(extra[c], n)
    return out
