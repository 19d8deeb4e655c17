"""Record preparation (Arrow kernels), connected components and chunked comparison agree with their
plain-Python definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from match_data import make_records

import identity.match.compare as compare
from contract.errors import ContractError
from events.timestamps import AMBIGUOUS
from identity.match.cluster import components
from identity.match.compare import compare_pairs, default_comparisons
from identity.match.records import prepare, read_records


def test_prepare_normalises_text_phone_email_and_dates() -> None:
    records = pd.DataFrame(
        {
            "source": ["s", "s", "s"],
            "record_id": ["1", "2", "3"],
            "first_name": ["  José-Ñoño  O'Brien\t", "", None],
            "phone": ["+44 (0) 7700-900123", "12", None],
            "email": ["A.B+tag@Mail.COM", None, "x@y.org"],
            "date_of_birth": ["1980-02-03", "0001-01-01", "not a date"],
            "postcode": ["SW1A 1AA", None, "  "],
            "loyalty_card": [12345, None, 7],
        }
    )
    prep = prepare(records)
    assert prep["first_name"].tolist() == ["jose-nono o brien", None, None]
    assert prep["phone"].tolist() == ["447700900123"[-9:], None, None]
    assert prep["email_local"].tolist() == ["ab", None, "x"]
    assert prep["dob"].tolist() == ["1980-02-03", None, None]  # a year-1 placeholder is no birth date
    assert prep["postcode"].tolist() == ["sw1a1aa", None, None]
    assert prep["id:loyalty_card"].tolist() == ["12345", None, "7"]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 60), st.lists(st.tuples(st.integers(0, 59), st.integers(0, 59)), max_size=80))
def test_components_match_union_find(n: int, edges: list[tuple[int, int]]) -> None:
    edges = [(a, b) for a, b in edges if a < n and b < n]
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    expect = pd.factorize(np.array([find(x) for x in range(n)], dtype=np.int64))[0]
    src = np.array([a for a, _ in edges], dtype=np.int64)
    dst = np.array([b for _, b in edges], dtype=np.int64)
    np.testing.assert_array_equal(components(n, src, dst), expect)


def test_chunked_comparison_equals_one_pass(monkeypatch: object) -> None:
    records, _ = make_records(300, seed=5)
    prep = prepare(records)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(prep), 5_000), rng.integers(0, len(prep), 5_000)
    comps = default_comparisons(prep)
    whole = compare_pairs(prep, i, j, comps)
    monkeypatch.setattr(compare, "CHUNK_PAIRS", 777)  # type: ignore[attr-defined]
    chunked = compare_pairs(prep, i, j, comps)
    np.testing.assert_array_equal(whole.levels, chunked.levels)
    np.testing.assert_array_equal(whole.scores, chunked.scores)
    np.testing.assert_array_equal(whole.tf, chunked.tf)


def test_a_repeated_record_id_keeps_its_first_row_and_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    pd.DataFrame(
        {
            "record_id": ["1", "2", "2"],
            "first_name": ["Ann", "Bob", "Robert"],
            "email": ["a@x.io", "N/A", "b@x.io"],
        }
    ).to_csv(path, index=False)
    records, report = read_records([path])
    assert records["record_id"].tolist() == ["1", "2"] and records["first_name"].tolist() == ["Ann", "Bob"]
    assert report.cleared == {"record_id: repeated within its source (later rows left out)": 1}
    assert records["email"].isna().tolist() == [False, True]  # a placeholder address is a missing one
    with pytest.raises(ContractError, match="repeated within its source"):
        read_records([path], strict=True)


def test_dates_of_birth_day_first_or_by_format(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    pd.DataFrame({"record_id": ["1", "2"], "date_of_birth": ["02/03/1975", "04/05/1980"]}).to_csv(
        path, index=False
    )
    records, report = read_records([path])  # every value could be either order: cleared, not guessed
    assert records["date_of_birth"].isna().all()
    assert list(report.cleared) == ["date_of_birth: " + AMBIGUOUS]
    records, report = read_records([path], date_format="%d/%m/%Y")
    assert [str(d) for d in records["date_of_birth"]] == ["1975-03-02", "1980-05-04"] and report.cleared == {}
