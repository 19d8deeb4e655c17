"""The real-time API over the REAL BentoML server: ingestion, idempotency, quarantine, live stitching, profiles.

Uses the session's walking-skeleton workspace and server (tests/conftest.py). Every test invents its own
cookies and event ids, so the tests do not depend on each other's events.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.chain import Chain

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _event(kind: str, *, at: datetime | None = None, **fields: object) -> dict:
    props = fields.pop("properties", {})
    return {
        "event_id": f"t-{uuid.uuid4().hex}",
        "occurred_at": (at or datetime.now(UTC)).isoformat(),
        "type": kind,
        "channel": "web",
        **fields,
        "properties": props,
    }


def _post(url: str, body: object, **params: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/events", json=body, params=params, timeout=60)


def _known_user(chain: Chain) -> tuple[str, str]:
    """(user_id, customer_id) of a resolved customer with a login id."""
    with chain.ws.connect("identity_map") as con:
        row = con.execute(
            "SELECT identifier_value, customer_id FROM identity_map WHERE identifier_type = 'user_id' "
            "ORDER BY hash(identifier_value) LIMIT 1"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_one_event_is_logged_durably_and_a_replay_adds_nothing(chain_url: str) -> None:
    event = _event("page_view", anonymous_id=f"anon-{uuid.uuid4().hex[:10]}")
    first = _post(chain_url, event)
    assert first.status_code == 200, first.text
    ack = first.json()
    assert ack["accepted"] == 1 and ack["duplicates"] == [] and ack["visible"] is True
    assert ack["last_seq"] >= 1
    again = _post(chain_url, [event])
    assert again.status_code == 200, again.text
    assert again.json()["accepted"] == 0
    assert again.json()["duplicates"] == [event["event_id"]]


def test_ndjson_body_is_accepted(chain_url: str) -> None:
    anon = f"anon-{uuid.uuid4().hex[:10]}"
    lines = "\n".join(json.dumps(_event("page_view", anonymous_id=anon)) for _ in range(3))
    r = httpx.post(
        f"{chain_url}/v1/events", content=lines, headers={"content-type": "application/x-ndjson"}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 3


def test_rejected_events_name_index_field_reason_and_are_quarantined(chain: Chain, chain_url: str) -> None:
    good = _event("page_view", anonymous_id=f"anon-{uuid.uuid4().hex[:10]}")
    bad_type = _event("teleport", anonymous_id="a1")
    no_time = _event("page_view", anonymous_id="a2")
    del no_time["occurred_at"]
    r = _post(chain_url, [good, bad_type, no_time])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1
    rejected = {x["index"]: x for x in body["rejected"]}
    assert set(rejected) == {1, 2}
    assert rejected[1]["field"] == "type" and rejected[1]["reason"]
    assert rejected[2]["field"] == "occurred_at"
    with chain.ws.connect("quarantine") as con:
        raw = [r[0] for r in con.execute("SELECT raw FROM quarantine").fetchall()]
    assert any(bad_type["event_id"] in str(x) for x in raw), "the rejected event must be kept with its reason"

    all_bad = _post(chain_url, [bad_type | {"event_id": f"t-{uuid.uuid4().hex}"}])
    assert all_bad.status_code == 422
    assert all_bad.json()["rejected"][0]["field"] == "type"


def test_malformed_body_is_422_on_the_body(chain_url: str) -> None:
    r = httpx.post(
        f"{chain_url}/v1/events", content=b"{nope", headers={"content-type": "application/json"}, timeout=30
    )
    assert r.status_code == 422
    assert r.json()["error"].startswith("body")


def test_pre_login_cart_and_views_count_right_after_login(chain: Chain, chain_url: str) -> None:
    """An anonymous visitor browses and fills a cart, then logs in: the customer's features include it at once."""
    user, customer = _known_user(chain)
    before = httpx.get(f"{chain_url}/v1/profiles/{customer}", timeout=60)
    assert before.status_code == 200, before.text
    f0 = before.json()["features"]

    anon = f"anon-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    browsing = [
        _event(
            "product_view", at=now - timedelta(minutes=5), anonymous_id=anon, properties={"category": "bags"}
        ),
        _event(
            "product_view", at=now - timedelta(minutes=4), anonymous_id=anon, properties={"category": "bags"}
        ),
        _event(
            "add_to_cart",
            at=now - timedelta(minutes=3),
            anonymous_id=anon,
            properties={"category": "bags", "product_id": "P1", "price": 30.0, "quantity": 2},
        ),
    ]
    assert _post(chain_url, browsing).json()["accepted"] == 3
    anonymous = httpx.post(f"{chain_url}/v1/scores/churn", json={"anonymous_id": anon}, timeout=60)
    assert anonymous.status_code == 200, anonymous.text
    assert anonymous.json()["customer_id"] != customer  # a stranger until the login

    login = _event("login", at=now - timedelta(minutes=1), anonymous_id=anon, user_id=user)
    assert _post(chain_url, login).json()["accepted"] == 1

    after = httpx.get(f"{chain_url}/v1/profiles/{customer}", timeout=60)
    assert after.status_code == 200, after.text
    profile = after.json()
    f1 = profile["features"]
    assert profile["customer_id"] == customer
    assert {"type": "anonymous_id", "value": anon} in profile["identifiers"]
    assert profile["state"] == "authenticated"
    assert f1["product_views_7d"] == f0["product_views_7d"] + 2
    assert f1["cart_items"] >= 2
    assert f1["events_30m"] >= 4
    assert f1["last_category"] == "bags"
    ids = {e["event_id"] for e in profile["recent_events"]}
    assert {e["event_id"] for e in browsing} <= ids

    scored = httpx.post(f"{chain_url}/v1/scores/churn", json={"anonymous_id": anon}, timeout=60).json()
    assert scored["customer_id"] == customer
    # the absorbed anonymous profile's id now answers with the survivor
    absorbed = anonymous.json()["customer_id"]
    assert httpx.get(f"{chain_url}/v1/profiles/{absorbed}", timeout=60).json()["customer_id"] == customer


def test_score_reacts_to_a_purchase_at_once(chain: Chain, chain_url: str) -> None:
    user, customer = _known_user(chain)
    before = httpx.post(f"{chain_url}/v1/scores/churn", json={"user_id": user}, timeout=60)
    assert before.status_code == 200, before.text
    purchase = _event(
        "purchase",
        user_id=user,
        properties={"order_id": uuid.uuid4().hex[:10], "revenue": 80.0, "category": "shoes"},
    )
    assert _post(chain_url, purchase).json()["accepted"] == 1
    after = httpx.post(f"{chain_url}/v1/scores/churn", json={"user_id": user}, timeout=60).json()
    assert after["customer_id"] == customer
    # the Feast online store keeps event timestamps to the second
    bought = datetime.fromisoformat(purchase["occurred_at"]).replace(microsecond=0)
    assert datetime.fromisoformat(after["features_as_of"]) >= bought
    profile = httpx.get(f"{chain_url}/v1/profiles/{customer}", timeout=60).json()
    assert profile["features"]["days_since_last_purchase"] < 0.01
    assert profile["scores"]["churn"]["probability"] == pytest.approx(after["churn_probability"], abs=1e-9)


def test_unknown_profile_is_404_naming_it(chain_url: str) -> None:
    r = httpx.get(f"{chain_url}/v1/profiles/no-such-customer", timeout=30)
    assert r.status_code == 404
    assert "no-such-customer" in r.json()["error"]
