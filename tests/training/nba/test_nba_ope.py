"""OPE estimators are unbiased on a synthetic log with a known value, and their intervals cover it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from nba_synthetic import ACTIONS, LOGGING, MU, make_log, policy_value

from contract.errors import ContractError
from training.nba.ope import evaluate_logging, evaluate_policy, true_value

# the target: a fixed stochastic policy, far from the logging one
TARGET = np.array([[0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7], [0.7, 0.1, 0.1, 0.1]])
TRUE = float((TARGET * MU).sum(axis=1).mean())  # segments are uniform


def _estimate(n: int, seed: int, n_bootstrap: int) -> dict[str, tuple[float, float, float]]:
    df, _ = make_log(n, seed)
    seg = df["segment"].str[1].astype(int).to_numpy()
    logged = pd.Categorical(df["action"], categories=ACTIONS).codes
    q = np.full((n, len(ACTIONS)), 0.2)  # a deliberately wrong reward model: DR must stay unbiased
    est = evaluate_policy(
        "t", TARGET[seg], logged, df["propensity"], df["reward"], q, n_bootstrap=n_bootstrap, seed=seed
    )
    return {e.estimator: (e.value, e.low, e.high) for e in est}


def test_estimators_unbiased_over_seeds() -> None:
    runs = [_estimate(1000, seed, 10) for seed in range(150)]
    for name in ("ipw", "snipw", "dr"):
        values = np.array([r[name][0] for r in runs])
        se = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - TRUE) < max(4 * se, 0.003), (name, values.mean(), TRUE)


def test_intervals_cover_roughly_nominal() -> None:
    runs = [_estimate(800, 1000 + seed, 200) for seed in range(60)]
    for name in ("ipw", "snipw", "dr"):
        covered = np.mean([lo <= TRUE <= hi for _, lo, hi in (r[name] for r in runs)])
        assert covered >= 0.83, (name, covered)


def test_logging_policy_on_policy_value() -> None:
    df, mu = make_log(4000, 3)
    seg = df["segment"].str[1].astype(int).to_numpy()
    est = evaluate_logging(df["reward"], n_bootstrap=200)
    assert {e.estimator for e in est} == {"ipw", "snipw", "dr"}
    assert est[0].low <= policy_value(LOGGING[seg], mu) <= est[0].high


def test_true_value_from_truth_table() -> None:
    df, mu = make_log(50, 1)
    truth = pd.DataFrame(
        {
            "decision_id": np.repeat(df["decision_id"], len(ACTIONS)),
            "action": np.tile(ACTIONS, len(df)),
            "true_response_probability": mu.ravel(),
        }
    )
    pi = np.tile([0.0, 0.0, 1.0, 0.0], (len(df), 1))
    probs = pd.DataFrame(pi, columns=ACTIONS).assign(decision_id=df["decision_id"].to_numpy())
    assert true_value(probs, truth) == pytest.approx(mu[:, 2].mean())


def test_bad_shapes_name_the_field() -> None:
    with pytest.raises(ContractError, match="pi"):
        evaluate_policy("t", np.ones((3, 2)), np.zeros(4, int), np.ones(4), np.ones(4))
    with pytest.raises(ContractError, match="propensity"):
        evaluate_policy("t", np.ones((2, 2)) / 2, np.zeros(2, int), np.array([0.5, 0.0]), np.ones(2))
