"""Thresholds of a build: percentile conditions turned into absolute values, frozen with the build.

A percentile condition (``{percentile: predicted_value, op: ">=", enter: 0.8, exit: 0.7}``) compares a
customer's value with the value at that percentile of every customer in the build. `freeze` computes those
values once per build; they are stored with it (`segments.store`) and live evaluation reuses them until the
next build, so audiences do not churn on every rescore. `describe` writes conditions with their thresholds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from contract.errors import ContractError
from segments.definitions import Condition, Definitions, Segment


@dataclass(frozen=True)
class Thresholds:
    """Absolute values of the percentile conditions, frozen with a build: key ``<segment>/<group>/<i>`` ->
    (enter, exit). Live evaluation reuses them until the next build."""

    values: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({k: list(v) for k, v in sorted(self.values.items())})

    @classmethod
    def from_json(cls, text: str | None) -> Thresholds:
        return cls({k: (float(v[0]), float(v[1])) for k, v in json.loads(text or "{}").items()})


def groups(seg: Segment) -> list[tuple[str, list[Condition]]]:
    return [("conditions", seg.conditions), ("any_of", seg.any_of)]


def numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def freeze(defs: Definitions, frame: pd.DataFrame) -> Thresholds:
    """The values at each percentile condition's enter/exit percentiles over ``frame`` (nulls ignored)."""
    out: dict[str, tuple[float, float]] = {}
    for seg in defs.segments:
        for group, conds in groups(seg):
            for i, c in enumerate(conds):
                if c.percentile is None or c.percentile not in frame.columns:
                    continue
                v = numeric(frame, c.percentile)
                v = v[~np.isnan(v)]
                enter, exit_ = c.thresholds
                out[f"{seg.name}/{group}/{i}"] = (
                    (float(np.quantile(v, enter)), float(np.quantile(v, exit_)))
                    if len(v)
                    else (np.inf, np.inf)
                )
    return Thresholds(out)


def absolute(seg: Segment, group: str, i: int, c: Condition, thresholds: Thresholds) -> tuple[float, float]:
    if c.percentile is None:
        return c.thresholds
    key = f"{seg.name}/{group}/{i}"
    if key not in thresholds.values:
        raise ContractError("thresholds", f"no frozen value for {key}: run `cxi segments build` first", key)
    return thresholds.values[key]


def condition_text(c: Condition, value: float, pct: float | None = None) -> str:
    if c.op in ("is_null", "not_null"):
        return f"{c.column} {c.op.replace('_', ' ')}"
    shown = f"{value:.4g}" + (f" (p{round(pct * 100)})" if pct is not None else "")
    return f"{c.column} {c.op} {shown}"


def describe(seg: Segment, thresholds: Thresholds, *, leaving: bool = False) -> list[str]:
    """Each condition in words with its absolute threshold (``exit`` ones when ``leaving``)."""
    texts: list[str] = []
    for group, conds in groups(seg):
        parts = []
        for i, c in enumerate(conds):
            enter, exit_ = absolute(seg, group, i, c, thresholds)
            pct = (c.thresholds[1] if leaving else c.thresholds[0]) if c.percentile else None
            parts.append(condition_text(c, exit_ if leaving else enter, pct))
        if group == "any_of" and parts:
            texts.append("any of (" + " or ".join(parts) + ")")
        else:
            texts.extend(parts)
    return texts
