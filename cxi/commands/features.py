"""`cxi features`: apply the Feast definitions, build point-in-time snapshots, materialize the online store."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from contract.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Feast feature store: apply definitions, build, materialize.")
console = Console()

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace folder (default: CXI_WORKSPACE or ./workspace)."),
]


def _settings(workspace: Path | None) -> Settings:
    from contract.settings import Settings

    return Settings(workspace=workspace) if workspace else Settings()


@app.command()
def apply(workspace: WorkspaceOpt = None) -> None:
    """Register entity, source, feature view and feature services in the workspace's Feast registry."""
    from features.store import FeatureRepo

    settings = _settings(workspace)
    started = time.perf_counter()
    with console.status("Applying Feast definitions..."):
        names = FeatureRepo(settings).apply()
    console.print(
        f"[green]Applied[/] {len(names)} objects ({', '.join(names)}) in {time.perf_counter() - started:.1f}s"
    )
    console.print(f"Registry: {settings.feast_dir / 'registry.db'}")


@app.command()
def build(workspace: WorkspaceOpt = None) -> None:
    """Compute daily point-in-time feature snapshots per customer from resolved events (the offline source)."""
    from contract.workspace import Workspace
    from features.snapshots import build_snapshots

    settings = _settings(workspace)
    with console.status("Building feature snapshots..."):
        report = build_snapshots(settings, Workspace(settings.workspace))
    table = Table(title="Feature snapshots", show_header=False)
    table.add_row("rows", f"{report.rows:,}")
    table.add_row("customers", f"{report.customers:,}")
    table.add_row("snapshot days", f"{report.snapshots:,} (every {settings.feature_snapshot_days} d)")
    table.add_row("as_of range", f"{report.first_as_of} → {report.last_as_of}")
    table.add_row("time", f"{report.seconds:.1f}s")
    table.add_row("file", str(report.path))
    console.print(table)


@app.command()
def materialize(
    workspace: WorkspaceOpt = None,
    end: Annotated[
        datetime | None,
        typer.Option(help="Materialize snapshots up to this instant, UTC (default: the newest)."),
    ] = None,
) -> None:
    """Load each customer's latest snapshot into the SQLite online store (applies definitions first)."""
    from datetime import UTC

    from features.store import FeatureRepo

    settings = _settings(workspace)
    repo = FeatureRepo(settings)
    started = time.perf_counter()
    with console.status("Materializing..."):
        repo.apply()
        used = repo.materialize(end.replace(tzinfo=end.tzinfo or UTC) if end else None)
    seconds = time.perf_counter() - started
    customers = _customers_at(settings, used)
    console.print(
        f"[green]Materialized[/] {customers:,} customers' latest snapshots (as of {used})"
        f" into {settings.feast_dir / 'online.db'} in {seconds:.1f}s"
    )


def _customers_at(settings: Settings, end: datetime) -> int:
    """Customers with a snapshot in the cadence window ending at `end` (what materialize loaded)."""
    from datetime import timedelta

    import duckdb

    from features.definitions import JOIN_KEY, TIMESTAMP_FIELD, snapshot_path

    start = end - timedelta(days=settings.feature_snapshot_days)
    with duckdb.connect() as con:
        row = con.execute(
            f"SELECT count(DISTINCT {JOIN_KEY}) FROM read_parquet(?) WHERE {TIMESTAMP_FIELD} > ? AND {TIMESTAMP_FIELD} <= ?",
            [str(snapshot_path(settings)), start, end],
        ).fetchone()
    return int(row[0]) if row else 0
