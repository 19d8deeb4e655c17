"""Pooled reward model and model/policy selection by off-policy evaluation (``method="auto"``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nba_synthetic import ACTIONS, make_log, policy_value

from contract.errors import ContractError
from training.nba.data import time_split
from training.nba.policy import NBAPolicy
from training.nba.selection import CANDIDATES

TINY = {"n_estimators": 30, "learning_rate": 0.1, "min_child_samples": 50, "n_folds": 2}


@pytest.fixture(scope="module")
def log() -> tuple[pd.DataFrame, np.ndarray]:
    return make_log(3000, 3)


def test_pooled_is_one_model_scoring_every_action(log: tuple[pd.DataFrame, np.ndarray]) -> None:
    df, mu = log
    policy = NBAPolicy(method="pooled", **TINY).fit(df)
    assert len(policy.models_) == 1 and policy.pooled_
    q = policy.expected_rewards(df.head(300))
    assert list(q.columns) == ACTIONS and q.shape == (300, len(ACTIONS))
    # scores follow the true responses: the per-row argmax matches the true best action on most rows (chance: 1 in 4)
    assert (q.to_numpy().argmax(axis=1) == mu[:300].argmax(axis=1)).mean() > 0.8
    assert policy.expected_rewards(df.head(0)).shape == (0, len(ACTIONS))


@pytest.mark.slow  # fits every candidate (the DR one is K x folds models): ~10 s idle, more under load
def test_auto_selects_a_learned_policy_when_context_matters(
    log: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    df, mu = log
    train, holdout = time_split(df, 0.3)
    policy = NBAPolicy(method="auto", **TINY).fit(train)
    assert set(policy.selection_) == {*CANDIDATES, *(f"single:{a}" for a in ACTIONS)}
    assert policy.fitted_method_ in CANDIDATES and policy.fixed_action_ is None
    best_learned = max(policy.selection_[m] for m in CANDIDATES)
    assert best_learned > max(v for k, v in policy.selection_.items() if k.startswith("single:"))
    pi = policy.action_probabilities(holdout).to_numpy()
    single = max(policy_value(np.eye(len(ACTIONS))[[k] * len(holdout)], mu[len(train) :]) for k in range(4))
    assert policy_value(pi, mu[len(train) :]) > single
    again = NBAPolicy.load(policy.save(tmp_path / "p"))
    assert (again.fitted_method_, again.fixed_action_) == (policy.fitted_method_, None)
    pd.testing.assert_frame_equal(policy.action_probabilities(holdout), again.action_probabilities(holdout))


def test_auto_falls_back_to_the_best_single_action(tmp_path: Path) -> None:
    """Context is pure noise and one action is best for everyone: no learned policy can beat serving it."""
    rng = np.random.default_rng(5)
    n = 3000
    logging = np.array([0.4, 0.3, 0.2, 0.1])
    action = (logging.cumsum() > rng.random(n)[:, None]).argmax(axis=1)
    mu = np.array([0.05, 0.05, 0.30, 0.08])  # promo_a best everywhere; the logging policy rarely picks it
    df = pd.DataFrame(
        {
            "decision_id": [f"d{i}" for i in range(n)],
            "occurred_at": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="min"),
            "action": np.asarray(ACTIONS, dtype=object)[action],
            "propensity": logging[action],
            "reward": (rng.random(n) < mu[action]).astype(float),
            "noise": rng.random(n),
            "noise_cat": rng.choice(["x", "y", "z"], n),
        }
    )
    policy = NBAPolicy(method="auto", epsilon=0.1, **TINY).fit(df)
    assert policy.fixed_action_ == "promo_a"
    probs = policy.action_probabilities(df.head(100))
    assert np.allclose(probs["promo_a"], 0.9 + 0.1 / 4)
    again = NBAPolicy.load(policy.save(tmp_path / "p"))
    assert again.fixed_action_ == "promo_a"
    pd.testing.assert_frame_equal(probs, again.action_probabilities(df.head(100)))


def test_unknown_method_names_the_field(log: tuple[pd.DataFrame, np.ndarray]) -> None:
    with pytest.raises(ContractError, match="method"):
        NBAPolicy(method="magic", **TINY).fit(log[0])
