"""ChurnScorer core on a real LightGBM champion, with small stand-ins for the identity index and online store."""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from contract.errors import NotFoundError
from contract.normalize import sha256_hex
from serving.schemas import ChurnScoreRequest
from serving.scoring import ChurnScorer, ModelMismatchError

FEATURES = ["recency", "events_30d", "revenue_30d"]
AS_OF = pd.Timestamp("2024-03-01", tz="UTC")


@dataclass
class Champion:
    name: str
    version: str
    booster: lgb.Booster
    feature_service: str = "churn_v1"


class Identity:
    def __init__(self, links: dict[tuple[str, str], str]) -> None:
        self.links = links

    def customer_for(self, identifier_type: str, value: str) -> str | None:
        return self.links.get((identifier_type, value))


class Online:
    """Feast-shaped answers: one row per id, all-null features and as_of for unknown ids, extra columns."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table.set_index("customer_id")
        self.calls: list[str] = []

    def online(self, customer_ids: list[str], service: str = "churn_v1") -> pd.DataFrame:
        self.calls.append(service)
        frame = self.table.reindex(customer_ids).reset_index()
        frame["features_as_of"] = pd.Series(
            [AS_OF if c in self.table.index else pd.NaT for c in customer_ids]
        )
        return frame.astype({"events_30d": "object"})  # Feast hands back object columns when nulls occur


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {
            "recency": rng.exponential(20, 300),
            "events_30d": rng.poisson(4, 300),
            "revenue_30d": rng.gamma(2, 30, 300),
        }
    )
    y = (rng.random(300) < 1 / (1 + np.exp(-(0.1 * X["recency"] - 0.5 * X["events_30d"])))).astype(int)
    params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 10, "num_threads": 1, "seed": 0}
    return lgb.train(params, lgb.Dataset(X.astype("float64"), label=y), num_boost_round=20)


@pytest.fixture
def online() -> Online:
    # columns deliberately in another order than the booster's, plus a non-model column
    return Online(
        pd.DataFrame(
            {
                "customer_id": ["c1", "c2"],
                "revenue_30d": [120.0, None],
                "snapshot_at": [1, 1],
                "events_30d": [0, None],
                "recency": [45.0, 1.0],
            }
        )
    )


@pytest.fixture
def scorer(booster: lgb.Booster, online: Online) -> ChurnScorer:
    links = {
        ("user_id", "u1"): "c1",
        ("anonymous_id", "a1"): "c1",
        ("email_sha256", sha256_hex("ada@x.org")): "c2",
    }
    return ChurnScorer(Identity(links), online, Champion("churn", "3", booster))


def test_score_equals_booster_on_the_aligned_vector(scorer: ChurnScorer, booster: lgb.Booster) -> None:
    out = scorer.score(ChurnScoreRequest(customer_id="c1"))
    expected = booster.predict(
        pd.DataFrame({"recency": [45.0], "events_30d": [0.0], "revenue_30d": [120.0]})
    )[0]
    assert out.churn_probability == pytest.approx(expected, abs=0)
    assert (out.customer_id, out.model_name, out.model_version) == ("c1", "churn", "3")
    assert out.features_as_of == AS_OF.to_pydatetime()


def test_missing_feature_values_are_scored_as_missing(scorer: ChurnScorer, booster: lgb.Booster) -> None:
    out = scorer.score(ChurnScoreRequest(customer_id="c2"))
    expected = booster.predict(
        pd.DataFrame({"recency": [1.0], "events_30d": [np.nan], "revenue_30d": [np.nan]})
    )[0]
    assert out.churn_probability == pytest.approx(expected, abs=0)


def test_any_identifier_resolves_to_the_same_customer(scorer: ChurnScorer) -> None:
    by_id = scorer.score(ChurnScoreRequest(customer_id="c1"))
    for req in (ChurnScoreRequest(user_id="u1"), ChurnScoreRequest(anonymous_id="a1")):
        assert scorer.score(req) == by_id
    assert scorer.score(ChurnScoreRequest(email=" ADA@x.org")).customer_id == "c2"


@pytest.mark.parametrize(
    ("request_body", "needle"),
    [
        ({"user_id": "nobody"}, "user_id: no customer is known by this identifier (user_id 'nobody')"),
        ({"email": "eve@x.org"}, "email: no customer is known"),
        ({"customer_id": "c404"}, "customer_id: no online features for customer 'c404'"),
    ],
)
def test_unknown_customers_raise_not_found_naming_the_identifier(
    scorer: ChurnScorer, request_body: dict, needle: str
) -> None:
    with pytest.raises(NotFoundError) as info:
        scorer.score(ChurnScoreRequest.model_validate(request_body))
    assert needle in str(info.value)
    assert "eve@x.org" not in str(info.value)  # raw PII is never echoed


def test_the_champions_feature_service_is_read(scorer: ChurnScorer, online: Online) -> None:
    scorer.score(ChurnScoreRequest(customer_id="c1"))
    assert online.calls == ["churn_v1"]


def test_a_model_input_absent_online_is_a_mismatch(booster: lgb.Booster) -> None:
    online = Online(pd.DataFrame({"customer_id": ["c1"], "recency": [1.0], "events_30d": [1]}))
    scorer = ChurnScorer(Identity({}), online, Champion("churn", "1", booster))
    with pytest.raises(ModelMismatchError, match="revenue_30d"):
        scorer.score(ChurnScoreRequest(customer_id="c1"))


def test_check_features_against_the_feature_service(booster: lgb.Booster, online: Online) -> None:
    with pytest.raises(ModelMismatchError, match="recency"):
        ChurnScorer(Identity({}), online, Champion("churn", "1", booster)).check_features()
