"""The data contract: every record CXI accepts, typed and documented, used by every layer.

The pydantic models are the contract for one record (the HTTP API, documentation, OpenAPI). Importers apply
the same rules column-wise over Arrow/pandas for speed (`events.validate`); a test pins that both agree.
Table schemas (`*_SCHEMA`) are the stored form in the workspace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import pyarrow as pa
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contract.normalize import (
    JUNK_VALUES,
    is_sha256,
    is_valid_email,
    is_valid_phone,
    normalize_email,
    normalize_phone,
    sha256_hex,
)


class EventType(StrEnum):
    page_view = "page_view"
    product_view = "product_view"
    search = "search"
    add_to_cart = "add_to_cart"
    remove_from_cart = "remove_from_cart"
    checkout_start = "checkout_start"
    purchase = "purchase"
    signup = "signup"
    login = "login"
    logout = "logout"
    email_open = "email_open"
    email_click = "email_click"
    app_open = "app_open"
    store_purchase = "store_purchase"
    support_ticket = "support_ticket"
    offer_shown = "offer_shown"
    offer_accepted = "offer_accepted"
    consent_update = "consent_update"


class Channel(StrEnum):
    web = "web"
    app = "app"
    email = "email"
    store = "store"
    support = "support"


class ConsentPurpose(StrEnum):
    analytics = "analytics"
    personalization = "personalization"
    marketing = "marketing"
    advertising = "advertising"


#: Identifier columns of an event, in priority order (most trusted first).
IDENTIFIER_TYPES: tuple[str, ...] = (
    "user_id",
    "email_sha256",
    "phone_sha256",
    "loyalty_id",
    "device_id",
    "anonymous_id",
)
#: Event types that only an authenticated user can emit: their identifiers are linked deterministically.
AUTHENTICATED_TYPES: frozenset[str] = frozenset({"login", "signup", "purchase"})
PURCHASE_TYPES: frozenset[str] = frozenset({"purchase", "store_purchase"})

Identifier = Annotated[str | None, Field(default=None, min_length=1, max_length=256)]


class EventProperties(BaseModel):
    """Known event properties are typed; any other key is kept as-is (``extra="allow"``)."""

    model_config = ConfigDict(extra="allow")

    product_id: str | None = Field(None, description="Catalogue id of the product viewed, carted or bought.")
    category: str | None = Field(None, description="Product category (free text, brand's own taxonomy).")
    price: float | None = Field(None, ge=0, description="Unit price in the brand's currency.")
    quantity: int | None = Field(None, ge=1, description="Units carted or bought.")
    order_id: str | None = Field(None, description="Order number of a purchase.")
    revenue: float | None = Field(None, ge=0, description="Order revenue (purchases).")
    offer_id: str | None = Field(None, description="Offer shown or accepted.")
    query: str | None = Field(None, description="Search text.")
    consent: dict[ConsentPurpose, bool] | None = Field(
        None,
        description="consent_update: purpose -> granted (analytics, personalization, marketing, advertising).",
    )


class Event(BaseModel):
    """One behavioural event from any touchpoint.

    Raw ``email``/``phone`` may be sent; they are normalised, hashed into ``email_sha256``/``phone_sha256``
    and dropped, so raw PII never reaches the event log. A raw phone without a country code is read in the
    validation context's ``phone_region`` (``Event.model_validate(data, context={"phone_region": "GB"})``,
    as the importers' ``phone_region``), else kept as its digits (``contract.normalize``).
    """

    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    event_id: str = Field(
        min_length=1, max_length=128, description="Unique id; a repeated id is a duplicate."
    )
    occurred_at: AwareDatetime = Field(description="When it happened; timezone required, stored as UTC.")
    type: EventType
    channel: Channel
    anonymous_id: Identifier = Field(None, description="First-party cookie id.")
    device_id: Identifier = Field(None, description="Device / app-instance id.")
    user_id: Identifier = Field(None, description="The brand's login id; present only when authenticated.")
    email_sha256: Identifier = Field(
        None, description="SHA-256 of the normalised email (lower-case, trimmed)."
    )
    phone_sha256: Identifier = Field(
        None, description="SHA-256 of the normalised phone (E.164, else digits with any leading +)."
    )
    loyalty_id: Identifier = Field(None, description="Loyalty card number.")
    ip: str | None = Field(None, max_length=64)
    user_agent: str | None = Field(None, max_length=1024)
    properties: EventProperties = Field(default_factory=EventProperties)

    @model_validator(mode="before")
    @classmethod
    def _hash_raw_pii(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        email = data.pop("email", None)
        phone = data.pop("phone", None)
        if email is not None and not data.get("email_sha256"):
            norm = normalize_email(str(email))
            if not is_valid_email(norm):
                raise ValueError(f"email: not a valid email address (got {email!r})")
            data["email_sha256"] = sha256_hex(norm)
        if phone is not None and not data.get("phone_sha256"):
            norm = normalize_phone(str(phone), (info.context or {}).get("phone_region"))
            if not is_valid_phone(norm):
                raise ValueError(f"phone: not a valid phone number (got {phone!r})")
            data["phone_sha256"] = sha256_hex(norm)
        return data

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, v: datetime) -> datetime:
        return v.astimezone(UTC)

    @field_validator("anonymous_id", "device_id", "user_id", "loyalty_id")
    @classmethod
    def _not_junk(cls, v: str | None) -> str | None:
        if v is not None and v.strip().lower() in JUNK_VALUES:
            raise ValueError(f"placeholder value {v!r} is not an identifier")
        return v

    @field_validator("email_sha256", "phone_sha256")
    @classmethod
    def _hex_digest(cls, v: str | None) -> str | None:
        if v is not None and not is_sha256(v):
            raise ValueError("must be a lower-case hex SHA-256 digest (64 characters)")
        return v

    @model_validator(mode="after")
    def _rules(self) -> Event:
        if not any(getattr(self, k) for k in IDENTIFIER_TYPES):
            raise ValueError("identifiers: at least one of " + ", ".join(IDENTIFIER_TYPES) + " is required")
        if self.type in AUTHENTICATED_TYPES - {"purchase"} and not self.user_id:
            raise ValueError(f"user_id: required for a {self.type} event")
        if self.type in PURCHASE_TYPES and self.properties.revenue is None and self.properties.price is None:
            raise ValueError(f"properties.revenue: required for a {self.type} event (or properties.price)")
        if self.type == "consent_update" and not self.properties.consent:
            raise ValueError("properties.consent: required for a consent_update event")
        return self


class CustomerRecord(BaseModel):
    """A customer record from a CRM, e-commerce account, loyalty or store system.

    Columns beyond the named ones (e.g. ``national_id``, ``customer_number``) are kept in ``extra_ids``
    and are usable by matching as noisy identifiers.
    """

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, description="System of origin; defaults to the imported file's name.")
    record_id: str = Field(min_length=1, description="Id unique within the source.")
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = Field(None, description="Raw email; normalised and hashed into email_sha256.")
    phone: str | None = Field(None, description="Raw phone; normalised and hashed into phone_sha256.")
    date_of_birth: datetime | None = Field(None, description="Date of birth (date part used).")
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postcode: str | None = None
    region: str | None = None
    country: str | None = None
    user_id: str | None = Field(None, description="Known login id, if the system has one.")
    loyalty_id: str | None = None
    extra_ids: dict[str, str] = Field(default_factory=dict, description="Further identifier columns, as-is.")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is None or not v.strip() or v.strip().lower() in JUNK_VALUES:  # "N/A" is no address: missing
            return None
        norm = normalize_email(v)
        if not is_valid_email(norm):
            raise ValueError("not a valid email address")
        return norm

    @field_validator("date_of_birth", mode="before")
    @classmethod
    def _blank_dob(cls, v: object) -> object:
        """A blank date of birth is a missing one (as an empty CSV cell is), not a malformed one."""
        return None if isinstance(v, str) and not v.strip() else v


#: Why a transaction without an amount is refused.
AMOUNT_OR_UNIT_PRICE = "required (or unit_price, times quantity)"


class Transaction(BaseModel):
    """A purchase from a plain transaction history; imported as a ``purchase`` event."""

    model_config = ConfigDict(extra="allow")

    customer_id: str = Field(
        min_length=1, description="The brand's own customer number (the contract's user_id)."
    )
    occurred_at: AwareDatetime
    amount: float | None = Field(
        None,
        description="Order (or line) value; negative amounts are returns. When absent: unit_price x quantity"
        " (quantity 1 when absent), as a till export with Quantity and UnitPrice columns gives it.",
    )
    unit_price: float | None = Field(
        None, description="Price of one unit; gives amount when amount is absent."
    )
    order_id: str | None = None
    product_id: str | None = None
    category: str | None = None
    quantity: int | None = Field(
        None, description="Units bought; negative for units returned (on a return line, amount <= 0)."
    )

    @model_validator(mode="after")
    def _amount_and_returns(self) -> Transaction:
        if self.quantity == 0:
            raise ValueError("quantity: must not be 0")
        if self.amount is None:
            if self.unit_price is None:
                raise ValueError(f"amount: {AMOUNT_OR_UNIT_PRICE}")
            self.amount = self.unit_price * (self.quantity if self.quantity is not None else 1)
        if self.quantity is not None and self.quantity < 0 and self.amount > 0:
            raise ValueError("quantity: negative (units returned) only on a return line (amount <= 0)")
        return self


class Decision(BaseModel):
    """A logged next-best-action decision. Every other column is a context feature."""

    model_config = ConfigDict(extra="allow")

    decision_id: str = Field(min_length=1)
    customer_id: str = Field(
        min_length=1, description="The brand's customer number (the contract's user_id)."
    )
    occurred_at: AwareDatetime
    action: str = Field(min_length=1, description="The action (offer) the logging policy chose.")
    propensity: float = Field(gt=0, le=1, description="Probability the logging policy chose this action.")
    reward: float = Field(description="Observed outcome (e.g. 1 = converted).")


# --- stored table schemas (workspace) -------------------------------------------------------------------

TS = pa.timestamp("us", tz="UTC")

#: Event properties promoted to columns (typed); the full properties object is kept as JSON too.
PROPERTY_COLUMNS: dict[str, pa.DataType] = {
    "product_id": pa.string(),
    "category": pa.string(),
    "price": pa.float64(),
    "quantity": pa.int64(),
    "order_id": pa.string(),
    "revenue": pa.float64(),
    "offer_id": pa.string(),
}

EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("occurred_at", TS),
        ("type", pa.string()),
        ("channel", pa.string()),
        *[
            (k, pa.string())
            for k in ("anonymous_id", "device_id", "user_id", "email_sha256", "phone_sha256", "loyalty_id")
        ],
        ("ip", pa.string()),
        ("user_agent", pa.string()),
        *PROPERTY_COLUMNS.items(),
        ("properties", pa.string()),  # JSON of the whole properties object
        ("source", pa.string()),  # file or API batch it came from
        ("ingested_at", TS),
    ]
)

RECORDS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("record_id", pa.string()),
        ("first_name", pa.string()),
        ("last_name", pa.string()),
        ("email", pa.string()),  # normalised (records are the brand's CRM copy; events never hold it)
        ("email_sha256", pa.string()),
        ("phone", pa.string()),  # normalised
        ("phone_sha256", pa.string()),
        ("date_of_birth", pa.date32()),
        ("address_line1", pa.string()),
        ("address_line2", pa.string()),
        ("city", pa.string()),
        ("postcode", pa.string()),
        ("region", pa.string()),
        ("country", pa.string()),
        ("user_id", pa.string()),
        ("loyalty_id", pa.string()),
        ("extra_ids", pa.string()),  # JSON object of further identifier columns
        ("ingested_at", TS),
    ]
)

DECISIONS_BASE_COLUMNS: tuple[str, ...] = (
    "decision_id",
    "customer_id",
    "occurred_at",
    "action",
    "propensity",
    "reward",
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # events | records | transactions | decisions
        ("source", pa.string()),
        ("row_index", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),  # the original row as JSON
        ("quarantined_at", TS),
    ]
)
