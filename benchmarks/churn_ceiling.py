"""How far can a churn model get above BG/NBD on the simulated brand, even one that sees the hidden truth?

Issue 5 asks the churn model (LightGBM over Feast features) for best baseline + 0.03 ROC-AUC on the simulator.
This measures a ceiling for that target in one run:

1. the simulator (``--customers`` × ``--days``) and the real pipeline exactly as `benchmarks.models` runs it
   (`benchmarks.models._pipeline`: resolve, Feast snapshots, ``train_churn``): CXI's and the baselines' AUCs;
2. the same labelled rows (customer × as-of, `training.pipeline.prepare` with train_churn's arguments, same
   customer-grouped split and holdout), checked against the run (row counts; CXI refit and the baselines
   re-scored must give the run's holdout AUCs exactly);
3. each row joined to its person's latent state *at* the as-of T (day d_T = T's date; state after day d_T):

   * truth tables (``<workspace>/truth/``): latently alive at T (the simulator's own convention,
     ``churn_day > d_T + 1``), days since arrival, decliner, store-only, account, price sensitivity and
     content affinity;
   * the engine state the truth tables do not hold (frailty, base session and store rates, engagement drift,
     email subscription, and the day's engagement random walk, bad-experience and purchase EMAs), read from
     ``simulate_days``' frame through its public progress hook at the end of every day (the simulator is
     not changed); derived from it the daily activity rate, the churn hazard and a closed-form
     P(no activity in the horizon | state at T);
   * identity truth: the customer's majority person (by events up to T), how many persons the customer
     merges, how many customer ids the person is split into, and the customer's share of its person's
     events (all, and last 30 days) up to T.

   The churn day itself after T is future information and is only used for one labelled "peek" row;
4. LightGBM (`ChurnModel`, same grid, calibration and split as CXI) on CXI's features + latent inputs (the
   ceiling: all latent inputs, or the truth tables only; ablations: person state without identity truth,
   alive-at-T alone, identity truth alone), and oracles on latent inputs alone (LightGBM, logistic
   regression, the closed form, alive-at-T). Holdout ROC-AUC, PR-AUC, Brier, and paired bootstrap intervals
   of model − best baseline, against target = best baseline + 0.03.

    .venv/bin/python -m benchmarks.churn_ceiling --customers 10000 --days 120 --seed 7
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmarks.models import METRICS, _pipeline
from contract import Settings, Workspace
from simulator import SimConfig

if TYPE_CHECKING:
    from training.pipeline import Prepared

TARGET_MARGIN = 0.03
LABEL = "churned"
TRUTH_COLS = [
    "latent_alive",
    "latent_days_since_arrival",
    "latent_decliner",
    "latent_store_only",
    "latent_has_account",
    "latent_price_sensitivity",
    "latent_content_affinity",
]
ENGINE_COLS = [
    "latent_frailty",
    "latent_base_rate",
    "latent_store_rate",
    "latent_drift",
    "latent_email_subscribed",
    "latent_log_eng",
    "latent_bad_ema",
    "latent_buy_ema",
    "latent_rate",
    "latent_hazard",
    "latent_p_quiet",
]
IDENTITY_COLS = ["latent_persons", "latent_person_ids", "latent_share", "latent_share_30d"]
LOGREG_COLS = [
    "latent_alive",
    "latent_logit_p_quiet",
    "latent_log_rate",
    "latent_log_hazard",
    "latent_log_eng",
    "latent_share",
    "latent_share_30d",
    "latent_person_ids",
]


class LatentRecorder:
    """Progress hook for `simulate_brand`: keeps ``simulate_days``' hidden per-person state after each day."""

    def __init__(self) -> None:
        self.static: dict[str, np.ndarray] = {}
        self.daily: list[np.ndarray] = []  # per emitted day: (3, n) log_eng, bad_ema, buy_ema
        self.churn_day: np.ndarray | None = None

    def __call__(self, stage: str, fraction: float) -> None:
        if stage != "simulate days":
            return
        f = sys._getframe(1).f_locals  # simulate_days: the truth tables leave these out
        pop, d = f["pop"], int(f["d"])
        if not self.static:
            self.static = {
                "frailty": f["frailty"].copy(),
                "base_rate": pop.base_rate.copy(),
                "store_rate": pop.store_rate.copy(),
                "drift": pop.drift.copy(),
                "email_subscribed": pop.email_subscribed.astype("float64"),
            }
        if d < f["cfg"].days:
            self.daily.append(np.stack([f["log_eng"], f["bad_ema"], f["buy_ema"]]).astype("float64"))
        self.churn_day = f["churn_day"]  # updated in place until the last day


def person_state(
    rec: LatentRecorder, persons: pd.DataFrame, cfg: SimConfig, days: np.ndarray, horizon: int
) -> pd.DataFrame:
    """(person_id, d_T) × latent columns at the end of each day in ``days``."""
    n, k = len(persons), len(days)
    churn = persons["churn_day"].to_numpy().astype("float64")
    churn[churn < 0] = np.inf
    arrival = persons["arrival_day"].to_numpy()
    state = np.stack([rec.daily[d] for d in days])  # (k, 3, n)
    log_eng, bad, buy = state[:, 0].ravel(), state[:, 1].ravel(), state[:, 2].ravel()
    d = np.repeat(days, n)
    st = {key: np.tile(v, k) for key, v in rec.static.items()}
    alive = (np.tile(arrival, k) <= d) & (np.tile(churn, k) > d + 1)
    # behaviour.simulate_days: sessions + store visits + campaign-email opens (2 weekdays) per day
    rate = (
        st["base_rate"] * np.exp(log_eng)
        + st["store_rate"]
        + st["email_subscribed"]
        * len(cfg.email_days)
        / 7
        * cfg.email_open_rate
        * np.exp(np.minimum(log_eng, 0.5))
    )
    hazard = np.minimum(
        cfg.churn_base_hazard
        * st["frailty"]
        * np.exp(1.5 * np.maximum(-log_eng, 0) + 0.5 * np.minimum(bad, 4) - 0.6 * np.minimum(buy, 3)),
        1 - 1e-9,
    )
    out = pd.DataFrame(
        {
            "person_id": np.tile(persons["person_id"].to_numpy(), k),
            "d_T": d,
            "latent_alive": alive.astype("float64"),
            "latent_days_since_arrival": (d - np.tile(arrival, k)).astype("float64"),
            **{
                f"latent_{c}": np.tile(persons[c].to_numpy().astype("float64"), k)
                for c in ("decliner", "store_only", "has_account", "price_sensitivity", "content_affinity")
            },
            **{f"latent_{key}": v for key, v in st.items()},
            "latent_log_eng": log_eng,
            "latent_bad_ema": bad,
            "latent_buy_ema": buy,
            "latent_rate": rate,
            "latent_hazard": -np.log1p(-hazard),
        }
    )
    out.attrs["horizon"] = horizon
    return out


def customer_persons(ws: Workspace, start: pd.Timestamp, days: np.ndarray) -> pd.DataFrame:
    """(customer_id, d_T): the majority person by resolved events up to T and the identity-truth columns."""
    from identity import attach_customer_ids

    t_ev = pd.read_parquet(ws.truth_dir / "events.parquet")
    t_tx = pd.read_parquet(ws.truth_dir / "transactions.parquet")
    with ws.connect("events", "identity_map", "identity_guard_log") as con:
        attach_customer_ids(con)
        con.execute("SET TimeZone = 'UTC'")
        for name, df in (("t_ev", t_ev), ("t_tx", t_tx), ("t_days", pd.DataFrame({"d_T": days}))):
            con.register(name, df)
        start_date = start.date().isoformat()
        return con.execute(f"""
            WITH ev AS (
                SELECT r.customer_id, coalesce(e.person_id, x.person_id) AS person_id,
                       date_diff('day', DATE '{start_date}', CAST(timezone('UTC', r.occurred_at) AS DATE)) AS day
                FROM resolved_events r
                LEFT JOIN t_ev e ON e.event_id = r.event_id
                LEFT JOIN t_tx x ON x.order_id = r.order_id AND r.event_id LIKE 'txn:%'
                WHERE r.customer_id IS NOT NULL
            ),
            daily AS (SELECT customer_id, person_id, day, count(*) AS n FROM ev GROUP BY ALL),
            cp AS (
                SELECT t.d_T, customer_id, person_id, sum(n) AS n,
                       coalesce(sum(n) FILTER (WHERE day > t.d_T - 30), 0) AS n30
                FROM daily JOIN t_days t ON day <= t.d_T GROUP BY ALL
            ),
            per AS (
                SELECT d_T, person_id, count(*) AS ids, sum(n) AS n, sum(n30) AS n30 FROM cp GROUP BY ALL
            ),
            ranked AS (
                SELECT *, row_number() OVER (PARTITION BY d_T, customer_id ORDER BY n DESC, person_id) AS rk,
                       count(*) OVER (PARTITION BY d_T, customer_id) AS persons
                FROM cp
            )
            SELECT r.customer_id, r.d_T, r.person_id, r.persons::DOUBLE AS latent_persons,
                   p.ids::DOUBLE AS latent_person_ids, r.n / p.n AS latent_share,
                   CASE WHEN p.n30 > 0 THEN r.n30 / p.n30 ELSE r.n / p.n END AS latent_share_30d,
                   (SELECT count(*) FROM ev WHERE person_id IS NULL) AS unmapped_events
            FROM ranked r JOIN per p USING (d_T, person_id) WHERE r.rk = 1
        """).df()


def with_latent(
    frame: pd.DataFrame, cust: pd.DataFrame, state: pd.DataFrame, start: pd.Timestamp
) -> pd.DataFrame:
    """``frame``'s rows (same order) with the latent columns of their customer's person at their as-of."""
    d_t = ((frame["event_timestamp"] - start) // pd.Timedelta(days=1)).astype("int64")
    keys = pd.DataFrame({"customer_id": frame["customer_id"].astype(str).to_numpy(), "d_T": d_t.to_numpy()})
    lat = keys.merge(
        cust.drop(columns="unmapped_events"), on=["customer_id", "d_T"], how="left", validate="m:1"
    )
    lat = lat.merge(state, on=["person_id", "d_T"], how="left", validate="m:1")
    if lat["latent_alive"].isna().any():
        raise RuntimeError(f"{int(lat['latent_alive'].isna().sum())} rows without a person at their as-of")
    # closed form: constant hazard h, constant rate λ·share for this customer id, horizon H
    h, lam, H = lat["latent_hazard"], lat["latent_rate"] * lat["latent_share_30d"], state.attrs["horizon"]
    s = h + lam
    quiet = np.exp(-s * H) + np.where(s > 0, h / s.where(s > 0, 1.0), 1.0) * (1 - np.exp(-s * H))
    lat["latent_p_quiet"] = np.where(lat["latent_alive"] > 0, quiet, 1.0)
    p = lat["latent_p_quiet"].clip(1e-6, 1 - 1e-6)
    lat["latent_logit_p_quiet"] = np.log(p / (1 - p))
    lat["latent_log_rate"] = np.log(lat["latent_rate"] + 1e-4)
    lat["latent_log_hazard"] = np.log(lat["latent_hazard"])
    lat.index = frame.index
    return pd.concat([frame, lat.drop(columns=["customer_id", "d_T", "person_id"])], axis=1).assign(
        _person=lat["person_id"].to_numpy()
    )


def fit_lgbm(prep: Prepared, frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    """`ChurnModel` with CXI's split, grid and calibration on ``names``; holdout P(churn)."""
    from training.model import ChurnModel
    from training.pipeline import fit_binary, split

    aug = dataclasses.replace(prep, frame=frame, names=names, parts=split(frame, prep.plan))
    return fit_binary(ChurnModel(), aug, LABEL, calib_metrics=False).p


def fit_logreg(train: pd.DataFrame, holdout: pd.DataFrame, cols: list[str]) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return model.fit(train[cols], train[LABEL]).predict_proba(holdout[cols])[:, 1]


def run(root: Path, customers: int, days: int, seed: int, n_bootstrap: int) -> dict[str, Any]:
    from simulator import simulate_brand
    from training.baselines import activity_summary, churn_baselines
    from training.churn import FEATURE_SERVICE
    from training.evaluation import auc_difference_interval, binary_metrics
    from training.labels import churn_labels
    from training.pipeline import Window, prepare, split

    settings = Settings(workspace=root / "ws", mlflow_dir=root / "mlflow")
    ws, cfg, rec = (
        Workspace(settings.workspace),
        SimConfig(customers=customers, days=days, seed=seed),
        LatentRecorder(),
    )
    t0 = time.perf_counter()
    simulate_brand(ws, cfg, rec)  # as benchmarks.models.simulated, with the latent recorder as progress hook
    m = _pipeline(settings, ws)
    t1 = time.perf_counter()

    horizon, activity = settings.churn_horizon_days, settings.churn_activity
    prep = prepare(  # train_churn's own call: same labels, Feast features and split
        settings,
        ws,
        churn_labels,
        Window(None, horizon, None, 7, 12),
        service=FEATURE_SERVICE,
        what=None,
        activity=activity,
        extra=lambda con, plan: activity_summary(con, plan.holdout_as_of, activity=activity),
    )
    persons = pd.read_parquet(ws.truth_dir / "persons.parquet")
    assert rec.churn_day is not None and len(rec.daily) == days
    churn_hook = np.where(np.isfinite(rec.churn_day), rec.churn_day, -1).astype(np.int64)
    start = cfg.start_ts
    as_of_days = np.array(
        sorted({(t - start.to_pydatetime()).days for t in [*prep.plan.train_as_of, prep.plan.holdout_as_of]})
    )
    state = person_state(rec, persons, cfg, as_of_days, horizon)
    cust = customer_persons(ws, start, as_of_days)
    frame = with_latent(prep.frame, cust, state, start)
    parts = split(frame, prep.plan)
    holdout, train_all = parts["holdout"], frame[~frame.index.isin(parts["holdout"].index)]
    y = holdout[LABEL].to_numpy()

    scores: dict[str, np.ndarray] = {"CXI (refit, same rows)": fit_lgbm(prep, frame, prep.names)}
    base = churn_baselines(
        prep.train_all,
        prep.train_all[LABEL].to_numpy(),
        prep.parts["holdout"],
        prep.labelled.extra,
        horizon_days=horizon,
        activity=activity,
    )
    best = max(base.scores, key=lambda k: m[f"baseline_{k}_roc_auc"])
    scores[f"best baseline: {best}"] = base.scores[best]
    all_latent = TRUTH_COLS + ENGINE_COLS + IDENTITY_COLS
    scores["ceiling: CXI features + all latent"] = fit_lgbm(prep, frame, prep.names + all_latent)
    scores["ceiling: CXI features + truth tables"] = fit_lgbm(
        prep, frame, prep.names + TRUTH_COLS + IDENTITY_COLS
    )
    scores["ablation: CXI features + person state"] = fit_lgbm(
        prep, frame, prep.names + TRUTH_COLS + ENGINE_COLS
    )
    scores["ablation: CXI features + alive at T"] = fit_lgbm(prep, frame, [*prep.names, "latent_alive"])
    scores["ablation: CXI features + identity truth"] = fit_lgbm(prep, frame, prep.names + IDENTITY_COLS)
    scores["oracle: LightGBM, latent only"] = fit_lgbm(prep, frame, all_latent)
    scores["oracle: logistic, latent only"] = fit_logreg(train_all, holdout, LOGREG_COLS)
    scores["oracle: closed-form P(quiet | state)"] = holdout["latent_p_quiet"].to_numpy()
    scores["oracle: not alive at T"] = 1.0 - holdout["latent_alive"].to_numpy()
    d_t = ((holdout["event_timestamp"] - start) // pd.Timedelta(days=1)).to_numpy()
    peek = (
        persons.set_index("person_id")["churn_day"].reindex(holdout["_person"]).to_numpy().astype("float64")
    )
    scores["peek (future): latent churn by T+H"] = ((peek >= 0) & (peek <= d_t + horizon)).astype("float64")

    metrics = {name: binary_metrics(y, p) for name, p in scores.items()}
    best_auc = metrics[f"best baseline: {best}"]["roc_auc"]
    for name, p in scores.items():
        _, lo, hi = auc_difference_interval(y, p, base.scores[best], n_bootstrap=n_bootstrap)
        metrics[name] |= {"d_auc": metrics[name]["roc_auc"] - best_auc, "d_low": lo, "d_high": hi}
    ho = holdout
    checks = {
        "rows holdout / train (run)": f"{m['rows_holdout']:.0f} / {m['rows_train']:.0f}",
        "rows holdout / train (here)": f"{len(ho)} / {len(train_all)}",
        "same holdout rows in order": bool(
            (ho["customer_id"].to_numpy() == prep.parts["holdout"]["customer_id"].to_numpy()).all()
        ),
        "CXI refit AUC − run's AUC": metrics["CXI (refit, same rows)"]["roc_auc"] - m["holdout_roc_auc"],
        "baselines re-scored AUC − run's": max(
            abs(binary_metrics(y, s)["roc_auc"] - m[f"baseline_{k}_roc_auc"]) for k, s in base.scores.items()
        ),
        "truth persons in simulator order": bool(
            (persons["person_id"].str[1:].astype(np.int64).to_numpy() == np.arange(len(persons))).all()
        ),
        "hook churn_day == truth churn_day": bool((churn_hook == persons["churn_day"].to_numpy()).all()),
        "events without a person": int(cust["unmapped_events"].iloc[0]),
        "holdout rows: customer merges >1 person": f"{(ho['latent_persons'] > 1).mean():.2%}",
        "holdout rows: person split over >1 customer id": f"{(ho['latent_person_ids'] > 1).mean():.2%}",
        "holdout rows: latently dead at T": f"{(ho['latent_alive'] == 0).mean():.2%}",
        "churn rate | dead at T / alive at T": f"{ho.loc[ho['latent_alive'] == 0, LABEL].mean():.3f} / "
        f"{ho.loc[ho['latent_alive'] == 1, LABEL].mean():.3f}",
        "holdout churn rate": f"{y.mean():.3f}",
        "seconds simulate+pipeline / ceiling": f"{t1 - t0:.0f} / {time.perf_counter() - t1:.0f}",
    }
    return {"metrics": metrics, "best": best, "best_auc": best_auc, "run": m, "checks": checks}


def table(title: str, out: dict[str, Any]) -> Table:
    target = out["best_auc"] + TARGET_MARGIN
    t = Table(title=title)
    t.add_column("model")
    for k in METRICS:
        t.add_column(k, justify="right")
    t.add_column("Δ AUC vs best baseline [95% paired bootstrap]", justify="right")
    t.add_column(f"vs target {target:.4f}", justify="right")
    for name, r in out["metrics"].items():
        t.add_row(
            name,
            *(f"{r[k]:.4f}" for k in METRICS),
            f"{r['d_auc']:+.4f} [{r['d_low']:+.4f}, {r['d_high']:+.4f}]",
            f"{r['roc_auc'] - target:+.4f}",
        )
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples")
    args = ap.parse_args()
    console = Console(width=max(Console().width, 170))  # the table is wide; logs are read later
    with tempfile.TemporaryDirectory() as tmp:
        out = run(Path(tmp), args.customers, args.days, args.seed, args.bootstrap)
    m = out["run"]
    console.print(
        table(
            f"Churn ceiling on the simulator ({args.customers} × {args.days} days, seed {args.seed}); "
            f"run: CXI {m['holdout_roc_auc']:.4f}, best baseline {out['best']} {m['best_baseline_roc_auc']:.4f}",
            out,
        )
    )
    checks = Table(title="Row alignment and latent join")
    checks.add_column("check")
    checks.add_column("value", justify="right")
    for k, v in out["checks"].items():
        checks.add_row(k, f"{v:+.2e}" if isinstance(v, float) else str(v))
    console.print(checks)
    ceiling = out["metrics"]["ceiling: CXI features + all latent"]
    reach = "reaches" if ceiling["d_auc"] >= TARGET_MARGIN else "does NOT reach"
    console.print(
        f"ceiling (CXI features + all latent) {ceiling['roc_auc']:.4f}: Δ {ceiling['d_auc']:+.4f} "
        f"[{ceiling['d_low']:+.4f}, {ceiling['d_high']:+.4f}] over {out['best']}; {reach} the +{TARGET_MARGIN} target "
        f"{out['best_auc'] + TARGET_MARGIN:.4f}"
        + ("" if ceiling["d_high"] >= TARGET_MARGIN else " (the whole 95% interval lies below it)")
    )


if __name__ == "__main__":
    main()
