"""Customer records ready for matching: read (CustomerRecord contract), then normalised column-wise.

`read_records` reads CSV / JSON-lines / Parquet files with the events importers' reader, mapping and
validation (`source` defaults to the file's stem); a field that breaks the contract is cleared and counted
(or, with ``strict``, raises), a record without a record_id or with a repeated (source, record_id) is an
error. `prepare` turns a records frame (contract column names; any other column is an extra identifier)
into the normalised, canonically ordered frame every matching step works on.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

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
    paths: list[Path], mapping: dict[str, str] | None = None, *, strict: bool = False
) -> tuple[pd.DataFrame, ReadReport]:
    """Read record files into one frame in the contract's column names (extra id columns kept as-is)."""
    from events.readers import apply_mapping, read_frame
    from events.validate import RECORD_FIELDS, check_records

    frames: list[pd.DataFrame] = []
    report = ReadReport()
    cleared: Counter[str] = Counter()
    for path in paths:
        path = Path(path)
        raw = read_frame(path)
        df = apply_mapping(raw.reset_index(drop=True), mapping, RECORD_FIELDS)
        checked = check_records(df, source=path.stem)
        bad = ~checked.ok
        for f, r in zip(checked.field[bad], checked.reason[bad], strict=True):
            if strict or f in ("record_id", "source"):
                raise ContractError(f, f"{r} ({path.name}, {int(bad.sum())} bad row(s))")
            cleared[f"{f}: {r}"] += 1
        out = checked.table.to_pandas(types_mapper=pd.ArrowDtype)
        out = out.rename(columns={c: c.removeprefix("x:") for c in checked.extra_columns})
        report.rows[path.stem] = len(out)
        frames.append(out)
    report.cleared = dict(cleared.most_common())
    if not frames:
        raise ContractError("--records", "at least one record file is required")
    return pd.concat(frames, ignore_index=True), report


def _text(s: pd.Series | None, n: int) -> pd.Series:
    """Trimmed lower-case text with accents stripped and blanks as missing (object dtype, None = missing)."""
    if s is None:
        return pd.Series([None] * n, dtype=object)
    t = s.astype("string").str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii")
    t = t.str.lower().str.replace(r"[^a-z0-9@.+\- ]", " ", regex=True).str.replace(r"\s+", " ", regex=True)
    t = t.str.strip()
    t = t.where(t.str.len() > 0)
    return t.astype(object).where(t.notna(), None).reset_index(drop=True)


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
    out["address"] = _text(
        (get("address_line1", pd.Series([None] * n)).astype("string").fillna(""))
        + " "
        + (get("address_line2", pd.Series([None] * n)).astype("string").fillna("")),
        n,
    )
    dob = pd.to_datetime(get("date_of_birth", pd.Series([None] * n)), errors="coerce")
    out["dob"] = dob.dt.strftime("%Y-%m-%d").astype(object).where(dob.notna(), None).to_numpy()
    pc = _text(get("postcode"), n)
    out["postcode"] = pc.str.replace(" ", "", regex=False).astype(object).where(pc.notna(), None)
    email = _text(get("email"), n)
    out["email"] = email
    local = (
        email.str.split("@").str[0].str.replace(r"\+.*$", "", regex=True).str.replace(".", "", regex=False)
    )
    out["email_local"] = local.astype(object).where(email.notna(), None)
    phone = get("phone", pd.Series([None] * n)).astype("string").str.replace(r"\D", "", regex=True)
    phone = phone.str.slice(-9).where(phone.str.len() >= 6)
    out["phone"] = phone.astype(object).where(phone.notna(), None).reset_index(drop=True)
    for col in ("user_id", "loyalty_id", "email_sha256"):
        s = get(col)
        v = s.astype("string").str.strip() if s is not None else pd.Series([None] * n, dtype="string")
        out[col] = v.astype(object).where(v.notna() & (v.str.len() > 0), None).reset_index(drop=True)
    extra = _extra_columns(rec)
    for c in extra.columns:
        out[f"id:{c}"] = _text(extra[c].astype("string"), n)
    return out
