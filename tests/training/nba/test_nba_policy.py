"""NBAPolicy: beats the logging policy on a problem with a known best action; serving distribution and
eligibility invariants; persistence round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nba_synthetic import ACTIONS, LOGGING, make_log, policy_value

from contract.errors import ContractError
from training.nba.data import time_split
from training.nba.eligibility import ActionRule, Condition, EligibilityRules
from training.nba.evaluation import evaluate_offline
from training.nba.policy import NBAPolicy

SMALL = {"n_estimators": 60, "learning_rate": 0.1, "min_child_samples": 100, "n_folds": 2}


@pytest.fixture(scope="module")
def log() -> tuple[pd.DataFrame, np.ndarray]:
    return make_log(5000, 0)


@pytest.mark.parametrize("method", ["dr", "direct", "pooled"])
def test_policy_beats_logging_and_finds_best_action(
    log: tuple[pd.DataFrame, np.ndarray], method: str
) -> None:
    df, mu = log
    train, holdout = time_split(df, 0.3)
    policy = NBAPolicy(method=method, epsilon=0.05, **SMALL).fit(train)
    pi = policy.action_probabilities(holdout).to_numpy()
    mu_h = mu[len(train) :]
    seg = holdout["segment"].str[1].astype(int).to_numpy()
    assert policy_value(pi, mu_h) > 1.5 * policy_value(LOGGING[seg], mu_h)
    greedy = pd.Series(np.asarray(ACTIONS)[pi.argmax(axis=1)])
    best = pd.Series(np.asarray(ACTIONS)[mu_h.argmax(axis=1)])
    modal = greedy.groupby(seg).agg(lambda g: g.value_counts().index[0])
    assert (modal == best.groupby(seg).first()).all()  # the majority choice per segment is the best action
    ev = evaluate_offline(policy, train, holdout, n_bootstrap=100)
    assert ev.ship
    assert set(ev.table.policy) == {"cxi", "logging", "uniform", "best_single"}
    dr = ev.table[(ev.table.policy == "cxi") & (ev.table.estimator == "dr")].iloc[0]
    assert dr.low <= policy_value(pi, mu_h) <= dr.high


def test_uplift_is_against_control(log: tuple[pd.DataFrame, np.ndarray]) -> None:
    policy = NBAPolicy(method="direct", **SMALL).fit(log[0])
    up = policy.uplift(log[0].head(50))
    assert policy.control_ == "no_offer"
    assert np.allclose(up["no_offer"], 0.0)
    assert (up.drop(columns="no_offer").max(axis=1).groupby(log[0]["segment"].head(50)).mean() > 0).all()


def test_exploration_probabilities(log: tuple[pd.DataFrame, np.ndarray]) -> None:
    df = log[0]
    policy = NBAPolicy(method="direct", **SMALL).fit(df)
    probs = policy.action_probabilities(df, epsilon=0.1)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.to_numpy() >= 0.1 / len(ACTIONS) - 1e-12).all()
    recs = policy.recommend(df, epsilon=0.1, rng=np.random.default_rng(1))
    assert len(recs) == len(df) and (recs["probability"] > 0).all()
    chosen = probs.to_numpy()[np.arange(len(df)), pd.Categorical(recs["action"], categories=ACTIONS).codes]
    assert np.allclose(recs["probability"], chosen)
    assert list(recs.columns[:2]) == ["decision_id", "customer_id"]
    # the sampled share of non-greedy actions is close to the exploration mass
    greedy = probs.idxmax(axis=1).to_numpy()
    assert abs((recs["action"].to_numpy() != greedy).mean() - 0.1 * 3 / 4) < 0.03


def test_eligibility_never_recommends_ineligible(log: tuple[pd.DataFrame, np.ndarray]) -> None:
    df = log[0]
    rules = EligibilityRules(
        rules=[ActionRule(action="gift", when=[Condition(column="tenure_days", op="<", value=30)])],
        consent_column="consent",
        default_action="no_offer",
    )
    policy = NBAPolicy(method="direct", eligibility=rules, **SMALL).fit(df)
    probs = policy.action_probabilities(df, epsilon=0.2)
    recs = policy.recommend(df, epsilon=0.2, rng=np.random.default_rng(2))
    old = df["tenure_days"].to_numpy() >= 30
    no_consent = ~df["consent"].to_numpy()
    assert (probs.loc[old, "gift"] == 0).all()
    assert not (recs["action"].to_numpy()[old] == "gift").any()
    assert (recs["action"].to_numpy()[no_consent] == "no_offer").all()
    assert np.allclose(recs["probability"].to_numpy()[no_consent], 1.0)
    assert np.allclose(probs.sum(axis=1), 1.0)
    ev = evaluate_offline(policy, df.iloc[:3500], df.iloc[3500:], n_bootstrap=50)
    assert np.isfinite(ev.table["value"]).all()


def test_save_load_round_trip(log: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    rules = EligibilityRules(
        rules=[ActionRule(action="gift", when=[Condition(column="segment", op="in", value=["s2"])])]
    )
    policy = NBAPolicy(method="direct", eligibility=rules, **SMALL).fit(log[0])
    again = NBAPolicy.load(policy.save(tmp_path / "p"))
    ctx = log[0].head(200)
    pd.testing.assert_frame_equal(policy.action_probabilities(ctx), again.action_probabilities(ctx))
    # contexts as strings (a CSV file) give the same answer; unknown categories do not crash
    as_text = ctx.astype(str).assign(segment=lambda d: d["segment"].where(d.index % 7 != 0, "new_segment"))
    assert again.action_probabilities(as_text).shape == (200, len(ACTIONS))


def test_errors_name_the_field(log: tuple[pd.DataFrame, np.ndarray]) -> None:
    df = log[0]
    with pytest.raises(ContractError, match="propensity"):
        NBAPolicy(**SMALL).fit(df.assign(propensity=0.0))
    with pytest.raises(ContractError, match="reward"):
        NBAPolicy(**SMALL).fit(df.drop(columns="reward"))
    policy = NBAPolicy(method="direct", **SMALL).fit(df)
    with pytest.raises(ContractError, match="segment"):
        policy.action_probabilities(df.drop(columns="segment"))
    with pytest.raises(ContractError, match=r"eligibility\.action"):
        NBAPolicy(
            eligibility=EligibilityRules(
                rules=[ActionRule(action="nope", when=[Condition(column="noise", op=">", value=0)])]
            )
        ).fit(df)
