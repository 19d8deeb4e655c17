"""A buy-till-you-die transaction history: the Pareto/NBD world with Gamma-Gamma spend, as a plain import file.

A second development world, unlike the simulated brand in every way that matters to a churn model: purchases
only, no sessions or emails, low and very uneven purchase rates and silent, unobservable dropout. It is the
world BG/NBD and Pareto/NBD are built for, so a churn model that generalises must at least match them here.

Per customer (Schmittlein, Morrison & Colombo 1987; spend: Fader, Hardie & Lee 2005):
purchase rate λ ~ Gamma(r, rate α) per week, dropout rate μ ~ Gamma(s, rate β) per week, lifetime ~ Exp(μ),
purchases a Poisson process of rate λ from the first purchase until dropout; mean spend ν ~ Gamma(q, rate γ)
and each order's amount ~ Gamma(p, rate ν). The defaults are the published CDNOW estimates, not tuned to
anything in CXI; cohorts join over the first ``join_weeks``.

Optionally a retail year: with ``season_amplitude`` A the purchase rate is λ · (1 + A · cos(2π (t - peak) / 52))
(most shops sell most before the winter holidays), sampled by thinning. Such a world rewards a model that
looks at the same season a year earlier; BG/NBD, with a constant rate, cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from contract.errors import ContractError


@dataclass(frozen=True)
class BTYDWorld:
    """Parameters of the world (weeks); defaults: Pareto/NBD and Gamma-Gamma fits to CDNOW."""

    customers: int = 20_000
    weeks: int = 78
    join_weeks: int = 12
    r: float = 0.55
    alpha: float = 10.58
    s: float = 0.61
    beta: float = 11.67
    p: float = 6.25
    q: float = 3.74
    gamma: float = 15.44
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    season_amplitude: float = 0.0
    season_peak_week: float = 47.0  # late November
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.season_amplitude <= 1.0:
            raise ContractError(
                "season_amplitude", "must be in [0, 1] (a rate never below zero)", self.season_amplitude
            )
        if self.customers < 1 or self.weeks <= self.join_weeks:
            raise ContractError("customers, weeks", "need at least one customer and weeks > join_weeks")


def btyd_transactions(world: BTYDWorld = BTYDWorld()) -> pd.DataFrame:
    """Transactions in the import format (customer_id, occurred_at, amount, order_id), vectorised."""
    rng = np.random.default_rng(world.seed)
    n = world.customers
    lam = rng.gamma(world.r, 1.0 / world.alpha, n)
    mu = rng.gamma(world.s, 1.0 / world.beta, n)
    nu = rng.gamma(world.q, 1.0 / world.gamma, n)
    birth = rng.uniform(0.0, world.join_weeks, n)
    death = np.minimum(birth + rng.exponential(1.0 / mu), world.weeks)
    peak = 1.0 + world.season_amplitude
    # at the peak rate, the count is Poisson and the instants uniform on (birth, death); thinning keeps each
    # with probability rate(t) / peak rate
    repeats = rng.poisson(lam * peak * (death - birth))
    owner = np.repeat(np.arange(n), repeats)
    at = rng.uniform(birth.repeat(repeats), death.repeat(repeats))
    rate = 1.0 + world.season_amplitude * np.cos(2 * np.pi * (at - world.season_peak_week) / 52.0)
    keep = rng.uniform(0.0, peak, len(at)) < rate
    owner = np.concatenate([np.arange(n), owner[keep]])
    at = np.concatenate([birth, at[keep]])
    amount = rng.gamma(world.p, 1.0 / nu[owner])
    ids = np.char.add("btyd", owner.astype(str))
    micros = np.round(at * 7 * 86_400e6).astype("int64")
    occurred = pd.Timestamp(world.start) + pd.to_timedelta(micros, unit="us")
    frame = pd.DataFrame({"customer_id": ids, "occurred_at": occurred, "amount": np.round(amount, 2)})
    frame = frame.sort_values(["occurred_at", "customer_id"], kind="stable").reset_index(drop=True)
    frame["order_id"] = np.char.add("o", np.arange(len(frame)).astype(str))
    return frame


def end_of(world: BTYDWorld) -> datetime:
    """The end of the observation window."""
    return world.start + timedelta(weeks=world.weeks)
