"""Fixtures of the identity tests (tables come from identity_tables)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from identity_tables import events_table, records_table

from contract import Workspace


@pytest.fixture
def write_events(ws: Workspace) -> Callable[..., Workspace]:
    def write(rows: list[dict[str, Any]], records: list[dict[str, Any]] | None = None) -> Workspace:
        ws.replace("events", events_table(rows))
        if records:
            ws.replace("records", records_table(records))
        return ws

    return write
