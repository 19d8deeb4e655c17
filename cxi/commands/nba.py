"""`cxi nba recommend` (serve the registered policy on a file of contexts) and `train_nba_command`
(registered by the CLI as `cxi train nba`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Next-best-action: recommend offers with the registered policy.")
console = Console()

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace directory (default: CXI_WORKSPACE or ./workspace)."),
]


@app.command()
def recommend(
    contexts: Annotated[
        Path,
        typer.Option("--contexts", exists=True, dir_okay=False, help="Contexts: .csv, .jsonl or .parquet."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output file; CSV or Parquet by extension.")],
    epsilon: Annotated[
        float | None, typer.Option("--epsilon", min=0.0, max=1.0, help="Exploration (default: the policy's).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for the sampled actions.")] = None,
    alias: Annotated[str, typer.Option("--alias", help="Registry alias of the policy to use.")] = "champion",
    workspace: WorkspaceOpt = None,
) -> None:
    """One row per context row: its decision_id/customer_id, the sampled action, its probability, expected
    reward and uplift over the control action (null when the policy was trained without a control)."""
    import numpy as np

    from contract import Settings
    from contract.errors import CXIError
    from events.readers import read_frame
    from training.nba.train import load_policy

    if out.suffix.lower() not in (".csv", ".parquet"):
        console.print(f"[red]error:[/red] --out: use a .csv or .parquet file (got {out.name!r})")
        raise typer.Exit(1)
    settings = Settings(**({"workspace": workspace} if workspace is not None else {}))
    try:
        frame = read_frame(contexts)
        version, policy = load_policy(settings, alias=alias)
        recs = policy.recommend(frame, epsilon=epsilon, rng=np.random.default_rng(seed))
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        recs.to_csv(out, index=False)
    else:
        recs.to_parquet(out, index=False)
    table = Table(title=f"nba v{version} @{alias}: {len(recs)} recommendations -> {out}")
    table.add_column("action")
    table.add_column("rows", justify="right")
    table.add_column("mean probability", justify="right")
    for action, g in recs.groupby("action"):
        table.add_row(str(action), str(len(g)), f"{g['probability'].mean():.3f}")
    console.print(table)
    if policy.control_ is None:
        console.print("uplift: null (the policy has no control action)")


def train_nba_command(
    rules: Annotated[
        Path | None, typer.Option("--rules", exists=True, dir_okay=False, help="Eligibility rules (YAML).")
    ] = None,
    holdout_fraction: Annotated[
        float,
        typer.Option("--holdout-fraction", min=0.05, max=0.9, help="Latest share of decisions held out."),
    ] = 0.25,
    epsilon: Annotated[
        float, typer.Option("--epsilon", min=0.0, max=1.0, help="Serving exploration.")
    ] = 0.05,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="Policy learning: pooled (default; one model across actions, shrunk toward the logging policy), dr, direct or auto.",
        ),
    ] = "pooled",
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=50, help="Bootstrap replicates.")] = 500,
    control: Annotated[
        str | None,
        typer.Option(
            "--control",
            help="Name of the control (no-offer) action in the decision log; uplift is measured against it "
            "(default: the nba_control_action setting, CXI_NBA_CONTROL_ACTION, 'no_offer').",
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Learn the next-best-action policy from logged decisions, evaluate it off-policy and register it as
    `nba` (@champion only if its DR lower bound beats the logging policy, else @challenger)."""
    from contract import Settings, Workspace
    from contract.errors import CXIError
    from training.nba.eligibility import EligibilityRules
    from training.nba.policy import NBAPolicy
    from training.nba.train import train_nba

    settings = Settings(**({"workspace": workspace} if workspace is not None else {}))
    try:
        eligibility = EligibilityRules.from_yaml(rules) if rules else None
        with console.status("training nba"):
            result = train_nba(
                settings,
                Workspace(settings.workspace),
                policy=NBAPolicy(
                    method=method,
                    epsilon=epsilon,
                    eligibility=eligibility,
                    control=control or settings.nba_control_action,
                ),
                holdout_fraction=holdout_fraction,
                n_bootstrap=bootstrap,
            )
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    ev = result.evaluation
    # a missing control and dropped context columns are the library's warnings (logged once, see cxi.cli)
    table = Table(
        title=f"nba v{result.version} -> @{result.alias}: off-policy evaluation on {result.rows['holdout']} held-out decisions"
    )
    for col in ("policy", "IPW", "SNIPW", "DR"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for policy, g in ev.table.groupby("policy", sort=False):
        cells = [
            f"{r.value:.4f} [{r.low:.4f}, {r.high:.4f}]"
            for r in g.set_index("estimator").loc[["ipw", "snipw", "dr"]].itertuples()
        ]
        table.add_row(str(policy), *cells)
    console.print(table)
    console.print(f"best single action: {ev.best_action}; ship: {'yes' if ev.ship else 'no'} ({ev.reason})")
    console.print(f"rows: {result.rows}; mlflow run {result.run_id}; {result.seconds:.1f}s")
