"""Every rule of the contract, one valid/invalid case per field rule, checked on the pydantic model and on
the vectorised validator (`events.validate`) alike; scalar vs vectorised normalisation agree; phones read
to E.164 with a default region, and unchanged without one."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contract import normalize as nz
from contract.errors import ContractError
from contract.schemas import CustomerRecord, Decision, Event, Transaction
from events.transactions import check_transactions
from events.validate import check_decisions, check_events, check_records

H = "a" * 64
EV = {
    "event_id": "e1",
    "occurred_at": "2024-01-01T00:00:00Z",
    "type": "page_view",
    "channel": "web",
    "anonymous_id": "a",
}
REC = {"source": "crm", "record_id": "r1"}
TX = {"customer_id": "c1", "occurred_at": "2024-01-01T00:00:00Z", "amount": 10.0}
DEC = {
    "decision_id": "d1",
    "customer_id": "c1",
    "occurred_at": "2024-01-01T00:00:00Z",
    "action": "a",
    "propensity": 0.5,
    "reward": 1.0,
}

# (model, base, changes, blamed field or None when valid)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = [
    ("event", EV, {}, None),
    ("event", EV, {"event_id": None}, "event_id"),
    ("event", EV, {"event_id": ""}, "event_id"),
    ("event", EV, {"event_id": "x" * 129}, "event_id"),
    ("event", EV, {"occurred_at": None}, "occurred_at"),
    ("event", EV, {"occurred_at": "2024-01-01T00:00:00"}, "occurred_at"),
    ("event", EV, {"occurred_at": "soon"}, "occurred_at"),
    ("event", EV, {"type": "Page_View"}, "type"),
    ("event", EV, {"channel": "fax"}, "channel"),
    ("event", EV, {"anonymous_id": None}, "identifiers"),
    ("event", EV, {"anonymous_id": "N/A"}, "anonymous_id"),
    ("event", EV, {"device_id": " undefined "}, "device_id"),
    ("event", EV, {"loyalty_id": "0"}, "loyalty_id"),
    ("event", EV, {"user_id": "x" * 257}, "user_id"),
    ("event", EV, {"email_sha256": H.upper()}, "email_sha256"),
    ("event", EV, {"phone_sha256": "abc"}, "phone_sha256"),
    ("event", {**EV, "anonymous_id": None}, {"email_sha256": H}, None),
    ("event", {**EV, "anonymous_id": None}, {"email": "Ann@Example.com"}, None),
    ("event", EV, {"email": "not-an-email"}, "email"),
    ("event", EV, {"phone": "12"}, "phone"),
    ("event", EV, {"ip": "1" * 65}, "ip"),
    ("event", EV, {"user_agent": "u" * 1025}, "user_agent"),
    ("event", EV, {"type": "login"}, "user_id"),
    ("event", EV, {"type": "signup", "user_id": "u1"}, None),
    ("event", EV, {"type": "purchase"}, "properties.revenue"),
    ("event", EV, {"type": "store_purchase", "properties": {"price": 0}}, None),
    ("event", EV, {"properties": {"price": -1}}, "properties.price"),
    ("event", EV, {"properties": {"revenue": -0.01}}, "properties.revenue"),
    ("event", EV, {"properties": {"quantity": 0}}, "properties.quantity"),
    ("event", EV, {"properties": {"quantity": 1.5}}, "properties.quantity"),
    ("event", EV, {"type": "consent_update"}, "properties.consent"),
    ("event", EV, {"type": "consent_update", "properties": {"consent": {}}}, "properties.consent"),
    ("event", EV, {"type": "consent_update", "properties": {"consent": {"marketing": True}}}, None),
    ("event", EV, {"properties": {"consent": {"telepathy": True}}}, "properties.consent"),
    ("event", EV, {"properties": {"anything": [1, 2]}}, None),
    ("record", REC, {"email": " N/A "}, None),  # a placeholder: a missing address, the record stays
    ("record", REC, {}, None),
    ("record", REC, {"record_id": None}, "record_id"),
    ("record", REC, {"record_id": ""}, "record_id"),
    ("record", REC, {"source": ""}, "source"),
    ("record", REC, {"email": "nope"}, "email"),
    ("record", REC, {"email": "   "}, None),
    ("record", REC, {"date_of_birth": "someday"}, "date_of_birth"),
    ("record", REC, {"date_of_birth": "1990-01-05"}, None),
    ("transaction", TX, {}, None),
    ("transaction", TX, {"customer_id": ""}, "customer_id"),
    ("transaction", TX, {"amount": None}, "amount"),
    ("transaction", TX, {"amount": -3.0}, None),
    ("transaction", TX, {"quantity": 0}, "quantity"),
    ("transaction", TX, {"quantity": -2}, "quantity"),  # returned units on a sale line
    ("transaction", TX, {"quantity": -2, "amount": -7.5}, None),  # a return line
    ("transaction", TX, {"occurred_at": "2024-01-01"}, "occurred_at"),
    ("decision", DEC, {}, None),
    ("decision", DEC, {"decision_id": ""}, "decision_id"),
    ("decision", DEC, {"customer_id": None}, "customer_id"),
    ("decision", DEC, {"action": ""}, "action"),
    ("decision", DEC, {"propensity": 0}, "propensity"),
    ("decision", DEC, {"propensity": 1.01}, "propensity"),
    ("decision", DEC, {"propensity": 1}, None),
    ("decision", DEC, {"reward": None}, "reward"),
    ("decision", DEC, {"occurred_at": "2024-01-01 00:00"}, "occurred_at"),
]
MODELS = {"event": Event, "record": CustomerRecord, "transaction": Transaction, "decision": Decision}


def _row(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def _pydantic_fields(kind: str, row: dict[str, Any]) -> set[str]:
    try:
        MODELS[kind].model_validate(row)
    except ValidationError as exc:
        out = set()
        for e in exc.errors():
            loc = [str(x) for x in e["loc"]]
            out.add(
                ".".join(loc[:2])
                if loc and loc[0] == "properties"
                else loc[0]
                if loc
                else e["msg"].removeprefix("Value error, ").split(":", 1)[0]
            )
        return out
    return set()


@pytest.mark.parametrize(("kind", "base", "changes", "field"), CASES, ids=lambda v: str(v)[:40])
def test_pydantic_rule(kind: str, base: dict[str, Any], changes: dict[str, Any], field: str | None) -> None:
    fields = _pydantic_fields(kind, _row(base, changes))
    if (kind == "transaction" and field == "occurred_at") or field is None:
        assert fields == (set() if field is None else {"occurred_at"})
    else:
        assert field in fields


@pytest.mark.parametrize(("kind", "base", "changes", "field"), CASES, ids=lambda v: str(v)[:40])
def test_vectorised_rule(kind: str, base: dict[str, Any], changes: dict[str, Any], field: str | None) -> None:
    frame = pd.DataFrame([_row(base, changes)])
    check = {
        "event": lambda f: check_events(f, tz=None),
        "record": lambda f: check_records(f, source="crm"),
        "transaction": lambda f: check_transactions(f, tz=None),
        "decision": lambda f: check_decisions(f, tz=None),
    }[kind]
    checked = check(frame)
    assert checked.field[0] == field, checked.reason[0]


EMAILS = st.one_of(st.text(max_size=20), st.emails().map(lambda e: f"  {e.upper()} "))
PHONES = st.one_of(
    st.text(max_size=20),
    st.text("0123456789 +-()", max_size=20),
    st.sampled_from(["+44 20 7946 0958", "020 7946 0958", "0044 20 7946 0958", "(650) 253-0000", "n/a"]),
)
REGIONS = st.sampled_from([None, "GB", "US", "fr"])


@settings(max_examples=200, deadline=None)
@given(values=st.lists(EMAILS, min_size=1, max_size=20))
def test_email_normalisation_scalar_equals_vectorised(values: list[str]) -> None:
    vec = nz.normalize_email_series(pd.Series(values)).tolist()
    assert vec == [nz.normalize_email(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(PHONES, st.none()), min_size=1, max_size=20), region=REGIONS)
def test_phone_normalisation_scalar_equals_vectorised(values: list[str | None], region: str | None) -> None:
    s = pd.Series(values + values[:3], index=range(10, 10 + len(values) + len(values[:3])))  # repeats
    vec = nz.normalize_phone_series(s, region)
    assert vec.index.equals(s.index) and str(vec.dtype) == "string"
    assert vec.tolist() == [pd.NA if v is None else nz.normalize_phone(v, region) for v in s]


def _digits_only(value: str) -> str:
    """The rule before E.164 (digits and a leading '+', '00' read as '+'): what hashes without a region."""
    v = value.strip()
    digits = re.sub(r"\D", "", v)
    return ("+" + digits[2:]) if v.startswith("00") else ("+" if v.startswith("+") else "") + digits


@pytest.mark.parametrize(
    ("region", "forms"),
    [
        (
            "GB",
            ["+44 20 7946 0958", "020 7946 0958", "0044 20 7946 0958", "+44 (0)20 7946 0958", "2079460958"],
        ),
        ("US", ["+1 650-253-0000", "(650) 253-0000", "650.253.0000", "1 650 253 0000", "001 650 253 0000"]),
        ("FR", ["+33 1 23 45 67 89", "01 23 45 67 89", "0033 1 23 45 67 89"]),
    ],
)
def test_national_and_international_forms_hash_alike_with_a_region(region: str, forms: list[str]) -> None:
    e164 = phonenumbers.format_number(phonenumbers.parse(forms[0]), phonenumbers.PhoneNumberFormat.E164)
    assert {nz.normalize_phone(f, region) for f in forms} == {e164}
    assert {nz.normalize_phone(f, region.lower()) for f in forms} == {e164}
    assert nz.normalize_phone_series(pd.Series(forms), region).tolist() == [e164] * len(forms)
    assert len({nz.sha256_hex(nz.normalize_phone(f, region)) for f in forms}) == 1


def test_without_a_region_phones_keep_their_digits_only_form() -> None:
    """National numbers are not guessed at: exactly the old digits-only form, so old hashes stay."""
    assert nz.normalize_phone("020 7946 0958") == "02079460958"
    assert (
        nz.normalize_phone("+44 20 7946 0958") == nz.normalize_phone("0044 20 7946 0958") == "+442079460958"
    )
    # unreadable numbers keep the digits-only form with or without a region (and stay invalid where they were)
    for v in ["123", "n/a", "+999 1234 5678", "+44 20", "7946 0958", "  "]:
        assert nz.normalize_phone(v) == nz.normalize_phone(v, "GB") == _digits_only(v), v
    assert nz.normalize_phone("+1 650 253 0000 ext. 123") == "+16502530000123"  # extension digits kept


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(max_size=20), st.text("0123456789 -().", max_size=20)))
def test_without_a_region_numbers_without_country_code_are_unchanged(value: str) -> None:
    v = value.strip()
    if not v.startswith(("+", "00")):
        assert nz.normalize_phone(value) == _digits_only(value)


def test_international_numbers_of_every_region_keep_their_old_form() -> None:
    """libphonenumber's example number of every region and type, written internationally: its E.164 form is the
    old digits-only form (no hash changes without a region), and its national form read in its region gives
    the same E.164."""
    fmt = phonenumbers.PhoneNumberFormat
    types = [t for name, t in vars(phonenumbers.PhoneNumberType).items() if name.isupper()]
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in types:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            e164 = phonenumbers.format_number(number, fmt.E164)
            international = phonenumbers.format_number(number, fmt.INTERNATIONAL)
            assert nz.normalize_phone(international) == _digits_only(international) == e164, international
            national = phonenumbers.format_number(number, fmt.NATIONAL)
            if (
                phonenumbers.is_possible_number_with_reason(number)
                == phonenumbers.ValidationResult.IS_POSSIBLE
            ):
                assert nz.normalize_phone(national, region) == e164, (region, national)
            checked += 1
    assert checked > 1000


def test_an_unknown_phone_region_is_refused_naming_the_setting() -> None:
    for call in (
        lambda: nz.normalize_phone("020 7946 0958", "UK"),
        lambda: nz.normalize_phone_series(pd.Series(["020 7946 0958"]), "UK"),
        lambda: check_records(
            pd.DataFrame({"record_id": ["r1"], "phone": ["1"]}), source="s", phone_region="XX"
        ),
    ):
        with pytest.raises(ContractError) as err:
            call()
        assert err.value.field == "phone_region" and "ISO 3166" in err.value.reason


def test_event_model_reads_phones_in_the_context_region() -> None:
    data = {**EV, "phone": "020 7946 0958"}
    assert Event.model_validate(data).phone_sha256 == nz.sha256_hex("02079460958")
    gb = Event.model_validate(data, context={"phone_region": "GB"})
    assert gb.phone_sha256 == nz.sha256_hex("+442079460958")
    with pytest.raises(ValidationError, match="phone: not a valid phone number"):
        Event.model_validate({**EV, "phone": "12"}, context={"phone_region": "GB"})
    checked = check_events(pd.DataFrame([data]), tz=None, phone_region="GB")
    assert checked.table["phone_sha256"].to_pylist() == [gb.phone_sha256]


def test_sha256_series_with_nulls_equals_scalar() -> None:
    s = pd.Series(["a@b.co", None, "+331234567"])
    out = nz.sha256_series(s).tolist()
    assert out[0] == nz.sha256_hex("a@b.co") and pd.isna(out[1]) and out[2] == nz.sha256_hex("+331234567")


def test_sha256_series_without_nulls() -> None:
    assert nz.sha256_series(pd.Series(["a"])).tolist() == [nz.sha256_hex("a")]


def test_vectorised_hash_equals_scalar() -> None:
    from events.columns import sha256_text

    values = ["a", "é€", "", None]
    assert sha256_text(pd.Series(values)).to_pylist() == [
        nz.sha256_hex(v) if v is not None else None for v in values
    ]
