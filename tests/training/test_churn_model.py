"""ChurnModel follows the estimator contract and learns the obvious direction of recency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contract.errors import ContractError
from training.model import ChurnModel


def _data(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"days_since_last_event": rng.uniform(0, 60, n), "events_30d": rng.poisson(4, n)})
    y = (rng.random(n) < X["days_since_last_event"] / 60).astype(int).to_numpy()
    return X, y


def test_fit_returns_self_and_predicts_probabilities() -> None:
    X, y = _data()
    model = ChurnModel(num_boost_round=200, early_stopping_rounds=10, min_data_in_leaf=20, num_threads=1)
    assert model.fit(X[:400], y[:400], eval_set=(X[400:], y[400:])) is model
    p = model.predict_proba(X)
    assert p.shape == (len(X), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert model.feature_names_ == ["days_since_last_event", "events_30d"]
    assert 1 <= model.best_iteration_ <= 200
    assert model.get_params()["num_boost_round"] == 200


def test_more_recent_activity_never_raises_churn_risk() -> None:
    X, y = _data()
    model = ChurnModel(num_boost_round=50, min_data_in_leaf=20, num_threads=1).fit(X, y)
    grid = pd.DataFrame({"days_since_last_event": np.linspace(0, 60, 61), "events_30d": 4})
    p = model.predict_proba(grid)[:, 1]
    assert p[-1] > p[0]
    assert np.corrcoef(grid["days_since_last_event"], p)[0, 1] > 0.8


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.zeros(10), r"^y: must be a 1-D array of 600 labels"),
        (np.full(600, 2), r"^y: labels must be 0 or 1"),
    ],
)
def test_bad_labels_name_the_field(y: np.ndarray, message: str) -> None:
    X, _ = _data()
    with pytest.raises(ContractError, match=message):
        ChurnModel().fit(X, y)


def test_unfitted_and_missing_columns_are_clear() -> None:
    X, y = _data()
    with pytest.raises(ContractError, match=r"^model: is not fitted"):
        ChurnModel().predict_proba(X)
    model = ChurnModel(num_boost_round=5, num_threads=1).fit(X, y)
    with pytest.raises(ContractError, match="events_30d"):
        model.predict_proba(X[["days_since_last_event"]])
    with pytest.raises(ContractError, match="must be numeric"):
        ChurnModel().fit(X.assign(events_30d="x"), y)


def test_tree_size_is_chosen_on_the_validation_set() -> None:
    X, y = _data(n=900)
    model = ChurnModel(num_leaves=(3, 15), num_boost_round=100, early_stopping_rounds=10, num_threads=1)
    model.fit(X[:600], y[:600], eval_set=(X[600:], y[600:]))
    assert set(model.leaves_logloss_) == {3, 15}
    assert model.num_leaves_ == min(model.leaves_logloss_, key=model.leaves_logloss_.__getitem__)
    assert model.booster_.params["num_leaves"] == model.num_leaves_
    fixed = ChurnModel(num_leaves=7, num_boost_round=20, num_threads=1).fit(X, y)
    assert fixed.num_leaves_ == 7 and fixed.leaves_logloss_ == {}


@pytest.mark.parametrize("leaves", [1, (), (3, 1)])
def test_bad_num_leaves_names_the_field(leaves: object) -> None:
    X, y = _data()
    with pytest.raises(ContractError, match=r"^num_leaves: must be an integer >= 2"):
        ChurnModel(num_leaves=leaves).fit(X, y)  # type: ignore[arg-type]
