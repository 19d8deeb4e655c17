"""ChurnScorer core on a real LightGBM champion, with small stand-ins for the identity index and online store."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from contract.errors import NotFoundError
from contract.normalize import sha256_hex
from serving.schemas import ChurnScoreRequest
from serving.scoring import ChurnScorer, ModelMismatchError
from training.registry import ChampionModel

FEATURES = ["recency", "events_30d", "revenue_30d"]
AS_OF = pd.Timestamp("2024-03-01", tz="UTC")


def Champion(name: str, version: str, booster: lgb.Booster) -> ChampionModel:
    """The registry's loaded model, built in memory (no MLflow here)."""
    return ChampionModel(name, version, booster, list(booster.feature_name()), "churn_v1", "")


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


# --- reasons ---------------------------------------------------------------------------------------------
def test_scores_carry_the_top_three_reasons(scorer: ChurnScorer, booster: lgb.Booster) -> None:
    out = scorer.score(ChurnScoreRequest(customer_id="c1"))
    row = pd.DataFrame({"recency": [45.0], "events_30d": [0.0], "revenue_30d": [120.0]})
    contrib = booster.predict(row, pred_contrib=True)[0]
    assert 1 / (1 + np.exp(-contrib.sum())) == pytest.approx(out.churn_probability, abs=1e-12)
    order = np.argsort(-np.abs(contrib[:-1]), kind="stable")
    assert [r.feature for r in out.reasons] == [FEATURES[j] for j in order if contrib[j] != 0][:3]
    assert out.reasons[0].value == row[out.reasons[0].feature].iloc[0]
    assert all(r.text.endswith("risk)") for r in out.reasons)


def test_missing_values_are_explained_as_missing(scorer: ChurnScorer) -> None:
    reasons = scorer.score(ChurnScoreRequest(customer_id="c2")).reasons
    missing = [r for r in reasons if r.feature in ("events_30d", "revenue_30d")]
    assert missing, "a missing value that moves the score is a reason too"
    assert all(r.value is None and ": unknown (" in r.text for r in missing)


# --- hot reload ------------------------------------------------------------------------------------------
SERVED = ["days_since_last_event", "events_30d", "revenue_30d"]  # in the churn_v1 feature service


def _served_booster(seed: int, names: list[str]) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.exponential(5, (200, 3)), columns=names)
    y = (rng.random(200) < 1 / (1 + np.exp(-(X.iloc[:, 0] - X.iloc[:, 1]) / 3))).astype(int)
    params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 10, "num_threads": 1, "seed": seed}
    return lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=5 + seed)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_moved_alias_is_swapped_in_at_most_every_interval() -> None:
    from serving.reload import ChampionWatch

    online = Online(
        pd.DataFrame(
            {"customer_id": ["c1"], "days_since_last_event": [3.0], "events_30d": [1], "revenue_30d": [9.0]}
        )
    )
    models = {
        "1": Champion("churn", "1", _served_booster(1, SERVED)),
        "2": Champion("churn", "2", _served_booster(2, SERVED)),
    }
    alias = {"version": "1"}
    asked: list[float] = []
    clock = Clock()

    def version() -> str:
        asked.append(clock.now)
        return alias["version"]

    watch = ChampionWatch(version, lambda: models[alias["version"]], "1", interval=5.0, clock=clock)
    scorer = ChurnScorer(Identity({}), online, models["1"], watch=watch)
    assert scorer.score(ChurnScoreRequest(customer_id="c1")).model_version == "1"
    alias["version"] = "2"
    clock.now = 4.0
    assert scorer.score(ChurnScoreRequest(customer_id="c1")).model_version == "1"  # not due yet
    assert asked == []
    clock.now = 5.0
    out = scorer.score(ChurnScoreRequest(customer_id="c1"))
    assert (out.model_version, asked) == ("2", [5.0])
    row = pd.DataFrame({"days_since_last_event": [3.0], "events_30d": [1.0], "revenue_30d": [9.0]})
    assert out.churn_probability == pytest.approx(models["2"].booster.predict(row)[0], abs=0)


def test_a_champion_that_cannot_be_served_is_skipped(booster: lgb.Booster) -> None:
    from serving.reload import ChampionWatch

    online = Online(
        pd.DataFrame(
            {"customer_id": ["c1"], "days_since_last_event": [3.0], "events_30d": [1], "revenue_30d": [9.0]}
        )
    )
    good = Champion("churn", "1", _served_booster(1, SERVED))
    loads: list[str] = []

    def load() -> Champion:
        loads.append("2")
        return Champion("churn", "2", booster)  # expects 'recency', not in churn_v1

    watch = ChampionWatch(lambda: "2", load, "1", interval=0.0)
    scorer = ChurnScorer(Identity({}), online, good, watch=watch)
    for _ in range(3):
        assert scorer.score(ChurnScoreRequest(customer_id="c1")).model_version == "1"
    assert loads == ["2"]  # tried once, not on every request

    broken = ChampionWatch(lambda: "3", lambda: 1 / 0, "1", interval=0.0)
    scorer = ChurnScorer(Identity({}), online, good, watch=broken)
    assert scorer.score(ChurnScoreRequest(customer_id="c1")).model_version == "1"
    assert broken.failed == "3"


def test_a_national_phone_is_read_in_the_scorers_region(booster: lgb.Booster, online: Online) -> None:
    """A raw phone without a country code is looked up as the imports stored it (setting
    default_phone_region); without a region it is its digits, which name nobody here."""
    links = {("phone_sha256", sha256_hex("+442079460958")): "c2"}
    champion = Champion("churn", "3", booster)
    request = ChurnScoreRequest(phone="020 7946 0958")
    assert (
        ChurnScorer(Identity(links), online, champion, phone_region="GB").score(request).customer_id == "c2"
    )
    with pytest.raises(NotFoundError, match="phone: no customer is known"):
        ChurnScorer(Identity(links), online, champion).score(request)
