"""Logged decisions for next-best-action: loading, checking, context encoding and the time split."""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from contract.errors import ContractError
from contract.schemas import DECISIONS_BASE_COLUMNS
from contract.workspace import Workspace

log = logging.getLogger(__name__)

#: Columns of the decisions table that are never context features.
NON_CONTEXT: frozenset[str] = frozenset({*DECISIONS_BASE_COLUMNS, "source", "imported_at", "ingested_at"})

#: Text read as a boolean number (a bool column written to CSV reads back as "True"/"False").
BOOL_TEXT: dict[str, float] = {"true": 1.0, "false": 0.0}


def load_decisions(ws: Workspace) -> pd.DataFrame:
    """The workspace's ``decisions`` table as a frame, oldest first."""
    df = ws.read("decisions").to_pandas()
    return check_decisions(df).sort_values(["occurred_at", "decision_id"], kind="stable", ignore_index=True)


def check_decisions(df: pd.DataFrame, *, require_reward: bool = True) -> pd.DataFrame:
    """Raise a ContractError naming the field when a logged-decision frame cannot be learned from."""
    need = ["decision_id", "action", "propensity", *(["reward"] if require_reward else [])]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ContractError(missing[0], f"decisions need columns {need}; missing {missing}")
    if len(df) == 0:
        raise ContractError("decisions", "no logged decisions to learn from")
    p = pd.to_numeric(df["propensity"], errors="coerce").to_numpy(float)
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        raise ContractError("propensity", "must be in (0, 1] for every logged decision", p[bad][0])
    if require_reward:
        r = pd.to_numeric(df["reward"], errors="coerce").to_numpy(float)
        if np.isnan(r).any():
            raise ContractError("reward", "must be a number for every logged decision")
    if df["action"].isna().any():
        raise ContractError("action", "must be set for every logged decision")
    return df


def time_split(df: pd.DataFrame, holdout_fraction: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): the latest ``holdout_fraction`` of decisions by time are held out."""
    if not 0 < holdout_fraction < 1:
        raise ContractError("holdout_fraction", "must be between 0 and 1", holdout_fraction)
    order = (
        df.sort_values(["occurred_at", "decision_id"], kind="stable").index
        if "occurred_at" in df.columns
        else df.index
    )
    cut = round(len(order) * (1 - holdout_fraction))
    if cut < 1 or cut >= len(order):
        raise ContractError("decisions", f"too few rows ({len(order)}) for a time split")
    return df.loc[order[:cut]].reset_index(drop=True), df.loc[order[cut:]].reset_index(drop=True)


def context_numbers(s: pd.Series) -> tuple[np.ndarray, bool]:
    """(the column as float64, whether it is numeric): THE rule for numeric context columns.

    Numeric: a bool or number dtype, or text (CSV cells, JSON strings, the importer's extra columns) whose
    every present value parses as a number (``pd.to_numeric``) or as true/false; missing = null or blank,
    and at least one value must be present. The values are NaN where missing or unparseable, so a column
    fitted as numeric encodes the same whether it arrives typed or as text."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.astype("Float64").to_numpy(np.float64, na_value=np.nan), True
    text = s.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy(bool)
    lower = text.str.lower()
    as_bool = lower.isin(list(BOOL_TEXT)).to_numpy(bool)
    parsed = pd.Series(pd.to_numeric(text.mask(as_bool | missing), errors="coerce"), copy=False)
    values = parsed.astype("Float64").to_numpy(np.float64, na_value=np.nan)
    ok = ~np.isnan(values)
    with suppress(ValueError):  # pd.to_numeric's fast parser may round the last digit; numpy's is exact
        values[ok] = text[ok].to_numpy(str).astype(np.float64)
    values[as_bool] = lower[as_bool].map(BOOL_TEXT).to_numpy(np.float64)
    return values, bool((~missing).any() and not (np.isnan(values) & ~missing).any())


@dataclass
class ContextEncoder:
    """Context columns -> a float matrix for LightGBM: numbers as they are, categories as fixed codes.

    Learned at fit (columns, kinds, category levels) and saved with the policy, so serving encodes the same
    way. A column is numeric by ``context_numbers`` at fit, and encoded by it at transform, whatever its
    incoming dtype (numbers as text from a CSV included). Datetimes are not features; text with more than
    ``max_levels`` distinct values (ids) is dropped with a warning and recorded in ``dropped_`` (column ->
    number of distinct values); unknown categories become missing."""

    max_levels: int = 100
    numeric_: list[str] = field(default_factory=list)
    categories_: dict[str, list[str]] = field(default_factory=dict)
    dropped_: dict[str, int] = field(default_factory=dict)

    def fit(self, df: pd.DataFrame, exclude: frozenset[str] = NON_CONTEXT) -> ContextEncoder:
        self.numeric_, self.categories_, self.dropped_ = [], {}, {}
        for col in df.columns:
            if col in exclude or col.startswith("_"):
                continue
            s = df[col]
            if pd.api.types.is_datetime64_any_dtype(s):
                continue
            if context_numbers(s)[1]:
                self.numeric_.append(col)
                continue
            levels = sorted(s.dropna().astype(str).unique().tolist())
            if 0 < len(levels) <= self.max_levels:
                self.categories_[col] = levels
            elif levels:
                self.dropped_[col] = len(levels)
                log.warning(
                    "context column %r dropped: %d distinct values, more than max_levels=%d for a category",
                    col,
                    len(levels),
                    self.max_levels,
                )
        return self

    @property
    def columns_(self) -> list[str]:
        return [*self.numeric_, *self.categories_]

    @property
    def categorical_indices_(self) -> list[int]:
        return list(range(len(self.numeric_), len(self.columns_)))

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in df.columns]
        if missing:
            raise ContractError(missing[0], f"context column missing (the policy was trained on {missing})")
        out = np.empty((len(df), len(self.columns_)), dtype=np.float64)
        for j, col in enumerate(self.numeric_):
            out[:, j] = context_numbers(df[col])[0]
        for j, (col, levels) in enumerate(self.categories_.items(), start=len(self.numeric_)):
            codes = pd.Categorical(df[col].astype("string"), categories=levels).codes.astype(np.float64)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_levels": self.max_levels,
            "numeric": self.numeric_,
            "categories": self.categories_,
            "dropped": self.dropped_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContextEncoder:
        return cls(
            max_levels=d["max_levels"],
            numeric_=list(d["numeric"]),
            categories_=dict(d["categories"]),
            dropped_=dict(d.get("dropped", {})),
        )
