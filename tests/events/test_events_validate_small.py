"""Small batches (live ingestion) checked row by row give exactly the column-wise checker's results.

Frames are built as ``events.ingest`` builds them (``DataFrame.from_records`` of posted dicts, then the
importer's column mapping) from generated raw events, valid and not: bad types, every timestamp form the
importer reads, raw emails/phones, numbers as text, junk identifiers, nested and flat properties.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events.properties as properties
from contract.normalize import JUNK_VALUES, sha256_hex
from contract.schemas import Channel, EventType
from events.importers import FIELDS, quarantine_rows, stored_rows
from events.readers import apply_mapping
from events.rowwise import check_events_small
from events.timestamps import parse_timestamps
from events.validate import Checked, check_events, check_events_columnwise

WORD = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
ISO = st.builds(
    lambda d, sep, frac, off: d.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + off,
    st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2150, 1, 1)),
    st.sampled_from(["T", " ", "t"]),
    st.sampled_from(["", ".5", ".123", ".123456", ".1234567", ".123456789", ",5"]),
    st.sampled_from(["", "Z", "z", "+02:00", "-05:30", "+14:00", "+18:00", "+0200", "+02", " Z", "-00:00"]),
)
TIMES = st.one_of(
    ISO,
    ISO,
    st.none(),
    st.floats(allow_nan=True),
    st.integers(-(10**19), 10**19),
    st.sampled_from(
        [
            "2024-05-01",
            "20240501",
            "1714557600",
            "1714557600123",
            "1714557600.5",
            " 2024-05-01T10:00:00Z ",
            "2024-02-30T10:00:00Z",
            "2024-05-01T24:00:00Z",
            "1500-05-01T10:00:00Z",
            "9999-05-01T10:00:00Z",
            "2024-05-01T10:00Z",
            "2024-05-01T10:00:00+25:00",
            "\uff12\uff10\uff12\uff14-05-01T10:00:00Z",
            "2024-05-01T10:00:00.5+02:00",
            "",
            "yesterday",
        ]
    ),
    WORD,
)
IDENT = st.one_of(
    st.none(),
    WORD,
    st.integers(-5, 10**18),
    st.floats(-10, 1e20),
    st.booleans(),
    st.sampled_from(sorted(JUNK_VALUES)).flatmap(
        lambda j: st.sampled_from([j, j.upper(), f"  {j}\t", f"\x1c{j}", f"{j}\u0130", "unk\u212aown"])
    ),
    st.just("x" * 257),
)
SHA = st.one_of(
    st.none(),
    st.sampled_from(["", sha256_hex("a"), sha256_hex("a").upper(), sha256_hex("b") + "\n", "abc", "null"]),
)
EMAIL = st.one_of(
    st.none(),
    st.sampled_from(["Ann@Example.com ", "bad", "a@b", "x@y.z", "", " @x.y", "\u00c4\x00b@x.y", "A@B.C\n"]),
    st.integers(),
)
PHONE = st.one_of(
    st.none(),
    st.sampled_from(
        ["+33 6 12 34 56 78", "0044 20 7946 0958", "123", "", "(555) 010-9999", "+١٢٣٤٥٦٧", "020 7946 0958"]
    ),
    st.integers(0, 10**12),
)
NUMBER = st.one_of(
    st.none(),
    st.floats(-5, 1e17),
    st.floats(),
    st.integers(-3, 50),
    st.integers(-(2**60), 2**60),
    st.booleans(),
    st.sampled_from(["abc", "12.5", " 3 ", "1e3", "nan", "", "2"]),
)
CONSENT = st.one_of(
    st.none(),
    st.sampled_from(
        [
            {"email": True},
            {"email": "yes", "sms": 0},
            {"email": "maybe"},
            {"telepathy": True},
            {},
            '{"email": true}',
            "{bad",
            [1],
            3,
        ]
    ),
)
TEXT_PROP = st.one_of(st.none(), WORD, st.integers(-5, 2**60), st.floats(), st.booleans(), st.just({"a": 1}))
SCALAR = st.one_of(st.none(), WORD, st.integers(-5, 5), st.floats(-1, 1e20), st.booleans())


def _props() -> st.SearchStrategy[Any]:
    known = st.fixed_dictionaries(
        {},
        optional={
            "product_id": TEXT_PROP,
            "category": TEXT_PROP,
            "price": NUMBER,
            "quantity": NUMBER,
            "revenue": NUMBER,
            "order_id": TEXT_PROP,
            "offer_id": TEXT_PROP,
            "query": TEXT_PROP,
            "consent": CONSENT,
            "colour": SCALAR,
            "tags": st.just(["a", "b"]),
            "meta": st.just({"k": [1, None]}),
        },
    )
    import json

    return st.one_of(
        st.none(),
        known,
        known,
        known.map(lambda d: json.dumps(d, default=str)),
        st.sampled_from(["", "  ", "{not json", "[1, 2]", "7", [1], 3.5]),
    )


def _event() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "event_id": st.one_of(st.none(), WORD, st.integers(0, 10**6), st.just("e" * 129)),
            "occurred_at": TIMES,
            "type": st.one_of(st.none(), st.sampled_from([*EventType, "Purchase", "unknown"]).map(str)),
            "channel": st.one_of(st.none(), st.sampled_from([*Channel, "fax"]).map(str)),
            "user_id": IDENT,
            "anonymous_id": IDENT,
            "device_id": IDENT,
            "loyalty_id": IDENT,
            "email_sha256": SHA,
            "phone_sha256": SHA,
            "email": EMAIL,
            "phone": PHONE,
            "ip": st.one_of(st.none(), st.just("10.0.0.1"), st.just("1" * 65)),
            "user_agent": st.one_of(st.none(), st.just("ua"), st.just("u" * 1025)),
            "properties": _props(),
            "price": NUMBER,
            "Quantity": NUMBER,
            "product_id": TEXT_PROP,
            "colour": SCALAR,
        },
    )


def _live_event() -> st.SearchStrategy[dict[str, Any]]:
    """The common live shape: the row-wise path must take these (no fallback)."""
    return st.fixed_dictionaries(
        {
            "event_id": WORD,
            "occurred_at": st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123+02:00", None]),
            "type": st.sampled_from([*EventType, "nope"]).map(str),
            "channel": st.sampled_from([*Channel]).map(str),
            "anonymous_id": st.one_of(st.none(), WORD, st.sampled_from(sorted(JUNK_VALUES))),
            "user_id": st.one_of(st.none(), WORD),
        },
        optional={
            "email": EMAIL,
            "phone": PHONE,
            "properties": st.fixed_dictionaries(
                {},
                optional={
                    "product_id": WORD,
                    "price": st.one_of(st.floats(-5, 1e6), st.integers(-5, 500)),
                    "quantity": st.integers(-1, 5),
                    "consent": CONSENT,
                    "colour": SCALAR,
                },
            ),
        },
    )


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """As ``events.ingest`` builds it."""
    original = pd.DataFrame.from_records(rows, index=pd.RangeIndex(len(rows)))
    return apply_mapping(original, None, FIELDS["events"])


@contextlib.contextmanager
def _duckdb_json() -> Iterator[None]:
    """Write stored properties with the DuckDB query (the column-wise path) while inside."""
    small, properties._SMALL = properties._SMALL, -1
    try:
        yield
    finally:
        properties._SMALL = small


def _same(
    rows: list[dict[str, Any]], tz: str | None, negative_revenue: bool, phone_region: str | None = None
) -> Checked | None:
    """Assert that ``check_events`` (small path) and the column-wise checker agree on everything."""
    df = _frame(rows)
    opts: dict[str, Any] = {"tz": tz, "negative_revenue": negative_revenue, "phone_region": phone_region}
    try:
        want = check_events_columnwise(df, **opts)
    except Exception as exc:  # the small path must then fail the same way
        with pytest.raises(type(exc)):
            check_events(df, **opts)
        return None
    got = check_events(df, **opts)
    assert got.table.schema == want.table.schema
    for name in want.table.column_names:
        assert got.table[name].equals(want.table[name]), name
    assert got.field.tolist() == want.field.tolist()
    assert got.reason.tolist() == want.reason.tolist()
    assert got.extras is not None and want.extras is not None
    assert got.extras.tolist() == want.extras.tolist()
    assert got.extra_columns == want.extra_columns
    stamp = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    ok = want.ok
    stored = stored_rows("events", got, ok, "api", stamp)
    with _duckdb_json():
        reference = stored_rows("events", want, ok, "api", stamp)
    assert stored.equals(reference)
    q_got = quarantine_rows("events", "api", df, got, ~ok, stamp)
    assert q_got.equals(quarantine_rows("events", "api", df, want, ~ok, stamp))
    return got


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(_event(), min_size=1, max_size=6),
    tz=st.sampled_from(["UTC", None, "Europe/Paris"]),
    negative_revenue=st.booleans(),
    phone_region=st.sampled_from([None, "GB"]),
)
def test_small_batches_match_columnwise(
    rows: list[dict[str, Any]], tz: str | None, negative_revenue: bool, phone_region: str | None
) -> None:
    _same(rows, tz, negative_revenue, phone_region)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(_live_event(), min_size=1, max_size=20),
    tz=st.sampled_from(["UTC", None]),
    phone_region=st.sampled_from([None, "GB"]),
)
def test_live_shapes_take_the_row_wise_path(
    rows: list[dict[str, Any]], tz: str | None, phone_region: str | None
) -> None:
    df = _frame(rows)
    check_events_small(df, tz, False, phone_region)  # raises Unsupported if it would fall back
    _same(rows, tz, False, phone_region)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(ISO, st.none()), min_size=1, max_size=8), tz=st.sampled_from(["UTC", None]))
def test_iso_timestamps_read_like_pandas(values: list[str | None], tz: str | None) -> None:
    from events.rowwise import _times

    col = pd.Series(values, dtype=object)
    df = pd.DataFrame({"occurred_at": col})
    got, err = _times(values, tz, df)
    want = parse_timestamps(col, tz=tz)
    assert got.equals(pa.array(want.values, type=pa.timestamp("us", tz="UTC"), from_pandas=True))
    assert err == want.error.tolist()


@settings(max_examples=200, deadline=None)
@given(
    strings=st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=1, max_size=6),
    floats=st.lists(
        st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)), min_size=1, max_size=6
    ),
    ints=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=6),
    nested=st.lists(
        st.one_of(st.none(), st.dictionaries(st.text(max_size=3), SCALAR, max_size=2)), min_size=1
    ),
)
def test_properties_json_matches_duckdb(
    strings: list[str | None], floats: list[float | None], ints: list[int | None], nested: list[Any]
) -> None:
    n = min(len(strings), len(floats), len(ints), len(nested))
    typed = {
        "product_id": pa.array(strings[:n], pa.string()),
        "price": pa.array(floats[:n], pa.float64()),
        "quantity": pa.array(ints[:n], pa.int64()),
        "consent": pa.array(['{"email": true}'] * n, pa.string()),
    }
    flat = {"ok'\"é": pa.array([True, None, False][:1] * n, pa.bool_())}
    extras = pd.Series(nested[:n], dtype=object)
    got = properties._to_json_small(typed, flat, extras, ("consent",))
    want = properties._to_json_duckdb(typed, flat, extras, ("consent",))
    if got is None:  # exponents, inf/nan: left to DuckDB
        assert any(f is not None and ("e" in repr(f) or not math.isfinite(f)) for f in floats[:n])
    else:
        assert got.equals(want)


def test_quarantine_of_rows_without_columns() -> None:
    """Posted ``{}`` events: each is quarantined with its raw row ``{}`` (pandas writes no lines for them)."""
    df = _frame([{}, {}])
    checked = check_events(df)
    q = quarantine_rows("events", "api", df, checked, ~checked.ok, datetime.now(UTC))
    assert q["raw"].to_pylist() == ["{}", "{}"]
    assert q["field"].to_pylist() == ["event_id", "event_id"]


def test_live_batch_is_cheap() -> None:
    """One live event checks and stores in a few milliseconds (the column-wise path takes ~16)."""
    import time

    row = {
        "event_id": "e1",
        "occurred_at": "2024-05-01T10:00:00Z",
        "type": "product_view",
        "channel": "web",
        "anonymous_id": "a1",
        "properties": {"product_id": "p1", "price": 9.5, "colour": "red"},
    }
    df = _frame([row])
    best = math.inf
    for _ in range(20):
        started = time.perf_counter()
        checked = check_events(df)
        stored_rows("events", checked, checked.ok, "api", datetime.now(UTC))
        best = min(best, time.perf_counter() - started)
    assert best < 0.01
    assert np.asarray(checked.ok).all()
