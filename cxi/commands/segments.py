"""`cxi segments build|list|export`: predictive segments, their changes and consent exclusions, file exports."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cxi.commands.options import WorkspaceOpt, cli_errors, open_workspace

app = typer.Typer(no_args_is_help=True, help="Predictive segments: build, list, export.")
console = Console()

PURPOSES = ("analytics", "personalization", "marketing", "advertising")


def _exclusions(row: dict) -> str:
    """Membership exclusions (needed consent missing) and channel reach lost, per purpose."""
    parts = [f"{p} {row.get(f'excluded_{p}', 0)}" for p in PURPOSES if row.get(f"excluded_{p}", 0)]
    reach = [f"no {p} {row.get(f'unreachable_{p}', 0)}" for p in PURPOSES if row.get(f"unreachable_{p}", 0)]
    return "; ".join(parts + reach) or "-"


def _table(title: str, stats: list[dict], sizes: dict[str, int] | None = None) -> Table:
    table = Table(title=title)
    for col in ("segment", "size", "entered", "exited", "suppressed", "superseded"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    table.add_column("consent exclusions (not members; members unreachable)")
    for row in stats:
        size = sizes.get(row["segment"], row["size"]) if sizes else row["size"]
        table.add_row(
            row["segment"],
            str(size),
            str(row["entered"]),
            str(row["exited"]),
            str(row.get("suppressed", 0)),
            str(row.get("superseded", 0)),
            _exclusions(row),
        )
    return table


@app.command()
def build(
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of", formats=["%Y-%m-%d"], help="Score customers known at this date (default: newest)."
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Score every customer with the champion models, compute every segment's membership and persist it."""
    from segments.build import build_segments

    settings, ws = open_workspace(workspace)
    with cli_errors(console, "building segments"):
        report = build_segments(settings, ws, as_of=as_of.date() if as_of else None)
    console.print(_table(f"segments, build {report.build_id}", report.stats.to_dict("records")))
    for name, why in report.skipped.items():
        console.print(f"[yellow]skipped[/yellow] {name}: {why} (membership kept)")
    console.print(report.summary())
    console.print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))


@app.command("list")
def list_segments(workspace: WorkspaceOpt = None) -> None:
    """Segments of the latest build: current size, entered/exited at that build, consent exclusions."""
    from segments.store import SegmentStore

    _, ws = open_workspace(workspace)
    store = SegmentStore(ws)
    with cli_errors(console, "reading segments"):
        build = store.latest_build()
        if build is None:
            console.print("no segment build yet: run `cxi segments build`")
            raise typer.Exit(1)
        sizes = store.sizes()
    title = (
        f"segments (build {build.build_id} at {build.at:%Y-%m-%d %H:%M} UTC; changes since the build before)"
    )
    console.print(_table(title, build.stats, sizes))
    for name, why in build.skipped.items():
        console.print(f"[yellow]not evaluated[/yellow] {name}: {why}")


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="Segment to export.")],
    format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    purpose: Annotated[
        str, typer.Option("--purpose", help="marketing (email platforms) or advertising (ad platforms).")
    ] = "marketing",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output file (default: workspace/exports/).")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Hashed identifiers (SHA-256 of normalised email/phone) of the members who consent to the purpose."""
    from segments.export import export as run_export

    settings, ws = open_workspace(workspace)
    with cli_errors(console, f"exporting {name}"):
        r = run_export(settings, ws, name, format=format, purpose=purpose, out=out)
    console.print(
        f"{r.segment}: {r.exported_customers} of {r.members} members exported ({r.rows} hashed identifiers) "
        f"-> {r.path}; left out: {r.excluded_consent} without {r.purpose} consent, "
        f"{r.without_identifier} without an email or phone"
    )
