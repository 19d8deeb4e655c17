"""Reading input files (by extension) and applying column mappings.

* ``.csv``: every cell read as text; only empty cells are missing (``"null"`` stays a value, so the
  placeholder rule can name it). A column whose every value reads as a whole number written as a float
  (``12550.0``: what a spreadsheet or pandas writes for an integer column with gaps) gets its integer text,
  so a customer number means the same from CSV as from Parquet.
* ``.jsonl`` / ``.ndjson`` / ``.json``: JSON lines (a ``.json`` file holding one array also works);
  values keep their JSON types, nested objects stay objects.
* ``.parquet``: as stored.

A mapping is ``{target_field: source_column}``: ``--map user_id=customer_number,occurred_at=ts`` or a
YAML file of the same pairs. Headers are trimmed, and a header that matches a contract field except for
case is taken as that field.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from contract.errors import ContractError

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
            return _whole_numbers(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
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
