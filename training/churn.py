"""Churn training: labels from the event log, features only through Feast, LightGBM, MLflow registry.

Time design (no leakage across time). Every as-of instant T is a snapshot instant of the feature store (a
day's 23:59:59 UTC), so features count events <= T and labels events in (T, T + H].

* holdout: the latest T with T + H <= the end of the log (or ``as_of``);
* training: T_h - H, then every ``step_days`` further back, so every training label window ends by T_h;
* early stopping on a customer-grouped validation split of the training rows, and Platt calibration chosen
  on a second, disjoint customer-grouped calibration split (folded into the registered booster);
* baselines (recency, logistic regression on RFM, BG/NBD) scored on the same holdout rows in the same run.

A new model becomes ``champion`` when there is none, or when its holdout ROC-AUC is not below the current
champion's scored on the very same holdout rows; otherwise it gets alias ``challenger``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from contract.errors import ContractError, WorkspaceError
from contract.settings import Settings
from contract.workspace import Workspace
from training.baselines import activity_summary, churn_baselines
from training.evaluation import binary_metrics, diagnostic_figures, roc_auc
from training.labels import churn_labels, log_bounds, to_utc
from training.model import ChurnModel
from training.promotion import decide, record_holdout
from training.registry import Registry, TrainingRecord

MODEL_NAME = "churn"
FEATURE_SERVICE = "churn_v1"
#: Served with the features but not a model input: an absolute time says nothing that carries over in time.
NOT_MODEL_INPUTS: frozenset[str] = frozenset({"snapshot_at"})
LABEL = "churned"


@dataclass(frozen=True)
class ChurnPlan:
    """The as-of instants of one training run."""

    holdout_as_of: datetime
    train_as_of: list[datetime]
    horizon_days: int
    lookback_days: int
    activity: str


@dataclass
class ChurnResult:
    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    champion_before: str | None
    champion_before_roc_auc: float | None
    plan: ChurnPlan
    rows: dict[str, int]
    feature_names: list[str]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        m = self.metrics
        return (
            f"{self.name} v{self.version} @{self.alias}: holdout ROC-AUC {m['holdout_roc_auc']:.3f}, "
            f"PR-AUC {m['holdout_pr_auc']:.3f}, Brier {m['holdout_brier']:.3f}, "
            f"best baseline AUC {m.get('best_baseline_roc_auc', float('nan')):.3f} "
            f"({self.rows['train']} train / {self.rows['holdout']} holdout rows, {self.seconds:.1f}s)"
        )


def _day_end(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=UTC)


def plan_as_of(
    first: datetime,
    last: datetime,
    *,
    horizon_days: int,
    as_of: datetime | date | None = None,
    lookback_days: int = 90,
    activity: str = "any",
    step_days: int = 7,
    max_train_dates: int = 12,
    min_history_days: int = 14,
) -> ChurnPlan:
    """Holdout and training as-of instants (day ends, UTC) for a log spanning [first, last]."""
    if step_days < 1:
        raise ContractError("step_days", "must be at least 1", step_days)
    if as_of is None:
        holdout = _day_end((last - timedelta(days=horizon_days)).date())
        if holdout + timedelta(days=horizon_days) > last:
            holdout -= timedelta(days=1)
    else:
        day = to_utc(as_of).date() if isinstance(as_of, datetime) else as_of
        holdout = _day_end(day)
        if holdout + timedelta(days=horizon_days) > last:
            raise ContractError(
                "as_of",
                f"the {horizon_days}-day horizon after it runs past the end of the event log ({last.isoformat()})",
                day.isoformat(),
            )
    earliest = _day_end(first.date()) + timedelta(days=min_history_days)
    train: list[datetime] = []
    t = holdout - timedelta(days=horizon_days)
    while t >= earliest and len(train) < max_train_dates:
        train.append(t)
        t -= timedelta(days=step_days)
    if not train:
        raise WorkspaceError(
            f"event log too short for churn training: {first.date()}..{last.date()} leaves no training as-of date "
            f"{horizon_days} days before the holdout ({holdout.date()}) with {min_history_days} days of history; "
            "import a longer history or use a shorter --horizon-days"
        )
    return ChurnPlan(holdout, sorted(train), horizon_days, lookback_days, activity)


def _validation_mask(customer_ids: pd.Series, fraction: float = 0.2, start: float = 0.0) -> np.ndarray:
    """A stable customer-grouped split: a customer is in it at every as-of date or at none."""
    buckets = pd.util.hash_pandas_object(customer_ids.astype(str), index=False).to_numpy() % 1000
    return (buckets >= int(start * 1000)) & (buckets < int((start + fraction) * 1000))


def _baseline_metrics(
    y: np.ndarray, scores: dict[str, np.ndarray], cxi: dict[str, float]
) -> dict[str, float]:
    """baseline_<name>_<metric> for every baseline, the best baseline's AUC/Brier and CXI's deltas to them."""
    out: dict[str, float] = {}
    for name, s in scores.items():
        out.update({f"baseline_{name}_{k}": v for k, v in binary_metrics(y, s).items() if k != "base_rate"})
    best_auc = max(out[f"baseline_{n}_roc_auc"] for n in scores)
    best_brier = min(out[f"baseline_{n}_brier"] for n in scores)
    out["best_baseline_roc_auc"] = best_auc
    out["best_baseline_brier"] = best_brier
    out["delta_roc_auc_vs_best_baseline"] = cxi["holdout_roc_auc"] - best_auc
    out["delta_brier_vs_best_baseline"] = cxi["holdout_brier"] - best_brier
    return out


def _model_card(plan: ChurnPlan, metrics: dict[str, float], rows: dict[str, int], features: list[str]) -> str:
    m = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()))
    return f"""# Churn model ({MODEL_NAME})

**Predicts** the probability that a customer active in the {plan.lookback_days} days before an as-of instant T
shows no {"activity" if plan.activity == "any" else "purchase"} in the following {plan.horizon_days} days.

**Features**: Feast feature service `{FEATURE_SERVICE}` ({len(features)} inputs), point-in-time as of T.

**Data**: training as-of {plan.train_as_of[0].date()} .. {plan.train_as_of[-1].date()} ({len(plan.train_as_of)} dates,
{rows["train"]} train / {rows["valid"]} early-stopping / {rows.get("calib", 0)} calibration rows, customer-grouped);
time-based holdout as-of {plan.holdout_as_of.date()} ({rows["holdout"]} rows). Every training label window ends
by the holdout as-of.

**Calibration**: Platt scaling on the raw margin, chosen on the calibration rows by cross-fitted Brier, folded
into the registered booster (its plain `predict` is the calibrated probability).

**Monotone by construction**: churn risk never falls with recency and never rises with activity counts.

**Baselines** on the same holdout: recency only, logistic regression on RFM, BG/NBD P(no activity in horizon)
(metrics `baseline_*`).

| metric | value |
|---|---|
{m}

**Limitations**: labels and features come from one brand's event log; customers first seen after the
last snapshot are not scored; calibration holds for the training period's base rate (see the holdout ECE).
"""


def _features(settings: Settings, labels: pd.DataFrame, service: str) -> tuple[pd.DataFrame, list[str]]:
    from features.definitions import feature_names
    from features.store import FeatureRepo

    repo = FeatureRepo(settings)
    newest = repo.latest_snapshot()
    needed = labels["event_timestamp"].max()
    if newest < needed:
        raise WorkspaceError(
            f"feature snapshots end at {newest.isoformat()}, before the as-of {needed.isoformat()}: "
            "run `cxi features build` on the current events"
        )
    names = [n for n in feature_names(service) if n not in NOT_MODEL_INPUTS]
    frame = repo.historical(labels, service)
    frame[names] = frame[names].apply(pd.to_numeric, errors="coerce").astype("float64")
    return frame, names


def train_churn(
    settings: Settings,
    ws: Workspace,
    *,
    as_of: datetime | date | None = None,
    horizon_days: int | None = None,
    lookback_days: int = 90,
    step_days: int = 7,
    max_train_dates: int = 12,
    model: ChurnModel | None = None,
    name: str = MODEL_NAME,
    service: str = FEATURE_SERVICE,
) -> ChurnResult:
    """Train, evaluate on the time-based holdout, log and register ``name``; alias champion or challenger.

    Needs resolved identities (`cxi identity resolve`) and built feature snapshots (`cxi features build`).
    """
    from identity import attach_customer_ids

    started = time.perf_counter()
    timings: dict[str, float] = {}
    horizon = settings.churn_horizon_days if horizon_days is None else horizon_days
    if horizon < 1:
        raise ContractError("horizon_days", "must be at least 1 day", horizon)
    for table in ("events", "identity_map"):
        if not ws.exists(table):
            raise WorkspaceError(
                f"table {table!r} is missing in workspace {ws.root}: import events and resolve first"
            )

    with ws.connect("events", "identity_map", "identity_guard_log") as con:
        attach_customer_ids(con)
        first, last = log_bounds(con)
        plan = plan_as_of(
            first,
            last,
            horizon_days=horizon,
            as_of=as_of,
            lookback_days=lookback_days,
            activity=settings.churn_activity,
            step_days=step_days,
            max_train_dates=max_train_dates,
        )
        labels = churn_labels(
            con,
            [*plan.train_as_of, plan.holdout_as_of],
            horizon_days=horizon,
            activity=settings.churn_activity,
            lookback_days=lookback_days,
        )
        summary = activity_summary(con, plan.holdout_as_of, activity=settings.churn_activity)
    timings["labels_s"] = time.perf_counter() - started

    t0 = time.perf_counter()
    frame, names = _features(settings, labels, service)
    timings["features_s"] = time.perf_counter() - t0

    is_holdout = (frame["event_timestamp"] == pd.Timestamp(plan.holdout_as_of)).to_numpy()
    train_all, holdout = frame[~is_holdout], frame[is_holdout]
    valid_mask = _validation_mask(train_all["customer_id"], 0.15)
    calib_mask = _validation_mask(train_all["customer_id"], 0.15, start=0.15)
    train = train_all[~valid_mask & ~calib_mask]
    valid, calib = train_all[valid_mask], train_all[calib_mask]
    rows = {"train": len(train), "valid": len(valid), "calib": len(calib), "holdout": len(holdout)}
    for part, df in (("train", train), ("validation", valid), ("calibration", calib), ("holdout", holdout)):
        if df[LABEL].nunique() < 2:
            raise WorkspaceError(
                f"{part} set: needs churned and retained customers, got {len(df)} rows of one class"
            )

    t0 = time.perf_counter()
    est = model or ChurnModel()
    est.fit(
        train[names],
        train[LABEL],
        eval_set=(valid[names], valid[LABEL]),
        calib_set=(calib[names], calib[LABEL]),
    )
    timings["fit_s"] = time.perf_counter() - t0

    y_hold = holdout[LABEL].to_numpy()
    p_hold = est.predict_proba(holdout[names])[:, 1]
    metrics = {f"holdout_{k}": v for k, v in binary_metrics(y_hold, p_hold).items()}
    metrics["valid_roc_auc"] = roc_auc(valid[LABEL].to_numpy(), est.predict_proba(valid[names])[:, 1])
    metrics["best_iteration"] = float(est.best_iteration_)
    cal = est.calibration_
    calibration_tags = cal.tags() if cal else {"calibration.method": "none"}
    if cal:
        metrics.update({f"calib_brier_{k}": v for k, v in cal.brier.items()})

    t0 = time.perf_counter()
    base = churn_baselines(
        train_all,
        train_all[LABEL].to_numpy(),
        holdout,
        summary,
        horizon_days=horizon,
        activity=settings.churn_activity,
    )
    metrics.update(_baseline_metrics(y_hold, base.scores, metrics))
    metrics.update(base.info)
    timings["baselines_s"] = time.perf_counter() - t0
    baselines = {
        n: {k: metrics[f"baseline_{n}_{k}"] for k in ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift")}
        for n in base.scores
    }
    raw = getattr(est, "raw_booster_", est.booster_)
    importance = dict(
        zip(raw.feature_name(), raw.feature_importance(importance_type="gain").tolist(), strict=True)
    )

    registry = Registry(settings)
    decision = decide(registry, name, holdout, y_hold, metrics["holdout_roc_auc"])
    if decision.champion_roc_auc is not None:
        metrics["champion_holdout_roc_auc"] = decision.champion_roc_auc

    record = TrainingRecord(
        params={
            **est.get_params(),
            "horizon_days": horizon,
            "lookback_days": lookback_days,
            "activity": settings.churn_activity,
            "step_days": step_days,
            "n_train_dates": len(plan.train_as_of),
            "n_features": len(names),
        },
        metrics=metrics,
        feature_service=service,
        data_window={
            "log_first": first.isoformat(),
            "log_last": last.isoformat(),
            "train_as_of_first": plan.train_as_of[0].isoformat(),
            "train_as_of_last": plan.train_as_of[-1].isoformat(),
            "holdout_as_of": plan.holdout_as_of.isoformat(),
        },
        row_counts=rows,
        input_example=holdout[names].head(5),
        model_card=_model_card(plan, metrics, rows, names),
        figures=diagnostic_figures(
            y_hold,
            p_hold,
            title=f"(holdout {plan.holdout_as_of.date()})",
            baselines=base.scores,
            importance=importance,
        ),
        tags={"promotion": decision.alias, "promotion_reason": decision.reason, **calibration_tags},
    )
    t0 = time.perf_counter()
    reg = registry.log_training(name, est.booster_, record, run_name=f"{name}-{plan.holdout_as_of.date()}")
    record_holdout(registry, reg.run_id, holdout[names], y_hold)  # `cxi models promote` re-scores on it
    registry.set_alias(name, reg.version, decision.alias)
    registry.set_tags(name, reg.version, calibration_tags)
    timings["log_register_s"] = time.perf_counter() - t0
    return ChurnResult(
        name=name,
        version=reg.version,
        alias=decision.alias,
        run_id=reg.run_id,
        metrics=metrics,
        champion_before=decision.champion_before,
        champion_before_roc_auc=decision.champion_roc_auc,
        plan=plan,
        rows=rows,
        feature_names=names,
        seconds=time.perf_counter() - started,
        timings=timings,
        baselines=baselines,
        calibration=calibration_tags,
    )
