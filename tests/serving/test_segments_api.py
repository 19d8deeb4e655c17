"""Segments over the REAL server: the pull API pages members, and an event moves a customer in or out of a
segment at once, delivered to a real webhook receiver (signed), honouring consent.

A copy of the session's walking-skeleton workspace, its own segment definitions (built from features only, so
the test needs no intent/value models), a destinations file pointing at a local receiver, and its own server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from contract import Settings, Workspace
from tests.chain import Chain, copy_chain, start_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SECRET = "test-secret-0123456789abcdef"
SEGMENTS = """
lifecycle:
  - name: active
    description: Everyone.
segments:
  - name: browsers_no_purchase
    description: Viewed products this week and no purchase in 14 days.
    conditions:
      - {feature: product_views_7d, op: ">=", value: 1}
    consent: [personalization]
    channels: [email]
    suppress_on:
      - {event: purchase, days: 14}
  - name: engaged
    description: At least one event in the last 30 days.
    conditions:
      - {feature: events_30d, op: ">=", value: 1}
    channels: [email]
"""


@dataclass
class Env:
    settings: Settings
    url: str
    receiver: object


@pytest.fixture(scope="module")
def env(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from activation.receiver import WebhookReceiver
    from segments.build import build_segments
    from serving import server

    root = tmp_path_factory.mktemp("segments")
    (root / "segments.yaml").write_text(SEGMENTS)
    receiver = WebhookReceiver(SECRET).start()
    (root / "destinations.yaml").write_text(
        f"destinations:\n  - name: crm\n    url: {receiver.url}\n    secret: {SECRET}\n    segments: '*'\n"
    )
    settings = copy_chain(
        chain, root, segments_file=root / "segments.yaml", destinations_file=root / "destinations.yaml"
    )
    build_segments(settings, Workspace(settings.workspace))
    env = {
        "CXI_SEGMENTS_FILE": str(settings.segments_file),
        "CXI_DESTINATIONS_FILE": str(settings.destinations_file),
    }
    try:
        proc, url = start_server(settings, root / "server.log", env)
    except BaseException:
        receiver.stop()
        raise
    try:
        yield Env(settings, url, receiver)
    finally:
        server.stop(proc)
        receiver.stop()


def _post(url: str, events: list[dict]) -> None:
    r = httpx.post(f"{url}/v1/events", json=events, params={"wait": "settled"}, timeout=60)
    assert r.status_code == 200, r.text
    assert not r.json()["rejected"], r.json()


def _event(kind: str, **fields: object) -> dict:
    return {
        "event_id": f"s-{uuid.uuid4().hex}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "type": kind,
        "channel": "web",
        **fields,
    }


def _wait_for(receiver, predicate, timeout: float = 15.0) -> list[dict]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [e for e in list(receiver.events) if predicate(e)]
        if got:
            return got
        time.sleep(0.05)
    return []


def test_segments_list_and_members_page_without_duplicates_or_gaps(env: Env) -> None:
    listed = httpx.get(f"{env.url}/v1/segments", timeout=30).json()
    sizes = {s["name"]: s["size"] for s in listed["segments"]}
    assert {"browsers_no_purchase", "engaged", "lifecycle_active"} <= set(sizes)
    assert sizes["engaged"] > 10
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{env.url}/v1/segments/engaged/members", params=params, timeout=30).json()
        seen += [r["customer_id"] for r in page["rows"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)), "no duplicates across pages"
    now = httpx.get(f"{env.url}/v1/segments", timeout=30).json()
    assert len(seen) == {s["name"]: s["size"] for s in now["segments"]}["engaged"], "no gaps"
    missing = httpx.get(f"{env.url}/v1/segments/nope/members", timeout=30)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    assert httpx.get(f"{env.url}/v1/segments/engaged/members?limit=0", timeout=30).status_code == 422


def test_entry_then_purchase_suppression_reach_the_receiver_signed(env: Env) -> None:
    """A consenting visitor browses (enters), then buys: the exit reaches the webhook within one event."""
    anon = f"seg-anon-{uuid.uuid4().hex[:8]}"
    consent = {"marketing": True, "personalization": True}
    _post(env.url, [_event("consent_update", anonymous_id=anon, properties={"consent": consent})])
    _post(env.url, [_event("product_view", anonymous_id=anon, properties={"category": "bags"})])
    customer = httpx.post(f"{env.url}/v1/scores/churn", json={"anonymous_id": anon}, timeout=30).json()[
        "customer_id"
    ]
    entered = _wait_for(
        env.receiver,
        lambda e: (
            e.get("customer_id") == customer
            and e["segment"] == "browsers_no_purchase"
            and e["kind"] == "entry"
        ),
    )
    assert entered, "the entry should be delivered"
    t0 = time.perf_counter()
    _post(
        env.url,
        [
            _event(
                "purchase", anonymous_id=anon, properties={"order_id": uuid.uuid4().hex[:8], "revenue": 20.0}
            )
        ],
    )
    exited = _wait_for(
        env.receiver,
        lambda e: (
            e.get("customer_id") == customer
            and e["segment"] == "browsers_no_purchase"
            and e["kind"] == "exit"
        ),
    )
    assert exited, "the purchase must remove the customer from the segment and reach the receiver"
    assert "purchase" in exited[0]["reason"]
    assert time.perf_counter() - t0 < 15
    assert all(r.signature_ok for r in env.receiver.requests if r.status == 200)


def test_no_marketing_consent_never_reaches_the_webhook(env: Env) -> None:
    anon = f"seg-anon-{uuid.uuid4().hex[:8]}"
    _post(
        env.url,
        [
            _event("consent_update", anonymous_id=anon, properties={"consent": {"marketing": False}}),
            _event("product_view", anonymous_id=anon, properties={"category": "shoes"}),
        ],
    )
    customer = httpx.post(f"{env.url}/v1/scores/churn", json={"anonymous_id": anon}, timeout=30).json()[
        "customer_id"
    ]
    changes = httpx.get(
        f"{env.url}/v1/segments/engaged/members", params={"since": "0", "limit": 10000}, timeout=30
    ).json()["rows"]
    assert any(r["customer_id"] == customer for r in changes), "the customer is in the segment (pull API)"
    time.sleep(1.5)
    assert not [e for e in list(env.receiver.events) if e.get("customer_id") == customer]
