"""Calibration: folded into the booster exactly, and within tolerance on held-out data with known probabilities."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.calibration import choose_calibration, expected_calibration_error, fold_into_booster
from training.model import ChurnModel


def _known(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"days_since_last_event": rng.exponential(20, n), "events_30d": rng.poisson(4, n)})
    z = 0.09 * X["days_since_last_event"] - 0.35 * X["events_30d"] + 0.2 * rng.normal(size=n)
    p = 1 / (1 + np.exp(-z.to_numpy()))
    return X, (rng.random(n) < p).astype(int), p


def test_fold_is_exact_for_scores_and_contributions() -> None:
    X, y, _ = _known(500, 0)
    bst = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 7}, lgb.Dataset(X, y), 30)
    folded = fold_into_booster(bst, 0.7, -0.3, num_iteration=20)
    margin = folded.predict(X, raw_score=True)
    np.testing.assert_allclose(
        margin, 0.7 * bst.predict(X, raw_score=True, num_iteration=20) - 0.3, atol=1e-9
    )
    np.testing.assert_allclose(folded.predict(X, pred_contrib=True).sum(axis=1), margin, atol=1e-9)
    reloaded = lgb.Booster(model_str=folded.model_to_string())
    np.testing.assert_allclose(reloaded.predict(X), folded.predict(X))
    assert folded.feature_name() == list(X.columns)


def test_platt_is_chosen_for_a_miscalibrated_margin() -> None:
    rng = np.random.default_rng(0)
    margin = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.4 * margin + 1.0)))).astype(int)  # overconfident, shifted
    cal = choose_calibration(margin, y)
    assert cal.method == "platt"
    assert abs(cal.a - 0.4) < 0.1 and abs(cal.b - 1.0) < 0.15
    assert cal.brier["platt"] < cal.brier["none"]
    well = (rng.random(4000) < 1 / (1 + np.exp(-margin))).astype(int)
    assert (
        choose_calibration(margin, well).brier["platt"]
        >= choose_calibration(margin, well).brier["none"] - 2e-3
    )


def test_calibrated_model_within_tolerance_on_held_out_data() -> None:
    X, y, _ = _known(12_000, 1)
    Xh, yh, ph = _known(6_000, 2)
    part = np.arange(len(X)) % 5
    model = ChurnModel(num_boost_round=300, early_stopping_rounds=20, min_data_in_leaf=40, num_threads=1).fit(
        X[part < 3],
        y[part < 3],
        eval_set=(X[part == 3], y[part == 3]),
        calib_set=(X[part == 4], y[part == 4]),
    )
    assert model.calibration_ is not None
    p = model.predict_proba(Xh)[:, 1]
    np.testing.assert_allclose(p, model.booster_.predict(Xh[model.feature_names_]))  # the registered booster
    assert expected_calibration_error(yh, p) < 0.05
    assert expected_calibration_error(ph, p) < 0.03  # against the known probabilities themselves
    assert expected_calibration_error(yh, np.clip(ph + 0.15, 0, 1)) > 0.05  # the check can fail
