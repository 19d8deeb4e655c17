"""The churn model's buy-till-you-die prior: the margin it adds, its round trip, and a model boosted from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contract.errors import ContractError
from training.btyd import BGNBDParams, simulate
from training.model import ChurnModel
from training.prior import REASON, BTYDPrior, boosted_contributions, boosted_margin

HORIZON = 30


def _customers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Churn feature columns of BG/NBD customers and whether they bought nothing in the next HORIZON days."""
    rng = np.random.default_rng(seed)
    T = rng.uniform(5, 200, n)
    x, t_x, future = simulate(BGNBDParams(0.8, 10.0, 0.6, 2.5), T, HORIZON, seed=seed, max_purchases=200)
    X = pd.DataFrame(
        {
            "active_days_total": x + 1,
            "days_since_first_seen": T,
            "days_since_last_event": T - t_x,
            "events_30d": rng.poisson(2, n).astype(float),  # noise the trees must learn to ignore
        }
    )
    return X, (future == 0).astype(int)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return _customers(6000, 3)


@pytest.fixture(scope="module")
def model(data: tuple[pd.DataFrame, np.ndarray]) -> ChurnModel:
    X, y = data
    part = np.arange(len(X)) % 3
    fit = lambda k: (X[part == k], y[part == k])  # noqa: E731
    return ChurnModel(prior=BTYDPrior("any", HORIZON), num_threads=1, num_leaves=(3, 7)).fit(
        *fit(0), eval_set=fit(1), calib_set=fit(2)
    )


def test_served_probability_is_the_trees_plus_the_scaled_prior(model: ChurnModel, data: tuple) -> None:
    X, _ = data
    prior = model.prior_
    assert prior is not None and prior.scale == model.calibration_.a
    raw = model.booster_.predict(X[model.feature_names_], raw_score=True)
    expected = 1 / (1 + np.exp(-(raw + prior.scale * prior.margin(X))))
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], expected, rtol=1e-12)
    values = X[model.feature_names_].to_numpy(dtype="float64")
    np.testing.assert_allclose(boosted_margin(model.booster_, prior, values), model.margin(X), rtol=1e-12)


def test_contributions_sum_to_the_served_margin_with_the_prior_as_one_reason(
    model: ChurnModel, data: tuple
) -> None:
    X, _ = data
    values = X[model.feature_names_].to_numpy(dtype="float64")[:50]
    names, shown, contrib = boosted_contributions(model.booster_, model.prior_, values)
    assert names == [*model.feature_names_, REASON]
    np.testing.assert_allclose(contrib.sum(axis=1), model.margin(X.iloc[:50]), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(shown[:, -1], model.prior_.p_no_activity(X.iloc[:50]))
    # the prior's push is relative to the training mean: it has both signs across customers
    assert (contrib[:, -2] > 0).any() and (contrib[:, -2] < 0).any()


def test_boosting_from_the_prior_beats_the_prior_alone_and_is_calibrated(model: ChurnModel) -> None:
    from sklearn.metrics import roc_auc_score

    X, y = _customers(6000, 4)  # fresh customers
    p = model.predict_proba(X)[:, 1]
    prior_only = model.prior_.p_no_activity(X)
    assert roc_auc_score(y, p) >= roc_auc_score(y, prior_only) - 0.005
    assert abs(p.mean() - y.mean()) < 0.02


def test_round_trip_keeps_the_margin(model: ChurnModel, data: tuple) -> None:
    X, _ = data
    again = BTYDPrior.from_dict(model.prior_.to_dict())
    np.testing.assert_array_equal(again.margin(X), model.prior_.margin(X))
    assert again.to_dict() == model.prior_.to_dict()
    with pytest.raises(ContractError, match=r"^prior.kind: "):
        BTYDPrior.from_dict({**model.prior_.to_dict(), "kind": "other"})
    for bad in (0, None, "2", True):
        with pytest.raises(ContractError, match=r"^prior.mapping: .*retrain"):
            BTYDPrior.from_dict({**model.prior_.to_dict(), "mapping": bad})


def test_purchases_count_per_day_and_versions_registered_with_mapping_1_still_count_purchases(
    model: ChurnModel,
) -> None:
    """Mapping 2 reads repeat purchase *days* (three orders on one day are no frequent buyer); a prior
    registered with mapping 1 reads `purchases_total` as it did when it was trained."""
    new = BTYDPrior.from_dict({**model.prior_.to_dict(), "activity": "purchase"})
    old = BTYDPrior.from_dict({**new.to_dict(), "mapping": 1})
    assert new.mapping == 2 and old.mapping == 1 and old.to_dict()["mapping"] == 1
    X = pd.DataFrame(
        {
            "purchases_total": [3.0, 3.0],
            "purchase_days_total": [1.0, 3.0],
            "days_since_first_purchase": [30.0, 30.0],
            "days_since_last_purchase": [30.0, 1.0],
            "days_since_first_seen": [40.0, 40.0],
        }
    )
    x_new, _, _, _ = new.summary(X)
    x_old, _, _, _ = old.summary(X)
    assert x_new.tolist() == [0.0, 2.0] and x_old.tolist() == [2.0, 2.0]
    assert new.columns[0] == "purchase_days_total" and old.columns[0] == "purchases_total"


def test_matrix_and_frame_paths_agree_and_never_active_customers_score_riskiest(model: ChurnModel) -> None:
    prior = BTYDPrior.from_dict({**model.prior_.to_dict(), "activity": "purchase"})
    X = pd.DataFrame(
        {
            "purchase_days_total": [0.0, 1.0, 3.0, np.nan],
            "days_since_first_purchase": [np.nan, 0.0, 40.0, np.nan],
            "days_since_last_purchase": [np.nan, 0.0, 10.0, np.nan],
            "days_since_first_seen": [60.0, 60.0, 60.0, 60.0],
        }
    )
    names = list(X.columns)
    margin, p = prior.margin_matrix(X.to_numpy(), names)
    np.testing.assert_array_equal(margin, prior.margin(X))
    # never bought: at least as risky as buying for the first time right now; missing counts alike
    assert margin[0] >= margin[1] and margin[3] == margin[0]
    assert np.isfinite(margin).all() and ((p > 0) & (p < 1)).all()


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ContractError, match=r"^activity: "):
        BTYDPrior("clicks", 30)
    with pytest.raises(ContractError, match=r"^horizon_days: "):
        BTYDPrior("any", 0)
    with pytest.raises(ContractError, match=r"^X: .*days_since_last_event"):
        BTYDPrior("any", 30).fit(pd.DataFrame({"active_days_total": [1.0], "days_since_first_seen": [3.0]}))
    with pytest.raises(ContractError, match=r"^prior: .*not fitted"):
        BTYDPrior("any", 30).margin(
            pd.DataFrame(
                {"active_days_total": [1.0], "days_since_first_seen": [3.0], "days_since_last_event": [1.0]}
            )
        )
