"""Event properties: gather them from flat columns and/or a nested ``properties`` column, and write them
back as one JSON object per row.

Known keys (contract ``EventProperties``) become typed columns; any other key is an "extra" kept as-is.
A flat column wins over the same key nested in ``properties`` when both are present.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from contract.schemas import ConsentPurpose, EventProperties
from events.columns import column, duck

KNOWN_PROPS: tuple[str, ...] = tuple(EventProperties.model_fields)
_PURPOSES = frozenset(p.value for p in ConsentPurpose)
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


@dataclass
class Gathered:
    props: dict[str, pd.Series]  # one column per known key (raw values), same index as the input
    extras: pd.Series  # dict of nested extra keys, or None
    extra_columns: list[str]  # flat columns that are extra properties
    error: np.ndarray  # object: None or the reason the `properties` value itself is unusable


def gather(df: pd.DataFrame, top_level: Iterable[str]) -> Gathered:
    """Collect property values; `top_level` names the columns that are event fields, not properties."""
    fields = set(top_level)
    n = len(df)
    error = np.full(n, None, dtype=object)
    props = {k: column(df, k) for k in KNOWN_PROPS}
    extra_columns = [c for c in df.columns if c not in fields and c not in KNOWN_PROPS and c != "properties"]
    extras = pd.Series(np.full(n, None, dtype=object), index=df.index)
    if "properties" in df.columns and df["properties"].notna().any():
        nested, extras, error = _nested(df["properties"])
        for k in KNOWN_PROPS:
            if k in nested.columns:
                flat = props[k]
                both = np.where(
                    flat.notna().to_numpy(), flat.to_numpy(dtype=object), nested[k].to_numpy(dtype=object)
                )
                props[k] = pd.Series(both, index=flat.index, dtype=object)
    return Gathered(props, extras, extra_columns, error)


def _nested(col: pd.Series) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    values = col.tolist()
    error = np.full(len(values), None, dtype=object)
    dicts: list[dict[str, object]] = []
    for i, v in enumerate(values):
        d, error[i] = _as_object(v)
        dicts.append(d)
    nested = pd.DataFrame.from_records(
        [{k: d[k] for k in KNOWN_PROPS if k in d} for d in dicts], index=col.index
    )
    extras = [{k: x for k, x in d.items() if k not in KNOWN_PROPS} or None for d in dicts]
    return nested.astype(object), pd.Series(extras, index=col.index, dtype=object), error


def _as_object(v: object) -> tuple[dict, str | None]:
    """One ``properties`` value as a dict ({} when absent or unusable) and why it is unusable."""
    error = None
    if isinstance(v, str):
        try:
            v = json.loads(v) if v.strip() else None
        except ValueError:
            error = "not valid JSON"
            v = None
    if v is None or (isinstance(v, float) and np.isnan(v)):
        v = {}
    if not isinstance(v, dict):
        error = error or "must be an object (key: value pairs)"
        v = {}
    return v, error


def nested_value(v: object) -> tuple[dict, dict | None, str | None]:
    """One ``properties`` value: its known keys, its other keys (None if none) and why it is unusable."""
    d, error = _as_object(v)
    known = {k: d[k] for k in KNOWN_PROPS if k in d}
    return known, {k: x for k, x in d.items() if k not in KNOWN_PROPS} or None, error


def check_consent(col: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Validate consent objects (purpose -> bool, pydantic's lax booleans); returns normalised dicts + errors."""
    out: list[dict[str, bool] | None] = [None] * len(col)
    error = np.full(len(col), None, dtype=object)
    present = np.flatnonzero(col.notna().to_numpy())
    for i in present:  # consent is rare (consent_update events only); a loop over those rows is fine
        out[i], error[i] = consent_value(col.iloc[i])
    return pd.Series(out, index=col.index, dtype=object), error


def consent_value(v: object) -> tuple[dict[str, bool] | None, str | None]:
    """One present consent value: the normalised dict (None when invalid) and the reason it is invalid."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None, "not valid JSON"
    if not isinstance(v, dict):
        return None, "must be an object of purpose: true/false"
    error = None
    parsed: dict[str, bool] = {}
    for k, x in v.items():
        b = _lax_bool(x)
        if k not in _PURPOSES:
            error = f"unknown purpose (one of {', '.join(sorted(_PURPOSES))})"
        elif b is None:
            error = "consent values must be true or false"
        else:
            parsed[k] = b
    return (parsed if error is None else None), error


def _lax_bool(x: object) -> bool | None:
    if isinstance(x, bool):
        return x
    if isinstance(x, int | float) and x in (0, 1):
        return bool(x)
    if isinstance(x, str) and x.strip().lower() in _TRUE | _FALSE:
        return x.strip().lower() in _TRUE
    return None


def to_json(
    typed: dict[str, pa.Array],
    extra_flat: dict[str, pa.Array],
    extras: pd.Series,
    raw_json: tuple[str, ...] = (),
) -> pa.Array:
    """One JSON object per row: typed columns (nulls left out; `raw_json` ones hold JSON text already),
    flat extra columns, then the nested extras (dicts)."""
    n = len(extras)
    typed = {k: a for k, a in typed.items() if a.null_count < len(a)}
    extra_flat = {k: a for k, a in extra_flat.items() if a.null_count < len(a)}
    if n <= _SMALL:
        small = _to_json_small(typed, extra_flat, extras, raw_json)
        if small is not None:
            return small
    return _to_json_duckdb(typed, extra_flat, extras, raw_json)


def _to_json_duckdb(
    typed: dict[str, pa.Array],
    extra_flat: dict[str, pa.Array],
    extras: pd.Series,
    raw_json: tuple[str, ...] = (),
) -> pa.Array:
    """``to_json`` as one DuckDB query (any column types; the batch path)."""
    n = len(extras)
    cols: dict[str, pa.Array] = {f"c{i}": a for i, a in enumerate([*typed.values(), *extra_flat.values()])}
    names = [*typed, *extra_flat]
    given = np.flatnonzero(extras.notna().to_numpy())
    nested = np.full(n, None, dtype=object)
    nested[given] = [json.dumps(d, default=str)[1:-1] or None for d in extras.iloc[given]]
    cols["nested"] = pa.array(nested, type=pa.string())
    table = pa.table(cols) if cols else pa.table({"nested": pa.nulls(n, pa.string())})
    parts = []
    for i, name in enumerate(names):
        key = json.dumps(name).replace("'", "''")
        value = f"c{i}" if name in raw_json and i < len(typed) else f"to_json(c{i})"
        parts.append(f"'{key}:' || {value}")
    parts.append("nested")
    sql = f"SELECT '{{' || concat_ws(',', {', '.join(parts)}) || '}}' AS p FROM props_t"
    con = duck()
    try:
        con.register("props_t", table)
        return con.sql(sql).to_arrow_table().column("p").combine_chunks()
    finally:
        con.close()


_SMALL = 512  # rows: up to here JSON is written in Python (a DuckDB round trip costs ~1-2 ms)
#: DuckDB's ``to_json`` string escapes: like ``json.dumps(ensure_ascii=False)`` but upper-case hex.
_ESCAPES = {
    **{c: f"\\u{c:04X}" for c in range(0x20)},
    **{0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"},
}


def _to_json_small(
    typed: dict[str, pa.Array],
    extra_flat: dict[str, pa.Array],
    extras: pd.Series,
    raw_json: tuple[str, ...],
) -> pa.Array | None:
    """``to_json`` in Python, byte-identical to the DuckDB query; None for types it does not write."""
    n = len(extras)
    columns: list[list[str | None]] = []
    for i, (name, arr) in enumerate([*typed.items(), *extra_flat.items()]):
        key = json.dumps(name) + ":"
        values = arr.to_pylist()
        kind = arr.type
        if name in raw_json and i < len(typed):
            text = values
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            text = [None if v is None else '"' + v.translate(_ESCAPES) + '"' for v in values]
        elif pa.types.is_float64(kind):
            text = [None if v is None else repr(v) for v in values]
            if any(t is not None and ("e" in t or "n" in t) for t in text):
                return None  # exponents, inf and nan: DuckDB formats these its own way
        elif pa.types.is_int64(kind):
            text = [None if v is None else str(v) for v in values]
        elif pa.types.is_boolean(kind):
            text = [None if v is None else ("true" if v else "false") for v in values]
        else:
            return None
        columns.append([None if t is None else key + t for t in text])
    nested = [None if _na(d) else json.dumps(d, default=str)[1:-1] or None for d in extras.tolist()]
    rows = []
    for r in range(n):
        parts = [c[r] for c in columns if c[r] is not None]
        if nested[r] is not None:
            parts.append(nested[r])
        rows.append("{" + ",".join(parts) + "}")
    return pa.array(rows, pa.string())


def _na(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v)
