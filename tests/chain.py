"""The shared walking-skeleton workspace (built once per session by the `chain` fixture in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

from contract import Settings, Workspace

CHAIN_CUSTOMERS, CHAIN_DAYS, CHAIN_SEED = 400, 60, 11
CHAIN_HORIZON_DAYS = 14  # a 60-day log leaves room for a few 14-day training windows before the holdout


@dataclass
class Chain:
    settings: Settings
    ws: Workspace
