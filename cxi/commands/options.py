"""Option types and helpers the command modules share (no sub-app of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from contract import Settings, Workspace

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace directory (default: CXI_WORKSPACE or ./workspace)."),
]
HoldoutAsOf = Annotated[
    datetime | None,
    typer.Option(
        "--as-of", formats=["%Y-%m-%d"], help="Holdout as-of date (default: latest with a full horizon)."
    ),
]


def open_workspace(workspace: Path | None) -> tuple[Settings, Workspace]:
    """Settings (``workspace`` overriding CXI_WORKSPACE) and its Workspace."""
    from contract import Settings, Workspace

    settings = Settings(**({"workspace": workspace} if workspace is not None else {}))
    return settings, Workspace(settings.workspace)


@contextmanager
def cli_errors(console: Console, status: str) -> Iterator[None]:
    """Show ``status`` while the body runs; a CXIError becomes a red message and exit code 1."""
    from contract.errors import CXIError

    try:
        with console.status(status):
            yield
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def train_model(
    console: Console, kind: str, horizon_days: int | None, as_of: datetime | None, workspace: Path | None
) -> Any:
    """Run ``training.<kind>.train_<kind>`` on the workspace; CLI errors as `cli_errors`."""
    if kind == "churn":
        from training.churn import train_churn as train
    elif kind == "intent":
        from training.intent import train_intent as train
    else:
        from training.value import train_value as train

    settings, ws = open_workspace(workspace)
    result = None
    with cli_errors(console, f"training {kind}"):
        result = train(settings, ws, as_of=as_of.date() if as_of else None, horizon_days=horizon_days)
    return result
