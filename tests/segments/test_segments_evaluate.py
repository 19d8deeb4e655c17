"""Evaluation: hysteresis stops flapping, percentiles stay frozen, one offer per customer, suppression,
consent exclusions, and segments whose score is missing are skipped (members kept)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from segments_frames import customers

from contract.errors import ContractError
from segments.consent import COLUMNS
from segments.definitions import load, parse
from segments.evaluate import Thresholds, evaluate, freeze

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DOC = {
    "lifecycle": [
        {"name": "new", "conditions": [{"feature": "days_since_first_seen", "op": "<=", "value": 30}]},
        {"name": "active"},
    ],
    "segments": [
        {
            "name": "risk",
            "conditions": [{"feature": "churn_probability", "op": ">=", "enter": 0.6, "exit": 0.5}],
            "offer_bearing": True,
            "priority": 20,
            "consent": ["personalization"],
            "channels": ["email"],
        },
        {"name": "risk_flappy", "conditions": [{"feature": "churn_probability", "op": ">=", "value": 0.6}]},
        {
            "name": "intent",
            "conditions": [{"feature": "intent_probability", "op": ">=", "enter": 0.5, "exit": 0.4}],
            "offer_bearing": True,
            "priority": 10,
            "suppress_on": [{"event": "purchase", "days": 14}],
        },
        {
            "name": "top",
            "conditions": [{"percentile": "predicted_value", "op": ">=", "enter": 0.8, "exit": 0.7}],
        },
    ],
}


def _frame(**cols: object) -> pd.DataFrame:
    n = len(next(iter(cols.values())))  # type: ignore[arg-type]
    base = {
        "customer_id": [f"c{i}" for i in range(n)],
        "churn_probability": 0.1,
        "intent_probability": 0.1,
        "predicted_value": 1.0,
        "days_since_first_seen": 100.0,
        "days_since_last_purchase": np.nan,
        **{c: True for c in COLUMNS.values()},
    }
    return pd.DataFrame({**base, **cols})


def _run(defs, frames: list[pd.DataFrame], thresholds: Thresholds | None = None):
    prev, events = None, []
    for i, f in enumerate(frames):
        th = thresholds or freeze(defs, f)
        r = evaluate(defs, f, prev, th, at=T0 + timedelta(days=i), build_id=f"b{i}")
        prev = r.membership
        events.append(r.events)
    return prev, pd.concat(events, ignore_index=True), r


def test_hysteresis_stops_flapping() -> None:
    defs = parse(DOC)
    rng = np.random.default_rng(3)
    frames = [_frame(churn_probability=rng.uniform(0.55, 0.65, 500)) for _ in range(30)]
    _, events, _ = _run(defs, frames)
    held = events[events["segment"] == "risk"]
    assert (held["kind"] == "exit").sum() == 0  # 0.55 never falls below the 0.5 exit threshold
    assert held.groupby("customer_id").size().max() == 1  # each enters once, then stays
    flappy = events[events["segment"] == "risk_flappy"]
    assert (flappy["kind"] == "exit").sum() > 1000  # the same scores without hysteresis flap constantly
    # and it does leave below the exit threshold, with the reason
    out = evaluate(
        defs,
        _frame(churn_probability=[0.49]),
        held.iloc[[0]].assign(customer_id="c0", entered_at=T0)[["customer_id", "segment", "entered_at"]],
        Thresholds(),
        at=T0,
        build_id="x",
    ).events
    exit_ = out[(out["segment"] == "risk") & (out["kind"] == "exit")]
    assert exit_["reason"].tolist() == ["condition: no longer churn_probability >= 0.5"]


def test_percentile_thresholds_are_frozen_per_build() -> None:
    defs = parse(DOC)
    build = _frame(predicted_value=np.arange(1.0, 101.0))
    th = freeze(defs, build)
    assert th.values["top/conditions/0"] == pytest.approx(
        (np.quantile(build["predicted_value"], 0.8), np.quantile(build["predicted_value"], 0.7))
    )
    assert Thresholds.from_json(th.to_json()) == th
    first = evaluate(defs, build, None, th, at=T0, build_id="b1")
    assert first.stats.set_index("segment").loc["top", "size"] == 20
    # a live rescore of one customer uses the frozen value, not a percentile of the one-row frame
    one = _frame(predicted_value=[50.0])
    assert not evaluate(defs, one, None, th, at=T0, build_id="live").membership["segment"].eq("top").any()
    # everybody's value doubling between builds does not move anyone until the next build refreezes
    doubled = build.assign(predicted_value=build["predicted_value"] * 2)
    again = evaluate(defs, doubled, first.membership, th, at=T0, build_id="live")
    assert again.stats.set_index("segment").loc["top", "size"] > 20
    rebuilt = evaluate(defs, doubled, again.membership, freeze(defs, doubled), at=T0, build_id="b2")
    assert rebuilt.stats.set_index("segment").loc["top", "size"] == 30  # p70 exit for members: hysteresis
    with pytest.raises(ContractError, match="thresholds"):
        from segments.thresholds import absolute

        absolute(defs.segment("top"), "conditions", 0, defs.segment("top").conditions[0], Thresholds())
    skipped = evaluate(defs, build, None, Thresholds(), at=T0, build_id="live").skipped
    assert "top" in skipped and "no frozen percentile" in skipped["top"]


def test_one_offer_bearing_segment_per_customer_by_priority() -> None:
    defs = parse(DOC)
    # c0 qualifies for intent only, then for both: it moves to risk (priority 20) and leaves intent
    before = _frame(intent_probability=[0.9, 0.9], churn_probability=[0.1, 0.7])
    after = _frame(intent_probability=[0.9, 0.9], churn_probability=[0.7, 0.7])
    member, events, r = _run(defs, [before, after], Thresholds())
    offers = member[member["segment"].isin(["risk", "intent"])]
    assert offers.groupby("customer_id").size().max() == 1
    assert set(offers["segment"]) == {"risk"}
    moved = events[(events["customer_id"] == "c0") & (events["kind"] == "exit")]
    assert moved[["segment", "reason"]].values.tolist() == [["intent", "superseded by risk"]]
    assert r.stats.set_index("segment").loc["intent", "superseded"] == 2


def test_suppression_removes_at_once_after_a_purchase() -> None:
    defs = parse(DOC)
    browsing = _frame(intent_probability=[0.8])
    bought = _frame(intent_probability=[0.8], days_since_last_purchase=[0.0])
    member, events, r = _run(defs, [browsing, bought], Thresholds())
    assert "intent" not in set(member["segment"])
    last = events[events["kind"] == "exit"]
    assert last[["segment", "reason"]].values.tolist() == [["intent", "suppressed: purchase within 14 days"]]
    assert r.stats.set_index("segment").loc["intent", "suppressed"] == 1
    # after 14 days without a purchase the customer may come back
    later = _frame(intent_probability=[0.8], days_since_last_purchase=[15.0])
    assert "intent" in set(_run(defs, [bought, later], Thresholds())[0]["segment"])


def test_consent_exclusions_are_counted_and_withdrawal_exits() -> None:
    defs = parse(DOC)
    n = 10
    granted = _frame(churn_probability=np.full(n, 0.9))
    withdrawn = granted.assign(consent_personalization=[False] * 3 + [True] * 7)
    withdrawn["consent_marketing"] = [True] * 5 + [False] * 5
    _, events, r = _run(defs, [granted, withdrawn], Thresholds())
    stats = r.stats.set_index("segment").loc["risk"]
    assert stats["size"] == 7 and stats["excluded_personalization"] == 3
    assert stats["unreachable_marketing"] == 5  # members the email channel cannot use
    gone = events[(events["segment"] == "risk") & (events["kind"] == "exit")]
    assert set(gone["reason"]) == {"consent: no personalization consent"} and len(gone) == 3
    assert not gone["consent_personalization"].any()  # events carry the consent they were decided with


def test_segments_needing_a_missing_score_are_skipped_and_keep_members() -> None:
    defs = parse(DOC)
    first = _frame(intent_probability=[0.9, 0.1])
    r1 = evaluate(defs, first, None, Thresholds(), at=T0, build_id="b1")
    no_intent = first.drop(columns=["intent_probability"])
    r2 = evaluate(defs, no_intent, r1.membership, Thresholds(), at=T0, build_id="b2", complete=True)
    assert "intent" in r2.skipped and "intent_probability" in r2.skipped["intent"]
    kept = r2.membership[r2.membership["segment"] == "intent"]
    assert kept["customer_id"].tolist() == ["c0"] and not (r2.events["segment"] == "intent").any()


def test_lifecycle_stages_and_vanished_customers() -> None:
    defs = parse(DOC)
    young = _frame(days_since_first_seen=[5.0, 5.0])
    r1 = evaluate(defs, young, None, Thresholds(), at=T0, build_id="b1")
    assert set(r1.membership["segment"]) == {"lifecycle_new"}
    older = _frame(days_since_first_seen=[40.0])  # c1 was merged away
    r2 = evaluate(defs, older, r1.membership, Thresholds(), at=T0, build_id="b2", complete=True)
    ex = r2.events[r2.events["kind"] == "exit"].set_index("customer_id")["reason"]
    assert ex["c0"] == "lifecycle: stage is now active"
    assert ex["c1"].startswith("customer: no longer known")
    with pytest.raises(ContractError, match="consent columns"):
        evaluate(defs, older.drop(columns=[COLUMNS["marketing"]]), None, Thresholds(), at=T0, build_id="x")
    with pytest.raises(ContractError, match="customer_id"):
        evaluate(defs, pd.concat([older, older]), None, Thresholds(), at=T0, build_id="x")


def test_default_definitions_over_a_generated_population() -> None:
    defs = load()
    frame = customers(20_000, seed=4)
    r = evaluate(defs, frame, None, freeze(defs, frame), at=T0, build_id="b1")
    m = r.membership
    offers = m[m["segment"].isin([s.name for s in defs.segments if s.offer_bearing])]
    assert offers.groupby("customer_id").size().max() == 1
    stages = m[m["segment"].str.startswith("lifecycle_")]
    assert stages["customer_id"].is_unique and len(stages) == len(frame)  # one stage each
    sizes = r.stats.set_index("segment")["size"]
    assert (sizes[[s.name for s in defs.segments]] > 0).all()
    assert (r.events["kind"] == "entry").sum() == len(m)
