"""A tiny simulated brand shared by the simulator tests (generated once per session: ~0.2 s)."""

from __future__ import annotations

import pandas as pd
import pytest
from simulator_helpers import TINY

from simulator import SimData, generate


@pytest.fixture(scope="session")
def tiny() -> SimData:
    return generate(TINY)


@pytest.fixture(scope="session")
def events_with_person(tiny: SimData) -> pd.DataFrame:
    return tiny.events.merge(tiny.truth["events"], on="event_id", validate="one_to_one")
