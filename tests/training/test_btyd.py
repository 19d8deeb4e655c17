"""BG/NBD: the fit recovers simulated parameters; P(no purchase in the horizon) matches Monte-Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.errors import ContractError
from training.btyd import BGNBD, BGNBDParams, log_likelihood, simulate

TRUE = BGNBDParams(r=0.6, alpha=8.0, a=0.8, b=2.5)
HORIZON = 30.0


@pytest.fixture(scope="module", params=[False, True], ids=["bgnbd", "mbgnbd"])
def draws(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    modified = request.param
    T = np.random.default_rng(1).uniform(20, 80, 20_000)
    x, t_x, future = simulate(TRUE, T, HORIZON, seed=2, max_purchases=150, modified=modified)
    return x, t_x, T, future, modified


def _known(modified: bool = False) -> BGNBD:
    model = BGNBD(modified=modified)
    model.params_ = TRUE
    return model


def test_fit_recovers_parameters(draws: tuple[np.ndarray, ...]) -> None:
    x, t_x, T, _, modified = draws
    fitted = BGNBD(modified=modified).fit(x, t_x, T).params_
    for name, tol in (("r", 0.1), ("alpha", 0.15), ("a", 0.2), ("b", 0.2)):
        true, got = getattr(TRUE, name), getattr(fitted, name)
        assert abs(got - true) / true < tol, (name, true, got)
    # the optimum beats the truth on its own sample, and the truth beats a wrong guess
    ll = lambda p: log_likelihood(p, x, t_x, T, modified=modified).sum()  # noqa: E731
    assert ll(fitted) >= ll(TRUE) > ll(BGNBDParams(2.0, 2.0, 2.0, 2.0))
    # and the other model fits its sample worse: the variants are told apart
    other = BGNBD(modified=not modified).fit(x, t_x, T)
    assert other.log_likelihood_ < BGNBD(modified=modified).fit(x, t_x, T).log_likelihood_


def test_prob_no_purchase_matches_monte_carlo(draws: tuple[np.ndarray, ...]) -> None:
    """E[P(X=0) | x] over customers equals the simulated share with no purchase, in every stratum of x."""
    x, t_x, T, future, modified = draws
    p0 = _known(modified).prob_no_purchase(HORIZON, x, t_x, T)
    for lo, hi in ((0, 0), (1, 1), (2, 3), (4, 1000)):
        s = (x >= lo) & (x <= hi)
        se = np.sqrt(p0[s].mean() * (1 - p0[s].mean()) / s.sum())
        assert abs((future[s] == 0).mean() - p0[s].mean()) < 4 * se + 0.005, (lo, hi)
    if modified:
        return
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


@settings(max_examples=200, deadline=None)
@given(
    params=st.tuples(*[st.floats(0.05, 20.0)] * 4),
    x=st.integers(0, 50),
    T=st.floats(0.5, 700.0),
    share=st.floats(0.001, 1.0),
    later=st.floats(0.0, 1.0),
)
def test_mbgnbd_activity_now_or_later_never_raises_the_chance_of_none(
    params: tuple[float, ...], x: int, T: float, share: float, later: float
) -> None:
    """MBG/NBD: a transaction now (x + 1, t_x = T) and a later last transaction (larger t_x) each lower
    P(no transaction in the horizon), for every x including one-time buyers (the BG/NBD's exception)."""
    model = _known(True)
    model.params_ = BGNBDParams(*params)
    t_x = share * T if x > 0 else 0.0
    moved = t_x + later * (T - t_x) if x > 0 else 0.0
    p = lambda x_, t_, T_: model.prob_no_purchase(HORIZON, *(np.array([v]) for v in (x_, t_, T_)))[0]  # noqa: E731
    now = p(x + 1, T, T)
    before = p(x, t_x, T)
    assert now <= before + 1e-12
    assert p(x, moved, T) <= before + 1e-12


def test_bgnbd_one_time_buyers_can_look_riskier_after_buying_again() -> None:
    """Why the churn prior uses the MBG/NBD: under the BG/NBD a second purchase can raise P(no purchase)."""
    model = _known()
    model.params_ = BGNBDParams(r=0.6, alpha=8.0, a=3.0, b=1.0)  # high drop-out after each purchase
    x0, x1 = (
        model.prob_no_purchase(HORIZON, np.array([x]), np.array([t]), np.array([40.0]))
        for x, t in ((0.0, 0.0), (1.0, 40.0))
    )
    assert x1[0] > x0[0]
