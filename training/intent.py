"""Purchase intent: P(a purchase in the next H days, default 7) for customers active in the lookback.

Same pipeline as churn (`training.pipeline`): labels from the log (`training.targets.intent_labels`),
features only through Feast, a LightGBM binary classifier (`ChurnModel` without churn's monotone
constraints) with early stopping and Platt calibration folded into the booster, a time-based holdout, RFM
baselines in the same run, and registration as ``intent`` (champion unless worse on the same holdout).
"""

from __future__ import annotations

import time
from datetime import date, datetime

from contract.errors import WorkspaceError
from contract.settings import Settings
from contract.workspace import Workspace
from training.baselines import fit_rfm_baselines
from training.evaluation import binary_metrics, diagnostic_figures, roc_auc
from training.model import ChurnModel
from training.pipeline import (
    PredictiveResult,
    data_window,
    decide_by,
    gain_importance,
    labelled_rows,
    point_in_time_features,
    register,
    split,
)
from training.registry import Registry, TrainingRecord
from training.targets import INTENT_LABEL, intent_labels

MODEL_NAME = "intent"
FEATURE_SERVICE = "churn_v1"
DEFAULT_HORIZON_DAYS = 7


def _model_card(horizon: int, lookback: int, metrics: dict[str, float], rows: dict[str, int], n: int) -> str:
    table = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()))
    return f"""# Purchase-intent model ({MODEL_NAME})

**Predicts** the probability that a customer active in the {lookback} days before an as-of instant T makes a
purchase (returns excluded) in the following {horizon} days.

**Features**: Feast feature service `{FEATURE_SERVICE}` ({n} inputs), point-in-time as of T.

**Data**: {rows["train"]} train / {rows["valid"]} early-stopping / {rows["calib"]} calibration rows
(customer-grouped), time-based holdout of {rows["holdout"]} rows; every training label window ends by the
holdout as-of.

**Calibration**: Platt scaling folded into the booster (check `holdout_ece`, `holdout_brier`).

**Baselines** on the same holdout: days since last purchase, logistic regression on RFM (`baseline_*`).

| metric | value |
|---|---|
{table}
"""


def train_intent(
    settings: Settings,
    ws: Workspace,
    *,
    as_of: datetime | date | None = None,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    lookback_days: int = 90,
    step_days: int = 7,
    max_train_dates: int = 12,
    model: ChurnModel | None = None,
    name: str = MODEL_NAME,
    service: str = FEATURE_SERVICE,
) -> PredictiveResult:
    """Train, evaluate on the time-based holdout, log and register ``name`` (alias champion or challenger)."""
    started = time.perf_counter()
    labelled = labelled_rows(
        ws,
        intent_labels,
        horizon_days=horizon_days,
        as_of=as_of,
        lookback_days=lookback_days,
        step_days=step_days,
        max_train_dates=max_train_dates,
        what="intent",
    )
    frame, names = point_in_time_features(settings, labelled.labels, service)
    parts = split(frame, labelled.plan)
    for part, df in parts.items():
        if df[INTENT_LABEL].nunique() < 2:
            raise WorkspaceError(f"{part} set: needs buyers and non-buyers, got {len(df)} rows of one class")
    train, valid, calib, holdout = parts["train"], parts["valid"], parts["calib"], parts["holdout"]
    rows = {k: len(v) for k, v in parts.items()}

    est = model or ChurnModel(monotone=False)
    est.fit(
        train[names],
        train[INTENT_LABEL],
        eval_set=(valid[names], valid[INTENT_LABEL]),
        calib_set=(calib[names], calib[INTENT_LABEL]),
    )
    y = holdout[INTENT_LABEL].to_numpy()
    p = est.predict_proba(holdout[names])[:, 1]
    metrics = {f"holdout_{k}": v for k, v in binary_metrics(y, p).items()}
    metrics["valid_roc_auc"] = roc_auc(valid[INTENT_LABEL].to_numpy(), est.predict_proba(valid[names])[:, 1])
    metrics["best_iteration"] = float(est.best_iteration_)
    metrics["horizon_days"] = float(horizon_days)

    train_all = frame[frame["event_timestamp"] != holdout["event_timestamp"].iloc[0]]
    base = fit_rfm_baselines(train_all, train_all[INTENT_LABEL].to_numpy(), holdout, "purchase")
    for b, s in base.items():
        metrics.update({f"baseline_{b}_{k}": v for k, v in binary_metrics(y, s).items() if k != "base_rate"})
    metrics["best_baseline_roc_auc"] = max(metrics[f"baseline_{b}_roc_auc"] for b in base)
    metrics["delta_roc_auc_vs_best_baseline"] = metrics["holdout_roc_auc"] - metrics["best_baseline_roc_auc"]

    registry = Registry(settings)
    decision = decide_by(
        registry, name, holdout, lambda s: roc_auc(y, s), metrics["holdout_roc_auc"], metric_name="ROC-AUC"
    )
    if decision.champion_value is not None:
        metrics["champion_holdout_roc_auc"] = decision.champion_value
    cal = est.calibration_
    tags = cal.tags() if cal else {"calibration.method": "none"}
    record = TrainingRecord(
        params={
            **est.get_params(),
            "horizon_days": horizon_days,
            "lookback_days": lookback_days,
            "step_days": step_days,
            "n_train_dates": len(labelled.plan.train_as_of),
            "n_features": len(names),
        },
        metrics=metrics,
        feature_service=service,
        data_window=data_window(labelled),
        row_counts=rows,
        input_example=holdout[names].head(5),
        model_card=_model_card(horizon_days, lookback_days, metrics, rows, len(names)),
        figures=diagnostic_figures(
            y,
            p,
            title=f"intent (holdout {labelled.plan.holdout_as_of.date()})",
            baselines=base,
            importance=gain_importance(getattr(est, "raw_booster_", est.booster_)),
        ),
        tags={"promotion": decision.alias, "promotion_reason": decision.reason, **tags},
    )
    reg = register(
        registry,
        name,
        est.booster_,
        record,
        decision,
        run_name=f"{name}-{labelled.plan.holdout_as_of.date()}",
    )
    registry.set_tags(name, reg.version, {**tags, "horizon_days": str(horizon_days)})
    return PredictiveResult(
        name=name,
        version=reg.version,
        alias=decision.alias,
        run_id=reg.run_id,
        metrics=metrics,
        champion_before=decision.champion_before,
        plan=labelled.plan,
        rows=rows,
        feature_names=names,
        seconds=time.perf_counter() - started,
    )
