"""Households: partners sharing surname, address, email and phone are two people; a typo'd copy is one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from match_data import make_records

from identity.match import RecordMatcher


def _with_partners(records: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Add a partner (no user_id) to the first ``n`` people with an email and a birth date: same surname,
    address, postcode, email and phone; another first name and birth date."""
    rng = np.random.default_rng(seed)
    hosts = records[records["email"].notna() & records["date_of_birth"].notna()].drop_duplicates("email")
    partners = hosts.head(n).copy()
    partners["record_id"] = [f"p{k:05d}" for k in range(len(partners))]
    partners["first_name"] = [
        f"Zed{chr(97 + k % 26)}{chr(97 + k // 26 % 26)}qux" for k in range(len(partners))
    ]
    dob = pd.to_datetime(partners["date_of_birth"]) + pd.to_timedelta(
        rng.integers(400, 4000, len(partners)), "D"
    )
    partners["date_of_birth"] = dob.dt.strftime("%Y-%m-%d")
    partners["user_id"] = None
    return pd.concat([records, partners], ignore_index=True)


def _linked(pairs: pd.DataFrame, a: str, b: str) -> bool:
    left, right = pairs["record_id_l"], pairs["record_id_r"]
    hit = pairs[((left == a) & (right == b)) | ((left == b) & (right == a))]
    return bool(len(hit)) and bool(hit["linked"].any())


def test_partners_apart_typo_duplicate_together() -> None:
    records, _ = make_records(300, seed=3, user_id_rate=0.8)
    records = _with_partners(records, 80, seed=4)
    host = records[records["record_id"].str.startswith("p")].iloc[-1]  # a partner
    first = records[(records["email"] == host["email"]) & (records["record_id"] != host["record_id"])].iloc[0]
    typo = first.copy()
    typo["record_id"], typo["user_id"] = "dup00001", None
    typo["first_name"] = str(first["first_name"])[:-1] + "x"  # one typo, nothing else changes
    records = pd.concat([records, typo.to_frame().T], ignore_index=True)

    # trained without the tested household's partner and duplicate: it must generalise to them
    train = records[~records["record_id"].isin([host["record_id"], "dup00001"])]
    matcher = RecordMatcher(mode="supervised", min_labels=10, min_pair_probability=0.0).fit(train)
    assert matcher.n_labels_["household_non_matches"] >= 50
    pairs = matcher.link(records).pairs
    assert _linked(pairs, first["record_id"], "dup00001")
    assert not _linked(pairs, first["record_id"], host["record_id"])
    assert not _linked(pairs, "dup00001", host["record_id"])

    # without household negatives the model has never seen a household and links the partners
    blind = RecordMatcher(mode="supervised", min_labels=10, household_ids=(), min_pair_probability=0.0)
    pairs = blind.fit(train).link(records).pairs
    assert blind.n_labels_["household_non_matches"] == 0
    assert _linked(pairs, first["record_id"], host["record_id"]) or _linked(
        pairs, "dup00001", host["record_id"]
    )
