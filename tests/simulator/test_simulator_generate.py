"""The pure generator: determinism, contract validity, identity states, record noise, offers, churn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from simulator_helpers import TINY, fingerprint

from contract.schemas import (
    AUTHENTICATED_TYPES,
    IDENTIFIER_TYPES,
    CustomerRecord,
    Decision,
    Event,
    Transaction,
)
from simulator import OFFERS, SimConfig, SimData, generate
from simulator.names import NICKNAMES


def test_same_seed_gives_identical_tables(tiny: SimData) -> None:
    assert fingerprint(generate(TINY)) == fingerprint(tiny)


def test_different_seeds_differ(tiny: SimData) -> None:
    other = generate(TINY.model_copy(update={"seed": 4}))
    assert fingerprint(other) != fingerprint(tiny)
    assert not other.events["anonymous_id"].dropna().isin(tiny.events["anonymous_id"]).any()


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match="household_share"):
        SimConfig(household_share=1.5)
    with pytest.raises(ValidationError, match="email_days"):
        SimConfig(email_days=(9,))


def test_events_follow_the_contract(tiny: SimData) -> None:
    ev = tiny.events
    assert ev["event_id"].is_unique
    assert ev[list(IDENTIFIER_TYPES)].notna().any(axis=1).all()
    assert ev.loc[ev["type"].isin(AUTHENTICATED_TYPES - {"purchase"}), "user_id"].notna().all()
    assert ev.loc[ev["type"].isin(["purchase", "store_purchase"]), "revenue"].gt(0).all()
    assert ev.loc[ev["type"] == "consent_update", "consent"].notna().all()
    assert ev["occurred_at"].min() >= TINY.start_ts
    assert ev["occurred_at"].max() < TINY.start_ts + pd.Timedelta(days=TINY.days)
    sample = ev.sample(400, random_state=0)
    for row in sample.to_dict("records"):
        props = {
            k: row.pop(k)
            for k in (
                "product_id",
                "category",
                "price",
                "quantity",
                "revenue",
                "order_id",
                "offer_id",
                "query",
                "consent",
            )
        }
        clean = {
            k: v
            for k, v in row.items()
            if v is not None and v is not pd.NA and not (isinstance(v, float) and np.isnan(v))
        }
        Event(
            **clean,
            properties={k: v for k, v in props.items() if v is not None and v is not pd.NA and v == v},
        )


def test_records_transactions_decisions_follow_the_contract(tiny: SimData) -> None:
    for source, df in tiny.records.items():
        assert df["record_id"].is_unique, source
        for row in df.head(200).to_dict("records"):
            extra = {k: row.pop(k) for k in ("customer_number",) if k in row}
            CustomerRecord(
                source=source,
                **{k: v for k, v in row.items() if v is not None and v == v},
                extra_ids={k: v for k, v in extra.items() if v},
            )
    for row in tiny.transactions.head(50).to_dict("records"):
        Transaction(**row)
    for row in tiny.decisions.head(50).to_dict("records"):
        Decision(**row)


@pytest.mark.parametrize(
    "flag",
    [
        "anonymous_only",
        "logged_out_return",
        "multi_device",
        "cookie_cleared",
        "shared_device",
        "shared_device_login",
        "never_login",
        "email_click_other_device",
        "loyalty_store_purchase",
        "anonymous_store_purchase",
        "store_only",
    ],
)
def test_each_identity_state_occurs(tiny: SimData, flag: str) -> None:
    assert tiny.truth["persons"][flag].any(), flag


def test_identity_flags_match_the_events(events_with_person: pd.DataFrame, tiny: SimData) -> None:
    ev, persons = events_with_person, tiny.truth["persons"].set_index("person_id")
    anon_per_device = (
        ev.dropna(subset=["device_id"]).groupby(["person_id", "device_id"])["anonymous_id"].nunique()
    )
    cleared = set(anon_per_device[anon_per_device > 1].index.get_level_values(0))
    assert cleared == set(persons.index[persons["cookie_cleared"]])
    # first visits are anonymous
    first = ev.sort_values("occurred_at").groupby("person_id").head(1)
    assert first.loc[first["channel"].isin(["web", "app"]), "user_id"].isna().all()
    # anonymous-only people carry nothing but cookies and devices
    anon_only = ev[ev["person_id"].isin(persons.index[persons["anonymous_only"]])]
    assert anon_only[["user_id", "email_sha256", "phone_sha256", "loyalty_id"]].isna().all().all()
    # a shared device is used by two people, both logging in on it sometimes
    shared = ev.dropna(subset=["device_id"]).groupby("device_id")["person_id"].nunique()
    assert (shared == 2).any() and (shared <= 2).all()
    # email clicks carry the email hash and the clicking device's cookie
    clicks = ev[ev["type"] == "email_click"]
    assert clicks[["email_sha256", "anonymous_id", "device_id"]].notna().all().all()
    # anonymous store purchases carry only a one-off receipt id
    anon_store = ev[(ev["type"] == "store_purchase") & ev["loyalty_id"].isna()]
    assert anon_store["anonymous_id"].str.startswith("rcpt-").all() and anon_store["anonymous_id"].is_unique


def test_truth_identifiers_cover_every_identifier(events_with_person: pd.DataFrame, tiny: SimData) -> None:
    ids = tiny.truth["identifiers"]
    for col in IDENTIFIER_TYPES:
        seen = set(events_with_person[col].dropna())
        assert seen <= set(ids.loc[ids["identifier_type"] == col, "identifier_value"]), col
    shared = ids[ids["shared"]]
    assert set(shared["identifier_type"]) <= {"device_id", "email_sha256", "anonymous_id"}
    assert (
        not shared[shared["identifier_type"] == "anonymous_id"]["identifier_value"]
        .str.startswith("rcpt-")
        .any()
    )
    recs = ids[ids["identifier_type"] == "record"]
    assert len(recs) == len(tiny.truth["records"])


def test_record_noise_is_present(tiny: SimData) -> None:
    truth, persons = tiny.truth["records"], tiny.truth["persons"].set_index("person_id")
    for flag in (
        "typo",
        "nickname",
        "swapped_names",
        "missing_fields",
        "moved_address",
        "shared_email",
        "duplicate",
    ):
        assert truth[flag].any(), flag
    recs = pd.concat([df.assign(source=s) for s, df in tiny.records.items()]).merge(
        truth, on=["source", "record_id"]
    )
    true_first = persons.loc[recs["person_id"], "first_name"].to_numpy()
    nick = recs["nickname"] & ~recs["swapped_names"] & ~recs["typo"]
    assert all(
        f in NICKNAMES[t]
        for f, t in zip(recs.loc[nick, "first_name"], true_first[nick.to_numpy()], strict=True)
    )
    swapped = recs["swapped_names"] & ~recs["typo"] & ~recs["nickname"]
    true_last = persons.loc[recs["person_id"], "last_name"].str.upper().to_numpy()
    assert (recs.loc[swapped, "first_name"].str.upper().to_numpy() == true_last[swapped.to_numpy()]).all()
    dup = truth[truth["duplicate"]]
    per_person = truth.groupby(["source", "person_id"]).size()
    assert (per_person.loc[list(zip(dup["source"], dup["person_id"], strict=True))] >= 2).all()


def test_propensities_are_positive_and_sum_to_one(tiny: SimData) -> None:
    dec, offers = tiny.decisions, tiny.truth["offers"]
    assert len(dec) > 20 and set(dec["action"]) <= set(OFFERS)
    assert ((dec["propensity"] > 0) & (dec["propensity"] <= 1)).all()
    sums = offers.groupby("decision_id")["logging_propensity"].sum()
    assert np.allclose(sums, 1.0) and (offers["logging_propensity"] > 0).all()
    assert offers.groupby("decision_id").size().eq(len(OFFERS)).all()
    chosen = offers[offers["chosen"]].set_index("decision_id").loc[dec["decision_id"]]
    assert np.allclose(chosen["logging_propensity"].to_numpy(), dec["propensity"].to_numpy())
    assert (chosen["action"].to_numpy() == dec["action"].to_numpy()).all()
    p = offers["true_response_probability"]
    assert ((p > 0) & (p < 1)).all()
    # the best offer depends on the person: no single action is best for everyone
    best = offers.loc[offers.groupby("decision_id")["true_response_probability"].idxmax(), "action"]
    assert best.nunique() >= 2


def test_churned_people_stop_generating_events(events_with_person: pd.DataFrame, tiny: SimData) -> None:
    persons = tiny.truth["persons"]
    churned = persons[persons["churned_in_window"]].set_index("person_id")["churned_at"]
    assert len(churned) > 10
    ev = events_with_person[events_with_person["person_id"].isin(churned.index)]
    assert (ev["occurred_at"].to_numpy() < churned.loc[ev["person_id"]].to_numpy()).all()
    labels = tiny.truth["churn"]
    assert labels["churned"].any() and not labels["churned"].all()
    assert (labels["horizon_days"] == TINY.churn_horizon_days).all()


def test_activity_has_weekly_and_funnel_shape(tiny: SimData) -> None:
    types = tiny.events["type"].value_counts()
    assert types["product_view"] > types["add_to_cart"] > types["purchase"] > 0
    assert types["checkout_start"] > types["purchase"]
    for t in (
        "search",
        "email_open",
        "email_click",
        "support_ticket",
        "consent_update",
        "offer_shown",
        "signup",
        "login",
    ):
        assert types.get(t, 0) > 0, t
