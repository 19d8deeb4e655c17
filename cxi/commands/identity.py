"""`cxi identity resolve | lookup`: stitch identifiers into customer profiles and look them up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cxi.commands.link import link

app = typer.Typer(no_args_is_help=True, help="Resolve identifiers into persistent customer profiles.")
console = Console()
app.command("link", help="Link plain customer-record files probabilistically (writes clusters and pairs).")(
    link
)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace directory (default: CXI_WORKSPACE or ./workspace)."),
]


def _workspace(path: Path | None):  # -> contract.Workspace (imported lazily)
    from contract import Settings, Workspace

    return Workspace(path if path is not None else Settings().workspace)


@app.command()
def resolve(workspace: WorkspaceOpt = None) -> None:
    """Stitch events and records into customer profiles; writes identity_map and identity_guard_log."""
    from contract.errors import CXIError
    from identity import IdentityResolver

    try:
        report = IdentityResolver(_workspace(workspace)).resolve()
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title="identity resolved", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in (
        ("identifiers", report.identifiers),
        ("customers", report.customers),
        ("known customers (user_id)", report.known_customers),
        ("anonymous-only", report.anonymous_only),
        ("largest profile (identifiers)", report.largest_cluster),
        ("edges", report.edges),
        *((f"guard: {g}", n) for g, n in sorted(report.guard_firings.items())),
        ("seconds", f"{report.seconds:.2f}"),
    ):
        table.add_row(name, str(value))
    console.print(table)


@app.command()
def lookup(
    identifier_type: Annotated[
        str,
        typer.Argument(
            help="user_id, email_sha256, phone_sha256, loyalty_id, device_id, anonymous_id, "
            "record, or raw 'email' / 'phone' (hashed here)."
        ),
    ],
    value: Annotated[str, typer.Argument(help="The identifier's value.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Print the customer an identifier belongs to, with all of that customer's identifiers."""
    from contract.errors import CXIError
    from identity import IdentityIndex

    try:
        index = IdentityIndex.load(_workspace(workspace))
        if identifier_type == "email":
            customer = index.customer_for_email(value)
        elif identifier_type == "phone":
            customer = index.customer_for_phone(value)
        else:
            customer = index.customer_for(identifier_type, value)
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if customer is None:
        console.print(f"[yellow]no customer[/yellow] is known by {identifier_type} {value!r}")
        raise typer.Exit(1)
    table = Table(title=f"customer {customer}")
    table.add_column("identifier_type")
    table.add_column("identifier_value")
    for t, v in index.identifiers_of(customer):
        table.add_row(t, v)
    console.print(table)
