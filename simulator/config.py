"""Typed parameters of the simulated brand and the shapes of what it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The offers the logging policy chooses between (the NBA action set).
OFFERS: tuple[str, ...] = ("discount_10", "discount_20", "free_shipping", "content", "no_offer")
#: Product categories of the catalogue.
CATEGORIES: tuple[str, ...] = (
    "womens_clothing",
    "mens_clothing",
    "shoes",
    "accessories",
    "beauty",
    "home",
    "kitchen",
    "electronics",
    "sports",
    "outdoor",
    "toys",
    "books",
)
#: Device kinds a person may own; the app keeps people logged in more often.
DEVICE_KINDS: tuple[str, ...] = ("desktop_web", "mobile_web", "app")
#: Record sources and their id prefixes.
RECORD_SOURCES: tuple[str, ...] = ("crm", "ecom", "loyalty")

Rate = float


class SimConfig(BaseModel):
    """Every knob of the simulation. Rates are probabilities in [0, 1] unless named ``*_per_day``."""

    model_config = ConfigDict(extra="forbid")

    customers: int = Field(1000, ge=10, le=2_000_000, description="People in the population.")
    days: int = Field(90, ge=7, le=3650, description="Days of activity emitted.")
    seed: int = Field(0, ge=0, description="Seed: the same seed gives byte-identical tables.")
    start: date = Field(date(2026, 1, 1), description="First simulated day (UTC).")

    # --- population and identity ---
    household_share: Rate = Field(
        0.3, ge=0, le=1, description="Share of people living in two-person households."
    )
    shared_device_share: Rate = Field(0.5, ge=0, le=1, description="Households sharing one web device.")
    shared_email_share: Rate = Field(
        0.3, ge=0, le=1, description="Households using one family email in the CRM."
    )
    store_only_share: Rate = Field(0.08, ge=0, le=1, description="People who only shop in stores.")
    never_login_share: Rate = Field(0.25, ge=0, le=1, description="Online people without an account.")
    existing_share: Rate = Field(0.6, ge=0, le=1, description="People already customers before the window.")
    loyalty_share: Rate = Field(0.4, ge=0, le=1, description="People holding a loyalty card.")
    crm_share: Rate = Field(0.55, ge=0, le=1, description="People with a CRM record.")
    extra_device_rate: Rate = Field(0.55, ge=0, le=1, description="Chance of each additional device kind.")
    cookie_clear_rate: Rate = Field(
        0.02, ge=0, le=1, description="Per device and active day: cookies cleared."
    )
    login_rate_web: Rate = Field(0.35, ge=0, le=1, description="Account holder logs in on a web session.")
    login_rate_app: Rate = Field(
        0.85, ge=0, le=1, description="Account holder is logged in on an app session."
    )
    guest_checkout_email_rate: Rate = Field(0.7, ge=0, le=1, description="Guest checkouts leaving an email.")
    consent_banner_rate: Rate = Field(0.5, ge=0, le=1, description="New cookie answers the consent banner.")

    # --- behaviour ---
    sessions_per_day: float = Field(0.12, gt=0, le=20, description="Mean online sessions per person and day.")
    store_visits_per_day: float = Field(0.02, ge=0, le=5, description="Mean store visits per person and day.")
    loyalty_card_use_rate: Rate = Field(
        0.8, ge=0, le=1, description="Card holder presents the card in store."
    )
    pos_account_rate: Rate = Field(0.5, ge=0, le=1, description="Store sale booked to the customer account.")
    interest_drift_rate: Rate = Field(0.02, ge=0, le=1, description="Per day: favourite category changes.")
    search_rate: Rate = Field(0.35, ge=0, le=1)
    cart_rate: Rate = Field(0.3, ge=0, le=1)
    stockout_rate: Rate = Field(0.08, ge=0, le=1, description="A carted item turns out of stock.")
    purchase_rate: Rate = Field(
        0.45, ge=0, le=1, description="Cart converts to purchase (before abandonment)."
    )
    email_days: tuple[int, ...] = Field((1, 3), description="Weekdays (Mon=0) with a campaign email.")
    email_open_rate: Rate = Field(0.25, ge=0, le=1)
    email_click_rate: Rate = Field(0.3, ge=0, le=1, description="Click given open.")
    support_rate_per_day: float = Field(0.002, ge=0, le=1, description="Baseline support tickets per day.")
    decision_rate: Rate = Field(0.35, ge=0, le=1, description="Logged-in session gets an NBA decision.")
    logging_epsilon: Rate = Field(0.1, gt=0, le=1, description="Exploration mass spread over all offers.")

    # --- churn ---
    churn_base_hazard: float = Field(
        0.003, ge=0, le=1, description="Daily churn hazard of an average person."
    )
    decliner_share: Rate = Field(0.35, ge=0, le=1, description="People whose engagement declines.")
    churn_horizon_days: int = Field(30, ge=1, description="Horizon of the truth churn labels.")
    churn_label_every_days: int = Field(15, ge=1, description="Cadence of truth churn as-of dates.")

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        bad = [d for d in self.email_days if not 0 <= d <= 6]
        if bad:
            raise ValueError(f"email_days: weekdays are 0..6 (got {bad})")
        return self

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC))


@dataclass
class SimData:
    """Everything `generate` produces: the brand's tables (as they would be exported) and the hidden truth."""

    events: pd.DataFrame
    records: dict[str, pd.DataFrame]
    transactions: pd.DataFrame
    decisions: pd.DataFrame
    truth: dict[str, pd.DataFrame] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every frame by a stable name (records per source, truth as ``truth_<name>``)."""
        out = {"events": self.events, "transactions": self.transactions, "decisions": self.decisions}
        out |= {f"records_{k}": v for k, v in self.records.items()}
        out |= {f"truth_{k}": v for k, v in self.truth.items()}
        return out


class ImportCounts(BaseModel):
    table: str
    source: str
    rows: int
    accepted: int
    duplicates: int
    quarantined: int


class SimSummary(BaseModel):
    """What `simulate_brand` wrote."""

    customers: int
    days: int
    seed: int
    workspace: Path
    truth_dir: Path
    generated: dict[str, int]
    imports: list[ImportCounts]
    seconds_generate: float
    seconds_import: float

    def __str__(self) -> str:
        g = self.generated
        records = sum(v for k, v in g.items() if k.startswith("records_"))
        quarantined = sum(i.quarantined for i in self.imports)
        return (
            f"{self.customers} customers x {self.days} days: {g.get('events', 0)} events, {records} records, "
            f"{g.get('transactions', 0)} transactions, {g.get('decisions', 0)} decisions "
            f"({quarantined} quarantined; generate {self.seconds_generate:.1f}s, import {self.seconds_import:.1f}s)"
        )
