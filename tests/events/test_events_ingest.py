"""Live ingestion: body parsing, the importer's rules and quarantine, durable appends, compaction."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.errors import ContractError
from contract.normalize import sha256_hex
from contract.workspace import Workspace
from events import import_frame
from events.ingest import Ingestor, compact, parse_body
from events.log import EventLog, Overloaded
from events.validate import check_events

T = "2024-05-01T10:00:00Z"


def ev(i: object, **kw: object) -> dict:
    return {
        "event_id": f"e{i}",
        "occurred_at": T,
        "type": "page_view",
        "channel": "web",
        "anonymous_id": "a",
        **kw,
    }


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def log(ws: Workspace):  # type: ignore[no-untyped-def]
    with EventLog.open(ws) as log:
        yield log


# --- parse_body ---------------------------------------------------------------------------------------


def test_parse_body_shapes() -> None:
    one, two = ev(1), ev(2)
    assert parse_body(json.dumps(one).encode(), "application/json") == [one]
    assert parse_body(json.dumps([one, two]).encode(), "application/json; charset=utf-8") == [one, two]
    nd = f"{json.dumps(one)}\n\n{json.dumps(two)}\n".encode()
    assert parse_body(nd, "application/x-ndjson") == [one, two]
    assert parse_body(nd, "application/json") == [one, two]  # NDJSON sent as JSON is still read
    assert parse_body(nd, None) == [one, two]
    assert parse_body(b"[]", None) == []
    assert parse_body(json.dumps(one).encode(), "application/x-ndjson") == [one]


@pytest.mark.parametrize(
    ("body", "ctype", "field", "reason"),
    [
        (b"", "application/json", "body", "empty"),
        (b"  \n", None, "body", "empty"),
        (b"\xff\xfe{", None, "body", "not UTF-8"),
        (b'{"a": ', "application/json", "body", "not valid JSON"),
        (b"42", "application/json", "body", "must be a JSON object or an array"),
        (b'[{"a": 1}, 3]', "application/json", "body", "item 1 of the array"),
        (b'{"a": 1}\n{"a": \n', "application/x-ndjson", "body", "line 2: not valid JSON"),
        (b'{"a": 1}\n\n[1]\n', "application/x-ndjson", "body", "line 3: not a JSON object"),
        (b'{"a": 1}', "text/csv", "content-type", "application/json"),
    ],
)
def test_parse_body_errors(body: bytes, ctype: str | None, field: str, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_body(body, ctype)
    assert info.value.field == field and reason in info.value.reason


# --- ingest -------------------------------------------------------------------------------------------


def test_rejects_carry_index_field_reason_and_are_quarantined(ws: Workspace, log: EventLog) -> None:
    records = [
        ev(0),
        ev(1, type="login"),  # no user_id
        ev(2, occurred_at="yesterday-ish"),
        ev(3, type="purchase", user_id="u1", properties={"revenue": 5}),
    ]
    r = Ingestor(ws, log).ingest(records)
    assert r.accepted["event_id"].to_pylist() == ["e0", "e3"] and r.accepted["seq"].to_pylist() == [1, 2]
    assert [(x.index, x.field, x.event_id) for x in r.rejected] == [
        (1, "user_id", "e1"),
        (2, "occurred_at", "e2"),
    ]
    assert all(x.reason for x in r.rejected)
    q = ws.read("quarantine").to_pandas().sort_values("row_index")
    assert q["kind"].tolist() == ["events", "events"] and set(q["source"]) == {"api"}
    assert q["row_index"].tolist() == [1, 2] and q["field"].tolist() == ["user_id", "occurred_at"]
    assert q["reason"].tolist() == [x.reason for x in r.rejected]
    assert json.loads(q["raw"].iloc[0])["event_id"] == "e1"
    assert log.last_seq == 2


def test_same_rules_and_stored_form_as_the_importer(ws: Workspace, log: EventLog, tmp_path: Path) -> None:
    records = [
        ev(0, email=" Ann@Example.COM ", phone="+44 20 7946 0958"),
        ev(1, email="not-an-email"),
        ev(2, type="add_to_cart", properties={"product_id": "p1", "quantity": 2, "size": "M"}, colour="red"),
        ev(3, user_id=123),
        ev(4, occurred_at="2024-05-01T12:00:00+02:00", device_id="null"),
        ev(5, type="consent_update", properties={"consent": {"marketing": True}}),
    ]
    r = Ingestor(ws, log).ingest(records)
    other = Workspace(tmp_path / "batch")
    import_frame(other, "events", pd.DataFrame.from_records(records), source="api")
    drop = ["seq", "ingested_at"]
    live = r.accepted.drop_columns(drop).sort_by("event_id")
    batch = other.read("events").drop_columns(["ingested_at"]).sort_by("event_id")
    assert live.equals(batch)
    assert live["email_sha256"][0].as_py() == sha256_hex("ann@example.com")  # raw PII hashed, never stored
    assert "email" not in live.column_names and "phone" not in live.column_names
    q_live = ws.read("quarantine").select(["row_index", "field", "reason"]).sort_by("row_index")
    q_batch = other.read("quarantine").select(["row_index", "field", "reason"]).sort_by("row_index")
    assert q_live.equals(q_batch) and q_live.num_rows == 2


def test_replay_adds_nothing_and_says_so(ws: Workspace, log: EventLog) -> None:
    ing = Ingestor(ws, log)
    first = ing.ingest([ev(1), ev(2), ev(2)])
    assert first.accepted.num_rows == 2 and first.duplicates == ["e2"]
    again = ing.ingest([ev(1), ev(2), ev(3)])
    assert again.accepted["event_id"].to_pylist() == ["e3"] and again.duplicates == ["e1", "e2"]
    assert ing.ingest([]).accepted.num_rows == 0
    with pytest.raises(ContractError, match="event 1 is not a JSON object"):
        ing.ingest([ev(4), ["not", "an", "object"]])  # type: ignore[list-item]
    assert log.last_seq == 3


def test_compact_moves_logged_events_once(ws: Workspace, log: EventLog) -> None:
    ws.append("events", batch_imported(ws, [ev(0)]))  # e0 came in through the batch importer
    ing = Ingestor(ws, log)
    ing.ingest([ev(i) for i in range(5)])
    assert compact(ws, log) == 5 - 1  # e0 was already in the events table (imported by the batch path)
    assert compact(ws, log) == 0 and compact(ws, log, full=True) == 0
    ing.ingest([ev(i) for i in range(5, 8)])
    assert compact(ws, log) == 3
    ids = ws.read("events", columns=["event_id"])["event_id"].to_pylist()
    assert sorted(ids) == sorted(f"e{i}" for i in range(8))


def batch_imported(ws: Workspace, records: list[dict]) -> pa.Table:
    """The stored rows the batch importer makes of `records` (in a scratch workspace)."""
    other = Workspace(ws.root.parent / "seed")
    import_frame(other, "events", pd.DataFrame.from_records(records), source="seed")
    return other.read("events")


# --- property: every posted event lands in exactly one bucket ----------------------------------------

VALID = st.builds(
    lambda i, t: ev(i, type=t, user_id="u" if t == "login" else None, properties={"price": 1.0}),
    st.integers(0, 15),
    st.sampled_from(["page_view", "login", "purchase", "search"]),
)
INVALID = st.one_of(
    st.builds(lambda i: ev(i, type="nope"), st.integers(0, 15)),
    st.builds(lambda i: ev(i, occurred_at=None), st.integers(0, 15)),
    st.builds(lambda i: {"event_id": f"e{i}", "type": "page_view"}, st.integers(0, 15)),
    st.just({}),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.one_of(VALID, INVALID), max_size=12), min_size=1, max_size=3))
def test_nothing_is_lost(batches: list[list[dict]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws")
        with EventLog.open(ws) as log:
            ing = Ingestor(ws, log)
            accepted: list[str] = []
            n_duplicates = 0
            for records in batches:
                r = ing.ingest(records)
                assert r.accepted.num_rows + len(r.duplicates) + len(r.rejected) == len(records)
                assert len({x.index for x in r.rejected}) == len(r.rejected)
                accepted += r.accepted["event_id"].to_pylist()
                n_duplicates += len(r.duplicates)
                ok = [i for i in range(len(records)) if i not in {x.index for x in r.rejected}]
                assert sorted(r.accepted["event_id"].to_pylist() + r.duplicates) == sorted(
                    records[i]["event_id"] for i in ok
                )
            logged = log.read()["event_id"].to_pylist()
        assert logged == accepted and len(set(logged)) == len(logged)
        n_rejected = sum(len(b) for b in batches) - len(logged) - n_duplicates
        assert (ws.count("quarantine") > 0) == (n_rejected > 0)  # identical re-sent rejects are kept once
        assert ws.count("quarantine") <= n_rejected


def test_concurrent_calls_are_checked_together_and_answered_apart(ws: Workspace, log: EventLog) -> None:
    ing = Ingestor(ws, log)
    results: dict[int, object] = {}

    def call(k: int) -> None:
        records = [ev(f"{k}-{j}") for j in range(k % 4)] + [ev("shared"), ev(f"bad{k}", channel="fax")]
        results[k] = (records, ing.ingest(records))

    threads = [threading.Thread(target=call, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted: list[str] = []
    for records, r in results.values():  # type: ignore[misc]
        assert [(x.index, x.field, x.event_id) for x in r.rejected] == [
            (len(records) - 1, "channel", records[-1]["event_id"])
        ]
        assert r.accepted.num_rows + len(r.duplicates) == len(records) - 1
        accepted += r.accepted["event_id"].to_pylist()
    logged = log.read()["event_id"].to_pylist()
    assert sorted(logged) == sorted(accepted) and len(set(logged)) == len(logged)
    assert "eshared" in logged and sum(len(r.duplicates) for _, r in results.values()) == 15  # type: ignore[misc]
    q = ws.read("quarantine").to_pandas()
    assert len(q) == 16 and set(q["field"]) == {"channel"}
    assert {json.loads(raw)["event_id"]: i for raw, i in zip(q["raw"], q["row_index"], strict=True)} == {
        f"ebad{k}": k % 4 + 1 for k in range(16)
    }


def test_overloaded_before_validation(ws: Workspace) -> None:
    with EventLog.open(ws, max_pending=5, commit_interval_ms=300) as log:
        ing = Ingestor(ws, log)
        first = threading.Thread(target=ing.ingest, args=([ev(i) for i in range(4)],))
        first.start()
        deadline = time.monotonic() + 5
        while log.pending == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        with pytest.raises(Overloaded) as info:
            ing.ingest([ev(9), ev(10)])
        assert info.value.retry_after == log.retry_after
        first.join()
        assert log.last_seq == 4 and not ws.exists("quarantine")


def test_raw_phones_are_read_in_the_default_region_as_imports_read_them(ws: Workspace, log: EventLog) -> None:
    """A national phone posted live hashes like the same number imported with that region, and like its
    international form, so live and batch events of one person share their phone_sha256."""
    live = Ingestor(ws, log, phone_region="gb").ingest([ev(0, phone="020 7946 0958")])
    imported = check_events(pd.DataFrame([ev(1, phone="020 7946 0958")]), phone_region="GB")
    want = sha256_hex("+442079460958")  # the international form's hash
    assert live.accepted["phone_sha256"].to_pylist() == [want]
    assert imported.table["phone_sha256"].to_pylist() == [want]
    # without a region the national form keeps its digits-only hash, as before
    other = Ingestor(ws, log).ingest([ev(2, phone="020 7946 0958")])
    assert other.accepted["phone_sha256"].to_pylist() == [sha256_hex("02079460958")]
    with pytest.raises(ContractError, match="phone_region"):
        Ingestor(ws, log, phone_region="UK")
