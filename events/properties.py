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
        if isinstance(v, str):
            try:
                v = json.loads(v) if v.strip() else None
            except ValueError:
                error[i] = "not valid JSON"
                v = None
        if v is None or (isinstance(v, float) and np.isnan(v)):
            v = {}
        if not isinstance(v, dict):
            error[i] = error[i] or "must be an object (key: value pairs)"
            v = {}
        dicts.append(v)
    nested = pd.DataFrame.from_records(
        [{k: d[k] for k in KNOWN_PROPS if k in d} for d in dicts], index=col.index
    )
    extras = [{k: x for k, x in d.items() if k not in KNOWN_PROPS} or None for d in dicts]
    return nested.astype(object), pd.Series(extras, index=col.index, dtype=object), error


def check_consent(col: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Validate consent objects (purpose -> bool, pydantic's lax booleans); returns normalised dicts + errors."""
    out: list[dict[str, bool] | None] = [None] * len(col)
    error = np.full(len(col), None, dtype=object)
    present = np.flatnonzero(col.notna().to_numpy())
    for i in present:  # consent is rare (consent_update events only); a loop over those rows is fine
        v = col.iloc[i]
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                error[i] = "not valid JSON"
                continue
        if not isinstance(v, dict):
            error[i] = "must be an object of purpose: true/false"
            continue
        parsed: dict[str, bool] = {}
        for k, x in v.items():
            b = _lax_bool(x)
            if k not in _PURPOSES:
                error[i] = f"unknown purpose (one of {', '.join(sorted(_PURPOSES))})"
            elif b is None:
                error[i] = "consent values must be true or false"
            else:
                parsed[k] = b
        if error[i] is None:
            out[i] = parsed
    return pd.Series(out, index=col.index, dtype=object), error


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
