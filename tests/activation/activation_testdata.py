"""Small generated membership events and the shared test secret (imported by the activation tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

SECRET = "test-secret-0123456789abcdef"


def membership_events(n: int, segment: str = "at_risk_high_value", start: int = 0) -> list[dict[str, Any]]:
    """``n`` entry events for customers c<start>..c<start+n-1>, one second apart."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {
            "customer_id": f"c{i}",
            "segment": segment,
            "kind": "entry",
            "reason": "churn 0.71 >= 0.6 and value in top 20%",
            "at": t0 + timedelta(seconds=i),
            "build_id": "b1",
        }
        for i in range(start, start + n)
    ]
