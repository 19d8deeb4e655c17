"""resolved_events gives every event exactly one customer; the index answers lookups."""

from __future__ import annotations

import pyarrow as pa
import pytest
from identity_tables import events_table, random_events

import identity
from contract import REPO_ROOT, Workspace, WorkspaceError
from contract.errors import ContractError
from identity import IdentityIndex, IdentityResolver, StitchConfig, attach_customer_ids, resolved_events


def test_every_event_gets_one_customer(ws: Workspace) -> None:
    ws.replace("events", random_events(5, n=600))
    IdentityResolver(ws).resolve()
    out = resolved_events(ws, ["event_id", "customer_id"])
    assert out.num_rows == 600
    assert out.column("customer_id").null_count == 0
    assert len(set(out.column("event_id").to_pylist())) == 600


def test_event_customer_is_its_highest_priority_unguarded_identifier(ws: Workspace) -> None:
    rows = [
        {"device_id": "kiosk", "anonymous_id": f"a{i}", "user_id": f"u{i}", "type": "login"} for i in range(4)
    ]
    rows += [{"device_id": "kiosk", "anonymous_id": "a1"}, {"device_id": "kiosk"}]
    ws.replace("events", events_table(rows))
    IdentityResolver(ws, StitchConfig(max_users={"device_id": 2})).resolve()
    idx = IdentityIndex.load(ws)
    with ws.connect() as con:
        attach_customer_ids(con)
        got = dict(con.execute("SELECT event_id, customer_id FROM resolved_events").fetchall())
    assert got["e000004"] == idx.customer_for("user_id", "u1")  # the cookie's owner, not the shared kiosk
    assert got["e000005"] is not None and got["e000005"] not in {
        idx.customer_for("user_id", f"u{i}") for i in range(4)
    }


def test_events_imported_after_resolve_have_no_customer_yet(ws: Workspace) -> None:
    ws.replace("events", events_table([{"anonymous_id": "a1"}]))
    IdentityResolver(ws).resolve()
    ws.append("events", events_table([{"anonymous_id": "new"}]).set_column(0, "event_id", pa.array(["x"])))
    out = resolved_events(ws, ["event_id", "customer_id"]).to_pylist()
    assert {r["event_id"]: r["customer_id"] is None for r in out} == {"e000000": False, "x": True}


def test_missing_tables_give_clear_errors(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="events"):
        IdentityResolver(ws).resolve()
    with pytest.raises(WorkspaceError, match="identity resolve"):
        IdentityIndex.load(ws)


def test_index_lookups(ws: Workspace) -> None:
    from contract.normalize import normalize_email, sha256_hex

    email = sha256_hex(normalize_email("Ada@Example.org"))
    ws.replace("events", events_table([{"email_sha256": email, "user_id": "u1", "type": "signup"}]))
    IdentityResolver(ws).resolve()
    idx = IdentityIndex.load(ws)
    assert idx.customer_for_email("  ada@example.ORG ") == idx.customer_for("user_id", "u1")
    assert idx.customer_for("user_id", "nobody") is None
    assert idx.identifiers_of("c_unknown") == []
    assert len(idx) == 2
    with pytest.raises(ContractError, match="identifier_type"):
        idx.customer_for("cookie", "x")


def test_public_api_and_location() -> None:
    assert (
        identity.__file__ is not None and REPO_ROOT in __import__("pathlib").Path(identity.__file__).parents
    )
    assert sorted(identity.__all__) == [
        "IDENTITY_MAP_SCHEMA",
        "IdentityError",
        "IdentityIndex",
        "IdentityResolver",
        "MatchConfig",
        "ResolveReport",
        "StitchConfig",
        "Stitcher",
        "attach_customer_ids",
        "connected_components",
        "resolved_events",
    ]


def test_an_empty_event_table_resolves_to_an_empty_map(ws: Workspace) -> None:
    ws.replace("events", events_table([]))
    report = IdentityResolver(ws).resolve()
    assert (report.identifiers, report.customers) == (0, 0)
    assert resolved_events(ws).num_rows == 0
