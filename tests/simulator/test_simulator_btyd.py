"""The buy-till-you-die transaction world: import-ready, reproducible, seasonal when asked."""

from __future__ import annotations

import numpy as np
import pytest

from contract.errors import ContractError
from events.transactions import check_transactions
from simulator.btyd import BTYDWorld, btyd_transactions, end_of


def test_every_customer_buys_once_and_nothing_falls_outside_the_window() -> None:
    world = BTYDWorld(customers=500, seed=1)
    t = btyd_transactions(world)
    assert t["customer_id"].nunique() == 500
    assert t["occurred_at"].min() >= world.start and t["occurred_at"].max() <= end_of(world)
    assert t["order_id"].is_unique and (t["amount"] > 0).all()
    assert t.equals(btyd_transactions(world))  # seeded


def test_the_file_passes_the_transaction_contract() -> None:
    checked = check_transactions(btyd_transactions(BTYDWorld(customers=200, seed=2)))
    assert all(f is None for f in checked.field)


def test_a_retail_year_puts_more_purchases_near_the_peak() -> None:
    flat = btyd_transactions(BTYDWorld(customers=4000, weeks=104, seed=3))
    year = btyd_transactions(BTYDWorld(customers=4000, weeks=104, season_amplitude=0.8, seed=3))

    def peak_share(t):  # repeat purchases in the 13 weeks around late November, of those in the second year
        weeks = (t["occurred_at"] - t["occurred_at"].min()).dt.days / 7
        second = weeks[(weeks >= 52) & (weeks < 104)]
        return float(np.mean((second >= 52 + 40.5) & (second < 52 + 53.5)))

    assert peak_share(year) > 1.5 * peak_share(flat)


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ContractError, match="season_amplitude"):
        BTYDWorld(season_amplitude=1.5)
