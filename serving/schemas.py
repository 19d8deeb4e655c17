"""Request and response models of the scoring API (they are the OpenAPI schema too).

A request names a customer by exactly one identifier: the CXI ``customer_id`` or any identifier the
brand knows (login id, cookie, device, loyalty card, email or phone, raw or already hashed). Raw emails
and phones are normalised and hashed here, so they never go further than the request model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.normalize import (
    JUNK_VALUES,
    is_sha256,
    is_valid_email,
    is_valid_phone,
    normalize_email,
    normalize_phone,
    sha256_hex,
)

#: Request fields that name a customer, in the order they are documented.
IDENTIFIER_FIELDS: tuple[str, ...] = (
    "customer_id",
    "user_id",
    "email",
    "email_sha256",
    "phone",
    "phone_sha256",
    "loyalty_id",
    "device_id",
    "anonymous_id",
)


class ChurnScoreRequest(BaseModel):
    """Score one customer. Give exactly one identifier."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"customer_id": "c_000123"}},
    )

    customer_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="CXI customer id."
    )
    user_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="The brand's login id."
    )
    email: str | None = Field(
        default=None, min_length=3, max_length=256, description="Raw email; trimmed, lower-cased and hashed."
    )
    email_sha256: str | None = Field(
        default=None, min_length=64, max_length=64, description="SHA-256 of the normalised email."
    )
    phone: str | None = Field(
        default=None,
        min_length=6,
        max_length=32,
        description="Raw phone; normalised to E.164 (else digits and a leading +) and hashed.",
    )
    phone_sha256: str | None = Field(
        default=None, min_length=64, max_length=64, description="SHA-256 of the normalised phone."
    )
    loyalty_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="Loyalty card number."
    )
    device_id: str | None = Field(default=None, min_length=1, max_length=256, description="Device / app id.")
    anonymous_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="First-party cookie id."
    )

    @field_validator("customer_id", "user_id", "loyalty_id", "device_id", "anonymous_id")
    @classmethod
    def _not_placeholder(cls, v: str | None) -> str | None:
        if v is not None and v.strip().lower() in JUNK_VALUES:
            raise ValueError(f"placeholder value {v!r} is not an identifier")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not is_valid_email(normalize_email(v)):
            raise ValueError("not a valid email address")
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is not None and not is_valid_phone(normalize_phone(v)):
            raise ValueError("not a valid phone number (6 to 15 digits)")
        return v

    @field_validator("email_sha256", "phone_sha256")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not is_sha256(v):
            raise ValueError("must be a lower-case hex SHA-256 digest (64 characters)")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> ChurnScoreRequest:
        given = [f for f in IDENTIFIER_FIELDS if getattr(self, f) is not None]
        if len(given) != 1:
            got = ", ".join(given) if given else "none"
            raise ValueError(
                f"exactly one identifier is required, one of {', '.join(IDENTIFIER_FIELDS)} (got {got})"
            )
        return self

    def identifier(self, phone_region: str | None = None) -> tuple[str, str]:
        """The (identifier type, value) to look up; raw email/phone become their ``*_sha256`` hashes (a phone
        without a country code read in `phone_region`, as the imports read it: ``contract.normalize``)."""
        if self.email is not None:
            return "email_sha256", sha256_hex(normalize_email(self.email))
        if self.phone is not None:
            return "phone_sha256", sha256_hex(normalize_phone(self.phone, phone_region))
        for f in IDENTIFIER_FIELDS:
            value = getattr(self, f)
            if value is not None:
                return f, value
        raise AssertionError("unreachable: the model validator requires one identifier")


class ScoreReason(BaseModel):
    """One of the top reasons behind a score (a feature's contribution, in words)."""

    feature: str = Field(
        description="Feature name (Feast feature service column), or `buying_rhythm`: the buy-till-you-die "
        "prior's chance of no activity in the horizon."
    )
    value: float | None = Field(description="The customer's value of the feature (null: missing).")
    contribution: float = Field(description="Push on the score in log-odds: > 0 raises churn risk.")
    text: str = Field(
        description="The reason in words, e.g. 'Purchases in the last 30 days: 3 (lowers risk)'."
    )


class ChurnScore(BaseModel):
    """The champion churn model's score for one customer."""

    customer_id: str = Field(description="The CXI customer the identifier resolved to.")
    churn_probability: float = Field(ge=0, le=1, description="Probability of no activity within the horizon.")
    model_name: str = Field(description="Registered model that scored (MLflow name).")
    model_version: str = Field(description="Registered version of the champion model.")
    features_as_of: datetime | None = Field(description="Timestamp of the online feature values used.")
    reasons: list[ScoreReason] = Field(
        default_factory=list,
        description="Top 3 reasons by absolute contribution, each saying whether it raises or lowers risk.",
    )


class ErrorDetail(BaseModel):
    field: str = Field(description="Dotted path of the offending field ('body' for the whole request).")
    reason: str


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer of the API."""

    error: str = Field(description="One line: '<field>: <reason>' or what went wrong.")
    detail: list[ErrorDetail] = Field(default_factory=list)


def describe_validation_error(exc: ValidationError) -> ErrorResponse:
    """Turn a pydantic error into our error body; each entry names the field and the reason."""
    details: list[ErrorDetail] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in err.get("loc", ()))
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:
            loc = "identifier" if "identifier" in reason else "body"
        details.append(ErrorDetail(field=loc, reason=reason))
    return ErrorResponse(error="; ".join(f"{d.field}: {d.reason}" for d in details), detail=details)


def error_body(message: str) -> dict[str, Any]:
    return ErrorResponse(error=message).model_dump()


# --- real-time API (POST /v1/events, GET /v1/profiles/{id}) ----------------------------------------------------
class RejectedEvent(BaseModel):
    """One event of a request that was not accepted (it is kept in the workspace quarantine)."""

    index: int = Field(description="Position of the event in the request (0-based; NDJSON: line order).")
    field: str = Field(description="The offending field, e.g. 'occurred_at' or 'properties.revenue'.")
    reason: str
    event_id: str | None = Field(default=None, description="The event's id when it had a readable one.")


class EventsAck(BaseModel):
    """Answer to POST /v1/events: what was logged durably, what was already there, what was rejected."""

    accepted: int = Field(description="Events appended to the durable log by this request (fsync'ed).")
    duplicates: list[str] = Field(
        default_factory=list, description="event_ids already logged before: a replay adds nothing."
    )
    rejected: list[RejectedEvent] = Field(default_factory=list)
    last_seq: int | None = Field(default=None, description="Log sequence number of the last accepted event.")
    visible: bool = Field(
        description="True when the accepted events already show in identity, features and scores."
    )


class ProfileEvent(BaseModel):
    event_id: str
    occurred_at: datetime
    type: str
    category: str | None = None
    revenue: float | None = None


class ProfileScore(BaseModel):
    model_name: str
    model_version: str
    probability: float = Field(ge=0, le=1)


class Profile(BaseModel):
    """The unified customer profile: identity, recent behaviour, live features and latest scores."""

    customer_id: str
    state: str = Field(description="anonymous | known_logged_out | authenticated")
    identifiers: list[dict[str, str]] = Field(description="[{type, value}] stitched into this customer.")
    recent_events: list[ProfileEvent] = Field(default_factory=list, description="Newest first.")
    features: dict[str, Any] = Field(default_factory=dict, description="Live features at request time.")
    features_as_of: datetime | None = None
    scores: dict[str, ProfileScore] = Field(default_factory=dict, description="Model name -> latest score.")
