"""NBA benchmark: simulate a brand, learn a policy from its logged decisions, evaluate it off-policy on a
held-out time split and compare every estimate with the TRUE value from the simulator's truth table.

Run: ``python -m benchmarks.nba [--customers 20000] [--days 90] [--method pooled|dr|direct|auto]``.
Targets: true value of CXI's policy >= 1.2x the logging policy and above the best single action; OPE
estimates within 10% of the truth with intervals covering it. The truth is read here only, never by the pipeline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from contract import Settings, Workspace
from simulator import SimConfig, simulate_brand
from training.nba.ope import true_value
from training.nba.train import train_nba


def true_values(
    ev_probabilities: dict[str, pd.DataFrame], truth: pd.DataFrame, decision_ids: list[str]
) -> dict[str, float]:
    """True value per policy; the logging policy's from its full propensity vector in the truth table."""
    out = {k: true_value(v, truth) for k, v in ev_probabilities.items()}
    t = truth[truth["decision_id"].isin(set(decision_ids))]
    out["logging"] = float(
        (t["logging_propensity"] * t["true_response_probability"]).groupby(t["decision_id"]).sum().mean()
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--decision-rate", type=float, default=1.0, help="SimConfig.decision_rate")
    ap.add_argument("--method", default="pooled", help="NBAPolicy method: dr, direct, pooled or auto")
    a = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(workspace=Path(tmp) / "ws", mlflow_dir=Path(tmp) / "mlflow")
        ws = Workspace(settings.workspace)
        summary = simulate_brand(
            ws, SimConfig(customers=a.customers, days=a.days, seed=a.seed, decision_rate=a.decision_rate)
        )
        console.print(str(summary))
        from training.nba.policy import NBAPolicy

        t0 = time.perf_counter()
        res = train_nba(settings, ws, policy=NBAPolicy(method=a.method, seed=a.seed), register=True)
        secs = time.perf_counter() - t0
        truth = pd.read_parquet(ws.truth_dir / "offers.parquet")
    ev = res.evaluation
    tv = true_values(ev.probabilities, truth, list(ev.decision_ids))
    table = Table(
        title=f"NBA off-policy evaluation vs truth ({res.rows['holdout']} held-out decisions; train {res.rows['train']}; {secs:.1f}s)"
    )
    for c in ("policy", "IPW [95% CI]", "SNIPW [95% CI]", "DR [95% CI]", "TRUE", "true / logging"):
        table.add_column(c, justify="left" if c == "policy" else "right")
    for pol in ("cxi", "logging", "uniform", "best_single"):
        g = ev.table[ev.table.policy == pol].set_index("estimator")
        cells = []
        for est in ("ipw", "snipw", "dr"):
            r = g.loc[est]
            ok = r.low <= tv[pol] <= r.high and abs(r.value / tv[pol] - 1) <= 0.10
            cells.append(f"{'' if ok else '[red]'}{r.value:.4f} [{r.low:.4f}, {r.high:.4f}]")
        name = f"{pol} ({ev.best_action})" if pol == "best_single" else pol
        table.add_row(name, *cells, f"{tv[pol]:.4f}", f"{tv[pol] / tv['logging']:.2f}x")
    console.print(table)
    pol = res.policy
    chosen = f"single action {pol.fixed_action_!r}" if pol.fixed_action_ else pol.fitted_method_
    scores = ", ".join(f"{k} {v:.4f}" for k, v in pol.selection_.items())
    console.print(f"method {pol.method} -> {chosen}" + (f" (validation DR: {scores})" if scores else ""))
    console.print(
        f"targets: cxi true / logging = {tv['cxi'] / tv['logging']:.2f} (>= 1.20: {tv['cxi'] >= 1.2 * tv['logging']}); "
        f"cxi above best single action: {tv['cxi'] > tv['best_single']}; ship: {ev.ship} ({ev.reason})"
    )


if __name__ == "__main__":
    main()
