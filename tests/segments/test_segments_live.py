"""Live re-evaluation of touched customers: a purchase suppresses within one event, consent withdrawals and
merges (most restrictive wins) exit at once, and every change is a persisted membership event with a seq."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from segments_workspace import consent_event

from contract import Settings, Workspace
from segments.build import build_from_frame
from segments.consent import COLUMNS
from segments.definitions import parse
from segments.live import LiveSegments
from segments.store import SegmentStore

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DEFS = parse(
    {
        "segments": [
            {
                "name": "intent",
                "conditions": [{"feature": "intent_probability", "op": ">=", "enter": 0.5, "exit": 0.4}],
                "offer_bearing": True,
                "priority": 1,
                "consent": ["personalization"],
                "suppress_on": [{"event": "purchase", "days": 14}],
            },
            {"name": "top", "conditions": [{"percentile": "predicted_value", "op": ">=", "value": 0.5}]},
        ]
    }
)


VALUES = {"c0": 1.0, "c1": 2.0, "c2": 3.0, "c3": 4.0}  # predicted value of the build's customers


def _frame(ids: list[str], **cols: object) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "intent_probability": 0.9,
            "predicted_value": [VALUES.get(c, 0.0) for c in ids],
            "days_since_last_purchase": np.nan,
            **cols,
        }
    )


def _built(settings: Settings, ws: Workspace) -> LiveSegments:
    frame = _frame(["c0", "c1", "c2", "c3"])
    frame = frame.assign(**{c: True for c in COLUMNS.values()})
    build_from_frame(ws, DEFS, frame, as_of=T0, now=T0)
    return LiveSegments(settings, ws, defs=DEFS)


def test_a_purchase_suppresses_within_one_event(settings: Settings, ws: Workspace) -> None:
    live = _built(settings, ws)
    assert live.members_of("c0") == ["intent"]
    build = SegmentStore(ws).latest_build()
    out = live.evaluate(_frame(["c0"], days_since_last_purchase=[0.0]), at=T0 + timedelta(minutes=1))
    assert out[["customer_id", "segment", "kind", "reason"]].values.tolist() == [
        ["c0", "intent", "exit", "suppressed: purchase within 14 days"]
    ]
    assert out["seq"].tolist() == [build.last_seq + 1] and out["build_id"].iloc[0] == f"live:{build.build_id}"
    assert live.members_of("c0") == []
    store = SegmentStore(ws)
    assert "c0" not in set(store.members("intent").rows["customer_id"])  # the pull API sees it at once
    assert store.changes("intent", since=build.last_seq).rows["customer_id"].tolist() == ["c0"]
    # the frozen percentile of the build applies live: 2.5 is the build's median of 1..4
    top = live.evaluate(_frame(["c9"], predicted_value=[2.6]), at=T0 + timedelta(minutes=2))
    assert set(top["segment"]) == {"intent", "top"}
    assert live.evaluate(_frame(["c9"], predicted_value=[2.6]), at=T0).empty  # nothing changed: no events


def test_consent_withdrawal_and_merges_exit_at_once(settings: Settings, ws: Workspace) -> None:
    live = _built(settings, ws)
    # c3 withdraws personalization in a live consent_update event
    ev = pd.DataFrame([consent_event("k1", "2024-03-01T10:00:00Z", {"personalization": False}, user_id="u3")])
    assert live.observe(ev, ["c3"]) == ["c3"]
    assert not live.consent(["c3"]).iloc[0]["consent_personalization"]
    assert live.consenting(["c3", "c2", "c3"], "personalization") == {"c2"}
    assert live.consenting(["c2"], "marketing") == set()  # not granted unless given (the default)
    out = live.evaluate(_frame(["c3"]), at=T0 + timedelta(minutes=5))
    assert out[["segment", "kind", "reason"]].values.tolist() == [
        ["intent", "exit", "consent: no personalization consent"]
    ]
    assert live.members_of("c3") == ["top"]
    # c2 (consenting) absorbs c3 (refusing): c3 leaves everything, c2 inherits the refusal
    exits = live.relabel({"c3": "c2"}, at=T0 + timedelta(minutes=6))
    assert exits[["customer_id", "segment", "reason"]].values.tolist() == [
        ["c3", "top", "customer: merged into c2"]
    ]
    assert live.members_of("c3") == []
    merged = live.evaluate(_frame(["c2"]), at=T0 + timedelta(minutes=6))
    assert merged[["customer_id", "segment", "kind"]].values.tolist() == [["c2", "intent", "exit"]]
    assert SegmentStore(ws).sizes() == {"intent": 2, "top": 1}  # c0, c1 in intent; c2 in top
    seqs = SegmentStore(ws).changes(since=0, limit=10_000).rows["seq"]
    assert seqs.tolist() == list(range(1, len(seqs) + 1))  # gap-free across build and live appends
