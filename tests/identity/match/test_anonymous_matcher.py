"""AnonymousMatcher on small seeded web/app logs with known truth (households behind one home IP prefix,
carrier IPs shared by strangers, devices that never log in)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from contract import Workspace
from contract.errors import ContractError
from events.importers import import_frame
from identity import IdentityResolver
from identity.match.anonymous import EDGE_COLUMNS, AnonymousMatcher

_UAS = np.array(
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.1 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) Mobile/15E148 Safari/604.1",
        "ShopApp/3.1 (Android 14; Pixel 7)",
    ],
    dtype=object,
)
_CATS = np.array([f"cat_{i}" for i in range(10)], dtype=object)


def make_logs(seed: int, households: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, truth device_id -> person) of a seeded population; logged-in devices carry a login event."""
    rng = np.random.default_rng(seed)
    size = 1 + (rng.random(households) < 0.4)
    hh = np.repeat(np.arange(households), size)
    n = len(hh)
    account = rng.random(n) < 0.75
    pref = rng.dirichlet(np.full(len(_CATS), 0.3), n)
    peak = rng.integers(0, 24, n)
    n_dev = rng.integers(1, 4, n)
    person = np.repeat(np.arange(n), n_dev)
    kind = rng.integers(0, 3, len(person))
    logged = account[person] & (rng.random(len(person)) < 0.6)
    dev_ids = np.array([f"dev-{seed}-{i:05d}" for i in range(len(person))], dtype=object)
    n_ses = 2 + rng.poisson(6, len(person))
    sd = np.repeat(np.arange(len(person)), n_ses)  # session -> device
    sp = person[sd]
    day = rng.integers(0, 60, len(sd))
    hour = (peak[sp] + np.rint(rng.normal(0, 2, len(sd))).astype(np.int64)) % 24
    home = rng.random(len(sd)) < 0.75
    carrier = rng.integers(0, 4, len(sd))
    ip = np.where(
        home,
        "10." + pd.Series(hh[sp] // 250).astype(str) + "." + pd.Series(hh[sp] % 250).astype(str),
        "172.16." + pd.Series(carrier).astype(str),
    )
    ip = ip + "." + pd.Series(rng.integers(1, 255, len(sd))).astype(str)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    s_t = t0 + pd.to_timedelta(day * 86400 + hour * 3600 + rng.integers(0, 3000, len(sd)), unit="s")
    per = 3
    si = np.repeat(np.arange(len(sd)), per)
    rank = np.tile(np.arange(per), len(sd))
    d = sd[si]
    login = (rank == 0) & logged[d]
    cats = np.array([rng.choice(len(_CATS), p=pref[p]) for p in sp])[si]
    events = pd.DataFrame(
        {
            "event_id": [f"e{seed}-{i}" for i in range(len(si))],
            "occurred_at": s_t[si] + pd.to_timedelta(rank * 30, unit="s"),
            "type": np.where(login, "login", np.where(rank == 0, "page_view", "product_view")),
            "channel": np.where(kind[d] == 2, "app", "web"),
            "anonymous_id": pd.Series(dev_ids[d]).str.replace("dev-", "anon-").to_numpy(object),
            "device_id": dev_ids[d],
            "user_id": np.where(login, pd.Series(person[d]).map(lambda p: f"u-{seed}-{p}"), None),
            "ip": ip[si],
            "user_agent": _UAS[kind[d]],
            "category": np.where(rank > 0, _CATS[cats], None),
        }
    )
    truth = pd.DataFrame({"device_id": dev_ids, "person": person, "logged": logged})
    return events, truth


def _workspace(root: Path, events: pd.DataFrame) -> Workspace:
    ws = Workspace(root)
    import_frame(ws, "events", events, source="test")
    IdentityResolver(ws).resolve()
    return ws


def _tables(ws: Workspace) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    return ws.connect("events", "identity_map", "identity_guard_log")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[AnonymousMatcher, Workspace, pd.DataFrame]:
    events, truth = make_logs(seed=1, households=800)
    ws = _workspace(tmp_path_factory.mktemp("anon") / "ws", events)
    with _tables(ws) as con:
        matcher = AnonymousMatcher(threshold=0.8).fit(con)
    return matcher, ws, truth


def _person_of_customers(ws: Workspace, truth: pd.DataFrame) -> pd.Series:
    m = ws.read("identity_map").to_pandas()
    m = m[m["identifier_type"] == "device_id"].merge(truth, left_on="identifier_value", right_on="device_id")
    return m.groupby("customer_id")["person"].agg(lambda s: s.mode().iloc[0])


def test_labels_come_from_deterministic_evidence(fitted: tuple) -> None:
    matcher, ws, truth = fitted
    with _tables(ws) as con:
        pairs = matcher.pairs(con)
    dev_person = truth.set_index("device_id")["person"]
    lab = pairs[pairs["label"] >= 0]
    same = dev_person.reindex(lab["frag_a"]).to_numpy() == dev_person.reindex(lab["frag_b"]).to_numpy()
    assert (lab["label"] == 1).sum() >= 20 and (lab["label"] == 0).sum() >= 20
    assert np.array_equal(same, lab["label"].to_numpy() == 1)
    # only pairs whose both sides are known customers are labelled
    assert lab["known_a"].all() and lab["known_b"].all()
    assert (pairs.loc[~(pairs["known_a"] & pairs["known_b"]), "label"] == -1).all()


def test_calibrated_on_held_out_pairs(fitted: tuple, tmp_path: Path) -> None:
    matcher, _, _ = fitted
    events, _ = make_logs(seed=2, households=800)  # same brand, other people
    ws = _workspace(tmp_path / "ws", events)
    with _tables(ws) as con:
        pairs = matcher.pairs(con)
    lab = pairs[pairs["label"] >= 0]
    assert len(lab) >= 5000
    bins = np.digitize(lab["probability"].to_numpy(), [0.1, 0.5, 0.9])
    grouped = (
        lab.assign(bin=bins)
        .groupby("bin")
        .agg(p=("probability", "mean"), y=("label", "mean"), n=("label", "size"))
    )
    big = grouped[grouped["n"] >= 50]
    assert len(big) >= 3, grouped
    assert (big["p"] - big["y"]).abs().max() <= 0.05, grouped


def test_links_one_known_customer_per_profile_and_are_right(fitted: tuple) -> None:
    matcher, ws, truth = fitted
    with _tables(ws) as con:
        links = matcher.links(con)
    assert tuple(links.columns) == EDGE_COLUMNS
    assert len(links) >= 10
    assert not links.duplicated(["left_type", "left_value"]).any()
    assert (links["probability"] >= 0.8).all()
    assert set(links["right_type"]) <= {"user_id", "email_sha256", "phone_sha256", "loyalty_id", "record"}
    ev = json.loads(links["evidence"].iloc[0])
    assert {"blocking", "comparisons", "contributions", "bias"} <= set(ev)
    # precision against the truth: the anonymous device's person owns the linked user_id
    owner = links["left_value"].map(truth.set_index("device_id")["person"])
    linked = links["right_value"].str.rsplit("-", n=1).str[1].astype(int)
    assert (owner.to_numpy() == linked.to_numpy()).mean() >= 0.9
    # anonymous sides are anonymous-only profiles: devices never logged in
    assert not truth.set_index("device_id").loc[links["left_value"], "logged"].any()


def test_shuffled_input_gives_the_same_links(fitted: tuple, tmp_path: Path) -> None:
    matcher, ws, _ = fitted
    events, _ = make_logs(seed=1, households=800)
    shuffled = events.sample(frac=1.0, random_state=7).reset_index(drop=True)
    ws2 = _workspace(tmp_path / "ws", shuffled)
    with _tables(ws2) as con:
        refit = AnonymousMatcher(threshold=0.8).fit(con)
        again = refit.links(con)
    with _tables(ws) as con:
        first = matcher.links(con)
    pd.testing.assert_frame_equal(first, again)


def test_bad_parameters_and_unfitted_use_are_named() -> None:
    with pytest.raises(ContractError, match="threshold"):
        AnonymousMatcher(threshold=1.5)
    with pytest.raises(ContractError, match="max_block"):
        AnonymousMatcher(max_block=1)
    with pytest.raises(ContractError, match="not fitted"):
        AnonymousMatcher().scores(None)  # type: ignore[arg-type]


def test_too_few_labels_is_a_clear_error(tmp_path: Path) -> None:
    events, _ = make_logs(seed=3, households=300)
    ws = _workspace(tmp_path / "ws", events.drop(columns=["ip"]))
    with _tables(ws) as con, pytest.raises(ContractError, match="too few deterministically labelled"):
        AnonymousMatcher(min_labels=10_000).fit(con)
