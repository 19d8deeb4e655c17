"""BG/NBD: the fit recovers simulated parameters; P(no purchase in the horizon) matches Monte-Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from contract.errors import ContractError
from training.btyd import BGNBD, BGNBDParams, log_likelihood, simulate

TRUE = BGNBDParams(r=0.6, alpha=8.0, a=0.8, b=2.5)
HORIZON = 30.0


@pytest.fixture(scope="module")
def draws() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    T = np.random.default_rng(1).uniform(20, 80, 20_000)
    x, t_x, future = simulate(TRUE, T, HORIZON, seed=2, max_purchases=150)
    return x, t_x, T, future


def _known() -> BGNBD:
    model = BGNBD()
    model.params_ = TRUE
    return model


def test_fit_recovers_parameters(draws: tuple[np.ndarray, ...]) -> None:
    x, t_x, T, _ = draws
    fitted = BGNBD().fit(x, t_x, T).params_
    for name, tol in (("r", 0.1), ("alpha", 0.15), ("a", 0.2), ("b", 0.2)):
        true, got = getattr(TRUE, name), getattr(fitted, name)
        assert abs(got - true) / true < tol, (name, true, got)
    # the optimum beats the truth on its own sample, and the truth beats a wrong guess
    ll = lambda p: log_likelihood(p, x, t_x, T).sum()  # noqa: E731
    assert ll(fitted) >= ll(TRUE) > ll(BGNBDParams(2.0, 2.0, 2.0, 2.0))


def test_prob_no_purchase_matches_monte_carlo(draws: tuple[np.ndarray, ...]) -> None:
    """E[P(X=0) | x] over customers equals the simulated share with no purchase, in every stratum of x."""
    x, t_x, T, future = draws
    p0 = _known().prob_no_purchase(HORIZON, x, t_x, T)
    for lo, hi in ((0, 0), (1, 1), (2, 3), (4, 1000)):
        s = (x >= lo) & (x <= hi)
        se = np.sqrt(p0[s].mean() * (1 - p0[s].mean()) / s.sum())
        assert abs((future[s] == 0).mean() - p0[s].mean()) < 4 * se + 0.005, (lo, hi)
    expected = _known().expected_purchases(HORIZON, x, t_x, T)
    assert abs(expected.mean() - future.mean()) < 0.05 * future.mean()


def test_one_time_buyers_are_alive_but_still_ranked_by_age() -> None:
    """P(alive) = 1 for x = 0 whatever T: useless for churn; P(X = 0) grows with the time since purchase."""
    model = _known()
    T = np.array([5.0, 30.0, 90.0])
    zeros = np.zeros(3)
    np.testing.assert_allclose(model.p_alive(zeros, zeros, T), 1.0)
    assert np.all(np.diff(model.prob_no_purchase(HORIZON, zeros, zeros, T)) > 0)
    # a repeat buyer silent for long is less likely alive than one who just bought
    alive = model.p_alive(np.array([3.0, 3.0]), np.array([10.0, 59.0]), np.array([60.0, 60.0]))
    assert alive[0] < alive[1]


@pytest.mark.parametrize(
    ("x", "t_x", "T", "field"),
    [
        ([1.0], [5.0], [3.0], "t_x"),
        ([-1.0], [0.0], [3.0], "x"),
        ([2.0], [0.0], [3.0], "t_x"),
        ([1.0, 2.0], [1.0], [3.0], "x, t_x, T"),
    ],
)
def test_bad_inputs_name_the_field(x: list, t_x: list, T: list, field: str) -> None:
    with pytest.raises(ContractError, match=rf"^{field}: "):
        _known().prob_no_purchase(HORIZON, np.array(x), np.array(t_x), np.array(T))


def test_unfitted_is_clear() -> None:
    with pytest.raises(ContractError, match="not fitted"):
        BGNBD().p_alive(np.zeros(1), np.zeros(1), np.ones(1))
