"""RecordMatcher end to end: unsupervised linking, constraints, order invariance, explanations, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from match_data import pair_f1

from contract.errors import ContractError
from identity.match import RecordMatcher


def test_unsupervised_links_noisy_duplicates(noisy: tuple[pd.DataFrame, pd.Series]) -> None:
    records, entity = noisy
    matcher = RecordMatcher()  # auto: no user_ids -> unsupervised
    result = matcher.link(records)
    assert result.mode == matcher.mode_ == "unsupervised"
    assert pair_f1(result.pairs, records, entity) >= 0.95
    assert len(result.clusters) == len(records)
    assert result.clusters["customer_id"].str.fullmatch(r"c_[0-9a-f]{16}").all()
    # cluster purity: records of one entity share a customer far more often than not
    truth = records.assign(entity=entity).merge(result.clusters, on=["source", "record_id"])
    assert truth.groupby("entity")["customer_id"].nunique().eq(1).mean() >= 0.95
    assert truth.groupby("customer_id")["entity"].nunique().eq(1).mean() >= 0.98


def test_ids_and_scores_do_not_depend_on_row_order(noisy: tuple[pd.DataFrame, pd.Series]) -> None:
    records, _ = noisy
    a = RecordMatcher().link(records)
    shuffled = records.sample(frac=1.0, random_state=3).reset_index(drop=True)
    b = RecordMatcher().link(shuffled)
    key = ["source", "record_id"]
    pd.testing.assert_frame_equal(
        a.clusters.sort_values(key).reset_index(drop=True), b.clusters.sort_values(key).reset_index(drop=True)
    )
    pk = ["source_l", "record_id_l", "source_r", "record_id_r"]
    pd.testing.assert_frame_equal(
        a.pairs.sort_values(pk).reset_index(drop=True), b.pairs.sort_values(pk).reset_index(drop=True)
    )


def _person(source: str, rid: str, user_id: str | None, **kw: str) -> dict[str, object]:
    base = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "1985-12-10",
        "postcode": "12345",
        "address_line1": "1 main street",
        "email": None,
        "phone": None,
    }
    return {"source": source, "record_id": rid, "user_id": user_id, **base, **kw}


def test_two_user_ids_never_share_a_cluster(noisy: tuple[pd.DataFrame, pd.Series]) -> None:
    records, _ = noisy
    twins = pd.DataFrame(
        [
            _person("crm", "t1", "u-ada-1"),
            _person("shop", "t2", "u-ada-2"),  # identical details, another login: two people
            _person("crm", "t3", None),  # matches both
            _person("shop", "t4", "u-ada-1", first_name="Zed", last_name="Quux", postcode="99999"),
        ]
    )
    result = RecordMatcher(mode="unsupervised").link(pd.concat([records, twins], ignore_index=True))
    merged = result.clusters.merge(pd.concat([records, twins])[["source", "record_id", "user_id"]])
    per_cluster = merged.dropna(subset=["user_id"]).groupby("customer_id")["user_id"].nunique()
    assert per_cluster.max() == 1
    cid = merged.set_index("record_id")["customer_id"]
    assert cid["t1"] != cid["t2"]
    assert cid["t1"] == cid["t4"]  # same user_id: must-link, however different the details
    assert cid["t3"] in (cid["t1"], cid["t2"])
    assert result.stats["refused_pairs"] >= 1
    pair = result.pairs.query("record_id_l == 't1' and record_id_r == 't2'")
    assert pair["match_probability"].iloc[0] == 0.0 and pair["model_probability"].iloc[0] > 0.5


def test_explain_adds_up_to_the_probability(noisy: tuple[pd.DataFrame, pd.Series]) -> None:
    records, _ = noisy
    matcher = RecordMatcher(mode="unsupervised")
    result = matcher.link(records)
    row = result.pairs.sort_values("match_probability").iloc[len(result.pairs) // 2]
    why = matcher.explain(row)
    logit = why.attrs["prior_weight"] + why["evidence"].sum()
    assert why.attrs["match_probability"] == pytest.approx(1 / (1 + 2.0**-logit))
    assert why.attrs["match_probability"] == pytest.approx(row["model_probability"])
    assert set(why["comparison"]) >= {"first_name", "last_name", "dob"}
    w = why.set_index("comparison")["evidence"]
    assert w["last_name"] == pytest.approx(row["w_last_name"], rel=1e-5)
    proba = matcher.predict_proba(result.pairs.head(20))
    np.testing.assert_allclose(proba, result.pairs["model_probability"].head(20))


def test_rare_agreement_weighs_more() -> None:
    """Term-frequency adjustment: an exact match on a rare surname is stronger evidence than a common one."""
    common = [
        {"source": "s", "record_id": f"c{k}", "last_name": "Smith", "first_name": f"x{k}"} for k in range(40)
    ]
    rare = [
        {"source": "s", "record_id": f"r{k}", "last_name": "Szymanowski", "first_name": f"y{k}"}
        for k in range(2)
    ]
    others = [
        {"source": "s", "record_id": f"o{k}", "last_name": f"name{k}", "first_name": "z"} for k in range(40)
    ]
    matcher = RecordMatcher(mode="unsupervised").fit(pd.DataFrame(common + rare + others))
    w_common = matcher.explain((("s", "c0"), ("s", "c1"))).set_index("comparison")["evidence"]["last_name"]
    w_rare = matcher.explain((("s", "r0"), ("s", "r1"))).set_index("comparison")["evidence"]["last_name"]
    assert w_rare > w_common + 2


def test_bad_input_names_the_field() -> None:
    dup = pd.DataFrame({"source": ["s", "s"], "record_id": ["1", "1"], "last_name": ["a", "b"]})
    with pytest.raises(ContractError, match="record_id"):
        RecordMatcher().fit(dup)
    with pytest.raises(ContractError, match="threshold"):
        RecordMatcher(threshold=1.5)
    with pytest.raises(ContractError, match="mode"):
        RecordMatcher(mode="magic")  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="not fitted"):
        RecordMatcher().predict_proba()
