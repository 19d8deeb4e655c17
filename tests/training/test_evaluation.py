"""Holdout evaluation helpers: the paired bootstrap interval of an AUC difference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from contract.errors import ContractError
from training.evaluation import _weighted_aucs, auc_difference_interval


def test_weighted_auc_with_unit_weights_is_sklearns_ties_included() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500).astype(float)
    p = np.round(rng.random(500) + 0.3 * y, 1)  # coarse scores: many ties
    got = _weighted_aucs(y, p, np.ones((1, 500)))[0]
    assert got == pytest.approx(roc_auc_score(y, p))


def test_weighted_auc_equals_auc_of_the_repeated_rows() -> None:
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, 50).astype(float), rng.random(50)
    w = rng.integers(0, 4, 50).astype(float)
    rows = np.repeat(np.arange(50), w.astype(int))
    assert _weighted_aucs(y, p, w[None, :])[0] == pytest.approx(roc_auc_score(y[rows], p[rows]))


def test_interval_covers_zero_for_equal_models_and_not_for_a_clearly_better_one() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 2000).astype(float)
    noise = rng.normal(size=2000)
    weak = 0.3 * y + noise
    strong = 1.5 * y + noise
    d, low, high = auc_difference_interval(y, weak, weak + 1e-12 * noise)
    assert d == pytest.approx(0.0, abs=1e-9) and low <= 0.0 <= high
    d, low, high = auc_difference_interval(y, strong, weak, n_bootstrap=300)
    assert d == pytest.approx(roc_auc_score(y, strong) - roc_auc_score(y, weak))
    assert 0.0 < low < d < high


def test_interval_needs_both_classes() -> None:
    with pytest.raises(ContractError, match="both classes"):
        auc_difference_interval(np.ones(5), np.arange(5.0), np.arange(5.0))
