"""`cxi models list|promote`: the MLflow registry's models, and the champion/challenger promotion gate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from contract import Settings

app = typer.Typer(no_args_is_help=True, help="Registered models: list them, promote a challenger.")
console = Console()

WorkspaceOption = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace directory (default: CXI_WORKSPACE or ./workspace)."),
]
#: Run metrics shown by `list` (those a version has).
KEY_METRICS: dict[str, str] = {
    "holdout_roc_auc": "ROC-AUC",
    "holdout_pr_auc": "PR-AUC",
    "holdout_brier": "Brier",
    "best_baseline_roc_auc": "best baseline AUC",
}


def _settings(workspace: Path | None) -> Settings:
    from contract import Settings

    return Settings(**({"workspace": workspace} if workspace is not None else {}))


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Only this model (default: all).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Registered models, their versions, aliases and key holdout metrics."""
    from training.registry import Registry

    rows = Registry(_settings(workspace)).versions(name)
    if not rows:
        console.print(f"no registered versions{f' of {name!r}' if name else ''}: train a model first")
        raise typer.Exit(1 if name else 0)
    table = Table(title="registered models (metrics on each version's own holdout)")
    for col in ("model", "version", "aliases", "created (UTC)"):
        table.add_column(col, justify="right" if col == "version" else "left")
    for header in KEY_METRICS.values():
        table.add_column(header, justify="right")
    for r in rows:
        created = datetime.fromtimestamp(r["created"] / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        metrics = [f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "-" for k in KEY_METRICS]
        table.add_row(r["name"], r["version"], ", ".join(r["aliases"]) or "-", created, *metrics)
    console.print(table)


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. churn.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Make the challenger the champion, only if it is not worse on the challenger's own holdout."""
    from contract.errors import CXIError
    from training.promotion import GATE_METRIC, PromotionRefused, compare
    from training.promotion import promote as run_promote
    from training.registry import Registry

    registry = Registry(_settings(workspace))
    try:
        result = compare(registry, name)
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"{name}: champion vs challenger on the challenger's holdout ({result.rows} rows)")
    table.add_column("metric")
    table.add_column(
        f"champion v{result.champion}" if result.champion else "champion (none)", justify="right"
    )
    table.add_column(f"challenger v{result.challenger}", justify="right")
    for key, new in result.challenger_metrics.items():
        old = result.champion_metrics.get(key) if result.champion_metrics else None
        label = f"{key} (gate)" if key == GATE_METRIC else key
        table.add_row(label, "-" if old is None else f"{old:.4f}", f"{new:.4f}")
    console.print(table)
    try:
        run_promote(registry, name, result)
    except PromotionRefused as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[green]promoted[/green] {name} v{result.challenger} to champion: {result.reason}")
