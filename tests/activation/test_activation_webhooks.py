"""Signed webhook delivery against a real local HTTP receiver: signatures, retries, dead letters, outages,
idempotency, a down destination never blocking enqueue, and consent refusals."""

from __future__ import annotations

import json
import statistics
import time

import pandas as pd
import pytest
from activation_testdata import SECRET, membership_events

from activation.outbox import idempotency_key, normalise_event
from activation.receiver import WebhookReceiver
from activation.runtime import Activation
from activation.webhooks import KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature


def expected_keys(dest: str, events: list[dict]) -> list[str]:
    return [idempotency_key(dest, normalise_event(e)) for e in events]


def test_signed_webhooks_verify_and_a_tampered_body_fails(
    receiver, destination, outbox, deliverer_for
) -> None:
    d = destination()
    events = membership_events(3)
    assert outbox.enqueue(events, [d]) == 3
    assert deliverer_for(d).flush(10)
    assert receiver.keys() == expected_keys("crm", events)
    req = receiver.requests[0]
    assert req.signature_ok and req.status == 200
    assert req.headers[SIGNATURE_HEADER] == sign(SECRET, req.body)
    assert req.headers[KEY_HEADER] == json.loads(req.body)["events"][0]["idempotency_key"]
    assert abs(int(req.headers[TIMESTAMP_HEADER]) - time.time()) < 60
    sent = json.loads(req.body)["events"][0]
    assert {
        "customer_id": "c0",
        "segment": "at_risk_high_value",
        "kind": "entry",
        "build_id": "b1",
    }.items() <= (sent.items())
    # a receiver rejects a tampered body, a wrong secret or a missing/odd header
    tampered = req.body.replace(b'"entry"', b'"exit"')
    assert tampered != req.body
    assert verify_signature(SECRET, req.body, req.headers[SIGNATURE_HEADER])
    assert not verify_signature(SECRET, tampered, req.headers[SIGNATURE_HEADER])
    assert not verify_signature("another-secret-0123456789", req.body, req.headers[SIGNATURE_HEADER])
    assert not verify_signature(SECRET, req.body, None)
    assert not verify_signature(SECRET, req.body, req.headers[SIGNATURE_HEADER].removeprefix("sha256="))


def test_a_wrong_secret_is_refused_by_the_receiver_and_dead_lettered(
    receiver, destination, outbox, deliverer_for
):
    d = destination(secret="not-the-receivers-secret-xx")
    outbox.enqueue(membership_events(1), [d])
    assert deliverer_for(d).flush(10)
    [row] = outbox.deliveries()
    assert row.state == "dead" and row.attempts == 1 and "HTTP 401" in (row.last_error or "")
    assert receiver.keys() == []


def test_retries_on_5xx_with_exponential_backoff(receiver, destination, outbox, deliverer_for) -> None:
    d = destination(backoff_base_s=0.1, backoff_max_s=1.0, max_attempts=5)
    receiver.fail_next(3, 503)
    outbox.enqueue(membership_events(1), [d])
    assert deliverer_for(d).flush(20)
    [row] = outbox.deliveries()
    assert row.state == "delivered" and row.attempts == 4
    assert [r.status for r in receiver.requests] == [503, 503, 503, 200]
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    # jittered in [d/2, d] with d = 0.1, 0.2, 0.4: each wait at least half its step, and they grow
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
    assert gaps[2] > gaps[0]
    assert len(receiver.keys()) == 1


def test_retry_after_is_honoured_and_408_429_are_retried(
    receiver, destination, outbox, deliverer_for
) -> None:
    d = destination(backoff_base_s=0.01, backoff_max_s=0.02)
    receiver.fail_next(1, 429, {"Retry-After": "0.5"})
    receiver.fail_next(1, 408)
    outbox.enqueue(membership_events(1), [d])
    assert deliverer_for(d).flush(20)
    assert [r.status for r in receiver.requests] == [429, 408, 200]
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.45
    assert outbox.deliveries()[0].state == "delivered"


@pytest.mark.parametrize("status", [400, 404, 410, 422])
def test_other_4xx_are_permanent(receiver, destination, outbox, deliverer_for, status: int) -> None:
    d = destination()
    receiver.fail_next(1, status)
    outbox.enqueue(membership_events(1), [d])
    assert deliverer_for(d).flush(10)
    [row] = outbox.deliveries()
    assert row.state == "dead" and row.attempts == 1 and f"HTTP {status}" in (row.last_error or "")
    assert len(receiver.requests) == 1


def test_dead_letters_after_max_attempts_then_drained(receiver, destination, outbox, deliverer_for) -> None:
    d = destination(max_attempts=3)
    events = membership_events(4)
    receiver.stop()  # down entirely: connections refused
    outbox.enqueue(events, [d])
    deliverer = deliverer_for(d)
    assert deliverer.flush(20)
    rows = outbox.deliveries()
    assert {r.state for r in rows} == {"dead"} and {r.attempts for r in rows} == {3}
    assert all("gave up after 3 attempts" in (r.last_error or "") for r in rows)
    assert outbox.counts()["crm"]["dead"] == 4
    receiver.start()  # back, on the same port
    assert deliverer.drain_dead() == 4
    assert {r.state for r in outbox.deliveries()} == {"delivered"}
    assert receiver.keys() == expected_keys("crm", events)
    assert deliverer.drain_dead() == 0


def test_no_delivery_lost_or_duplicated_across_an_outage(
    receiver, destination, outbox, deliverer_for
) -> None:
    """Background deliverer; the receiver fails with 5xx, answers after the sender's timeout (so it sees a
    retry of something it already processed) and is down for a while, while events keep coming."""
    d = destination(timeout_s=0.3, max_attempts=50, backoff_base_s=0.02, backoff_max_s=0.2, batch_size=5)
    activation = Activation(outbox, [d], lambda ids, purpose: set(ids), poll_s=0.05, seed=3)
    events = membership_events(120)
    with activation:
        for i, chunk_start in enumerate(range(0, 120, 10)):
            if i == 2:
                receiver.fail_next(4, 503)
            if i == 4:
                receiver.delay_next(2, 0.6)  # processed, but answered after the 0.3 s timeout
            if i == 6:
                receiver.stop()
            if i == 9:
                receiver.start()
            activation.enqueue(events[chunk_start : chunk_start + 10])
            time.sleep(0.1)
        assert activation.deliverer.flush(30)
    want = expected_keys("crm", events)
    got = receiver.keys()
    assert len(got) == len(set(got))  # each key processed (acknowledged) exactly once
    assert set(got) == set(want)  # none lost
    assert got == want  # and in enqueue order: an exit never overtakes its entry
    assert receiver.duplicates >= 1  # it did see retries of keys it already had, and deduplicated them
    assert {r.state for r in outbox.deliveries()} == {"delivered"}
    assert activation.deliverer.stats.retried > 0


def test_enqueueing_the_same_event_twice_delivers_once(receiver, destination, outbox, deliverer_for) -> None:
    d = destination(batch_size=50)
    events = membership_events(10)
    assert outbox.enqueue(events, [d]) == 10
    assert outbox.enqueue(pd.DataFrame(events), [d]) == 0  # same events, another form
    assert outbox.enqueue(events[:3] + membership_events(2, start=10), [d]) == 2
    assert deliverer_for(d).flush(10)
    assert outbox.enqueue(events, [d]) == 0  # still none after delivery
    assert deliverer_for(d).flush(10)
    assert sorted(receiver.keys()) == sorted(expected_keys("crm", events + membership_events(2, start=10)))
    assert receiver.duplicates == 0


def test_a_down_destination_does_not_block_enqueue(receiver, destination, outbox) -> None:
    """Receiver hanging (answers after 2 s, past the 1 s timeout) and then down: enqueue latency stays small."""
    d = destination(timeout_s=1.0, max_attempts=100, backoff_base_s=0.05, backoff_max_s=0.2)
    receiver.delay_next(100, 2.0)
    with Activation(outbox, [d], lambda ids, purpose: set(ids), poll_s=0.05) as activation:
        latencies = []
        for i, e in enumerate(membership_events(200)):
            if i == 100:
                receiver.stop()
            t0 = time.perf_counter()
            activation.enqueue([e])
            latencies.append(time.perf_counter() - t0)
        assert activation.deliverer.pending() >= 195  # nothing got through, and nothing waited for it
    assert statistics.median(latencies) < 0.05, statistics.median(latencies)
    assert max(latencies) < 0.5, max(latencies)


def test_customers_without_consent_are_never_sent(
    receiver, destination, outbox, deliverer_for, consent
) -> None:
    crm = destination()
    ads = destination(name="ads", ads=True)
    events = membership_events(4)
    consent.refused = {"c1"}
    outbox.enqueue(events, [crm, ads])
    consent.refused = {"c1", "c2"}  # c2 withdrew consent after the event was queued: honoured too
    assert deliverer_for(crm, ads).flush(10)
    sent = {
        (json.loads(r.body)["destination"], e["customer_id"])
        for r in receiver.requests
        for e in json.loads(r.body)["events"]
    }
    assert sent == {("crm", "c0"), ("crm", "c3"), ("ads", "c0"), ("ads", "c3")}
    suppressed = outbox.deliveries(state="suppressed")
    assert sorted((r.destination, r.customer_id) for r in suppressed) == [
        ("ads", "c1"),
        ("ads", "c2"),
        ("crm", "c1"),
        ("crm", "c2"),
    ]
    reasons = {r.destination: r.last_error for r in suppressed}
    assert reasons == {"crm": "no marketing consent", "ads": "no advertising consent"}
    assert {p for _, p in consent.calls} == {"marketing", "advertising"}


def test_exits_without_consent_only_where_the_destination_asks(
    receiver, destination, outbox, deliverer_for, consent
):
    """A customer who withdrew consent: by default nothing at all; opted in, the exit (a removal) goes out."""
    entry, exit_ = [membership_events(1)[0], membership_events(1)[0] | {"kind": "exit"}]
    strict, removal = destination(), destination(name="ads", ads=True, exits_without_consent=True)
    consent.refused = {"c0"}
    outbox.enqueue([entry, exit_], [strict, removal])
    assert deliverer_for(strict, removal).flush(10)
    sent = [
        (json.loads(r.body)["destination"], e["kind"])
        for r in receiver.requests
        for e in json.loads(r.body)["events"]
    ]
    assert sent == [("ads", "exit")]
    assert outbox.counts()["crm"]["suppressed"] == 2 and outbox.counts()["ads"]["suppressed"] == 1


def test_destinations_receive_only_their_segments(receiver, destination, outbox, deliverer_for) -> None:
    d = destination(segments=["lapsed_win_back"], batch_size=10)
    events = membership_events(3) + membership_events(2, segment="lapsed_win_back", start=3)
    assert outbox.enqueue(events, [d]) == 2
    assert deliverer_for(d).flush(10)
    assert {e["segment"] for e in receiver.events} == {"lapsed_win_back"}
    assert len(receiver.requests) == 1  # batched: one POST with both events


def test_ping_is_signed(receiver: WebhookReceiver, destination) -> None:
    from activation.webhooks import ping

    outcome, ms = ping(destination())
    assert outcome.result == "delivered" and ms > 0
    req = receiver.requests[-1]
    assert req.signature_ok and json.loads(req.body)["type"] == "ping"


def test_a_disabled_destination_holds_its_queue(receiver, destination, outbox, deliverer_for) -> None:
    outbox.enqueue(membership_events(2), [destination()])
    deliverer = deliverer_for(destination(enabled=False))
    assert deliverer.flush(1) and deliverer.run_once() == 0
    assert receiver.requests == [] and outbox.counts()["crm"]["pending"] == 2
    assert deliverer_for(destination()).flush(10)  # enabled again: delivered
    assert len(receiver.keys()) == 2


def test_a_failing_consent_check_sends_nothing_and_retries(receiver, destination, outbox, deliverer_for):
    calls = []

    def flaky(ids, purpose):
        calls.append(ids)
        if len(calls) == 1:
            raise RuntimeError("consent store unavailable")
        return set(ids)

    d = destination()
    outbox.enqueue(membership_events(1), [d])
    deliverer = deliverer_for(d)
    deliverer.consent = flaky
    assert deliverer.flush(10)
    assert len(calls) == 2 and len(receiver.requests) == 1
    assert outbox.deliveries()[0].attempts == 2


def test_activation_from_settings(tmp_path, receiver, consent) -> None:
    from contract import Settings

    settings = Settings(workspace=tmp_path / "ws", delivery_concurrency=2)
    settings.workspace.mkdir(parents=True)
    (settings.workspace / "destinations.yaml").write_text(
        f"destinations:\n  - {{name: crm, url: '{receiver.url}', secret: '{SECRET}', segments: [lapsed_win_back]}}\n"
    )
    with Activation.from_settings(settings, consent, poll_s=0.05) as activation:
        assert activation.deliverer.concurrency == 2
        assert activation.enqueue(membership_events(2, segment="lapsed_win_back") + membership_events(1)) == 2
        assert activation.deliverer.flush(10)
    assert len(receiver.keys()) == 2
