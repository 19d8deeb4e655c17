"""Benchmark of the churn model against its baselines (recency, logistic RFM, BG/NBD), one run.

1. The simulator (``--customers`` × ``--days``) into a tmp workspace, then the real pipeline: identity resolve,
   Feast snapshots, ``train_churn`` (activity = any event). CXI and every baseline on the same holdout.
2. A transactions-only history made from that brand's resolved purchase events (customer, time, amount),
   imported with ``import_frame(kind="transactions")`` into a fresh workspace; churn = no purchase.
3. A buy-till-you-die transaction history (`simulator.btyd`: Pareto/NBD with CDNOW's published parameters,
   78 weeks), imported the same way; churn = no purchase in ``--btyd-horizon-days``. BG/NBD's home ground: a
   churn model that generalises must not lose to it there.
4. Training time (labels, features, fit, baselines, logging) at ``--time-customers`` customers.

    .venv/bin/python -m benchmarks.models --customers 10000 --days 120 --time-customers 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from contract import Settings, Workspace
from simulator.btyd import BTYDWorld

METRICS = ("roc_auc", "pr_auc", "brier", "top_decile_lift", "ece")


def _pipeline(settings: Settings, ws: Workspace) -> dict[str, float]:
    from features.store import FeatureRepo
    from identity import IdentityResolver
    from training.churn import train_churn

    t0 = time.perf_counter()
    IdentityResolver(ws).resolve()
    repo = FeatureRepo(settings)
    repo.apply()
    repo.build(ws)
    prep = time.perf_counter() - t0
    result = train_churn(settings, ws)
    return {
        **result.metrics,
        **{f"time_{k}": v for k, v in result.timings.items()},
        "time_prep_s": prep,
        "time_train_s": result.seconds,
        "rows_holdout": result.rows["holdout"],
        "rows_train": result.rows["train"] + result.rows["valid"] + result.rows["calib"],
    }


def simulated(root: Path, customers: int, days: int, seed: int, **overrides: object) -> tuple[Settings, dict]:
    from simulator import SimConfig, simulate_brand

    settings = Settings(workspace=root / "ws", mlflow_dir=root / "mlflow", **overrides)  # type: ignore[arg-type]
    ws = Workspace(settings.workspace)
    t0 = time.perf_counter()
    simulate_brand(ws, SimConfig(customers=customers, days=days, seed=seed))
    sim = time.perf_counter() - t0
    return settings, {**_pipeline(settings, ws), "time_simulate_s": sim}


def transactions_only(source: Settings, root: Path) -> dict[str, float]:
    """Purchases of the simulated brand, keyed by resolved customer, re-imported as a plain transaction file."""
    from contract.schemas import PURCHASE_TYPES
    from events.importers import import_frame
    from identity import attach_customer_ids

    with Workspace(source.workspace).connect("events", "identity_map", "identity_guard_log") as con:
        attach_customer_ids(con)
        types = ", ".join(f"'{t}'" for t in sorted(PURCHASE_TYPES))
        frame = con.execute(
            f"SELECT customer_id, occurred_at, revenue AS amount, event_id AS order_id FROM resolved_events"
            f" WHERE type IN ({types}) AND customer_id IS NOT NULL AND revenue IS NOT NULL"
        ).df()
    settings = Settings(workspace=root / "ws", mlflow_dir=root / "mlflow", churn_activity="purchase")
    ws = Workspace(settings.workspace)
    import_frame(ws, "transactions", frame, source="transactions")
    return {**_pipeline(settings, ws), "transactions": float(len(frame))}


def btyd_world(root: Path, world: BTYDWorld, horizon_days: int) -> dict[str, float]:
    """A Pareto/NBD transaction history imported as a plain transaction file; churn = no purchase."""
    from events.importers import import_frame
    from simulator.btyd import btyd_transactions

    frame = btyd_transactions(world)
    settings = Settings(
        workspace=root / "ws",
        mlflow_dir=root / "mlflow",
        churn_activity="purchase",
        churn_horizon_days=horizon_days,
    )
    ws = Workspace(settings.workspace)
    import_frame(ws, "transactions", frame, source="transactions")
    return {**_pipeline(settings, ws), "transactions": float(len(frame))}


def table(title: str, m: dict[str, float]) -> Table:
    t = Table(title=title)
    t.add_column("model")
    for k in METRICS:
        t.add_column(k, justify="right")
    t.add_column("Δ AUC vs best baseline", justify="right")
    t.add_column("Δ Brier vs best baseline", justify="right")
    rows = [("CXI (LightGBM, calibrated)", "holdout_")] + [
        (n, f"baseline_{n}_") for n in ("recency", "logreg_rfm", "bgnbd")
    ]
    for name, prefix in rows:
        d_auc = m[f"{prefix}roc_auc"] - m["best_baseline_roc_auc"]
        d_brier = m[f"{prefix}brier"] - m["best_baseline_brier"]
        t.add_row(name, *(f"{m[f'{prefix}{k}']:.4f}" for k in METRICS), f"{d_auc:+.4f}", f"{d_brier:+.4f}")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--btyd-customers", type=int, default=20_000, help="buy-till-you-die world (0: skip)")
    ap.add_argument("--btyd-horizon-days", type=int, default=90)
    ap.add_argument("--time-customers", type=int, default=0, help="also time training at this size (0: skip)")
    args = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings, sim = simulated(root / "sim", args.customers, args.days, args.seed)
        console.print(
            table(f"Churn on the simulator ({args.customers} × {args.days} days, activity = any)", sim)
        )
        txn = transactions_only(settings, root / "txn")
        console.print(
            table(f"Churn on a transactions-only import ({txn['transactions']:.0f} purchases)", txn)
        )
        worlds = [("simulator", sim), ("transactions", txn)]
        btyd_worlds = (
            {
                "buy-till-you-die (CDNOW parameters, 78 weeks)": BTYDWorld(
                    customers=args.btyd_customers, seed=args.seed
                ),
                "buy-till-you-die with a retail year (104 weeks, ±80% around late November)": BTYDWorld(
                    customers=args.btyd_customers, weeks=104, season_amplitude=0.8, seed=args.seed
                ),
            }
            if args.btyd_customers
            else {}
        )
        for i, (label, world) in enumerate(btyd_worlds.items()):
            btyd = btyd_world(root / f"btyd{i}", world, args.btyd_horizon_days)
            console.print(
                table(
                    f"Churn on a {label}: {world.customers} customers, {btyd['transactions']:.0f} purchases, "
                    f"horizon {args.btyd_horizon_days} days",
                    btyd,
                )
            )
            worlds.append((label, btyd))
        for label, m in worlds:
            ok_auc = m["delta_roc_auc_vs_best_baseline"] >= (0.03 if label == "simulator" else 0.0)
            ok_brier = m["delta_brier_vs_best_baseline"] <= 0
            console.print(
                f"{label}: ΔAUC {m['delta_roc_auc_vs_best_baseline']:+.4f} "
                f"[95% paired bootstrap {m['delta_roc_auc_vs_best_baseline_low']:+.4f}, "
                f"{m['delta_roc_auc_vs_best_baseline_high']:+.4f}] "
                f"({'meets' if ok_auc else 'MISSES'} target), ΔBrier {m['delta_brier_vs_best_baseline']:+.4f} "
                f"({'meets' if ok_brier else 'MISSES'} target); holdout {m['rows_holdout']:.0f} rows, "
                f"train {m['rows_train']:.0f} rows; calibration Brier none/platt/isotonic "
                f"{m.get('calib_brier_none', float('nan')):.4f}/{m.get('calib_brier_platt', float('nan')):.4f}/"
                f"{m.get('calib_brier_isotonic', float('nan')):.4f}"
            )
        sizes = [(args.customers, sim)]
        if args.time_customers:
            _, big = simulated(root / "big", args.time_customers, args.days, args.seed)
            sizes.append((args.time_customers, big))
        t = Table(title="Churn training time (one run each; seconds)")
        for col in (
            "customers",
            "simulate",
            "resolve+features",
            "labels",
            "point-in-time read",
            "fit",
            "baselines",
            "log+register",
            "train_churn total",
            "train rows",
        ):
            t.add_column(col, justify="right")
        for n, m in sizes:
            t.add_row(
                str(n),
                *(
                    f"{m[k]:.1f}"
                    for k in (
                        "time_simulate_s",
                        "time_prep_s",
                        "time_labels_s",
                        "time_features_s",
                        "time_fit_s",
                        "time_baselines_s",
                        "time_log_register_s",
                        "time_train_s",
                    )
                ),
                f"{m['rows_train']:.0f}",
            )
        console.print(t)


if __name__ == "__main__":
    main()
