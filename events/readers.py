"""Reading input files (by extension) and applying column mappings.

* ``.csv``: every cell read as text; only empty cells are missing (``"null"`` stays a value, so the
  placeholder rule can name it). A column whose every value reads as a whole number written as a float
  (``12550.0``: what a spreadsheet or pandas writes for an integer column with gaps) gets its integer text,
  so a customer number means the same from CSV as from Parquet. What spreadsheets and old exports write is
  read as such: the delimiter is sniffed among ``,`` ``;`` tab and ``|``; a file that is not UTF-8 (a BOM is
  fine) is read as Windows-1252 (then Latin-1) with a logged warning, as the public Online Retail CSV needs;
  in a ``;``-delimited file, a column of numbers written with a decimal comma (``1.234,50``) gets ``1234.50``.
* ``.jsonl`` / ``.ndjson`` / ``.json``: JSON lines (a ``.json`` file holding one array also works);
  values keep their JSON types, nested objects stay objects.
* ``.parquet``: as stored.

A mapping is ``{target_field: source_column}``: ``--map user_id=customer_number,occurred_at=ts`` or a
YAML file of the same pairs. Headers are trimmed, and a header that matches a contract field except for
case is taken as that field.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from contract.errors import ContractError

log = logging.getLogger(__name__)

#: Delimiters a CSV file may use (sniffed from its start); encodings tried after UTF-8, in order.
DELIMITERS = ",;\t|"
FALLBACK_ENCODINGS = ("cp1252", "latin-1")

EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def read_frame(path: Path) -> pd.DataFrame:
    """Read a CSV, JSON-lines or Parquet file into a frame."""
    path = Path(path)
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ContractError("file", f"unsupported file type (use one of {', '.join(EXTENSIONS)})", path.name)
    if not path.is_file():
        raise ContractError("file", "no such file", str(path))
    try:
        if fmt == "csv":
            return _read_csv(path)
        if fmt == "parquet":
            return pd.read_parquet(path)
        with open(path, encoding="utf-8") as fh:
            head = fh.read(64).lstrip()
        if not head:
            return pd.DataFrame()
        lines = not head.startswith("[")
        return pd.read_json(path, lines=lines, orient="records", dtype=False, convert_dates=False)
    except (ValueError, OSError) as exc:  # pandas/pyarrow parse errors are ValueErrors
        raise ContractError("file", f"cannot read {fmt}: {exc}", path.name) from exc


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV file as text cells, whatever its delimiter and (8-bit) encoding; see the module docstring."""
    for encoding in ("utf-8-sig", *FALLBACK_ENCODINGS):
        try:
            with open(path, encoding=encoding, newline="") as fh:
                head = fh.read(64 * 1024)
            sep = _delimiter(head)
            df = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], sep=sep, encoding=encoding
            )
        except UnicodeDecodeError:
            continue
        if encoding != "utf-8-sig":
            log.warning("%s is not UTF-8: read as %s", path.name, encoding)
        df = _whole_numbers(df)
        return _decimal_commas(df) if sep == ";" else df
    raise ContractError("file", "cannot decode the file as UTF-8, Windows-1252 or Latin-1", path.name)


def _delimiter(head: str) -> str:
    """The sniffed delimiter of a CSV file's first lines (``,`` when it cannot tell)."""
    try:
        return csv.Sniffer().sniff(head, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _decimal_commas(df: pd.DataFrame) -> pd.DataFrame:
    """Columns whose every value is a number with a decimal comma (``-1.234,5``, ``2,55``, ``7``) and at
    least one comma get a decimal point (``-1234.5``); other columns are left as written."""
    pattern = r"[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?"
    for c in df.columns:
        s = df[c].dropna()
        if len(s) and s.str.contains(",", regex=False).any() and s.str.fullmatch(pattern).all():
            df[c] = df[c].str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    return df


def _whole_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """Columns whose every value is like ``12550.0`` become ``12550`` (see the module docstring)."""
    pattern = r"-?\d+\.0+"
    for c in df.columns:
        s = df[c].dropna()
        # most columns fail on their first values: only a promising column is matched whole
        if len(s) and s.iloc[:100].str.fullmatch(pattern).all() and s.str.fullmatch(pattern).all():
            df[c] = df[c].str.replace(r"\.0+$", "", regex=True)
    return df


def parse_map(pairs: Iterable[str]) -> dict[str, str]:
    """``["a=b,c=d", "e=f"]`` -> ``{"a": "b", "c": "d", "e": "f"}`` (target = source column)."""
    mapping: dict[str, str] = {}
    for chunk in pairs:
        for pair in chunk.split(","):
            if not pair.strip():
                continue
            target, sep, source = pair.partition("=")
            if not sep or not target.strip() or not source.strip():
                raise ContractError("--map", "expected target=source_column", pair)
            mapping[target.strip()] = source.strip()
    return mapping


def load_mapping(path: Path) -> dict[str, str]:
    """A YAML file of ``target: source_column`` pairs."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError("--map-file", f"cannot read mapping: {exc}", str(path)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ContractError("--map-file", "must be a YAML mapping of target_field: source_column (both text)")
    return {k.strip(): v.strip() for k, v in data.items()}


def apply_mapping(df: pd.DataFrame, mapping: dict[str, str] | None, fields: Iterable[str]) -> pd.DataFrame:
    """Rename columns to contract fields: trimmed headers, then `mapping` (a source found exactly, else by a
    case-insensitive match with one header), then case-insensitive field names among the columns left."""
    tidy = {c: str(c).strip() for c in df.columns if str(c).strip() != c}
    if tidy:
        df = df.rename(columns=tidy, copy=False)
    if mapping:
        by_lower: dict[str, list[str]] = {}
        for c in df.columns:
            by_lower.setdefault(str(c).lower(), []).append(c)

        def source_of(name: str) -> str | None:
            if name in df.columns:
                return name
            hits = by_lower.get(name.strip().lower(), [])
            return hits[0] if len(hits) == 1 else None

        sources = {target: source_of(source) for target, source in mapping.items()}
        missing = sorted({mapping[t] for t, s in sources.items() if s is None})
        if missing:
            raise ContractError(
                "--map",
                f"source column(s) {', '.join(map(repr, missing))} not in the file "
                f"(columns: {', '.join(map(str, df.columns))})",
            )
        mapped = {target: df[source] for target, source in sources.items()}
        used = set(sources.values())
        rest = {c: df[c] for c in df.columns if c not in used and c not in mapped}
        df = pd.DataFrame({**mapped, **rest}, index=df.index)
    present = set(df.columns)
    fields_by_lower = {f.lower(): f for f in fields}
    case = {
        c: fields_by_lower[c.lower()]
        for c in df.columns
        if c.lower() in fields_by_lower and fields_by_lower[c.lower()] not in present
    }
    return df.rename(columns=case, copy=False) if case else df
