"""Test data for features: seeded synthetic resolved events (numpy, vectorised) and workspaces holding them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from contract.schemas import EVENTS_SCHEMA
from contract.settings import Settings
from contract.workspace import Workspace
from features.store import FeatureRepo

TYPES = np.array(
    [
        "page_view",
        "product_view",
        "add_to_cart",
        "purchase",
        "email_open",
        "email_click",
        "support_ticket",
        "search",
    ]
)
WEIGHTS = np.array([0.35, 0.25, 0.1, 0.05, 0.1, 0.05, 0.02, 0.08])
CATEGORIES = np.array(["shoes", "hats", "bags", "coats", "socks", "belts"])


def synthetic_events(
    customers: int, days: int, per_customer: float, start: datetime, seed: int = 0
) -> pd.DataFrame:
    """About `customers * per_customer` events spread over `days` days from `start` (UTC)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(per_customer, customers) + 1
    n = int(counts.sum())
    cust = np.repeat(np.arange(customers), counts)
    # each customer is active from a random day; events cluster in short bursts (sessions)
    first = rng.integers(0, days, customers)[cust]
    offset_s = first * 86400 + rng.integers(0, (days - first) * 86400 + 1)
    offset_s = offset_s + rng.integers(0, 3, n) * rng.integers(0, 1800, n)
    types = rng.choice(TYPES, n, p=WEIGHTS)
    has_cat = np.isin(types, ["product_view", "add_to_cart", "purchase"])
    revenue = np.where(types == "purchase", np.round(rng.gamma(2.0, 30.0, n), 2), np.nan)
    start_ts = (
        pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
    )
    return pd.DataFrame(
        {
            "event_id": np.char.add("e", np.arange(n).astype(str)),
            "customer_id": np.char.add("c", cust.astype(str)),
            "occurred_at": start_ts + pd.to_timedelta(offset_s, unit="s"),
            "type": types,
            "category": np.where(has_cat, rng.choice(CATEGORIES, n), None),
            "revenue": revenue,
            "price": np.nan,
            "quantity": pd.array([pd.NA] * n, dtype="Int64"),
        }
    )


def to_workspace_tables(resolved: pd.DataFrame) -> tuple[pa.Table, pa.Table]:
    """The same log as stored tables: `events` (EVENTS_SCHEMA, user_id = "u" + customer number) and an
    `identity_map` mapping each user_id back to its customer_id."""
    frame = resolved.assign(user_id="u" + resolved["customer_id"].str[1:], channel="web", source="synthetic")
    cols = {}
    for field in EVENTS_SCHEMA:
        if field.name in frame.columns:
            cols[field.name] = pa.array(frame[field.name], type=field.type, from_pandas=True)
        else:
            cols[field.name] = pa.nulls(len(frame), type=field.type)
    events = pa.table(cols, schema=EVENTS_SCHEMA)
    users = frame.drop_duplicates("user_id")
    identity_map = pa.table(
        {
            "identifier_type": pa.array(["user_id"] * len(users)),
            "identifier_value": pa.array(users["user_id"]),
            "customer_id": pa.array(users["customer_id"]),
            "first_seen": pa.array(users["occurred_at"], type=pa.timestamp("us", tz="UTC")),
        }
    )
    return events, identity_map


def make_settings(root: Path) -> Settings:
    return Settings(workspace=root / "ws", mlflow_dir=root / "mlflow")


def seed_workspace(settings: Settings, events: pd.DataFrame) -> Workspace:
    """A workspace holding `events` as the events table plus its identity map."""
    ws = Workspace(settings.workspace)
    table, identity_map = to_workspace_tables(events)
    ws.append("events", table)
    ws.replace("identity_map", identity_map)
    return ws


@dataclass
class FeatureEnv:
    settings: Settings
    workspace: Workspace
    events: pd.DataFrame  # resolved events (customer_id column)
    snapshots: pd.DataFrame  # the offline snapshot file as written
    repo: FeatureRepo
