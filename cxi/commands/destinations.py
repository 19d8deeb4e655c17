"""`cxi destinations list|retry|test`: webhook destinations, their outbox and dead letters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cxi.commands.options import WorkspaceOpt, cli_errors, open_workspace

app = typer.Typer(
    no_args_is_help=True, help="Webhook destinations: delivery counts, dead letters, test pings."
)
console = Console()
STATES = ("pending", "delivered", "dead", "suppressed")


def _counts_table(title: str, destinations: list, counts: dict[str, dict[str, int]]) -> Table:
    table = Table(title=title)
    for col in ("destination", "url", "segments", "consent"):
        table.add_column(col)
    for s in STATES:
        table.add_column(s, justify="right", style="red" if s == "dead" else None)
    for d in destinations:
        c = counts.get(d.name, {})
        segs = "*" if d.segments == "*" else ", ".join(d.segments)
        name = d.name if d.enabled else f"{d.name} (disabled)"
        table.add_row(name, d.url, segs, d.consent_purpose.value, *(str(c.get(s, 0)) for s in STATES))
    for name in sorted(set(counts) - {d.name for d in destinations}):
        table.add_row(
            f"{name} (not configured)", "-", "-", "-", *(str(counts[name].get(s, 0)) for s in STATES)
        )
    return table


@app.command("list")
def list_destinations(workspace: WorkspaceOpt = None) -> None:
    """Configured destinations and their deliveries: pending, delivered, dead (letters) and suppressed."""
    from activation.config import destinations_from_settings, destinations_path
    from activation.outbox import Outbox

    settings, ws = open_workspace(workspace)
    with cli_errors(console, "reading destinations"):
        dests = destinations_from_settings(settings, check_secrets=False)
        outbox = Outbox.for_workspace(ws)
        counts = outbox.counts()
        outbox.close()
    if not dests and not counts:
        console.print(f"no destinations configured (write {destinations_path(settings)})")
        return
    console.print(_counts_table("webhook destinations", dests, counts))


@app.command()
def retry(
    name: Annotated[str | None, typer.Argument(help="Only this destination (default: all).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to keep delivering (through backoff).")] = 120.0,
    workspace: WorkspaceOpt = None,
) -> None:
    """Put dead letters back in the queue and deliver them (consent is checked again before sending)."""
    from activation.config import destinations_from_settings
    from activation.consent import WorkspaceConsent
    from activation.outbox import Outbox
    from activation.webhooks import Deliverer

    settings, ws = open_workspace(workspace)
    with cli_errors(console, "delivering dead letters"):
        dests = destinations_from_settings(settings)
        outbox = Outbox.for_workspace(ws)
        deliverer = Deliverer(
            outbox, dests, WorkspaceConsent(settings, ws), concurrency=settings.delivery_concurrency
        )
        revived = deliverer.drain_dead(name, timeout_s=timeout)
        counts = outbox.counts()
        deliverer.stop()
        outbox.close()
    shown = [d for d in dests if name is None or d.name == name]
    console.print(f"retried {revived} dead letter(s)")
    console.print(_counts_table("after retry", shown, {k: v for k, v in counts.items() if name in (None, k)}))
    if any(counts.get(d.name, {}).get("dead", 0) for d in shown):
        raise typer.Exit(1)


@app.command()
def test(
    name: Annotated[str, typer.Argument(help="Destination to ping.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Send a signed ping (no events) and show how the destination answered."""
    from activation.config import destinations_from_settings
    from activation.webhooks import ping
    from contract.errors import NotFoundError

    settings, _ = open_workspace(workspace)
    with cli_errors(console, f"pinging {name}"):
        dests = {d.name: d for d in destinations_from_settings(settings, check_secrets=False)}
        if name not in dests:
            raise NotFoundError(
                f"destination {name!r} is not configured (known: {', '.join(dests) or 'none'})"
            )
        outcome, ms = ping(dests[name])
    status = "no response" if outcome.status is None else f"HTTP {outcome.status}"
    if outcome.result == "delivered":
        console.print(f"[green]ok[/green] {name}: {status} in {ms:.1f} ms")
        return
    console.print(f"[red]failed[/red] {name}: {status} in {ms:.1f} ms ({outcome.result}): {outcome.error}")
    raise typer.Exit(1)
