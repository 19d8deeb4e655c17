"""Importers end to end on tmp workspaces: formats x timestamp forms, mappings, quarantine, idempotence."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events
from contract.errors import ContractError
from contract.normalize import sha256_hex
from contract.workspace import Workspace
from events import import_file, import_frame
from events.readers import read_frame

TIMESTAMPS = {
    "iso_offset": "2024-05-01T12:00:00+02:00",
    "iso_z": "2024-05-01T10:00:00Z",
    "naive_iso": "2024-05-01T10:00:00",
    "yyyymmdd": "20240501",
    "epoch_s": "1714557600",
    "epoch_ms": "1714557600000",
}
EXPECTED = {
    "iso_offset": "2024-05-01T10:00:00+00:00",
    "iso_z": "2024-05-01T10:00:00+00:00",
    "naive_iso": "2024-05-01T10:00:00+00:00",
    "yyyymmdd": "2024-05-01T00:00:00+00:00",
    "epoch_s": "2024-05-01T10:00:00+00:00",
    "epoch_ms": "2024-05-01T10:00:00+00:00",
}


def _events(ts: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"id": "e1", "when": ts, "type": "page_view", "channel": "web", "anonymous_id": "a1"},
            {
                "id": "e2",
                "when": ts,
                "type": "purchase",
                "channel": "web",
                "user_id": "u1",
                "revenue": 12.5,
                "email": "Ann@Example.com",
            },
            {"id": "e3", "when": ts, "type": "login", "channel": "app", "anonymous_id": "a3"},  # no user_id
        ]
    )


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.mark.parametrize("fmt", [".csv", ".jsonl", ".ndjson", ".parquet"])
@pytest.mark.parametrize("form", sorted(TIMESTAMPS))
def test_each_format_and_timestamp_form(ws: Workspace, tmp_path: Path, fmt: str, form: str) -> None:
    df = _events(TIMESTAMPS[form])
    if fmt != ".csv" and form.startswith("epoch"):
        df["when"] = df["when"].astype("int64")
    path = _write(df, tmp_path / f"shop{fmt}")
    report = import_file(ws, "events", path, mapping={"event_id": "id", "occurred_at": "when"})
    assert (report.rows, report.accepted, report.quarantined, report.duplicates) == (3, 2, 1, 0)
    assert report.reasons == {"user_id: required for login and signup events": 1}
    stored = ws.read("events").to_pandas().sort_values("event_id")
    assert {t.isoformat() for t in stored["occurred_at"]} == {EXPECTED[form]}
    assert set(stored["source"]) == {"shop"}
    assert "email" not in stored.columns
    assert stored["email_sha256"].iloc[1] == sha256_hex("ann@example.com")
    assert json.loads(stored["properties"].iloc[1]) == {"revenue": 12.5}
    q = ws.read("quarantine").to_pandas()
    assert q["field"].tolist() == ["user_id"] and q["row_index"].tolist() == [2]
    assert json.loads(q["raw"].iloc[0])["id"] == "e3"


def test_nested_and_flat_properties(ws: Workspace) -> None:
    df = pd.DataFrame(
        [
            {
                "event_id": "n",
                "occurred_at": "2024-01-01T00:00:00Z",
                "type": "add_to_cart",
                "channel": "web",
                "device_id": "d",
                "properties": {"product_id": "p1", "quantity": 2, "size": "M"},
            },
            {
                "event_id": "f",
                "occurred_at": "2024-01-01T00:00:00Z",
                "type": "add_to_cart",
                "channel": "web",
                "device_id": "d",
                "product_id": "p2",
                "quantity": 3,
                "colour": "red",
            },
        ]
    )
    assert import_frame(ws, "events", df, source="t").accepted == 2
    stored = ws.read("events").to_pandas().set_index("event_id")
    assert stored.loc["n", "product_id"] == "p1" and stored.loc["f", "quantity"] == 3
    assert json.loads(stored.loc["n", "properties"]) == {"product_id": "p1", "quantity": 2, "size": "M"}
    assert json.loads(stored.loc["f", "properties"]) == {"product_id": "p2", "quantity": 3, "colour": "red"}


def test_reimport_is_idempotent_and_in_file_duplicates_count(ws: Workspace, tmp_path: Path) -> None:
    df = pd.concat([_events(TIMESTAMPS["iso_z"]), _events(TIMESTAMPS["iso_z"]).iloc[:1]], ignore_index=True)
    path = _write(df, tmp_path / "e.csv")
    first = import_file(ws, "events", path, mapping={"event_id": "id", "occurred_at": "when"})
    assert (first.accepted, first.duplicates, first.quarantined) == (2, 1, 1)
    again = import_file(ws, "events", path, mapping={"event_id": "id", "occurred_at": "when"})
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 3, 1)
    assert ws.count("events") == 2 and ws.count("quarantine") == 1


def test_strict_writes_nothing(ws: Workspace) -> None:
    df = _events(TIMESTAMPS["iso_z"]).rename(columns={"id": "event_id", "when": "occurred_at"})
    report = import_frame(ws, "events", df, source="s", strict=True)
    assert not report.written and not report.ok
    assert ws.tables() == []


def test_records_keep_extra_ids_and_normalise(ws: Workspace, tmp_path: Path) -> None:
    df = pd.DataFrame(
        [
            {
                "customer_number": "C1",
                "email": " Ann@Example.COM ",
                "phone": "0044 20 7946 0958",
                "national_id": "X9",
                "date_of_birth": "19900105",
                "user_id": "null",
            },
            {
                "customer_number": "C2",
                "email": "broken",
                "phone": None,
                "national_id": None,
                "date_of_birth": None,
                "user_id": None,
            },
        ]
    )
    path = _write(df, tmp_path / "crm.csv")
    report = import_file(ws, "records", path, mapping={"record_id": "customer_number"})
    assert (report.accepted, report.quarantined) == (1, 1)
    assert report.reasons == {"email: not a valid email address": 1}
    rec = ws.read("records").to_pylist()[0]
    assert rec["source"] == "crm" and rec["record_id"] == "C1"
    assert rec["email"] == "ann@example.com" and rec["email_sha256"] == sha256_hex("ann@example.com")
    assert rec["phone"] == "+442079460958" and rec["phone_sha256"] == sha256_hex("+442079460958")
    assert json.loads(rec["extra_ids"]) == {"national_id": "X9"}
    assert str(rec["date_of_birth"]) == "1990-01-05" and rec["user_id"] is None
    assert import_file(ws, "records", path, mapping={"record_id": "customer_number"}).duplicates == 1


def test_transactions_become_idempotent_purchases(ws: Workspace, tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c3"],
            "occurred_at": ["2024-03-01", "2024-03-01", "2024-03-02T10:00:00+01:00", "2024-03-03"],
            "amount": [20.0, 5.0, -7.5, 9.0],
            "order_id": ["o1", "o1", None, None],
            "product_id": ["p1", "p2", "p3", None],
            "store": ["Paris", "Paris", "Lyon", "Nice"],
        }
    )
    path = _write(df, tmp_path / "till.parquet")
    report = import_file(ws, "transactions", path)
    assert report.accepted == 4
    ev = ws.read("events").to_pandas().set_index("event_id")
    assert {"txn:o1:p1", "txn:o1:p2"} <= set(ev.index)
    assert set(ev["type"]) == {"purchase"} and set(ev["channel"]) == {"store"}
    assert ev.loc["txn:o1:p1", "user_id"] == "c1" and ev.loc["txn:o1:p1", "revenue"] == 20.0
    assert json.loads(ev.loc["txn:o1:p2", "properties"])["store"] == "Paris"
    assert (ev["revenue"] < 0).sum() == 1  # a return
    assert import_file(ws, "transactions", path).duplicates == 4


def test_a_till_export_keeps_every_line_and_its_returns(ws: Workspace, tmp_path: Path) -> None:
    """Online-Retail-shaped lines: a product scanned twice in one invoice, a cancellation with negative
    quantity, customer numbers written as floats, headers in another case than the mapping."""
    df = pd.DataFrame(
        {
            "Invoice": ["536365", "536365", "536365", "C536379"],
            "StockCode": ["85123A", "85123A", "71053", "85123A"],
            "Quantity": ["6", "2", "6", "-1"],
            "InvoiceDate": ["2010-12-01T08:26:00", "2010-12-01T08:26:00", "2010-12-01T08:26:00",
                            "2010-12-01T09:41:00"],
            "LineTotal": ["15.30", "5.10", "20.34", "-2.55"],
            "Customer ID": ["17850.0", "17850.0", "17850.0", "17850.0"],
        }
    )  # fmt: skip
    path = _write(df, tmp_path / "retail.csv")
    mapping = {
        "customer_id": "customer id",  # case differs from the header
        "occurred_at": "InvoiceDate",
        "amount": "linetotal",
        "order_id": "Invoice",
        "product_id": "StockCode",
    }
    report = import_file(ws, "transactions", path, mapping=mapping)
    assert (report.accepted, report.duplicates, report.quarantined) == (4, 0, 0)
    ev = ws.read("events").to_pandas().set_index("event_id")
    assert sorted(ev.index) == ["txn:536365:71053", "txn:536365:85123A", "txn:536365:85123A:2",
                                "txn:C536379:85123A"]  # fmt: skip
    assert set(ev["user_id"]) == {"17850"}  # as the same file in Parquet would give
    ret = ev.loc["txn:C536379:85123A"]
    assert ret["revenue"] == -2.55 and json.loads(ret["properties"])["quantity"] == 1
    assert import_file(ws, "transactions", path, mapping=mapping).duplicates == 4


def test_a_month_first_till_export_imports_whole(ws: Workspace, tmp_path: Path) -> None:
    """The classic UCI Online Retail CSV: ``12/1/2010 8:26`` dates (before, every row was quarantined) and
    Quantity x UnitPrice instead of an amount, cancellations as negative quantities on "C" invoices."""
    df = pd.DataFrame(
        {
            "InvoiceNo": ["536365", "536365", "536366", "C536379"],
            "StockCode": ["85123A", "71053", "22633", "85123A"],
            "Quantity": [6, 6, 2, -1],
            "InvoiceDate": ["12/1/2010 8:26", "12/1/2010 8:26", "12/1/2010 8:28", "12/13/2010 17:02"],
            "UnitPrice": [2.55, 3.39, 1.85, 2.55],
            "CustomerID": [17850.0, 17850.0, 17850.0, 13047.0],
        }
    )
    path = _write(df, tmp_path / "online_retail.csv")
    mapping = {"customer_id": "CustomerID", "occurred_at": "InvoiceDate", "unit_price": "UnitPrice",
               "quantity": "Quantity", "order_id": "InvoiceNo", "product_id": "StockCode"}  # fmt: skip
    report = import_file(ws, "transactions", path, mapping=mapping, tz="Europe/London")
    assert (report.accepted, report.quarantined) == (4, 0)
    ev = ws.read("events").to_pandas().set_index("event_id")
    assert str(ev.loc["txn:C536379:85123A", "occurred_at"]) == "2010-12-13 17:02:00+00:00"
    assert ev["revenue"].round(2).to_dict() == {"txn:536365:85123A": 15.3, "txn:536365:71053": 20.34,
                                                "txn:536366:22633": 3.7, "txn:C536379:85123A": -2.55}  # fmt: skip
    assert json.loads(ev.loc["txn:C536379:85123A", "properties"])["quantity"] == 1
    none = pd.DataFrame({"customer_id": ["c1"], "occurred_at": ["2024-01-01"], "quantity": [2]})
    assert import_frame(ws, "transactions", none, source="s").reasons == {
        "amount: required (or unit_price, times quantity)": 1
    }
    dmy = pd.DataFrame(
        {"customer_id": ["c1", "c2"], "occurred_at": ["01/02/2024", "03/04/2024"], "amount": [1, 2]}
    )
    assert import_frame(ws, "transactions", dmy, source="s").quarantined == 2  # ambiguous: not guessed
    fixed = import_frame(ws, "transactions", dmy, source="s", date_format="%d/%m/%Y")
    assert (fixed.accepted, fixed.quarantined) == (2, 0)
    with pytest.raises(ContractError, match="date_format"):
        import_frame(ws, "transactions", dmy, source="s", date_format="dd/mm/yyyy")


def test_record_dates_of_birth_day_first(ws: Workspace) -> None:
    df = pd.DataFrame({"record_id": ["r1", "r2"], "date_of_birth": ["31/12/1980", "02/03/1975"]})
    assert import_frame(ws, "records", df, source="crm").accepted == 2
    assert [str(d) for d in ws.read("records")["date_of_birth"].to_pylist()] == [
        "1980-12-31",
        "1975-03-02",
    ]


def test_returned_units_need_a_return_line(ws: Workspace) -> None:
    df = pd.DataFrame(
        {
            "customer_id": ["c1", "c1"],
            "occurred_at": ["2024-03-01", "2024-03-02"],
            "amount": [5.0, 3.0],
            "quantity": [-1, 0],
        }
    )
    report = import_frame(ws, "transactions", df, source="till")
    assert report.accepted == 0
    assert report.reasons == {
        "quantity: negative (units returned) only on a return line (amount <= 0)": 1,
        "quantity: must not be 0": 1,
    }


def test_decisions_keep_context(ws: Workspace) -> None:
    df = pd.DataFrame(
        {
            "decision_id": ["d1", "d2"],
            "customer_id": ["c1", "c2"],
            "occurred_at": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"],
            "action": ["offer_a", "offer_b"],
            "propensity": [0.25, 0.0],
            "reward": [1, 0],
            "segment": ["gold", "silver"],
        }
    )
    report = import_frame(ws, "decisions", df, source="nba")
    assert (report.accepted, report.reasons) == (1, {"propensity: must be > 0": 1})
    stored = ws.read("decisions").to_pylist()[0]
    assert stored["segment"] == "gold" and stored["propensity"] == 0.25


def test_bad_inputs_name_the_problem(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="--map"):
        import_frame(ws, "events", _events("x"), source="s", mapping={"event_id": "nope"})
    with pytest.raises(ContractError, match="tz"):
        import_frame(ws, "events", _events("x"), source="s", tz="Mars/Base")
    with pytest.raises(ContractError, match="unsupported file type"):
        import_file(ws, "events", tmp_path / "e.xlsx")


def test_public_api() -> None:
    assert sorted(events.__all__) == ["ImportReport", "KINDS", "import_file", "import_frame"]


ROW = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from(["a", "b", "c", "d", "", None]),
        "occurred_at": st.sampled_from(["2024-01-01T00:00:00Z", "20240101", "nope", None]),
        "type": st.sampled_from(["page_view", "login", "purchase", "bogus"]),
        "channel": st.sampled_from(["web", "app"]),
        "anonymous_id": st.sampled_from(["x1", "null", None]),
        "revenue": st.sampled_from([None, 3.0, -1.0]),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, max_size=15))
def test_conservation_and_idempotence(tmp_path_factory: pytest.TempPathFactory, rows: list[dict]) -> None:
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    df = pd.DataFrame(rows, columns=["event_id", "occurred_at", "type", "channel", "anonymous_id", "revenue"])
    first = import_frame(ws, "events", df, source="gen")
    assert first.accepted + first.quarantined + first.duplicates == len(rows)
    assert ws.count("events") == first.accepted
    again = import_frame(ws, "events", df, source="gen")
    assert again.accepted == 0 and again.duplicates == first.accepted + first.duplicates
    assert again.quarantined == first.quarantined
    assert ws.count("events") == first.accepted


def test_a_spreadsheet_export_reads_as_written(
    ws: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A European spreadsheet export: ``;`` delimiter, decimal commas, Windows-1252 text, day-first dates."""
    path = tmp_path / "ventes.csv"
    path.write_bytes(
        b"Facture;Article;Quantite;Date;PrixUnitaire;Client\r\n"
        b"536365;C\xe9r\xe8s \xa3 bougie;6;01/12/2010 08:26;2,55;17850\r\n"
        b"536366;Sac;2;13/12/2010 09:00;1.234,50;17851\r\n"
    )
    mapping = {"order_id": "Facture", "quantity": "Quantite", "occurred_at": "Date", "unit_price": "PrixUnitaire",
               "customer_id": "Client"}  # fmt: skip
    with caplog.at_level("WARNING"):
        report = import_file(ws, "transactions", path, mapping=mapping)
    assert (report.accepted, report.quarantined) == (2, 0) and "read as cp1252" in caplog.text
    ev = ws.read("events").to_pandas().set_index("event_id")
    assert ev["revenue"].round(2).to_dict() == {"txn:536365": 15.3, "txn:536366": 2469.0}
    assert json.loads(ev.loc["txn:536365", "properties"])["Article"] == "Cérès £ bougie"
    assert str(ev.loc["txn:536366", "occurred_at"]) == "2010-12-13 09:00:00+00:00"


def test_a_comma_file_with_semicolons_in_text_stays_comma_delimited(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('id,note,amount\n1,"a; b; c",2.5\n2,"d; e",3\n', encoding="utf-8")
    assert read_frame(path).to_dict("records") == [
        {"id": "1", "note": "a; b; c", "amount": "2.5"},
        {"id": "2", "note": "d; e", "amount": "3"},
    ]
