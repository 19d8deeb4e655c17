"""Typed configuration of deterministic stitching (which values are junk, when an identifier is shared, which
identifiers of an unauthenticated event may be linked together) and of the resolver's probabilistic matchers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.normalize import JUNK_VALUES, check_phone_region, normalize_email, normalize_phone, sha256_hex
from contract.schemas import IDENTIFIER_TYPES

if TYPE_CHECKING:
    from contract.settings import Settings

#: Node types of the identity graph: the event identifiers, then a customer record ("<source>:<record_id>").
NODE_TYPES: tuple[str, ...] = (*IDENTIFIER_TYPES, "record")

#: Placeholder emails typed into forms by testers, cashiers and people who would rather not say.
DEFAULT_JUNK_EMAILS: tuple[str, ...] = (
    "test@test.com",
    "test@example.com",
    "example@example.com",
    "email@example.com",
    "user@example.com",
    "noreply@example.com",
    "no-reply@example.com",
    "none@none.com",
    "no@email.com",
    "noemail@noemail.com",
    "email@email.com",
    "test@gmail.com",
    "a@a.com",
    "asdf@asdf.com",
    "xxx@xxx.com",
)
#: Placeholder phone numbers (normalised with contract.normalize before hashing; see StitchConfig.phone_region).
DEFAULT_JUNK_PHONES: tuple[str, ...] = (
    "0000000000",
    "1111111111",
    "1234567890",
    "9999999999",
    "+10000000000",
    "+11111111111",
    "+11234567890",
)


def _check_pairs(name: str, v: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    for a, b in v:
        for t in (a, b):
            if t not in IDENTIFIER_TYPES or t == "user_id":
                raise ValueError(f"{name}: {t!r} is not a non-user identifier type")
        if a == b:
            raise ValueError(f"{name}: a pair needs two different types (got {a!r} twice)")
    return v


class StitchConfig(BaseModel):
    """Guards of deterministic stitching (first cut). Defaults are generic, not tuned to any data set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    junk_values: frozenset[str] = Field(
        JUNK_VALUES, description="Values (compared trimmed, lower-case) that never identify anyone."
    )
    junk_emails: tuple[str, ...] = Field(
        DEFAULT_JUNK_EMAILS, description="Raw placeholder emails; their SHA-256 hashes are blocked."
    )
    junk_phones: tuple[str, ...] = Field(
        DEFAULT_JUNK_PHONES, description="Raw placeholder phones; their SHA-256 hashes are blocked."
    )
    phone_region: str | None = Field(
        None,
        description="Region raw phones without a country code were imported with (Settings."
        "default_phone_region, `--phone-region`): junk phones are blocked in that region's E.164 form "
        "('1234567890' is '+441234567890' in GB) as well as in their digits-only form.",
    )
    max_users: dict[str, int] = Field(
        default_factory=lambda: {
            "email_sha256": 2,
            "phone_sha256": 2,
            "loyalty_id": 2,
            "device_id": 3,
            "anonymous_id": 2,
            "record": 1,
        },
        description=(
            "Most distinct user_ids one identifier may be seen with before it counts as shared (a kiosk, a "
            "family tablet, a recycled number): a shared identifier links nobody. With 2..max user_ids it is "
            "contested and stays only with its dominant user_id. Types not listed are never shared."
        ),
    )
    unauthenticated_links: tuple[tuple[str, str], ...] = Field(
        (("anonymous_id", "device_id"),),
        description=(
            "Identifier pairs linked whenever they co-occur in one event, even without a user_id. Default: a "
            "cookie lives on one device, so anonymous_id <-> device_id is safe; emails and phones are linked "
            "only under the guard of guarded_links."
        ),
    )
    guarded_links: tuple[tuple[str, str], ...] = Field(
        (
            ("anonymous_id", "email_sha256"),
            ("device_id", "email_sha256"),
            ("anonymous_id", "phone_sha256"),
            ("device_id", "phone_sha256"),
        ),
        description=(
            "(carrier, strong) identifier pairs linked when they co-occur in an event without a user_id (an "
            "email click, a guest checkout), under a guard: only while the carrier has been seen with one "
            "value of the strong type in all, and a carrier seen with more values of a strong type than "
            "max_users allows counts as shared (links nobody), as for user_ids. Empty: off."
        ),
    )

    household_types: tuple[str, ...] = Field(
        ("email_sha256", "phone_sha256"),
        description=(
            "Identifier types checked for household use: one held by records that disagree on the person "
            "links no record deterministically (the records go to the probabilistic matcher). Empty: off."
        ),
    )
    household_name_similarity: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description=(
            "Records sharing a household-type identifier are different people when their first names' "
            "Jaro-Winkler similarity is below this and their dates of birth differ (or one is unknown)."
        ),
    )
    household_max_records: int = Field(
        50,
        ge=2,
        description="Records of one value compared pairwise; a value on more, with several first names, is a "
        "household identifier outright.",
    )

    @field_validator("phone_region")
    @classmethod
    def _phone_region(cls, v: str | None) -> str | None:
        return check_phone_region(v)

    @classmethod
    def from_settings(cls, settings: Settings) -> StitchConfig:
        """The defaults, with the phone region the imports read raw phones in (`default_phone_region`): what
        every resolver of a workspace (batch, incremental, live, replay, unmerge) must agree on."""
        return cls(phone_region=settings.default_phone_region)

    @field_validator("household_types")
    @classmethod
    def _household_types(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for t in v:
            if t not in IDENTIFIER_TYPES or t == "user_id":
                raise ValueError(f"household_types: {t!r} is not a non-user identifier type")
        return v

    @field_validator("max_users")
    @classmethod
    def _max_users(cls, v: dict[str, int]) -> dict[str, int]:
        for key, limit in v.items():
            if key not in NODE_TYPES or key == "user_id":
                raise ValueError(
                    f"max_users: unknown identifier type {key!r} (one of {', '.join(NODE_TYPES[1:])})"
                )
            if limit < 1:
                raise ValueError(f"max_users.{key}: must be at least 1 (got {limit})")
        return v

    @field_validator("unauthenticated_links")
    @classmethod
    def _links(cls, v: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        return _check_pairs("unauthenticated_links", v)

    @field_validator("guarded_links")
    @classmethod
    def _guarded(cls, v: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        _check_pairs("guarded_links", v)
        carriers = {a for a, _ in v}
        for _, b in v:
            if b in carriers:
                raise ValueError(f"guarded_links: {b!r} is a carrier and a strong type")
        return v

    @model_validator(mode="after")
    def _disjoint_links(self) -> StitchConfig:
        pairs = {frozenset(p) for p in self.unauthenticated_links}
        for p in self.guarded_links:
            if frozenset(p) in pairs:
                raise ValueError(f"guarded_links: {p} is also in unauthenticated_links")
        return self

    def blocked_hashes(self) -> list[tuple[str, str]]:
        """(identifier_type, value) pairs of the junk emails' and phones' hashes."""
        emails = [("email_sha256", sha256_hex(normalize_email(e))) for e in self.junk_emails]
        forms = {normalize_phone(p, r) for p in self.junk_phones for r in {None, self.phone_region}}
        phones = [("phone_sha256", sha256_hex(f)) for f in sorted(forms)]
        return emails + phones


class MatchConfig(BaseModel):
    """Thresholds of the resolver's probabilistic matchers (`identity.probabilistic`). A link threshold is
    chosen from held-out labelled pairs under a precision target (a false-merge budget), not fixed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    precision_target: float = Field(
        0.99,
        gt=0.0,
        le=1.0,
        description="Least precision, estimated on held-out labelled pairs, of the links a matcher makes.",
    )
    record_threshold: float | Literal["auto"] = Field(
        "auto",
        description=(
            "RecordMatcher link threshold; 'auto': the lowest calibrated probability whose held-out precision "
            "meets precision_target (record_fallback when it cannot be estimated)."
        ),
    )
    record_fallback: float = Field(
        0.9, gt=0.0, lt=1.0, description="Conservative record threshold when 'auto' has no held-out estimate."
    )
    anonymous: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "AnonymousMatcher links: 'auto' only when its held-out precision at anonymous_threshold meets "
            "precision_target (an optimistic bound for anonymous profiles, see AnonymousMatcher), 'on' always, "
            "'off' never."
        ),
    )
    anonymous_threshold: float = Field(0.8, gt=0.0, lt=1.0, description="AnonymousMatcher link threshold.")

    @field_validator("record_threshold")
    @classmethod
    def _record_threshold(cls, v: float | str) -> float | str:
        if v != "auto" and not 0.0 < float(v) < 1.0:
            raise ValueError(f"record_threshold: must lie strictly between 0 and 1 or be 'auto' (got {v})")
        return v
