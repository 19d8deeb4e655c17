"""Consent: latest statement per profile, most restrictive across merged profiles, defaults, records, live,
and exports that leave out everyone without the purpose's consent (also after a merge)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from segments_frames import customers
from segments_workspace import consent_event, write_events, write_map, write_records

from contract import Settings, Workspace
from contract.errors import ContractError
from contract.normalize import normalize_email, sha256_hex
from segments.build import build_from_frame
from segments.consent import consent_of, customer_consent, defaults, with_consent
from segments.definitions import load
from segments.export import export, hashed_identifiers

T0 = datetime(2024, 3, 1, tzinfo=UTC)
YES = {"analytics": True, "personalization": True, "marketing": True, "advertising": True}
NO_MARKETING = {"marketing": False, "advertising": False}


def _workspace(ws: Workspace) -> list[dict]:
    """c1 = a consenting cookie merged with a user who refused; c2 consents; c3 said nothing; c4 consented,
    then withdrew marketing; c5 consents by CRM record only."""
    events = [
        consent_event("k1", "2024-02-01T10:00:00Z", YES, anonymous_id="a1"),
        consent_event("k2", "2024-02-02T10:00:00Z", NO_MARKETING, user_id="u1", anonymous_id="a1"),
        consent_event("k3", "2024-02-03T10:00:00Z", YES, user_id="u2"),
        consent_event("k4", "2024-02-01T10:00:00Z", YES, user_id="u4"),
        consent_event("k5", "2024-02-05T10:00:00Z", {"marketing": False}, user_id="u4"),
        {
            "event_id": "p1",
            "occurred_at": "2024-02-04T10:00:00Z",
            "type": "page_view",
            "channel": "web",
            "user_id": "u3",
        },
    ]
    write_events(ws, events)
    write_map(
        ws,
        [
            ("anonymous_id", "a1", "c1"),
            ("user_id", "u1", "c1"),
            ("user_id", "u2", "c2"),
            ("user_id", "u3", "c3"),
            ("user_id", "u4", "c4"),
            ("record", "crm:r5", "c5"),
            ("record", "crm:r1", "c1"),
            ("record", "crm:r2", "c2"),
        ],
        datetime(2024, 1, 1, tzinfo=UTC),
    )
    write_records(
        ws,
        [
            {
                "source": "crm",
                "record_id": "r5",
                "email": "five@example.com",
                "ingested_at": "2024-02-01",
                "extra_ids": {"consent_marketing": "yes", "consent_advertising": "opt_out"},
            },
            {
                "source": "crm",
                "record_id": "r1",
                "email": "one@example.com",
                "phone": "+44 20 7946 0001",
                "ingested_at": "2024-02-01",
            },
            {
                "source": "crm",
                "record_id": "r2",
                "email": " Two@Example.com ",
                "phone": "+4420 7946 0002",
                "ingested_at": "2024-02-01",
            },
        ],
    )
    return events


def test_most_restrictive_wins_across_merged_profiles(settings: Settings, ws: Workspace) -> None:
    _workspace(ws)
    got = customer_consent(settings, ws).set_index("customer_id")
    assert list(got.index) == ["c1", "c2", "c4", "c5"]  # c3 stated nothing
    assert not got.loc["c1", "consent_marketing"] and not got.loc["c1", "consent_advertising"]
    assert got.loc["c1", "consent_personalization"]  # only the cookie spoke: granted
    assert got.loc["c2"].all()
    assert not got.loc["c4", "consent_marketing"] and got.loc["c4", "consent_advertising"]  # latest counts
    assert got.loc["c5", "consent_marketing"] and not got.loc["c5", "consent_advertising"]
    assert pd.isna(got.loc["c5", "consent_analytics"])

    full = with_consent(pd.DataFrame({"customer_id": ["c1", "c3", "c5"]}), got.reset_index(), settings)
    c3 = full.set_index("customer_id").loc["c3"]
    assert c3["consent_analytics"] and c3["consent_personalization"]  # the documented default
    assert not c3["consent_marketing"] and not c3["consent_advertising"]
    assert full["consent_analytics"].dtype == bool


def test_live_consent_agrees_with_batch(settings: Settings, ws: Workspace) -> None:
    events = _workspace(ws)
    batch = with_consent(
        pd.DataFrame({"customer_id": ["c1", "c4"]}), customer_consent(settings, ws), settings
    ).set_index("customer_id")
    owner = {"a1": "c1", "u1": "c1", "u4": "c4"}
    for c in ("c1", "c4"):
        mine = [e for e in events if owner.get(e.get("user_id") or e.get("anonymous_id")) == c]
        live = consent_of(mine, settings)
        assert live == {p: bool(batch.loc[c, f"consent_{p}"]) for p in live}
    assert consent_of([], settings) == defaults(settings)
    with pytest.raises(ContractError, match="consent_default_granted"):
        defaults(Settings(consent_default_granted=["analytics", "telepathy"]))


def test_exports_hash_identifiers_and_leave_out_non_consenting(
    settings: Settings, ws: Workspace, tmp_path
) -> None:
    _workspace(ws)
    defs = load()
    frame = customers(5, seed=1).assign(customer_id=["c1", "c2", "c3", "c4", "c5"], lifecycle_stage="active")
    frame = with_consent(frame, customer_consent(settings, ws), settings)
    build_from_frame(ws, defs, frame, as_of=T0)
    # everyone is active: lifecycle_active has all five, exported for email only where marketing is granted
    r = export(
        settings, ws, "lifecycle_active", format="csv", purpose="marketing", out=tmp_path / "a.csv", defs=defs
    )
    out = pd.read_csv(r.path)
    assert set(out["customer_id"]) == {
        "c2",
        "c5",
    }  # c1 (merged refusal), c3 (no statement), c4 (withdrew) out
    assert (r.members, r.excluded_consent, r.exported_customers) == (5, 3, 2)
    two = out[out["customer_id"] == "c2"]
    assert sha256_hex(normalize_email(" Two@Example.com ")) in set(two["sha256"])
    assert sha256_hex("+442079460002") in set(two["sha256"])
    assert not out["sha256"].str.contains("@").any()
    ads = export(
        settings,
        ws,
        "lifecycle_active",
        format="parquet",
        purpose="advertising",
        out=tmp_path / "b.parquet",
        defs=defs,
    )
    assert set(pd.read_parquet(ads.path)["customer_id"]) == {"c2"}  # c5's record refused advertising
    with pytest.raises(ContractError, match="not activated on ads"):
        export(settings, ws, "at_risk_high_value", purpose="advertising", defs=defs)
    with pytest.raises(ContractError, match=r"^format"):
        export(settings, ws, "lifecycle_active", format="xlsx", defs=defs)


def test_export_reads_record_phones_in_the_phone_region(ws: Workspace) -> None:
    """A record imported before the region was set holds its phone as digits; exported with the region it is
    hashed in E.164, as ad platforms expect."""
    write_map(ws, [("record", "crm:r1", "c1")], datetime(2024, 1, 1, tzinfo=UTC))
    write_records(
        ws, [{"source": "crm", "record_id": "r1", "phone": "02079460958", "ingested_at": "2024-02-01"}]
    )
    customers_ = pd.Series(["c1"])
    assert hashed_identifiers(ws, customers_)["sha256"].tolist() == [sha256_hex("02079460958")]
    assert hashed_identifiers(ws, customers_, "GB")["sha256"].tolist() == [sha256_hex("+442079460958")]
