"""`cxi destinations list | retry | test` over a workspace whose destination is a real local receiver."""

from __future__ import annotations

from pathlib import Path

import pytest
from activation_testdata import SECRET, membership_events
from typer.testing import CliRunner

from activation.config import load_destinations
from activation.outbox import Outbox
from activation.receiver import WebhookReceiver
from activation.webhooks import Deliverer
from cxi.commands.destinations import app

runner = CliRunner()


@pytest.fixture
def ws_root(tmp_path: Path, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with one destination at the receiver and three dead letters (the receiver was down)."""
    monkeypatch.setenv("CXI_TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("COLUMNS", "200")
    root = tmp_path / "ws"
    root.mkdir()
    (root / "destinations.yaml").write_text(
        f"destinations:\n  - name: crm\n    url: {receiver.url}\n    secret_env: CXI_TEST_HOOK_SECRET\n"
        "    max_attempts: 2\n    backoff_base_s: 0.01\n    backoff_max_s: 0.02\n    timeout_s: 1\n"
    )
    dests = load_destinations(root / "destinations.yaml")
    outbox = Outbox.for_workspace(root)
    outbox.enqueue(membership_events(3), dests)
    receiver.stop()
    assert Deliverer(outbox, dests, lambda ids, p: set(ids)).flush(10)
    receiver.start()
    outbox.close()
    return root


def test_list_shows_counts_per_destination(ws_root: Path) -> None:
    out = runner.invoke(app, ["list", "-w", str(ws_root)])
    assert out.exit_code == 0, out.output
    assert "crm" in out.output and "marketing" in out.output
    row = next(line for line in out.output.splitlines() if "crm" in line)
    assert [c.strip() for c in row.split("│")[-5:-1]] == [
        "0",
        "0",
        "3",
        "0",
    ]  # pending delivered dead suppressed


def test_retry_drains_dead_letters(ws_root: Path, receiver: WebhookReceiver, monkeypatch) -> None:
    monkeypatch.setenv("CXI_CONSENT_DEFAULT_GRANTED", '["analytics", "personalization", "marketing"]')
    out = runner.invoke(app, ["retry", "crm", "-w", str(ws_root)])
    assert out.exit_code == 0, out.output
    assert "retried 3 dead letter(s)" in out.output
    assert len(receiver.keys()) == 3
    assert {r.state for r in Outbox.for_workspace(ws_root).deliveries()} == {"delivered"}


def test_retry_checks_consent_again(ws_root: Path, receiver: WebhookReceiver) -> None:
    """Marketing is denied by default until a customer gives it: nothing is sent, all suppressed."""
    out = runner.invoke(app, ["retry", "-w", str(ws_root)])
    assert out.exit_code == 0, out.output
    assert receiver.keys() == []
    assert {r.state for r in Outbox.for_workspace(ws_root).deliveries()} == {"suppressed"}


def test_ping(ws_root: Path, receiver: WebhookReceiver) -> None:
    out = runner.invoke(app, ["test", "crm", "-w", str(ws_root)])
    assert out.exit_code == 0, out.output
    assert "ok" in out.output and "HTTP 200" in out.output
    assert receiver.requests[-1].signature_ok
    out = runner.invoke(app, ["test", "nope", "-w", str(ws_root)])
    assert out.exit_code == 1 and "not configured" in out.output
    receiver.stop()
    out = runner.invoke(app, ["test", "crm", "-w", str(ws_root)])
    assert out.exit_code == 1 and "no response" in out.output


def test_list_without_destinations(tmp_path: Path) -> None:
    out = runner.invoke(app, ["list", "-w", str(tmp_path / "empty")])
    assert out.exit_code == 0 and "no destinations configured" in out.output
