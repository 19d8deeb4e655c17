"""Destinations YAML: valid files load, every mistake is a ContractError that names the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from activation.config import destinations_from_settings, load_destinations, parse_destinations
from contract import Settings
from contract.errors import ContractError
from contract.schemas import ConsentPurpose

GOOD = """
destinations:
  - name: crm
    url: https://crm.example.com/hooks/cxi
    secret_env: CXI_TEST_CRM_SECRET
    segments: [at_risk_high_value, lapsed_win_back]
  - name: ads
    url: http://127.0.0.1:9000/audiences
    secret: an-inline-secret-of-some-length
    ads: true
    max_attempts: 3
"""


def test_a_valid_file_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXI_TEST_CRM_SECRET", "from-the-environment-123")
    p = tmp_path / "d.yaml"
    p.write_text(GOOD)
    crm, ads = load_destinations(p)
    assert (
        crm.consent_purpose == ConsentPurpose.marketing and ads.consent_purpose == ConsentPurpose.advertising
    )
    assert crm.resolved_secret() == b"from-the-environment-123"
    assert crm.wants("lapsed_win_back") and not crm.wants("new")
    assert ads.segments == "*" and ads.wants("anything") and ads.max_attempts == 3
    assert "an-inline-secret" not in repr(ads)  # secrets stay out of logs


def test_settings_name_the_file_and_the_default_is_optional(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CXI_TEST_CRM_SECRET", "from-the-environment-123")
    assert destinations_from_settings(Settings(workspace=tmp_path / "ws")) == []
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "destinations.yaml").write_text(GOOD)
    assert [d.name for d in destinations_from_settings(Settings(workspace=tmp_path / "ws"))] == ["crm", "ads"]
    with pytest.raises(ContractError, match="destinations_file: file does not exist"):
        destinations_from_settings(
            Settings(workspace=tmp_path / "ws", destinations_file=tmp_path / "nope.yaml")
        )


def _one(**kw: object) -> dict:
    return {"destinations": [{"name": "crm", "url": "https://x.example/h", "secret": "s" * 16} | kw]}


@pytest.mark.parametrize(
    ("data", "where", "why"),
    [
        (_one(url="ftp://x.example/h"), "destinations.0(crm).url", "http:// or https://"),
        (_one(url="not a url"), "destinations.0(crm).url", "http"),
        (_one(secret=None), "destinations.0(crm)", "exactly one of `secret` or `secret_env`"),
        (_one(secret_env="CXI_X"), "destinations.0(crm)", "exactly one of `secret` or `secret_env`"),
        (_one(secret="short"), "destinations.0(crm).secret", "at least 16"),
        (_one(segments=[]), "destinations.0(crm).segments", "non-empty"),
        (_one(segments="all"), "destinations.0(crm).segments", ""),
        (_one(purpose="spam"), "destinations.0(crm).purpose", "marketing"),
        (_one(max_attempts=0), "destinations.0(crm).max_attempts", "greater than or equal to 1"),
        (_one(backoff_base_s=10, backoff_max_s=1), "destinations.0(crm)", "backoff_max_s"),
        (_one(colour="blue"), "destinations.0(crm).colour", "Extra inputs"),
        (_one(name="has space"), "destinations.0(has space).name", "pattern"),
        ({"destinations": _one()["destinations"] * 2}, "", "appears twice"),
        ({"destination": []}, "destination", "Extra inputs"),
    ],
)
def test_mistakes_name_the_field(data: dict, where: str, why: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_destinations(data, source="d.yaml")
    assert err.value.field.startswith(f"d.yaml:{where}" if where else "d.yaml"), err.value.field
    assert why in err.value.reason, err.value.reason
    assert "s" * 16 not in str(err.value)  # an inline secret never appears in an error


def test_an_unset_secret_env_is_an_error_at_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CXI_TEST_CRM_SECRET", raising=False)
    p = tmp_path / "d.yaml"
    p.write_text(GOOD)
    with pytest.raises(
        ContractError, match=r"destinations\.crm\.secret_env: environment variable is not set"
    ):
        load_destinations(p)
    assert len(load_destinations(p, check_secrets=False)) == 2  # read-only commands still work


def test_bad_yaml_is_a_contract_error(tmp_path: Path) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("destinations: [ {name: crm")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_destinations(p)
