"""`cxi train intent` and `cxi train value`: register these functions on the `train` sub-app."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cxi.commands.options import HoldoutAsOf, WorkspaceOpt, train_model

console = Console()


def _run(kind: str, horizon_days: int, as_of: datetime | None, workspace: Path | None) -> None:
    result = train_model(console, kind, horizon_days, as_of, workspace)
    table = Table(title=f"{kind} model v{result.version} -> @{result.alias}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in sorted(result.metrics.items()):
        table.add_row(key, f"{value:.4f}")
    for key, n in result.rows.items():
        table.add_row(f"rows {key}", str(n))
    plan = result.plan
    table.add_row("train as-of", f"{plan.train_as_of[0].date()} .. {plan.train_as_of[-1].date()}")
    table.add_row("holdout as-of", str(plan.holdout_as_of.date()))
    table.add_row("registered", f"models:/{result.name}/{result.version} @{result.alias}")
    table.add_row("seconds", f"{result.seconds:.1f}")
    console.print(table)


def train_intent_command(
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, help="Purchase within N days of the as-of date.")
    ] = 7,
    as_of: HoldoutAsOf = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Purchase intent: P(purchase in the next N days), LightGBM on Feast features, registered as `intent`."""
    _run("intent", horizon_days, as_of, workspace)


def train_value_command(
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, help="Expected revenue over N days after the as-of date.")
    ] = 90,
    as_of: HoldoutAsOf = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Predicted value: expected revenue over the next N days (Tweedie LightGBM), registered as `value`."""
    _run("value", horizon_days, as_of, workspace)
