"""Tiny workspaces for segment tests: events (EVENTS_SCHEMA), an identity map with merged profiles, records."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from contract.normalize import sha256_hex
from contract.schemas import EVENTS_SCHEMA, RECORDS_SCHEMA, TS
from contract.workspace import Workspace


def write_events(ws: Workspace, rows: list[dict]) -> None:
    """Append events given as dicts (missing columns null; ``properties`` dicts stored as JSON)."""
    frame = pd.DataFrame(rows)
    if "properties" in frame:
        frame["properties"] = frame["properties"].map(lambda p: json.dumps(p) if isinstance(p, dict) else p)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    cols = {
        f.name: pa.array(frame[f.name], type=f.type, from_pandas=True)
        if f.name in frame.columns
        else pa.nulls(len(frame), type=f.type)
        for f in EVENTS_SCHEMA
    }
    ws.append("events", pa.table(cols, schema=EVENTS_SCHEMA))


def write_map(ws: Workspace, rows: list[tuple[str, str, str]], first_seen: datetime) -> None:
    """identity_map rows (identifier_type, identifier_value, customer_id)."""
    t, v, c = zip(*rows, strict=True)
    ws.replace(
        "identity_map",
        pa.table(
            {
                "identifier_type": pa.array(t),
                "identifier_value": pa.array(v),
                "customer_id": pa.array(c),
                "first_seen": pa.array([first_seen] * len(rows), type=TS),
            }
        ),
    )


def write_records(ws: Workspace, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    for raw, hashed in (("email", "email_sha256"), ("phone", "phone_sha256")):
        if raw in frame:
            frame[hashed] = frame[raw].map(lambda x: sha256_hex(x) if isinstance(x, str) else None)
    frame["extra_ids"] = frame.get("extra_ids", pd.Series([None] * len(frame))).map(
        lambda x: json.dumps(x) if isinstance(x, dict) else x
    )
    frame["ingested_at"] = pd.to_datetime(frame["ingested_at"], utc=True)
    cols = {
        f.name: pa.array(frame[f.name], type=f.type, from_pandas=True)
        if f.name in frame.columns
        else pa.nulls(len(frame), type=f.type)
        for f in RECORDS_SCHEMA
    }
    ws.append("records", pa.table(cols, schema=RECORDS_SCHEMA))


def consent_event(event_id: str, at: str, consent: dict[str, bool], **ids: str) -> dict:
    return {
        "event_id": event_id,
        "occurred_at": at,
        "type": "consent_update",
        "channel": "web",
        "properties": {"consent": consent},
        **ids,
    }


def activity_log(customers: int, days: int, start: datetime, seed: int = 0) -> pd.DataFrame:
    """A churn-learnable log (customers start at random, stop after a hidden lifetime): customer_id c<i>,
    user_id u<i>; purchases carry revenue."""
    rng = np.random.default_rng(seed)
    types = np.array(["page_view", "product_view", "add_to_cart", "purchase", "email_open", "search"])
    begin = rng.uniform(0, days * 0.7, customers)
    end = np.minimum(begin + rng.exponential(days * 0.5, customers), days)
    rate = rng.gamma(2.0, 0.3, customers)
    counts = rng.poisson(rate * (end - begin)) + 1
    cust = np.repeat(np.arange(customers), counts)
    t = begin[cust] + rng.random(len(cust)) * (end - begin)[cust]
    kind = rng.choice(types, len(cust), p=[0.4, 0.25, 0.1, 0.08, 0.1, 0.07])
    return pd.DataFrame(
        {
            "event_id": np.char.add("e", np.arange(len(cust)).astype(str)),
            "customer_id": np.char.add("c", cust.astype(str)),
            "user_id": np.char.add("u", cust.astype(str)),
            "occurred_at": pd.Timestamp(start) + pd.to_timedelta(np.round(t * 86400), unit="s"),
            "type": kind,
            "channel": "web",
            "category": np.where(kind == "product_view", rng.choice(["a", "b", "c"], len(cust)), None),
            "revenue": np.where(kind == "purchase", np.round(rng.gamma(2.0, 30.0, len(cust)), 2), np.nan),
        }
    )
