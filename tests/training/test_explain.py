"""Reasons from `pred_contrib` on a real calibrated LightGBM booster, worded from the feature catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contract.errors import ContractError
from training.calibration import fold_into_booster
from training.explain import Reason, phrase, phrases, top_reasons
from training.model import ChurnModel

NAMES = ["days_since_last_purchase", "purchases_30d", "revenue_30d", "email_opens_30d"]


def _data(seed: int, n: int = 1200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "days_since_last_purchase": rng.exponential(25, n),
            "purchases_30d": rng.poisson(2, n).astype(float),
            "revenue_30d": rng.gamma(2, 40, n),
            "email_opens_30d": rng.poisson(1, n).astype(float),  # noise
        }
    )
    X.loc[rng.random(n) < 0.1, "days_since_last_purchase"] = np.nan  # never bought
    logit = 0.06 * X["days_since_last_purchase"].fillna(90) - 0.8 * X["purchases_30d"] - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    X, y = _data(0)
    Xc, yc = _data(1, 600)
    return ChurnModel(num_boost_round=60, min_data_in_leaf=20, num_threads=1).fit(X, y, calib_set=(Xc, yc))


def test_contributions_sum_to_the_calibrated_score(model: ChurnModel) -> None:
    """A Platt map folded into the trees: contributions (with the bias) add up to the calibrated margin."""
    X, _ = _data(2, 50)
    calibrated = fold_into_booster(model.booster_, 0.7, -0.3)
    contrib = calibrated.predict(X, pred_contrib=True)
    margin = model.booster_.predict(X, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1), 0.7 * margin - 0.3, atol=1e-9)
    np.testing.assert_allclose(1 / (1 + np.exp(-contrib.sum(axis=1))), calibrated.predict(X), atol=1e-12)
    reasons = top_reasons(calibrated, X, k=len(NAMES), prior=None)
    np.testing.assert_allclose(
        [sum(r.contribution for r in row) for row in reasons], contrib[:, :-1].sum(axis=1)
    )


def test_top_reasons_are_the_largest_contributions_with_their_sign(model: ChurnModel) -> None:
    X, _ = _data(3, 40)
    reasons = top_reasons(model.booster_, X, k=3, prior=None)
    contrib = model.booster_.predict(X[NAMES], pred_contrib=True)[:, :-1]
    assert len(reasons) == len(X)
    for i, row in enumerate(reasons):
        assert 1 <= len(row) <= 3
        sizes = [abs(r.contribution) for r in row]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(contrib[i]).max())
        for r in row:
            j = NAMES.index(r.feature)
            assert r.contribution == pytest.approx(contrib[i, j])
            assert r.text.endswith("(raises risk)" if r.contribution > 0 else "(lowers risk)")
            assert r.text.startswith(phrase(r.feature).label)


def test_reasons_follow_the_features_direction(model: ChurnModel) -> None:
    """Long absence raises risk, several recent purchases lower it, and the sentences say so."""
    X = pd.DataFrame(
        {"days_since_last_purchase": [80.0, 1.0], "purchases_30d": [0.0, 6.0], "revenue_30d": [0.0, 400.0]}
    ).assign(email_opens_30d=1.0)
    lapsed, loyal = top_reasons(model.booster_, X, k=2, prior=None)
    assert lapsed[0] == Reason(
        "days_since_last_purchase",
        80.0,
        lapsed[0].contribution,
        "Days since the last purchase: 80 (raises risk)",
    )
    assert lapsed[0].contribution > 0
    by_feature = {r.feature: r for r in loyal}
    assert by_feature["purchases_30d"].text == "Purchases in the last 30 days: 6 (lowers risk)"


def test_missing_values_use_the_catalogues_words(model: ChurnModel) -> None:
    X = pd.DataFrame(
        {"days_since_last_purchase": [np.nan], "purchases_30d": [0.0], "revenue_30d": [0.0]}
    ).assign(email_opens_30d=0.0)
    (row,) = top_reasons(model.booster_, X, k=4, prior=None)
    never = next(r for r in row if r.feature == "days_since_last_purchase")
    assert never.value is None
    assert never.text.startswith("Days since the last purchase: never bought")


def test_every_catalogue_feature_has_words() -> None:
    for name, said in phrases().items():
        assert said.label and "_" not in said.label and "as_of" not in said.label, name
    assert phrase("avg_order_value_90d").label == "Average order value in the last 90 days"
    assert phrase("not_in_catalogue_7d").label == "Not in catalogue in the last 7 days"


def test_bad_input_names_the_field(model: ChurnModel) -> None:
    with pytest.raises(ContractError, match=r"X: .*purchases_30d"):
        top_reasons(model.booster_, pd.DataFrame({"days_since_last_purchase": [1.0]}), prior=None)
    with pytest.raises(ContractError, match="k: "):
        top_reasons(model.booster_, _data(4, 3)[0], k=0, prior=None)
