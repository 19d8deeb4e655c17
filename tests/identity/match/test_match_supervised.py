"""Supervised mode: LightGBM on deterministically labelled pairs, calibrated to true match probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
from match_data import make_records

from identity.match import RecordMatcher

COLUMNS = ["source", "record_id", "first_name", "last_name", "date_of_birth", "postcode"]


def test_calibrated_on_held_out_records() -> None:
    """Names, birth dates and postcodes only, heavy noise: probabilities must match observed match rates on
    candidate pairs of other people than those trained on."""
    train, _ = make_records(1500, seed=11, user_id_rate=0.8, noise=3.0)
    held, entity = make_records(1500, seed=12, noise=3.0)  # new people, truth known, no ids
    matcher = RecordMatcher(min_pair_probability=0.0).fit(train[[*COLUMNS, "user_id"]])
    assert matcher.mode_ == "supervised"  # auto: plenty of labelled pairs
    pairs = matcher.link(held[COLUMNS]).pairs
    key = held["source"] + ":" + held["record_id"]
    ent = dict(zip(key, entity, strict=True))
    truth = (pairs["source_l"] + ":" + pairs["record_id_l"]).map(ent).to_numpy() == (
        pairs["source_r"] + ":" + pairs["record_id_r"]
    ).map(ent).to_numpy()
    p = pairs["model_probability"].to_numpy()
    assert len(p) > 2000
    assert abs(p.mean() - truth.mean()) < 0.02
    bins = pd.cut(p, np.linspace(0, 1, 11), include_lowest=True)
    table = (
        pd.DataFrame({"p": p, "y": truth})
        .groupby(bins, observed=True)
        .agg(n=("y", "size"), p=("p", "mean"), y=("y", "mean"))
    )
    dense = table[table["n"] >= 200]
    assert len(dense) >= 2
    assert (dense["p"] - dense["y"]).abs().max() < 0.05, table
    expected_calibration_error = ((table["p"] - table["y"]).abs() * table["n"]).sum() / table["n"].sum()
    assert expected_calibration_error < 0.02, table
    why = matcher.explain(pairs.iloc[0])  # exact booster contributions for one pair
    raw = why.attrs["bias"] + why["evidence"].sum()
    assert np.isfinite(raw) and why.attrs["mode"] == "supervised"


def test_labels_are_constraints_not_features() -> None:
    records, _ = make_records(300, seed=5, user_id_rate=0.8)
    matcher = RecordMatcher(mode="supervised", min_labels=10).fit(records)
    assert "user_id" not in {c.column for c in matcher.comparisons_}
    assert not any("user_id" in f for f in matcher.model_.feature_names_)
    assert matcher.n_labels_["matches"] > 0 and matcher.n_labels_["non_matches"] > 0


def test_extra_id_columns_train_and_keep_readable_names() -> None:
    """An extra id (``extra_ids`` -> ``id:customer_number``) is a comparison whose name LightGBM would reject
    ("special JSON characters"): the booster gets safe names, evidence and explain keep the readable one."""
    import json

    records, entity = make_records(200, seed=7, user_id_rate=0.8)
    number = "CN-" + (entity * 7919 % 1_000_003).astype(str).str.zfill(7)
    records["extra_ids"] = [json.dumps({"customer_number": v}) for v in number]
    matcher = RecordMatcher(mode="supervised", min_labels=10).fit(records)
    names = matcher.model_.feature_names_
    assert "id:customer_number" in names
    assert "id:customer_number" in {c.name for c in matcher.comparisons_}
    booster_names = matcher.model_.booster_.feature_name()
    assert len(booster_names) == len(names) and not any(":" in n for n in booster_names)
    pairs = matcher.link(records.drop(columns=["user_id"])).pairs
    why = matcher.explain(pairs.iloc[0])
    assert "id:customer_number" in set(why.get("comparison", why.index))
