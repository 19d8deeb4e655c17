"""`cxi simulate`: a seeded simulated brand written through the importers, plus its hidden truth."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


def simulate(
    customers: Annotated[int, typer.Option(min=10, help="People in the simulated population.")] = 10_000,
    days: Annotated[int, typer.Option(min=7, help="Days of activity.")] = 90,
    seed: Annotated[int, typer.Option(min=0, help="Seed: the same seed gives identical tables.")] = 7,
    workspace: Annotated[
        Path | None, typer.Option(envvar="CXI_WORKSPACE", help="Workspace directory.")
    ] = None,
    start: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="First simulated day (UTC).")
    ] = datetime(2026, 1, 1),
) -> None:
    """Simulate a brand: events, customer records, transactions and NBA decisions go through the importers;
    the ground truth (identities, churn, offer responses) goes to <workspace>/truth/ for benchmarks only."""
    from contract import Settings, Workspace
    from simulator import SimConfig, simulate_brand

    settings = Settings(**({"workspace": workspace} if workspace else {}))
    ws = Workspace(settings.workspace)
    config = SimConfig(customers=customers, days=days, seed=seed, start=start.date())
    columns = (TextColumn("{task.description:<32}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def on_progress(step: str, fraction: float) -> None:
            key = step.split(" (")[0]
            if key not in tasks:
                for other in tasks.values():
                    bar.update(other, completed=100)  # type: ignore[arg-type]
                tasks[key] = bar.add_task(key, total=100)
            bar.update(tasks[key], completed=100 * fraction, description=step)  # type: ignore[arg-type]

        summary = simulate_brand(ws, config, progress=on_progress)
    table = Table(title=f"simulated {customers} customers x {days} days (seed {seed}) into {ws.root}")
    for c in ("table", "source", "rows", "accepted", "duplicates", "quarantined"):
        table.add_column(c, justify="left" if c in ("table", "source") else "right")
    for r in summary.imports:
        table.add_row(
            r.table, r.source, *(f"{v:,}" for v in (r.rows, r.accepted, r.duplicates, r.quarantined))
        )
    console.print(table)
    console.print(
        f"generate {summary.seconds_generate:.1f}s, import + truth {summary.seconds_import:.1f}s; "
        f"truth in {summary.truth_dir}"
    )
