"""`cxi replay`: rebuild identity and the offline and online features from the event log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def replay(
    workspace: Annotated[
        Path | None, typer.Option(envvar="CXI_WORKSPACE", help="Workspace directory.")
    ] = None,
    from_scratch: Annotated[
        bool,
        typer.Option(help="Delete the Feast folder (registry, online store, snapshots) first, as if lost."),
    ] = False,
) -> None:
    """Compact the durable event log into the events table, re-resolve identity, rebuild Feast stores."""
    from contract import Settings
    from contract.errors import CXIError
    from cxi.pipeline import replay as run_replay

    settings = Settings(**({"workspace": workspace} if workspace else {}))
    try:
        with console.status("replaying") as status:
            report = run_replay(
                settings, from_scratch=from_scratch, on_step=lambda m: (status.update(m), console.log(m))
            )
    except CXIError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    table = Table(title="cxi replay")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for s in report.steps:
        table.add_row(s.name, f"{s.seconds:.1f}", s.detail[:120])
    console.print(table)
