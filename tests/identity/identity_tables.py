"""Hand-built event and record tables (matching the contract schemas) for identity tests; no importers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from contract import EVENTS_SCHEMA, RECORDS_SCHEMA

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows give identifiers (+ optional type, minute); everything else gets a plain default."""
    full = []
    for i, r in enumerate(rows):
        row = {"event_id": f"e{i:06d}", "type": "page_view", "channel": "web", "source": "test"}
        row.update({k: v for k, v in r.items() if k != "minute"})
        row["occurred_at"] = at(r.get("minute", i))
        full.append(row)
    return pa.Table.from_pylist(full, schema=EVENTS_SCHEMA)


def records_table(rows: list[dict[str, Any]]) -> pa.Table:
    full = [{"source": "crm", "ingested_at": at(10_000), **r} for r in rows]
    return pa.Table.from_pylist(full, schema=RECORDS_SCHEMA)


def random_events(seed: int, n: int = 400) -> pa.Table:
    """Cookies and devices of 40 people, some logins, a shared kiosk."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        person = int(rng.integers(0, 40))
        row: dict[str, object] = {
            "anonymous_id": f"a{person}-{int(rng.integers(0, 3))}",
            "minute": int(rng.integers(0, 10_000)),
        }
        if rng.random() < 0.5:
            row["device_id"] = f"d{person}-{int(rng.integers(0, 2))}"
        if rng.random() < 0.2:
            row["user_id"] = f"u{person}"
            row["type"] = "login"
        if rng.random() < 0.05:
            row["device_id"] = "kiosk"
        rows.append(row)
    return events_table(rows)
