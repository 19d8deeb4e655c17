"""Feast objects for CXI: entity `customer`, source, views `customer_activity` + `customer_live`, services.

`customer_activity` (service `churn_v1`) holds the churn model's inputs; `customer_live` (service `live_v1`)
holds the short live windows. Both read the same snapshot file (one feature function writes every column)
and the live path writes both online.

The feature catalogue is plain Python (importing it is instant); Feast objects are built by `build(settings)`,
the one place that turns Settings into paths. `features/repo/definitions.py` calls it for `feast` CLI users.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from contract.errors import NotFoundError
from contract.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from feast import Entity, FeatureService, FeatureView, FileSource

ENTITY = "customer"
JOIN_KEY = "customer_id"
FEATURE_VIEW = "customer_activity"
LIVE_VIEW = "customer_live"
SOURCE = "customer_activity_snapshots"
TIMESTAMP_FIELD = "event_timestamp"
CREATED_FIELD = "created"
#: Generous: recency lives in the features themselves, so a stale snapshot is still a valid snapshot.
TTL = timedelta(days=3650)

Kind = Literal["int", "float", "string"]

#: (name, kind, description) in the stable order every consumer sees.
FEATURES: tuple[tuple[str, Kind, str], ...] = (
    ("days_since_last_event", "float", "Days from the last event to as_of (null: none yet)."),
    ("days_since_last_purchase", "float", "Days from the last purchase to as_of (null: never bought)."),
    ("days_since_first_seen", "float", "Days from the first event to as_of."),
    ("events_7d", "int", "Events in the 7 days up to as_of."),
    ("events_30d", "int", "Events in the 30 days up to as_of."),
    ("events_90d", "int", "Events in the 90 days up to as_of."),
    ("sessions_7d", "int", "Sessions started in 7 days (a session ends after a 30-minute gap)."),
    ("sessions_30d", "int", "Sessions started in 30 days."),
    ("sessions_90d", "int", "Sessions started in 90 days."),
    (
        "purchases_7d",
        "int",
        "Purchases (online or store, returns excluded) in 7 days; the lines of one order (same instant) count once.",
    ),
    ("purchases_30d", "int", "Purchases in 30 days."),
    ("purchases_90d", "int", "Purchases in 90 days."),
    ("revenue_7d", "float", "Revenue net of returns in 7 days."),
    ("revenue_30d", "float", "Revenue net of returns in 30 days."),
    ("revenue_90d", "float", "Revenue net of returns in 90 days."),
    ("product_views_7d", "int", "Product views in 7 days."),
    ("product_views_30d", "int", "Product views in 30 days."),
    ("email_opens_30d", "int", "Email opens in 30 days."),
    ("email_clicks_30d", "int", "Email clicks in 30 days."),
    ("support_tickets_30d", "int", "Support tickets in 30 days."),
    ("support_tickets_90d", "int", "Support tickets in 90 days."),
    ("avg_order_value_90d", "float", "revenue_90d / purchases_90d (null: no purchase)."),
    ("cart_adds_no_purchase_30d", "int", "Cart adds in 30 days not followed by a purchase (up to as_of)."),
    ("distinct_categories_30d", "int", "Distinct product categories touched in 30 days."),
    ("active_days_7d", "int", "Active days (days with any event) in the 7 days up to as_of."),
    ("active_days_30d", "int", "Active days in the 30 days up to as_of."),
    ("active_days_90d", "int", "Active days in the 90 days up to as_of."),
    ("active_days_total", "int", "Active days since first seen."),
    ("events_total", "int", "Events since first seen."),
    ("purchases_total", "int", "Purchases since first seen (returns excluded)."),
    # repeat buying counted per day, as buy-till-you-die models count it (the churn prior's input)
    ("purchase_days_total", "int", "Days with a purchase since first seen (returns excluded)."),
    ("revenue_total", "float", "Revenue net of returns since first seen."),
    ("days_since_first_purchase", "float", "Days from the first purchase to as_of (null: never bought)."),
    ("days_since_last_email_open", "float", "Days from the last email open to as_of (null: never opened)."),
    (
        "days_since_last_email_click",
        "float",
        "Days from the last email click to as_of (null: never clicked).",
    ),
    ("days_since_last_cart_add", "float", "Days from the last add-to-cart to as_of (null: never added)."),
    (
        "days_since_last_product_view",
        "float",
        "Days from the last product view to as_of (null: never viewed).",
    ),
    (
        "days_since_support_ticket",
        "float",
        "Days from the last support ticket to as_of (null: never raised).",
    ),
    ("active_gap_mean_days", "float", "Usual days between active days (null: fewer than 2 active days)."),
    (
        "overdue_ratio_active",
        "float",
        "Days since last active over the usual gap (null: fewer than 2 active days).",
    ),
    ("purchase_gap_mean_days", "float", "Usual days between purchases (null: fewer than 2 purchases)."),
    (
        "overdue_ratio_purchase",
        "float",
        "Days since last purchase over the usual gap (null: fewer than 2 purchases).",
    ),
    ("activity_rate_tenure", "float", "Active days per day since first seen (at least one day)."),
    (
        "share_events_7d_of_30d",
        "float",
        "Share of the last 30 days' events in the last 7 (null: none in 30 days).",
    ),
    (
        "share_events_30d_of_90d",
        "float",
        "Share of the last 90 days' events in the last 30 (null: none in 90 days).",
    ),
    (
        "share_active_days_30d_of_90d",
        "float",
        "Share of the last 90 days' active days in the last 30 (null: none).",
    ),
    (
        "share_purchases_30d_of_90d",
        "float",
        "Share of the last 90 days' purchases in the last 30 (null: none).",
    ),
    ("snapshot_at", "int", "The snapshot's as_of, unix seconds (tells a reader how fresh the row is)."),
)


def features_as_of(snapshot_at: object) -> pd.DatetimeIndex:
    """When rows were computed, as UTC instants, from their `snapshot_at` (unix seconds)."""
    import pandas as pd

    return pd.DatetimeIndex(pd.to_datetime(snapshot_at, unit="s", utc=True))


#: The live view's features (`features.compute.LIVE_COLUMNS`, same order), then the shared `snapshot_at`.
LIVE_FEATURES: tuple[tuple[str, Kind, str], ...] = (
    ("events_30m", "int", "Events in the 30 minutes up to as_of."),
    ("events_today", "int", "Events since midnight (UTC) of as_of's day."),
    (
        "session_minutes",
        "float",
        "Minutes from the current session's first event to as_of (0: no event in the last 30 minutes).",
    ),
    (
        "cart_items",
        "int",
        "Items added to the cart minus items removed since the last purchase (at least 0).",
    ),
    ("minutes_since_last_event", "float", "Minutes from the last event to as_of (null: none yet)."),
    ("last_category", "string", "Category of the latest event that had one (null: none yet)."),
    FEATURES[-1],  # snapshot_at: when the row was computed
)

#: Feature service -> (feature view, feature names). One service per model version.
SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "churn_v1": (FEATURE_VIEW, tuple(name for name, _, _ in FEATURES)),
    "live_v1": (LIVE_VIEW, tuple(name for name, _, _ in LIVE_FEATURES)),
}

#: Feature view -> its features (name, kind, description).
VIEWS: dict[str, tuple[tuple[str, Kind, str], ...]] = {FEATURE_VIEW: FEATURES, LIVE_VIEW: LIVE_FEATURES}


def feature_names(service: str = "churn_v1") -> list[str]:
    """The features a service serves, in stable order (no Feast import)."""
    if service not in SERVICES:
        raise NotFoundError(
            f"feature service {service!r} is not defined (known: {', '.join(sorted(SERVICES))})"
        )
    return list(SERVICES[service][1])


def snapshot_path(settings: Settings) -> Path:
    """The offline snapshot Parquet file the FileSource reads."""
    return settings.feast_dir / "offline" / f"{FEATURE_VIEW}.parquet"


def build(settings: Settings) -> list[Entity | FileSource | FeatureView | FeatureService]:
    """Every Feast object of the repository, with paths taken from `settings`."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    dtypes = {"int": Int64, "float": Float64, "string": String}
    customer = Entity(
        name=ENTITY,
        join_keys=[JOIN_KEY],
        value_type=ValueType.STRING,
        description="A resolved customer profile (identity map customer_id).",
    )
    source = FileSource(
        name=SOURCE,
        path=str(snapshot_path(settings)),
        timestamp_field=TIMESTAMP_FIELD,
        created_timestamp_column=CREATED_FIELD,
        description="Daily point-in-time feature snapshots written by `cxi features build`.",
    )
    about = {
        FEATURE_VIEW: "Recency, frequency, monetary and engagement of a customer as of a snapshot instant.",
        LIVE_VIEW: "Short live windows (30 minutes, today, session, cart, last category) as of an instant.",
    }
    views = {
        name: FeatureView(
            name=name,
            entities=[customer],
            ttl=TTL,
            schema=[Field(name=n, dtype=dtypes[k], description=d) for n, k, d in features],
            source=source,
            online=True,
            description=about[name],
        )
        for name, features in VIEWS.items()
    }
    services = [
        FeatureService(
            name=name,
            features=[views[view][list(names)]],
            description=f"Features of model {name}." if view == FEATURE_VIEW else f"Live features ({name}).",
        )
        for name, (view, names) in SERVICES.items()
    ]
    return [customer, source, *views.values(), *services]
