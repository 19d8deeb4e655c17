"""Network realism: IPs and user agents on web/app events, drawn from a stream of their own."""

from __future__ import annotations

import ipaddress

import pandas as pd
import pytest
from simulator_helpers import TINY

import simulator.network
from simulator import SimData, generate


def test_ip_and_user_agent_only_where_a_device_is(tiny: SimData) -> None:
    ev = tiny.events
    has_device = ev["device_id"].notna()
    assert ev.loc[has_device, ["ip", "user_agent"]].notna().all().all()
    assert ev.loc[~has_device, ["ip", "user_agent"]].isna().all().all()
    assert ev.loc[ev["channel"].isin(["store", "support"]), "ip"].isna().all()
    for ip in ev["ip"].dropna().unique():
        assert ipaddress.ip_address(ip).version == 4 and ipaddress.ip_address(ip).is_global


def test_partners_share_the_home_line_and_strangers_share_carrier_addresses(
    events_with_person: pd.DataFrame, tiny: SimData
) -> None:
    persons = tiny.truth["persons"]
    pairs = persons.dropna(subset=["partner_id"])
    home = persons.set_index("person_id")["home_ips"]
    assert (pairs["home_ips"].to_numpy() == home[pairs["partner_id"]].to_numpy()).all()
    ev = events_with_person.dropna(subset=["ip"]).merge(
        persons[["person_id", "household_id"]], on="person_id"
    )
    per_ip = ev.groupby("ip").agg(people=("person_id", "nunique"), households=("household_id", "nunique"))
    assert (per_ip["households"] >= 2).any()  # CGNAT/workplace/hotspot addresses: strangers collide
    first_home = persons["home_ips"].str.split(" ").str[0]
    partner_homes = set(first_home[persons["partner_id"].notna()])
    shared_home = per_ip.loc[per_ip.index.isin(partner_homes)]
    assert (shared_home["people"] >= 2).any()  # two people behind one home IP
    assert (persons["home_ip_changes"] > 0).any()


def test_one_browser_per_device_with_upgrades(tiny: SimData) -> None:
    ev = tiny.events.dropna(subset=["user_agent"])
    family = ev["user_agent"].str.replace(r"\d+", "#", regex=True)
    assert (family.groupby(ev["device_id"]).nunique() == 1).all()
    assert (ev.groupby("device_id")["user_agent"].nunique() > 1).any()  # versions move on over time
    assert ev.loc[ev["channel"] == "app", "user_agent"].str.startswith("CXIShop/").all()
    in_app = ev.loc[(ev["channel"] == "web") & ev["user_agent"].str.startswith("CXIShop/"), "type"]
    assert set(in_app) <= {"page_view"}  # only email links opened in the app


def test_network_draws_leave_every_other_value_unchanged(
    tiny: SimData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulator.network, "STREAM", simulator.network.STREAM + 1)
    other = generate(TINY)
    rest = [c for c in tiny.events.columns if c not in ("ip", "user_agent")]
    pd.testing.assert_frame_equal(tiny.events[rest], other.events[rest])
    assert not tiny.events["ip"].equals(other.events["ip"])
    for name, frame in tiny.truth.items():
        keep = [c for c in frame.columns if c not in ("isp", "home_ips", "home_ip_changes", "workplace", "work_ip",
                                                     "carrier_prefix")]  # fmt: skip
        pd.testing.assert_frame_equal(frame[keep], other.truth[name][keep], obj=name)
    for name, frame in tiny.records.items():
        pd.testing.assert_frame_equal(frame, other.records[name], obj=name)
