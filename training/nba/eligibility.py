"""Eligibility and suppression rules as data: which actions each context may receive.

A rule says "action A only when all these conditions on context columns hold" (e.g. a new-customer offer
only while ``tenure_days < 30``). A consent column, when configured, suppresses every action but the
default one for contexts without personalization consent. Missing values never satisfy a condition, so an
unknown context falls back to the safe side. Rules travel with the policy and are applied at serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.errors import ContractError

Op = Literal["<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_true", "is_false"]


class Condition(BaseModel):
    """``column op value`` over one context column."""

    model_config = ConfigDict(extra="forbid")
    column: str = Field(min_length=1)
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"value: op {self.op!r} needs a list (got {self.value!r})")
        if self.op not in ("is_true", "is_false", "in", "not_in") and self.value is None:
            raise ValueError(f"value: op {self.op!r} needs a value")
        return self

    def holds(self, df: pd.DataFrame) -> np.ndarray:
        """Boolean per row; rows with a missing value never hold."""
        if self.column not in df.columns:
            raise ContractError(self.column, "context column needed by an eligibility rule is missing")
        s = df[self.column]
        known = s.notna().to_numpy()
        if self.op in ("in", "not_in"):
            hit = s.astype("string").isin([str(v) for v in self.value]).to_numpy(bool)
            return known & (hit if self.op == "in" else ~hit)
        if self.op in ("is_true", "is_false"):
            truthy = _truthy(s)
            return known & (truthy if self.op == "is_true" else ~truthy)
        if isinstance(self.value, int | float) and not isinstance(self.value, bool):
            v = pd.to_numeric(s, errors="coerce").to_numpy(float)
            known &= ~np.isnan(v)
        else:
            v = s.astype("string").fillna("").to_numpy(object)
        value = (
            self.value
            if isinstance(self.value, int | float) and not isinstance(self.value, bool)
            else str(self.value)
        )
        with np.errstate(invalid="ignore"):
            res = {
                "<": np.less,
                "<=": np.less_equal,
                ">": np.greater,
                ">=": np.greater_equal,
                "==": np.equal,
                "!=": np.not_equal,
            }[self.op](v, value)
        return known & np.asarray(res, dtype=bool)


def _truthy(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return pd.to_numeric(s, errors="coerce").fillna(0).to_numpy(float) != 0
    return s.astype("string").str.lower().isin(["true", "1", "yes", "y", "granted", "opt_in"]).to_numpy(bool)


class ActionRule(BaseModel):
    """``action`` is eligible only where every condition holds."""

    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1)
    when: list[Condition] = Field(min_length=1)
    description: str = ""


class EligibilityRules(BaseModel):
    """All rules of one policy. ``default_action`` (e.g. the control) is what non-consenting contexts get."""

    model_config = ConfigDict(extra="forbid")
    rules: list[ActionRule] = Field(default_factory=list)
    consent_column: str | None = None
    default_action: str | None = None

    @model_validator(mode="after")
    def _check(self) -> EligibilityRules:
        if self.consent_column and not self.default_action:
            raise ValueError("default_action: needed when consent_column is set")
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> EligibilityRules:
        import yaml

        try:
            return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})
        except ValueError as exc:
            raise ContractError(str(path), f"invalid eligibility rules: {exc}") from exc

    def check_actions(self, actions: list[str]) -> None:
        """Every action a rule names must be one the policy knows."""
        named = [r.action for r in self.rules] + ([self.default_action] if self.default_action else [])
        unknown = sorted(set(named) - set(actions))
        if unknown:
            raise ContractError("eligibility.action", f"unknown actions {unknown}; known: {actions}")

    def mask(self, contexts: pd.DataFrame, actions: list[str]) -> np.ndarray:
        """(n, K) booleans: True where the action may be recommended for that context row."""
        self.check_actions(actions)
        out = np.ones((len(contexts), len(actions)), dtype=bool)
        for rule in self.rules:
            ok = np.logical_and.reduce([c.holds(contexts) for c in rule.when])
            out[:, actions.index(rule.action)] &= ok
        if self.consent_column:
            if self.consent_column not in contexts.columns:
                raise ContractError(self.consent_column, "consent column configured but missing in contexts")
            s = contexts[self.consent_column]
            consent = s.notna().to_numpy() & _truthy(s)
            d = actions.index(self.default_action)  # type: ignore[arg-type]
            out[~consent] = False
            out[~consent, d] = True
        # a row left with nothing eligible falls back to the default action (or stays empty: caller errors)
        if self.default_action:
            empty = ~out.any(axis=1)
            out[empty, actions.index(self.default_action)] = True
        return out
