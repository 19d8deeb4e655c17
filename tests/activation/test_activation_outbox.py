"""The outbox: idempotency keys, input forms, validation, FIFO per destination, leases, dead letters."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest
from activation_testdata import membership_events

from activation.outbox import Outbox, idempotency_key, normalise_event
from contract.errors import ContractError


@dataclasses.dataclass
class Event:
    customer_id: str
    segment: str
    kind: str
    reason: str
    at: datetime
    build_id: str


def test_the_key_is_the_same_for_every_form_of_one_event(destination, outbox: Outbox) -> None:
    d = destination()
    [e] = membership_events(1)
    at_other_zone = e["at"].astimezone(timezone(timedelta(hours=2)))
    forms = [
        [e],
        e,
        pd.DataFrame([e]),
        pa.Table.from_pylist([e]),
        [Event(**e)],
        [e | {"at": e["at"].isoformat().replace("+00:00", "Z")}],
        [e | {"at": at_other_zone}],
        [e | {"reason": "another wording of the reason", "build_id": "b2"}],
    ]
    assert outbox.enqueue(forms[0], [d]) == 1
    for f in forms[1:]:
        assert outbox.enqueue(f, [d]) == 0, f
    assert len(outbox.deliveries()) == 1


def test_keys_differ_by_destination_kind_customer_segment_and_time() -> None:
    [e] = [normalise_event(x) for x in membership_events(1)]
    base = idempotency_key("crm", e)
    others = [
        idempotency_key("ads", e),
        idempotency_key("crm", e | {"kind": "exit"}),
        idempotency_key("crm", e | {"customer_id": "c9"}),
        idempotency_key("crm", e | {"segment": "lapsed_win_back"}),
        idempotency_key("crm", e | {"at": "2026-11-01T00:00:00.000001+00:00"}),
        idempotency_key("crm", e | {"seq": 17}),
    ]
    assert len({base, *others}) == 7


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "enter"}, "membership_event.kind"),
        ({"customer_id": None}, "membership_event.customer_id"),
        ({"segment": ""}, "membership_event.segment"),
        ({"at": "yesterday"}, "membership_event.at"),
        ({"at": 12345}, "membership_event.at"),
    ],
)
def test_bad_events_are_refused_with_the_field(destination, outbox: Outbox, change: dict, field: str) -> None:
    [e] = membership_events(1)
    with pytest.raises(ContractError) as err:
        outbox.enqueue([e | change], [destination()])
    assert err.value.field == field
    assert outbox.deliveries() == []  # nothing half-written


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "enter"}, "membership_event.kind"),
        ({"customer_id": None}, "membership_event.customer_id"),
        ({"at": "yesterday"}, "membership_event.at"),
        ({"seq": 1.5}, "membership_event.seq"),
    ],
)
def test_bad_frames_are_refused_with_the_field(destination, outbox: Outbox, change: dict, field: str) -> None:
    frame = pd.DataFrame([*membership_events(2), membership_events(1, start=2)[0] | change])
    if "at" in change:
        frame["at"] = frame["at"].astype(str)
    with pytest.raises(ContractError) as err:
        outbox.enqueue(frame, [destination()])
    assert err.value.field == field
    assert outbox.deliveries() == []


def test_naive_timestamps_are_utc_and_extras_ride_along() -> None:
    [e] = membership_events(1)
    ev = normalise_event(e | {"at": datetime(2026, 11, 1), "score": 0.71})
    assert ev["at"] == "2026-11-01T00:00:00+00:00"
    assert ev["score"] == 0.71


def test_dataframe_missing_values_and_numpy_scalars() -> None:
    import numpy as np

    [e] = membership_events(1)
    frame = pd.DataFrame([e | {"reason": np.nan, "build_id": None, "rank": np.int64(3)}])
    frame["reason"] = frame["reason"].astype("string")  # pd.NA
    [rec] = frame.to_dict("records")
    ev = normalise_event(rec)
    assert ev["reason"] is None and ev["build_id"] is None
    assert ev["rank"] == 3 and type(ev["rank"]) is int


def test_segments_event_frames_are_taken_as_they_are(destination, outbox: Outbox) -> None:
    """The segments layer's frame: EVENT_COLUMNS (with consent_<purpose> flags) plus ``seq``."""
    frame = pd.DataFrame(membership_events(3))
    frame["at"] = pd.to_datetime(frame["at"], utc=True).astype("datetime64[us, UTC]")
    frame = frame.assign(seq=[7, 8, 9], consent_marketing=True, consent_advertising=False)
    assert outbox.enqueue(frame, [destination()]) == 3
    rows = outbox.deliveries()
    assert [r.payload["seq"] for r in rows] == [7, 8, 9]
    assert not any(k.startswith("consent_") for r in rows for k in r.payload)
    assert rows[0].key == idempotency_key("crm", {**normalise_event(membership_events(1)[0]), "seq": 7})
    # the same event under another seq (appended again) is another event: seq decides
    assert outbox.enqueue(frame.assign(seq=[7, 8, 10]), [destination()]) == 1


def test_frame_consent_adapter() -> None:
    from activation.consent import FrameConsent

    class Live:
        def consent(self, ids):
            return pd.DataFrame(
                {
                    "customer_id": ids,
                    "consent_marketing": [i != "c1" for i in ids],
                    "consent_advertising": False,
                }
            )

    check = FrameConsent(Live())
    assert check(["c0", "c1", "c2"], "marketing") == {"c0", "c2"}
    assert check(["c0"], "advertising") == set()


def test_a_destination_is_due_only_when_its_oldest_delivery_is(destination, outbox: Outbox) -> None:
    """FIFO per destination: while the head waits for its retry, later deliveries wait behind it."""
    d = destination(name="a")
    other = destination(name="b")
    outbox.enqueue(membership_events(3), [d, other])
    now = time.time()
    assert set(outbox.heads()) == {"a", "b"}
    [head] = outbox.claim("a", 1, lease_s=60, now=now)
    assert head.customer_id == "c0" and head.attempts == 1
    assert outbox.claim("a", 10, lease_s=60, now=now) == []  # head is leased: nothing overtakes it
    assert [x.customer_id for x in outbox.claim("b", 10, lease_s=60, now=now)] == ["c0", "c1", "c2"]
    outbox.mark_retry([head.id], now + 5, "HTTP 503")
    assert outbox.claim("a", 10, lease_s=60, now=now + 1) == []
    assert [x.customer_id for x in outbox.claim("a", 10, lease_s=60, now=now + 6)] == ["c0", "c1", "c2"]


def test_a_crashed_senders_lease_expires(destination, outbox: Outbox) -> None:
    d = destination()
    outbox.enqueue(membership_events(2), [d])
    now = time.time()
    first = outbox.claim("crm", 10, lease_s=30, now=now)
    # the sender dies here: nothing is marked; after the lease, another sender takes the same rows again
    assert outbox.claim("crm", 10, lease_s=30, now=now + 29) == []
    again = outbox.claim("crm", 10, lease_s=30, now=now + 31)
    assert [x.key for x in again] == [x.key for x in first]
    assert [x.attempts for x in again] == [2, 2]


def test_revive_dead_per_destination(destination, outbox: Outbox) -> None:
    outbox.enqueue(membership_events(2), [destination(name="a"), destination(name="b")])
    for name in ("a", "b"):
        rows = outbox.claim(name, 10, lease_s=1)
        outbox.mark_dead([r.id for r in rows], "HTTP 410: gone")
    assert outbox.counts() == {
        "a": {"pending": 0, "delivered": 0, "dead": 2, "suppressed": 0},
        "b": {"pending": 0, "delivered": 0, "dead": 2, "suppressed": 0},
    }
    con = sqlite3.connect(outbox.path)
    assert con.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 4
    assert outbox.revive_dead("a") == 2
    assert outbox.counts()["a"]["pending"] == 2 and outbox.counts()["b"]["dead"] == 2
    assert {r.attempts for r in outbox.deliveries("a")} == {0}
    con.close()


def test_the_outbox_is_a_wal_database_in_the_workspace(tmp_path, destination) -> None:
    from contract import Workspace

    ob = Outbox.for_workspace(Workspace(tmp_path / "ws"))
    assert ob.path == (tmp_path / "ws" / "activation" / "outbox.sqlite").resolve()
    ob.enqueue(membership_events(1), [destination()])
    ob.close()
    con = sqlite3.connect(ob.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    reopened = Outbox(ob.path)  # durable: a new process sees the queued delivery
    assert [r.state for r in reopened.deliveries()] == ["pending"]
    reopened.close()


def test_purge_keeps_pending_and_dead(destination, outbox: Outbox) -> None:
    outbox.enqueue(membership_events(3), [destination()])
    a, b, _ = outbox.claim("crm", 3, lease_s=1)
    outbox.mark_delivered([a.id])
    outbox.mark_dead([b.id], "HTTP 410")
    assert outbox.purge(older_than_s=3600) == 0
    assert outbox.purge(older_than_s=-1) == 1
    assert [r.state for r in outbox.deliveries()] == ["dead", "pending"]
    assert outbox.pending_counts() == {"crm": 1}


def test_no_destination_wants_it_nothing_is_stored(destination, outbox: Outbox) -> None:
    assert outbox.enqueue(membership_events(3), []) == 0
    assert outbox.enqueue(membership_events(3), [destination(segments=["other"])]) == 0
    assert outbox.enqueue(membership_events(3), [destination(enabled=False)]) == 0
    assert outbox.deliveries() == []


def test_concurrent_enqueue_from_threads(destination, outbox: Outbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    d = destination()
    events = membership_events(400)
    with ThreadPoolExecutor(4) as pool:
        added = sum(pool.map(lambda i: outbox.enqueue(events[i::4] + events[:20], [d]), range(4)))
    assert added == 400 and len(outbox.deliveries()) == 400
    assert datetime.fromisoformat(outbox.deliveries()[0].payload["at"]).tzinfo == UTC


def test_frames_and_records_give_the_same_keys_and_payloads(destination) -> None:
    """The vectorised frame path and the live row path agree on every key and payload (seeded variety)."""
    import json
    import random

    from activation.membership import _rows_of_frame, _rows_of_records

    rng = random.Random(5)
    zones = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
    events = []
    for i in range(300):
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(10**7), microseconds=rng.choice([0, rng.randrange(10**6)])
        )
        events.append(
            {
                "customer_id": f"c{rng.randrange(50)}",
                "segment": rng.choice(["a", "b", "lapsed_win_back"]),
                "kind": rng.choice(["entry", "exit"]),
                "reason": rng.choice([None, 'churn ≥ 0.6 "quoted"\nnew line', "purchase"]),
                "at": at.astimezone(rng.choice(zones)),
                "build_id": rng.choice([None, "b1"]),
                "seq": rng.choice([None, i]),
            }
        )
    dests = [destination(), destination(name="ads", segments=["a", "lapsed_win_back"])]
    frame = pd.DataFrame(events)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    by_frame = _rows_of_frame(frame, dests)
    by_rows = _rows_of_records(events, dests)
    assert len(by_frame) == len(by_rows) > 300
    assert sorted(r[:5] for r in by_frame) == sorted(r[:5] for r in by_rows)
    payloads = {r[0]: json.loads(r[5]) for r in by_rows}
    assert all(json.loads(r[5]) == payloads[r[0]] for r in by_frame)
    # ISO strings in the frame (as read back from JSON or CSV) give the same keys again
    as_text = frame.assign(at=[e["at"].isoformat() for e in events])
    assert sorted(r[0] for r in _rows_of_frame(as_text, dests)) == sorted(r[0] for r in by_rows)
