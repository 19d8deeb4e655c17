"""`cxi score churn|intent|value`: score every customer known at a date with a model's champion, to a file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cxi.commands.options import WorkspaceOpt, cli_errors, open_workspace

console = Console()


def score(
    model: Annotated[str, typer.Argument(help="Model to score with: churn, intent or value.")],
    as_of: Annotated[
        datetime,
        typer.Option(
            "--as-of", formats=["%Y-%m-%d"], help="Score the customers known at this date (UTC day end)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output file: .csv or .parquet.")],
    horizon_days: Annotated[
        int | None,
        typer.Option("--horizon-days", min=1, help="Check the champion was trained for this horizon."),
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """One row per customer: customer_id, user_id, the score (e.g. churn_probability) and its top reasons."""
    from training.scoring import SCORE_COLUMNS, score_customers, write_scores

    settings, ws = open_workspace(workspace)
    with cli_errors(console, f"scoring {model}"):
        frame = score_customers(settings, ws, model, as_of=as_of.date(), horizon_days=horizon_days)
        path = write_scores(frame, out)
    col = SCORE_COLUMNS[model]
    console.print(
        f"{len(frame)} customers scored by {model} v{frame['model_version'].iloc[0]} as of {as_of.date()} "
        f"(mean {col} {frame[col].mean():.4f}) -> {path}"
    )
