"""Guarded email/phone links from events without a login (`StitchConfig.guarded_links`)."""

from __future__ import annotations

from collections.abc import Callable

from contract import Workspace
from identity import IdentityIndex, IdentityResolver, StitchConfig

Write = Callable[..., Workspace]


def resolve(ws: Workspace, config: StitchConfig | None = None) -> IdentityIndex:
    IdentityResolver(ws, config).resolve()
    return IdentityIndex.load(ws)


def test_an_email_click_links_the_cookie_to_the_emails_owner(write_events: Write) -> None:
    ws = write_events(
        [
            {"user_id": "u1", "email_sha256": "h1", "type": "login", "minute": 0},
            {"anonymous_id": "a9", "email_sha256": "h1", "type": "email_click", "minute": 5},
        ]
    )
    idx = resolve(ws)
    assert idx.customer_for("anonymous_id", "a9") == idx.customer_for("user_id", "u1")
    off = resolve(ws, StitchConfig(guarded_links=()))
    assert off.customer_for("anonymous_id", "a9") != off.customer_for("user_id", "u1")


def test_a_cookie_seen_with_two_emails_links_neither(write_events: Write) -> None:
    ws = write_events(
        [
            {"user_id": "u1", "email_sha256": "h1", "type": "login", "minute": 0},
            {"user_id": "u2", "email_sha256": "h2", "type": "login", "minute": 1},
            {"device_id": "d1", "email_sha256": "h1", "minute": 2},
            {"device_id": "d1", "email_sha256": "h2", "minute": 3},
        ]
    )
    idx = resolve(ws)
    assert idx.customer_for("user_id", "u1") != idx.customer_for("user_id", "u2")
    assert idx.customer_for("device_id", "d1") not in {
        idx.customer_for("user_id", "u1"),
        idx.customer_for("user_id", "u2"),
    }


def test_a_device_with_more_emails_than_max_users_is_shared(write_events: Write) -> None:
    ws = write_events(
        [{"device_id": "kiosk", "email_sha256": f"h{i}", "minute": i} for i in range(4)]
        + [{"device_id": "kiosk", "anonymous_id": "a1", "minute": 9}]
    )
    idx = resolve(ws, StitchConfig(max_users={"device_id": 3}))
    assert idx.customer_for("device_id", "kiosk") is None  # shared: links nobody
    guards = [g for g in ws.read("identity_guard_log").to_pylist() if g["guard"] == "shared"]
    assert [(g["identifier_value"], "4 email_sha256 values" in g["detail"]) for g in guards] == [
        ("kiosk", True)
    ]


def test_guarded_links_must_not_repeat_unauthenticated_links() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="also in unauthenticated_links"):
        StitchConfig(
            unauthenticated_links=(("anonymous_id", "email_sha256"),),
            guarded_links=(("anonymous_id", "email_sha256"),),
        )
