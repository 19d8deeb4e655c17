"""`cxi run`: the whole chain on the embedded default, then the service in the foreground."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def run(
    customers: Annotated[
        int, typer.Option(help="Customers to simulate when the workspace is empty.")
    ] = 10_000,
    days: Annotated[int, typer.Option(help="Days of history to simulate.")] = 90,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 7,
    workspace: Annotated[
        Path | None, typer.Option(envvar="CXI_WORKSPACE", help="Workspace directory.")
    ] = None,
    port: Annotated[int, typer.Option(envvar="CXI_PORT", help="Service port.")] = 3000,
    serve: Annotated[
        bool, typer.Option(help="Start the service at the end (--no-serve to stop after training).")
    ] = True,
    force: Annotated[
        bool, typer.Option(help="Re-run every step even when its inputs are unchanged.")
    ] = False,
) -> None:
    """Simulate (if empty) -> stitch -> features apply/build/materialize -> train churn -> register -> serve."""
    from contract import Settings, Workspace
    from cxi.pipeline import example_identifier, run_chain

    settings = Settings(**({"workspace": workspace} if workspace else {}), port=port)
    console.rule(f"[bold]CXI run[/bold] · workspace {settings.workspace.resolve()}")
    with console.status("working") as status:
        report = run_chain(
            settings,
            customers=customers,
            days=days,
            seed=seed,
            force=force,
            on_step=lambda msg: (status.update(msg), console.log(msg)),
        )
    table = Table(title="make run: steps")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for s in report.steps:
        table.add_row(s.name, "skipped" if s.skipped else f"{s.seconds:.1f}", s.detail[:120])
    table.add_row("[bold]total[/bold]", f"{report.total_seconds:.1f}", "")
    console.print(table)

    url = f"http://{settings.host}:{port}"
    body = json.dumps(example_identifier(Workspace(settings.workspace)))
    console.print(f"MLflow UI:   [cyan]mlflow ui --backend-store-uri {settings.tracking_uri}[/cyan]")
    console.print(f"Service:     [cyan]{url}[/cyan]  (OpenAPI UI at {url}/, spec at {url}/docs.json)")
    console.print(
        f"Try:         [cyan]curl -s -X POST {url}/v1/scores/churn -H 'content-type: application/json' -d '{body}'[/cyan]"
    )
    if serve:
        from cxi.commands.serve import serve as start_service

        start_service(workspace=settings.workspace, host=settings.host, port=port)
