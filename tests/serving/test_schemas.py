"""Request validation: exactly one identifier, raw PII hashed, every error names its field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract.normalize import sha256_hex
from serving.schemas import IDENTIFIER_FIELDS, ChurnScoreRequest, describe_validation_error


def _error(body: dict) -> tuple[list[str], str]:
    with pytest.raises(ValidationError) as info:
        ChurnScoreRequest.model_validate(body)
    described = describe_validation_error(info.value)
    return [d.field for d in described.detail], described.error


@pytest.mark.parametrize("field", [f for f in IDENTIFIER_FIELDS if f not in {"email", "phone"}])
def test_plain_identifiers_pass_through(field: str) -> None:
    value = "a" * 64 if field.endswith("_sha256") else "id-42"
    assert ChurnScoreRequest.model_validate({field: value}).identifier() == (field, value)


def test_raw_email_and_phone_are_normalised_and_hashed() -> None:
    assert ChurnScoreRequest(email="  Ada@Example.COM ").identifier() == (
        "email_sha256",
        sha256_hex("ada@example.com"),
    )
    assert ChurnScoreRequest(phone="0044 20 7946 0000").identifier() == (
        "phone_sha256",
        sha256_hex("+442079460000"),
    )


def test_raw_phone_without_country_code_is_read_in_the_phone_region() -> None:
    request = ChurnScoreRequest(phone="020 7946 0000")
    assert request.identifier() == ("phone_sha256", sha256_hex("02079460000"))
    assert request.identifier("GB") == ("phone_sha256", sha256_hex("+442079460000"))
    assert ChurnScoreRequest(phone="+44 20 7946 0000").identifier("GB") == request.identifier("GB")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "identifier", "got none"),
        ({"user_id": "u1", "anonymous_id": "a1"}, "identifier", "got user_id, anonymous_id"),
        ({"custmer_id": "c1"}, "custmer_id", "Extra inputs"),
        ({"customer_id": ""}, "customer_id", "at least 1 character"),
        ({"user_id": "null"}, "user_id", "placeholder"),
        ({"email": "not-an-email"}, "email", "not a valid email"),
        ({"email_sha256": "Z" * 64}, "email_sha256", "SHA-256"),
        ({"phone": "phone: n/a"}, "phone", "not a valid phone"),
        ({"customer_id": 12}, "customer_id", "string"),
    ],
)
def test_errors_name_the_field(body: dict, field: str, reason: str) -> None:
    fields, message = _error(body)
    assert field in fields
    assert message.startswith(f"{field}: ") or f"; {field}: " in message
    assert reason in message
