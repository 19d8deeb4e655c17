"""A seeded synthetic event log where customers stop at a hidden time: churn is learnable from history.

Each customer starts on a random day, has an activity rate and a hidden lifetime (exponential); events fall
uniformly in their active span. Vectorised with numpy; written straight into a workspace as `events`
(EVENTS_SCHEMA, user_id = the customer) plus an `identity_map` of user_id -> customer_id.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from contract.schemas import EVENTS_SCHEMA
from contract.workspace import Workspace

TYPES = np.array(["page_view", "product_view", "add_to_cart", "purchase", "email_open", "search"])
WEIGHTS = np.array([0.4, 0.25, 0.1, 0.08, 0.1, 0.07])


def churn_events(customers: int, days: int, start: datetime, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    begin = rng.uniform(0, days * 0.7, customers)
    end = np.minimum(begin + rng.exponential(days * 0.5, customers), days)
    rate = rng.gamma(2.0, 0.25, customers)  # events per day while active
    counts = rng.poisson(rate * (end - begin)) + 1
    cust = np.repeat(np.arange(customers), counts)
    t = begin[cust] + rng.random(len(cust)) * (end - begin)[cust]
    types = rng.choice(TYPES, len(cust), p=WEIGHTS)
    return pd.DataFrame(
        {
            "event_id": np.char.add("e", np.arange(len(cust)).astype(str)),
            "customer_id": np.char.add("c", cust.astype(str)),
            "occurred_at": pd.Timestamp(start) + pd.to_timedelta(np.round(t * 86400), unit="s"),
            "type": types,
            "category": np.where(types == "product_view", rng.choice(["a", "b", "c"], len(cust)), None),
            "revenue": np.where(types == "purchase", np.round(rng.gamma(2.0, 30.0, len(cust)), 2), np.nan),
        }
    )


def write_workspace(ws: Workspace, resolved: pd.DataFrame) -> None:
    """Store the log as `events` and an `identity_map` (user_id = "u" + customer number)."""
    frame = resolved.assign(user_id="u" + resolved["customer_id"].str[1:], channel="web", source="synthetic")
    cols = {
        f.name: pa.array(frame[f.name], type=f.type, from_pandas=True)
        if f.name in frame.columns
        else pa.nulls(len(frame), type=f.type)
        for f in EVENTS_SCHEMA
    }
    ws.append("events", pa.table(cols, schema=EVENTS_SCHEMA))
    first = frame.groupby(["user_id", "customer_id"], as_index=False)["occurred_at"].min()
    ws.replace(
        "identity_map",
        pa.table(
            {
                "identifier_type": pa.array(["user_id"] * len(first)),
                "identifier_value": pa.array(first["user_id"]),
                "customer_id": pa.array(first["customer_id"]),
                "first_seen": pa.array(first["occurred_at"], type=pa.timestamp("us", tz="UTC")),
            }
        ),
    )
