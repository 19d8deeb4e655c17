"""Fixtures of the matcher tests: seeded noisy-duplicate record sets with known truth (match_data)."""

from __future__ import annotations

import pandas as pd
import pytest
from match_data import make_records


@pytest.fixture(scope="module")
def noisy() -> tuple[pd.DataFrame, pd.Series]:
    """~1,200 records of 600 entities across two sources, no deterministic ids."""
    return make_records(600, seed=7)
