"""The vectorised validators agree with the contract's pydantic models, row by row, on generated rows:
same verdict, the same field blamed, and the same stored values for accepted rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contract.normalize import JUNK_VALUES, normalize_email, normalize_phone, sha256_hex
from contract.schemas import Channel, CustomerRecord, Decision, Event, EventType, Transaction
from events.transactions import check_transactions
from events.validate import check_decisions, check_events, check_records

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROPS = ("product_id", "price", "quantity", "revenue", "color")
TX_FIELDS = set(Transaction.model_fields)

# --- value strategies ------------------------------------------------------------------------------------

TZS = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
)
AWARE = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1), timezones=TZS)
NAIVE = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1))
TIMES = st.one_of(
    st.none(),
    AWARE.map(lambda d: d.isoformat()),
    AWARE.map(lambda d: d.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
    AWARE,
    NAIVE.map(lambda d: d.isoformat()),
    st.integers(946_684_800, 1_900_000_000),  # epoch seconds
    st.integers(946_684_800_000, 1_900_000_000_000),  # epoch milliseconds
    st.sampled_from(["", "yesterday", "2024-13-45T99:00:00Z"]),
)
WORD = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12)
IDENT = st.one_of(
    st.none(),
    WORD,
    st.sampled_from(sorted(JUNK_VALUES)).flatmap(
        lambda j: st.sampled_from([j, j.upper(), f"  {j}\t", f"\x1c{j}"])
    ),
    st.just("x" * 257),
)
SHA = st.one_of(
    st.none(), st.just(""), st.just(sha256_hex("a")), st.just(sha256_hex("a").upper()), st.just("abc")
)
EMAIL = st.one_of(st.none(), st.sampled_from(["Ann@Example.com ", "bad", "a@b", "x@y.z", "", " @x.y"]))
PHONE = st.one_of(
    st.none(),
    st.sampled_from(
        ["+33 6 12 34 56 78", "0044 20 7946 0958", "123", "", "(555) 010-9999", "020 7946 0958", "7946 0958"]
    ),
)
PHONE_REGION = st.sampled_from([None, "GB"])
NUMBER = st.one_of(st.none(), st.floats(-5, 500, allow_nan=False), st.integers(-3, 50), st.just("abc"))
QUANTITY = st.one_of(st.none(), st.integers(-2, 6), st.sampled_from([2.0, 2.5, "x"]))
CONSENT = st.one_of(
    st.none(),
    st.sampled_from(
        [
            {},
            {"marketing": True},
            {"analytics": "yes", "advertising": 0},
            {"bogus": True},
            {"marketing": "maybe"},
            {"marketing": None},
        ]
    ),
)


def _event_row() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "event_id": st.one_of(st.none(), WORD, st.just("e" * 129)),
            "occurred_at": TIMES,
            "type": st.one_of(st.none(), st.sampled_from([*EventType, "Purchase", "unknown"]).map(str)),
            "channel": st.one_of(st.none(), st.sampled_from([*Channel, "fax"]).map(str)),
            "anonymous_id": IDENT,
            "user_id": IDENT,
            "device_id": st.one_of(st.none(), WORD),
            "loyalty_id": st.one_of(st.none(), IDENT),
            "email_sha256": SHA,
            "phone_sha256": SHA,
            "email": EMAIL,
            "phone": PHONE,
            "ip": st.one_of(st.none(), st.just("10.0.0.1"), st.just("1" * 65)),
            "product_id": st.one_of(st.none(), WORD),
            "price": NUMBER,
            "quantity": QUANTITY,
            "revenue": NUMBER,
            "consent": CONSENT,
            "color": st.one_of(st.none(), WORD),
        }
    )


# --- the oracle --------------------------------------------------------------------------------------------


def _blamed(exc: ValidationError) -> set[str]:
    """The fields pydantic names (model-level errors carry "field: reason" in the message)."""
    out = set()
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        if not loc:
            out.add(err["msg"].removeprefix("Value error, ").split(":", 1)[0])
        else:
            out.add(".".join(loc[:2]) if loc[0] == "properties" else loc[0])
    return out


def _verdict(
    model: type[BaseModel], data: dict[str, Any], context: dict[str, Any] | None = None
) -> tuple[BaseModel | None, set[str]]:
    try:
        return model.model_validate(data, context=context), set()
    except ValidationError as exc:
        return None, _blamed(exc)


def _event_input(row: dict[str, Any], nested: bool) -> dict[str, Any]:
    data = {k: v for k, v in row.items() if v is not None}
    props = {k: data.pop(k) for k in (*PROPS, "consent") if k in data}
    if props:
        data["properties"] = props
    return data


def _frame_rows(rows: list[dict[str, Any]], nested: bool) -> pd.DataFrame:
    if not nested:
        return pd.DataFrame(rows)
    out = []
    for r in rows:
        r = dict(r)
        props = {k: r.pop(k) for k in PROPS if r.get(k) is not None}
        out.append({**r, "properties": props})
    return pd.DataFrame(out)


def _assert_agree(
    checked, expected: list[tuple[BaseModel | None, set[str]]], rows: list[dict[str, Any]]
) -> None:
    for i, (model, fields) in enumerate(expected):
        got = checked.field[i]
        if model is None:
            assert got is not None, f"row {i} accepted, pydantic rejects it on {fields}: {rows[i]}"
            assert got in fields, (
                f"row {i}: blamed {got!r} ({checked.reason[i]}), pydantic blames {fields}: {rows[i]}"
            )
        else:
            assert got is None, (
                f"row {i} rejected on {got!r} ({checked.reason[i]}), pydantic accepts: {rows[i]}"
            )


@SETTINGS
@given(rows=st.lists(_event_row(), min_size=1, max_size=12), nested=st.booleans(), region=PHONE_REGION)
def test_events_agree_with_pydantic(rows: list[dict[str, Any]], nested: bool, region: str | None) -> None:
    context = {"phone_region": region}
    expected = [_verdict(Event, _event_input(r, nested), context) for r in rows]
    checked = check_events(_frame_rows(rows, nested), tz=None, phone_region=region)
    _assert_agree(checked, expected, rows)
    t = checked.table.to_pylist()
    for i, (model, _) in enumerate(expected):
        if model is not None:
            assert isinstance(model, Event)
            assert t[i]["occurred_at"] == model.occurred_at.replace(microsecond=model.occurred_at.microsecond)
            assert t[i]["email_sha256"] == model.email_sha256
            assert t[i]["phone_sha256"] == model.phone_sha256
            for k in ("price", "revenue", "quantity"):
                want = getattr(model.properties, k)
                assert (t[i][k] is None) == (want is None) and (
                    want is None or t[i][k] == pytest.approx(want)
                )


def _record_row() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "source": st.one_of(st.none(), st.just(""), st.just("crm")),
            "record_id": st.one_of(st.none(), st.just(""), WORD),
            "first_name": st.one_of(st.none(), WORD),
            "email": st.one_of(EMAIL, st.sampled_from(["N/A", "null", " unknown "])),
            "phone": PHONE,
            "date_of_birth": st.one_of(
                st.none(),
                st.just("1990-01-05"),
                NAIVE,
                AWARE,
                st.just("someday"),
                st.sampled_from(["", "  "]),
            ),
            "user_id": IDENT,
            "national_id": st.one_of(st.none(), WORD, st.integers(0, 10**9)),
        }
    )


@SETTINGS
@given(rows=st.lists(_record_row(), min_size=1, max_size=12), region=PHONE_REGION)
def test_records_agree_with_pydantic(rows: list[dict[str, Any]], region: str | None) -> None:
    def oracle(r: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in r.items() if v is not None and k != "national_id"}
        data.setdefault("source", "file")
        if r["national_id"] is not None:
            data["extra_ids"] = {"national_id": str(r["national_id"])}
        return data

    expected = [_verdict(CustomerRecord, oracle(r)) for r in rows]
    checked = check_records(pd.DataFrame(rows), source="file", phone_region=region)
    _assert_agree(checked, expected, rows)
    t = checked.table.to_pylist()
    for i, (model, _) in enumerate(expected):
        if model is not None:
            assert isinstance(model, CustomerRecord)
            assert t[i]["email"] == model.email
            assert t[i]["email_sha256"] == (sha256_hex(model.email) if model.email else None)
            if model.phone and model.phone.strip():
                assert t[i]["phone"] == normalize_phone(model.phone, region)
            assert t[i]["date_of_birth"] == (model.date_of_birth.date() if model.date_of_birth else None)


def _transaction_row() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "customer_id": IDENT,
            "occurred_at": TIMES,
            "amount": NUMBER,
            "unit_price": NUMBER,
            "order_id": st.one_of(st.none(), WORD),
            "product_id": st.one_of(st.none(), WORD),
            "quantity": QUANTITY,
            "channel": st.one_of(st.none(), st.sampled_from(["web", "store", "fax"])),
            "loyalty_id": st.one_of(st.none(), IDENT),
        }
    )


def _transaction_verdict(r: dict[str, Any]) -> tuple[BaseModel | None, set[str]]:
    data = {k: v for k, v in r.items() if v is not None}
    tx, fields = _verdict(Transaction, data)
    if tx is None:
        return None, fields
    assert isinstance(tx, Transaction)
    props = {k: data[k] for k in ("order_id", "product_id", "quantity") if k in data}
    if tx.quantity is not None and tx.quantity < 0:  # a return line's event carries the units it returns
        props["quantity"] = -tx.quantity
    ev = {k: data[k] for k in data if k not in TX_FIELDS and k != "channel"}
    ev.update(
        event_id="txn",
        occurred_at=data["occurred_at"],
        type="purchase",
        channel=data.get("channel", "store"),
        user_id=data["customer_id"],
        properties={**props, "revenue": abs(tx.amount)},
    )
    model, fields = _verdict(Event, ev)
    renamed = {"user_id": "customer_id", "properties.revenue": "amount"}
    return model, {renamed.get(f, f.removeprefix("properties.")) for f in fields}


@SETTINGS
@given(rows=st.lists(_transaction_row(), min_size=1, max_size=12))
def test_transactions_agree_with_pydantic(rows: list[dict[str, Any]]) -> None:
    expected = [_transaction_verdict(r) for r in rows]
    checked = check_transactions(pd.DataFrame(rows), tz=None)
    _assert_agree(checked, expected, rows)


def _decision_row() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "decision_id": st.one_of(st.none(), st.just(""), WORD),
            "customer_id": st.one_of(st.none(), st.just(""), WORD),
            "occurred_at": TIMES,
            "action": st.one_of(st.none(), st.just(""), st.sampled_from(["offer_a", "none"])),
            "propensity": st.one_of(st.none(), st.sampled_from([0, 0.0, 1e-9, 0.5, 1, 1.0000001, -0.1, "x"])),
            "reward": NUMBER,
            "segment": st.one_of(st.none(), WORD),
        }
    )


@SETTINGS
@given(rows=st.lists(_decision_row(), min_size=1, max_size=12))
def test_decisions_agree_with_pydantic(rows: list[dict[str, Any]]) -> None:
    expected = [_verdict(Decision, {k: v for k, v in r.items() if v is not None}) for r in rows]
    checked = check_decisions(pd.DataFrame(rows), tz=None)
    _assert_agree(checked, expected, rows)


def test_naive_timestamps_follow_tz() -> None:
    row = {
        "event_id": "e",
        "occurred_at": "2024-05-01T10:00:00",
        "type": "page_view",
        "channel": "web",
        "anonymous_id": "a",
    }
    assert check_events(pd.DataFrame([row]), tz=None).field[0] == "occurred_at"
    paris = check_events(pd.DataFrame([row]), tz="Europe/Paris")
    assert paris.ok.all()
    assert paris.table["occurred_at"][0].as_py() == dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)


def test_raw_email_is_hashed_like_the_scalar_rule() -> None:
    row = {
        "event_id": "e",
        "occurred_at": "2024-05-01T10:00:00Z",
        "type": "page_view",
        "channel": "web",
        "email": " Ann@Example.COM ",
    }
    checked = check_events(pd.DataFrame([row]))
    assert checked.ok.all()
    assert checked.table["email_sha256"][0].as_py() == sha256_hex(normalize_email(row["email"]))
    assert "email" not in checked.table.column_names


def test_first_failure_blames_one_field_per_row() -> None:
    rows = pd.DataFrame([{"event_id": "", "occurred_at": None, "type": "nope", "channel": "web"}])
    checked = check_events(rows)
    assert checked.field.tolist() == ["event_id"]
    assert np.asarray(checked.ok).tolist() == [False]
