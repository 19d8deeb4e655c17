"""The real BentoML server over HTTP, before any model exists: validation, readiness, errors, logging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contract import Settings
from serving import server

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROUTE = "/v1/scores/churn"


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server on an empty workspace (no identity map, no features, no champion)."""
    root = tmp_path_factory.mktemp("empty")
    settings = Settings(workspace=root / "ws", mlflow_dir=root / "mlflow")
    port = server.free_port()
    log = root / "server.log"
    proc = server.start(settings, host="127.0.0.1", port=port, log_path=log)
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(url, proc, timeout=120, path="/livez")
        yield url, log
    finally:
        server.stop(proc)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"custmer_id": "c1"}, "custmer_id"),
        ({"customer_id": ""}, "customer_id"),
        ({"email": "nope"}, "email"),
        ({}, "identifier"),
        ({"user_id": "u1", "device_id": "d1"}, "identifier"),
    ],
)
def test_invalid_body_is_422_naming_the_field(empty_server: tuple[str, Path], body: dict, field: str) -> None:
    r = httpx.post(f"{empty_server[0]}{ROUTE}", json=body, timeout=10)
    assert r.status_code == 422, r.text
    payload = r.json()
    assert payload["error"].startswith(f"{field}: ")
    assert field in [d["field"] for d in payload["detail"]]


def test_malformed_json_is_422_on_the_body(empty_server: tuple[str, Path]) -> None:
    r = httpx.post(
        f"{empty_server[0]}{ROUTE}", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"].startswith("body: Invalid JSON")


def test_live_but_not_ready_without_a_model(empty_server: tuple[str, Path]) -> None:
    url = empty_server[0]
    assert httpx.get(f"{url}/livez").status_code == 200
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 503
    r = httpx.post(f"{url}{ROUTE}", json={"customer_id": "c1"}, timeout=30)
    assert r.status_code == 503
    assert r.json()["error"].startswith("not ready: ")


def test_openapi_documents_the_request_fields(empty_server: tuple[str, Path]) -> None:
    spec = httpx.get(f"{empty_server[0]}/docs.json").json()
    assert "post" in spec["paths"][ROUTE]
    text = str(spec)
    for field in ("anonymous_id", "email_sha256", "churn_probability", "features_as_of"):
        assert field in text


def test_no_access_log_lines_by_default(empty_server: tuple[str, Path]) -> None:
    url, log = empty_server
    httpx.post(f"{url}{ROUTE}", json={"customer_id": "c1"}, timeout=30)
    assert f"path={ROUTE}" not in log.read_text()
