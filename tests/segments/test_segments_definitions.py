"""Segment definitions: the shipped defaults load, and bad files fail naming the segment and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.errors import ContractError, NotFoundError
from segments.definitions import CHANNEL_PURPOSE, load, parse


def _one(**segment: object) -> dict:
    return {"segments": [{"name": "s", **segment}]}


def test_defaults_ship_the_issue_segments_and_lifecycle() -> None:
    defs = load()
    names = {s.name for s in defs.all_segments}
    assert {
        "at_risk_high_value",
        "high_intent_no_purchase_14d",
        "first_time_buyer_repeat_intent",
        "lapsed_win_back",
    } <= names
    assert [s.name for s in defs.lifecycle] == ["new", "won_back", "lapsed", "at_risk", "active"]
    assert {f"lifecycle_{s}" for s in ("new", "active", "at_risk", "lapsed", "won_back")} <= names
    risk = defs.segment("at_risk_high_value")
    assert risk.conditions[0].thresholds == (0.6, 0.5) and risk.conditions[1].percentile == "predicted_value"
    assert risk.purposes == [CHANNEL_PURPOSE["email"], CHANNEL_PURPOSE["web"]]
    intent = defs.segment("high_intent_no_purchase_14d")
    assert [(s.event, s.days) for s in intent.suppress_on] == [("purchase", 14)]
    offers = [s for s in defs.segments if s.offer_bearing]
    assert len({s.priority for s in offers}) == len(offers)
    with pytest.raises(NotFoundError, match="'nope' is not defined"):
        defs.segment("nope")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            _one(conditions=[{"feature": "churn_prob", "op": ">=", "value": 0.6}]),
            r"segments\[s\]\.conditions\[0\]: unknown column 'churn_prob' \(did you mean 'churn_probability'",
        ),
        (
            _one(conditions=[{"feature": "churn_probability", "op": ">=", "enter": 0.5, "exit": 0.6}]),
            r"segments\[s\]\.conditions\[0\]: exit 0.6 must not be above enter 0.5",
        ),
        (
            _one(conditions=[{"feature": "days_since_last_event", "op": "<=", "enter": 10, "exit": 5}]),
            r"exit 5.0 must not be below enter 10.0",
        ),
        (
            _one(conditions=[{"percentile": "predicted_value", "op": ">=", "value": 80}]),
            r"percentile thresholds must lie in \[0, 1\]",
        ),
        (
            _one(conditions=[{"feature": "churn_probability", "op": "~", "value": 1}]),
            r"segments\[s\]\.conditions\[0\]\.op: Input should be",
        ),
        (
            _one(
                conditions=[{"feature": "churn_probability", "percentile": "churn_probability", "op": ">="}]
            ),
            r"give exactly one of feature or percentile",
        ),
        (
            _one(conditions=[{"feature": "churn_probability", "op": "is_null", "value": 1}]),
            r"op is_null takes no value",
        ),
        (_one(consent=["telepathy"]), r"segments\[s\]\.consent\[0\]: Input should be"),
        (_one(channels=["fax"]), r"segments\[s\]\.channels\[0\]"),
        (_one(lifecycle=["zombie"]), r"segments\[s\]\.lifecycle: unknown stages \['zombie'\]"),
        (_one(colour="red"), r"segments\[s\]\.colour: Extra inputs are not permitted"),
        (_one(suppress_on=["refund"]), r"segments\[s\]\.suppress_on\[0\]\.event"),
        (
            {
                "segments": [
                    {"name": "a", "offer_bearing": True, "priority": 1},
                    {"name": "b", "offer_bearing": True, "priority": 1},
                ]
            },
            r"segments\[b\]\.priority: 1 is also a's",
        ),
        ({"segments": [{"name": "a"}, {"name": "a"}]}, r"duplicate names \['a'\]"),
        (_one(name="lifecycle_x"), r"prefix 'lifecycle_' is reserved"),
        (_one(name="Bad Name"), r"segments\[Bad Name\]\.name: String should match pattern"),
    ],
)
def test_errors_name_the_segment_and_field(doc: dict, message: str) -> None:
    with pytest.raises(ContractError, match=r"^my\.yaml: "):
        parse(doc, "my.yaml")
    with pytest.raises(ContractError, match=message):
        parse(doc, "my.yaml")


def test_load_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="segments_file: cannot read"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("segments: [\n")
    with pytest.raises(ContractError, match="segments_file: not valid YAML"):
        load(bad)
    bad.write_text("segments:\n  - name: x\n    suppress_on: [purchase]\n")
    assert load(bad).segments[0].suppress_on[0].days == 14  # the short form
