"""Behaviour of deterministic stitching and its guards on hand-built events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from contract import Settings, Workspace
from contract.normalize import normalize_email, normalize_phone, sha256_hex
from identity import IdentityIndex, IdentityResolver, StitchConfig

Write = Callable[..., Workspace]


def resolve(ws: Workspace, config: StitchConfig | None = None) -> IdentityIndex:
    IdentityResolver(ws, config).resolve()
    return IdentityIndex.load(ws)


def guard_log(ws: Workspace) -> list[dict[str, Any]]:
    return ws.read("identity_guard_log").to_pylist()


def user_ids_per_customer(ws: Workspace) -> dict[str, int]:
    m: pa.Table = ws.read("identity_map")
    out: dict[str, int] = {}
    for row in m.to_pylist():
        out.setdefault(row["customer_id"], 0)
        out[row["customer_id"]] += row["identifier_type"] == "user_id"
    return out


def test_login_links_an_anonymous_id_seen_before_it(write_events: Write) -> None:
    ws = write_events(
        [
            {"anonymous_id": "a1", "minute": 0},
            {"anonymous_id": "a1", "minute": 5, "type": "product_view"},
            {"anonymous_id": "a1", "user_id": "u1", "type": "login", "minute": 10},
            {"anonymous_id": "a2", "minute": 11},
        ]
    )
    idx = resolve(ws)
    assert idx.customer_for("anonymous_id", "a1") == idx.customer_for("user_id", "u1") is not None
    assert idx.customer_for("anonymous_id", "a2") not in (None, idx.customer_for("user_id", "u1"))


def test_one_person_on_several_devices_is_one_customer(write_events: Write) -> None:
    ws = write_events(
        [
            {"anonymous_id": "web1", "device_id": "laptop"},
            {"device_id": "phone", "anonymous_id": "app1", "type": "app_open", "channel": "app"},
            {"anonymous_id": "web1", "device_id": "laptop", "user_id": "u1", "type": "login"},
            {
                "device_id": "phone",
                "anonymous_id": "app1",
                "user_id": "u1",
                "type": "login",
                "channel": "app",
            },
            {"device_id": "tablet", "email_sha256": "a" * 64, "user_id": "u1", "type": "purchase"},
        ]
    )
    idx = resolve(ws)
    c = idx.customer_for("user_id", "u1")
    assert {
        idx.customer_for(t, v)
        for t, v in [
            ("device_id", "laptop"),
            ("device_id", "phone"),
            ("anonymous_id", "web1"),
            ("anonymous_id", "app1"),
            ("device_id", "tablet"),
            ("email_sha256", "a" * 64),
        ]
    } == {c}
    assert len(idx.identifiers_of(c)) == 7
    assert idx.identifiers_of(c)[0] == ("user_id", "u1")


def test_shared_device_beyond_max_never_merges_users(write_events: Write) -> None:
    users = [f"u{i}" for i in range(5)]
    rows = [
        {"device_id": "kiosk", "anonymous_id": f"a{i}", "user_id": u, "type": "login"}
        for i, u in enumerate(users)
    ]
    rows += [{"device_id": "kiosk", "anonymous_id": "a0"}, {"device_id": "kiosk", "anonymous_id": "stranger"}]
    ws = write_events(rows)
    idx = resolve(ws, StitchConfig(max_users={"device_id": 3}))
    customers = {idx.customer_for("user_id", u) for u in users}
    assert len(customers) == len(users)
    assert idx.customer_for("device_id", "kiosk") is None  # shared: names nobody
    assert idx.customer_for("anonymous_id", "a3") == idx.customer_for("user_id", "u3")
    assert idx.customer_for("anonymous_id", "stranger") not in customers
    assert [r["guard"] for r in guard_log(ws) if r["identifier_value"] == "kiosk"] == ["shared"]
    assert max(user_ids_per_customer(ws).values()) == 1


def test_contested_identifier_stays_with_its_dominant_user(write_events: Write) -> None:
    rows = [{"device_id": "family", "user_id": "mum", "type": "login"} for _ in range(3)]
    rows += [{"device_id": "family", "user_id": "kid", "type": "login"}]
    ws = write_events(rows)
    idx = resolve(ws, StitchConfig(max_users={"device_id": 3}))
    assert idx.customer_for("device_id", "family") == idx.customer_for("user_id", "mum")
    assert idx.customer_for("user_id", "kid") != idx.customer_for("user_id", "mum")
    (entry,) = guard_log(ws)
    assert entry["guard"] == "contested" and "mum" in entry["detail"]


@pytest.mark.parametrize("junk", ["null", "N/A", " unknown ", "0"])
def test_junk_values_never_link(write_events: Write, junk: str) -> None:
    ws = write_events(
        [
            {"loyalty_id": junk, "user_id": "u1", "type": "login"},
            {"loyalty_id": junk, "user_id": "u2", "type": "login"},
            {"loyalty_id": junk, "anonymous_id": "a9"},
        ]
    )
    idx = resolve(ws)
    assert idx.customer_for("user_id", "u1") != idx.customer_for("user_id", "u2")
    assert idx.customer_for("loyalty_id", junk) is None
    assert idx.customer_for("anonymous_id", "a9") not in (idx.customer_for("user_id", "u1"), None)
    assert [r["guard"] for r in guard_log(ws)] == ["junk"]


def test_placeholder_email_hash_is_blocked(write_events: Write) -> None:
    junk = sha256_hex(normalize_email(" Test@Test.com "))
    ws = write_events(
        [
            {"email_sha256": junk, "user_id": "u1", "type": "signup"},
            {"email_sha256": junk, "user_id": "u2", "type": "signup"},
        ]
    )
    idx = resolve(ws)
    assert idx.customer_for("user_id", "u1") != idx.customer_for("user_id", "u2")
    assert idx.customer_for_email("test@test.com") is None
    assert guard_log(ws)[0]["detail"].startswith("hash of a placeholder email")


def test_placeholder_phone_is_blocked_in_the_phone_region_form(write_events: Write) -> None:
    """Imported with a region, "1234567890" hashes as +441234567890: that form is blocked too."""
    junk = sha256_hex(normalize_phone("1234567890", "GB"))
    assert junk != sha256_hex(normalize_phone("1234567890"))
    rows = [
        {"phone_sha256": junk, "anonymous_id": "a1"},
        {"phone_sha256": junk, "anonymous_id": "a2"},
        {"phone_sha256": junk, "user_id": "u1", "type": "signup"},
    ]
    idx = resolve(write_events(rows), StitchConfig(phone_region="gb"))
    assert idx.customer_for_phone("123 456 7890", "GB") is None
    assert idx.customer_for_phone("123-456-7890") is None  # the digits-only form stays blocked as well
    assert {("phone_sha256", junk)} <= set(StitchConfig(phone_region="GB").blocked_hashes())
    assert set(StitchConfig().blocked_hashes()) < set(StitchConfig(phone_region="GB").blocked_hashes())
    with pytest.raises(ValueError, match="phone_region"):
        StitchConfig(phone_region="UK")
    # every resolver of a workspace (batch, live, replay, unmerge) takes the region from the one settings object
    assert StitchConfig.from_settings(Settings(default_phone_region="gb")).phone_region == "GB"
    assert StitchConfig.from_settings(Settings()).phone_region is None


def test_a_stored_link_contradicted_by_a_later_login_is_cut(write_events: Write) -> None:
    """The anonymous matcher linked device d2 to u1 (its anchor user_id); d2 later logs in as u2. The next
    resolve keeps the login and cuts the link (it used to stop with 'a profile holds 2 user_ids'), a link
    naming two user_ids directly never joins them, and a cookie keeps the customer its link names when its
    device logs in as someone else."""
    ws = write_events(
        [
            {"anonymous_id": "a1", "user_id": "u1", "type": "login", "minute": 0},
            {"device_id": "d2", "minute": 1},
            {"device_id": "d2", "user_id": "u2", "type": "login", "minute": 2},
            {"anonymous_id": "a3", "user_id": "u3", "type": "login", "minute": 3},
            {"anonymous_id": "a5", "device_id": "d5", "minute": 4},
            {"device_id": "d5", "user_id": "u3", "type": "login", "minute": 5},
        ]
    )
    links = pa.table(
        {
            "left_type": ["device_id", "user_id", "anonymous_id"],
            "left_value": ["d2", "u1", "a5"],
            "right_type": ["user_id", "user_id", "user_id"],
            "right_value": ["u1", "u3", "u1"],
            "probability": [0.97, 0.95, 0.9],
            "evidence": ["{}", "{}", "{}"],
        }
    )
    IdentityResolver(ws).resolve(links)
    idx = IdentityIndex.load(ws)
    u1, u2, u3 = (idx.customer_for("user_id", u) for u in ("u1", "u2", "u3"))
    assert len({u1, u2, u3}) == 3 and idx.customer_for("device_id", "d2") == u2
    # a cookie linked to u1 whose device logs in as u3: the device stays with u3, the cookie with u1
    assert idx.customer_for("device_id", "d5") == u3 and idx.customer_for("anonymous_id", "a5") == u1
    assert max(user_ids_per_customer(ws).values()) == 1
    cut = [g for g in guard_log(ws) if g["guard"] == "conflict_cut"]
    assert cut, "the cut links are logged as guard firings"


def test_a_chain_of_cookies_and_devices_never_joins_two_users(write_events: Write) -> None:
    # u1's cookie and u2's cookie both appear on device d (unauthenticated), plus u2 logs in on d.
    ws = write_events(
        [
            {"anonymous_id": "a1", "user_id": "u1", "type": "login"},
            {"anonymous_id": "a2", "user_id": "u2", "type": "login"},
            {"anonymous_id": "a1", "device_id": "d"},
            {"anonymous_id": "a2", "device_id": "d"},
            {"anonymous_id": "a3", "device_id": "d"},
        ],
        records=[
            {"record_id": "r1", "email_sha256": "e" * 64, "phone_sha256": "f" * 64},
            {"record_id": "r2", "user_id": "u1", "email_sha256": "e" * 64},
            {"record_id": "r3", "user_id": "u2", "phone_sha256": "f" * 64},
        ],
    )
    idx = resolve(ws)
    assert idx.customer_for("user_id", "u1") != idx.customer_for("user_id", "u2")
    assert idx.customer_for("anonymous_id", "a1") == idx.customer_for("user_id", "u1")
    assert idx.customer_for("anonymous_id", "a2") == idx.customer_for("user_id", "u2")
    assert idx.customer_for("email_sha256", "e" * 64) == idx.customer_for("user_id", "u1")
    assert idx.customer_for("record", "crm:r3") == idx.customer_for("user_id", "u2")
    # device d and record r1 touch both people: their links are cut, each is a profile of its own
    assert idx.customer_for("device_id", "d") not in (
        idx.customer_for("user_id", "u1"),
        idx.customer_for("user_id", "u2"),
    )
    assert max(user_ids_per_customer(ws).values()) == 1
    assert {r["guard"] for r in guard_log(ws)} == {"conflict_cut"}


def test_records_link_identifiers_to_their_user(write_events: Write) -> None:
    ws = write_events(
        [{"anonymous_id": "a1", "user_id": "u1", "type": "login"}, {"loyalty_id": "L7", "channel": "store"}],
        records=[
            {"record_id": "r1", "user_id": "u1", "loyalty_id": "L7"},
            {"record_id": "r2", "phone_sha256": "f" * 64},
        ],
    )
    idx = resolve(ws)
    assert (
        idx.customer_for("loyalty_id", "L7")
        == idx.customer_for("record", "crm:r1")
        == idx.customer_for("user_id", "u1")
    )
    assert idx.customer_for("phone_sha256", "f" * 64) == idx.customer_for("record", "crm:r2")


def test_report_counts(write_events: Write) -> None:
    ws = write_events(
        [
            {"anonymous_id": "a1", "device_id": "d1"},
            {"anonymous_id": "a1", "user_id": "u1", "type": "login"},
            {"anonymous_id": "a2"},
            {"device_id": "d3", "anonymous_id": "a3"},
        ]
    )
    report = IdentityResolver(ws).resolve()
    assert (report.identifiers, report.customers, report.known_customers, report.anonymous_only) == (
        6,
        3,
        1,
        2,
    )
    assert report.largest_cluster == 3 and report.guard_firings == {}
    assert "3 customers" in str(report)


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="max_users"):
        StitchConfig(max_users={"cookie": 2})
    with pytest.raises(ValueError, match="unauthenticated_links"):
        StitchConfig(unauthenticated_links=(("user_id", "device_id"),))
    with pytest.raises(ValueError, match="extra"):
        StitchConfig(max_user=3)  # type: ignore[call-arg]


def _household_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from datetime import date

    events = [
        {"user_id": "u_ann", "email_sha256": "family", "type": "login"},
        {"user_id": "u_bob", "email_sha256": "bob-mail", "type": "login"},
    ]
    records = [
        {"record_id": "r1", "first_name": "Ann", "date_of_birth": date(1980, 1, 1), "email_sha256": "family"},
        # Bob's CRM record carries his partner's address, and his own phone
        {
            "record_id": "r2",
            "first_name": "Robert",
            "date_of_birth": date(1979, 5, 5),
            "email_sha256": "family",
            "phone_sha256": "bob-phone",
        },
    ]
    return events, records


def test_a_family_email_on_two_peoples_records_links_no_record(write_events: Write) -> None:
    events, records = _household_rows()
    ws = write_events(events, records)
    idx = resolve(ws)
    ann = idx.customer_for("user_id", "u_ann")
    assert idx.customer_for("email_sha256", "family") == ann  # its event edge stays
    assert idx.customer_for("record", "crm:r2") != ann
    assert idx.customer_for("phone_sha256", "bob-phone") == idx.customer_for("record", "crm:r2") != ann
    fired = [g for g in guard_log(ws) if g["guard"] == "household"]
    assert [(g["identifier_type"], g["identifier_value"]) for g in fired] == [("email_sha256", "family")]


def test_household_guard_spares_one_person_and_can_be_turned_off(write_events: Write) -> None:
    from datetime import date

    events, records = _household_rows()
    same = [{**records[1], "first_name": "Ann", "date_of_birth": date(1980, 1, 1)}]  # a duplicate of Ann
    idx = resolve(write_events(events, [records[0], *same]))
    assert idx.customer_for("record", "crm:r2") == idx.customer_for("user_id", "u_ann")
    idx = resolve(write_events(events, records), StitchConfig(household_types=()))
    assert idx.customer_for("record", "crm:r2") == idx.customer_for("user_id", "u_ann")  # the old over-merge
    with pytest.raises(ValueError, match="household_types"):
        StitchConfig(household_types=("user_id",))
