"""`cxi train churn`: train the churn model from Feast features and register it in MLflow."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cxi.commands.nba import train_nba_command
from cxi.commands.options import HoldoutAsOf, WorkspaceOpt, train_model
from cxi.commands.train_more import train_intent_command, train_value_command

app = typer.Typer(no_args_is_help=True, help="Train models from Feast features and register them in MLflow.")
app.command(
    "nba",
    help="Learn an offer policy from logged decisions; ship it only if off-policy evaluation says it wins.",
)(train_nba_command)
app.command("intent", help="Purchase intent: P(purchase in the next N days); registered as `intent`.")(
    train_intent_command
)
app.command("value", help="Predicted value: expected revenue over the next N days; registered as `value`.")(
    train_value_command
)
console = Console()


@app.command()
def churn(
    horizon_days: Annotated[
        int | None,
        typer.Option(
            "--horizon-days", min=1, help="Churned = no activity within N days (default: settings)."
        ),
    ] = None,
    as_of: HoldoutAsOf = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Labels from the event log, features through Feast (churn_v1), LightGBM, registered as `churn`."""
    result = train_model(console, "churn", horizon_days, as_of, workspace)
    plan = result.plan
    table = Table(title=f"churn model v{result.version} -> @{result.alias}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in sorted(result.metrics.items()):
        table.add_row(key, f"{value:.4f}" if key != "best_iteration" else f"{value:.0f}")
    for key, value in result.rows.items():
        table.add_row(f"rows {key}", str(value))
    table.add_row("horizon (days)", str(plan.horizon_days))
    table.add_row(
        "train as-of",
        f"{plan.train_as_of[0].date()} .. {plan.train_as_of[-1].date()} ({len(plan.train_as_of)})",
    )
    table.add_row("holdout as-of", str(plan.holdout_as_of.date()))
    table.add_row("features", str(len(result.feature_names)))
    table.add_row("previous champion", f"v{result.champion_before}" if result.champion_before else "none")
    table.add_row("registered", f"models:/{result.name}/{result.version} @{result.alias}")
    table.add_row("mlflow run", result.run_id)
    table.add_row("seconds", f"{result.seconds:.1f}")
    console.print(table)


@app.command("identity")
def identity_match(
    threshold: Annotated[
        float, typer.Option(min=0.01, max=0.99, help="Link threshold the card and metrics are read at.")
    ] = 0.8,
    workspace: WorkspaceOpt = None,
) -> None:
    """The identity-match model (anonymous profiles -> known customers), labelled by the deterministic graph;
    registered as `identity_match` (champion only if it beats the current one on the same held-out pairs)."""
    from contract import Settings, Workspace
    from contract.errors import CXIError
    from training.identity_match import train_identity_match

    settings = Settings() if workspace is None else Settings(workspace=workspace)
    try:
        result = train_identity_match(settings, Workspace(settings.workspace), threshold=threshold)
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    key = f"{threshold:.2f}".replace(".", "_")
    table = Table(title=f"identity_match v{result.version} -> @{result.alias}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name in ("precision", "recall", "f1"):
        table.add_row(f"held-out {name} at {threshold}", f"{result.metrics[f'{name}_at_{key}']:.4f}")
    for name in ("holdout_log_loss", "champion_holdout_log_loss", "holdout_brier", "holdout_ece"):
        if name in result.metrics:
            table.add_row(name, f"{result.metrics[name]:.4f}")
    for name, value in result.rows.items():
        table.add_row(f"pairs {name}", str(value))
    table.add_row("previous champion", f"v{result.champion_before}" if result.champion_before else "none")
    table.add_row("registered", f"models:/{result.name}/{result.version} @{result.alias}")
    table.add_row("mlflow run", result.run_id)
    table.add_row("seconds", f"{result.seconds:.1f}")
    console.print(table)
