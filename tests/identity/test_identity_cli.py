"""`cxi identity resolve | lookup` over a tiny workspace."""

from __future__ import annotations

from identity_tables import events_table
from typer.testing import CliRunner

from contract import Workspace
from contract.normalize import sha256_hex
from cxi.commands.identity import app

runner = CliRunner()


def test_resolve_then_lookup(ws: Workspace) -> None:
    ws.replace(
        "events",
        events_table(
            [
                {"anonymous_id": "a1"},
                {
                    "anonymous_id": "a1",
                    "user_id": "u1",
                    "email_sha256": sha256_hex("ada@example.org"),
                    "type": "login",
                },
            ]
        ),
    )
    out = runner.invoke(app, ["resolve", "--workspace", str(ws.root)])
    assert out.exit_code == 0, out.output
    assert "customers" in out.output and "identifiers" in out.output
    out = runner.invoke(app, ["lookup", "email", "Ada@Example.org", "--workspace", str(ws.root)])
    assert out.exit_code == 0, out.output
    assert "u1" in out.output and "a1" in out.output
    out = runner.invoke(app, ["lookup", "user_id", "nobody", "-w", str(ws.root)])
    assert out.exit_code == 1 and "no customer" in out.output


def test_resolve_without_events_fails_clearly(ws: Workspace) -> None:
    out = runner.invoke(app, ["resolve", "--workspace", str(ws.root)])
    assert out.exit_code == 1 and "events" in out.output
