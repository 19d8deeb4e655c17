"""Segment definitions as data: a YAML file validated by pydantic, with errors naming the segment and field.

Conditions are a small structured form, never evaluated code: ``{feature: COLUMN, op: OP, value: X}``, or
with hysteresis ``{feature: COLUMN, op: ">=", enter: 0.6, exit: 0.5}`` (a non-member needs ``>= 0.6`` to
enter, a member stays while ``>= 0.5``), or on the build's percentile of a column
``{percentile: predicted_value, op: ">=", enter: 0.8, exit: 0.7}`` (the value at that percentile of every
customer in the build is frozen with the build and reused by live evaluation until the next build).
``op`` is one of ``>= > <= < == !=`` (with a number) or ``is_null`` / ``not_null``; a null never satisfies a
comparison. ``COLUMN`` must be a whitelisted column: a feature of `features.definitions.FEATURES` or a model
score (`training.scoring.SCORE_COLUMNS`). A segment's ``conditions`` must all hold and, when given, at least
one of ``any_of``.

Lifecycle stages (``lifecycle:``) are ordered rules over the same conditions: a customer's stage is the first
whose conditions hold (the last stage should have none: the default). Each stage is also published as the
segment ``lifecycle_<stage>``; segments may require ``lifecycle: [stage, ...]``.

``offer_bearing`` segments are exclusive: a customer is in at most one, the eligible one with the highest
``priority`` (two offer-bearing segments may not share a priority). ``suppress_on: [{event: purchase,
days: 14}]`` keeps out (and removes at once) anyone with that event in the last ``days`` days. ``consent``
lists the purposes membership needs; ``channels`` (email, ads, web) say where the segment is activated and
so which purpose each activation needs (email: marketing, ads: advertising, web: personalization).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.errors import ContractError
from contract.schemas import ConsentPurpose

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")

Op = Literal[">=", ">", "<=", "<", "==", "!=", "is_null", "not_null"]
ORDER_OPS: frozenset[str] = frozenset({">=", ">", "<=", "<"})
NULL_OPS: frozenset[str] = frozenset({"is_null", "not_null"})
Channel = Literal["email", "ads", "web"]
#: The consent purpose an activation on a channel needs.
CHANNEL_PURPOSE: dict[str, ConsentPurpose] = {
    "email": ConsentPurpose.marketing,
    "ads": ConsentPurpose.advertising,
    "web": ConsentPurpose.personalization,
}
#: Suppression event -> the feature holding the days since its last occurrence.
SUPPRESSION_FEATURES: dict[str, str] = {
    "purchase": "days_since_last_purchase",
    "add_to_cart": "days_since_last_cart_add",
    "email_click": "days_since_last_email_click",
    "support_ticket": "days_since_support_ticket",
}
LIFECYCLE_PREFIX = "lifecycle_"
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


@cache
def known_columns() -> frozenset[str]:
    """Columns a condition may name: every Feast feature and every model score."""
    from features.definitions import FEATURES
    from training.scoring import SCORE_COLUMNS

    return frozenset([n for n, _, _ in FEATURES] + list(SCORE_COLUMNS.values()))


def _unknown(column: str) -> str:
    import difflib

    from training.scoring import SCORE_COLUMNS

    close = difflib.get_close_matches(column, sorted(known_columns()), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown column {column!r} ({hint}allowed: the features of features.definitions.FEATURES and the "
        f"scores {', '.join(SCORE_COLUMNS.values())})"
    )


class Condition(BaseModel):
    """One comparison of a column (or of its build percentile) with a threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str | None = None
    percentile: str | None = None
    op: Op
    value: float | None = None
    enter: float | None = None
    exit: float | None = None

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        if (self.feature is None) == (self.percentile is None):
            raise ValueError("give exactly one of feature or percentile")
        column = self.column
        if column not in known_columns():
            raise ValueError(_unknown(column))
        if self.op in NULL_OPS:
            if self.percentile is not None:
                raise ValueError(f"op {self.op} needs feature, not percentile")
            if any(v is not None for v in (self.value, self.enter, self.exit)):
                raise ValueError(f"op {self.op} takes no value, enter or exit")
            return self
        if self.value is not None and (self.enter is not None or self.exit is not None):
            raise ValueError("give value, or enter (and optionally exit), not both")
        if self.value is None and self.enter is None:
            raise ValueError(f"op {self.op} needs value or enter")
        if self.exit is not None and self.op not in ORDER_OPS:
            raise ValueError(f"exit (hysteresis) needs an ordering op (>=, >, <=, <), not {self.op}")
        enter, exit_ = self.thresholds
        if self.op in (">=", ">") and exit_ > enter:
            raise ValueError(f"exit {exit_} must not be above enter {enter} for op {self.op}")
        if self.op in ("<=", "<") and exit_ < enter:
            raise ValueError(f"exit {exit_} must not be below enter {enter} for op {self.op}")
        if self.percentile is not None and not (0.0 <= min(enter, exit_) <= max(enter, exit_) <= 1.0):
            raise ValueError("percentile thresholds must lie in [0, 1]")
        return self

    @property
    def column(self) -> str:
        return self.feature if self.feature is not None else self.percentile  # type: ignore[return-value]

    @property
    def thresholds(self) -> tuple[float, float]:
        """(enter, exit); equal without hysteresis. NaN for null ops."""
        enter = self.value if self.value is not None else self.enter
        if enter is None:
            return (float("nan"), float("nan"))
        return (float(enter), float(self.exit if self.exit is not None else enter))


class Suppression(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["purchase", "add_to_cart", "email_click", "support_ticket"]
    days: float = Field(14, ge=0, description="Suppressed while the event happened within this many days.")

    @property
    def feature(self) -> str:
        return SUPPRESSION_FEATURES[self.event]


class Stage(BaseModel):
    """A lifecycle stage: the first stage (in file order) whose conditions hold is the customer's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: str = ""
    conditions: list[Condition] = Field(default_factory=list)


class Segment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: str = ""
    conditions: list[Condition] = Field(default_factory=list)
    any_of: list[Condition] = Field(default_factory=list)
    lifecycle: list[str] = Field(default_factory=list, description="Allowed lifecycle stages (empty: any).")
    consent: list[ConsentPurpose] = Field(default_factory=list, description="Purposes membership needs.")
    channels: list[Channel] = Field(default_factory=list)
    offer_bearing: bool = False
    priority: int = 0
    suppress_on: list[Suppression] = Field(default_factory=list)
    #: set for the segments generated from lifecycle stages
    stage: str | None = Field(None, exclude=True)

    @field_validator("suppress_on", mode="before")
    @classmethod
    def _bare_events(cls, v: object) -> object:
        """``suppress_on: [purchase]`` is short for ``[{event: purchase}]`` (14 days)."""
        if isinstance(v, list):
            return [{"event": x} if isinstance(x, str) else x for x in v]
        return v

    @property
    def columns(self) -> set[str]:
        cols = {c.column for c in [*self.conditions, *self.any_of]}
        return cols | {s.feature for s in self.suppress_on}

    @property
    def purposes(self) -> list[ConsentPurpose]:
        """Purposes of the channels the segment is activated on."""
        return list(dict.fromkeys(CHANNEL_PURPOSE[c] for c in self.channels))


class Definitions(BaseModel):
    """A whole definitions file: lifecycle stages and segments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lifecycle: list[Stage] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Definitions:
        stages = [s.name for s in self.lifecycle]
        if len(set(stages)) != len(stages):
            raise ValueError(f"lifecycle: stage names must be unique (got {stages})")
        names = [s.name for s in self.segments]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"segments: duplicate names {dup}")
        for seg in self.segments:
            if seg.name.startswith(LIFECYCLE_PREFIX):
                raise ValueError(f"segments[{seg.name}].name: the prefix {LIFECYCLE_PREFIX!r} is reserved")
            unknown = [s for s in seg.lifecycle if s not in stages]
            if unknown:
                raise ValueError(
                    f"segments[{seg.name}].lifecycle: unknown stages {unknown} (known: {stages})"
                )
        by_priority: dict[int, str] = {}
        for seg in self.segments:
            if seg.offer_bearing:
                other = by_priority.setdefault(seg.priority, seg.name)
                if other != seg.name:
                    raise ValueError(
                        f"segments[{seg.name}].priority: {seg.priority} is also {other}'s; offer-bearing "
                        "segments need distinct priorities"
                    )
        return self

    @property
    def all_segments(self) -> list[Segment]:
        """The segments, then one ``lifecycle_<stage>`` segment per stage."""
        stages = [
            Segment(
                name=f"{LIFECYCLE_PREFIX}{s.name}",
                description=s.description or f"lifecycle stage {s.name}",
                stage=s.name,
            )
            for s in self.lifecycle
        ]
        return [*self.segments, *stages]

    def segment(self, name: str) -> Segment:
        from contract.errors import NotFoundError

        for seg in self.all_segments:
            if seg.name == name:
                return seg
        known = ", ".join(s.name for s in self.all_segments)
        raise NotFoundError(f"segment {name!r} is not defined (known: {known})")


def _where(loc: tuple[int | str, ...], data: object) -> str:
    """A readable location such as ``segments[at_risk].conditions[0].op`` for a pydantic error location."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            name = node[key].get("name") if isinstance(node, list) and isinstance(node[key], dict) else None
            parts[-1] += f"[{name or key}]" if parts else f"[{key}]"
            node = node[key] if isinstance(node, list) and key < len(node) else None
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts) or "definitions"


def parse(data: object, source: str = "definitions") -> Definitions:
    """Validate a loaded YAML document; ContractError names the file, segment and field of the first error."""
    try:
        return Definitions.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _where(tuple(err["loc"]), data)
        msg = str(err["msg"]).removeprefix("Value error, ")
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ContractError(
            f"{source}: {where}", msg + more, err.get("input") if err["loc"] else None
        ) from None


def load(path: Path | str | None = None) -> Definitions:
    """Definitions from a YAML file (default: the shipped segments/defaults.yaml)."""
    p = Path(path) if path is not None else DEFAULTS_PATH
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ContractError("segments_file", f"cannot read: {exc.strerror}", str(p)) from None
    except yaml.YAMLError as exc:
        raise ContractError("segments_file", f"not valid YAML: {exc}", str(p)) from None
    return parse(data, p.name)
