"""Purchase intent: P(a purchase in the next H days, default 7) for customers known (or active in a lookback).

Same pipeline as churn (`training.pipeline`): labels from the log (`training.targets.intent_labels`),
features only through Feast, a LightGBM binary classifier (`ChurnModel` without churn's monotone
constraints) with early stopping and Platt calibration folded into the booster, a time-based holdout, RFM
baselines in the same run, and registration as ``intent`` (champion unless worse on the same holdout).
"""

from __future__ import annotations

from datetime import date, datetime

from contract.settings import Settings
from contract.workspace import Workspace
from training.baselines import fit_rfm_baselines
from training.evaluation import roc_auc
from training.labels import population_words
from training.model import ChurnModel
from training.pipeline import (
    PredictiveResult,
    Window,
    baseline_metrics,
    binary_figures,
    decide_by,
    fit_binary,
    predictive_result,
    prepare,
    promotion_tags,
    register,
    require_classes,
    training_record,
)
from training.promotion import first_model_floor
from training.registry import Registry
from training.targets import INTENT_LABEL, intent_labels

MODEL_NAME = "intent"
FEATURE_SERVICE = "churn_v1"
DEFAULT_HORIZON_DAYS = 7


def _model_card(
    horizon: int, lookback: int | None, metrics: dict[str, float], rows: dict[str, int], n: int
) -> str:
    table = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()))
    return f"""# Purchase-intent model ({MODEL_NAME})

**Predicts** the probability that a customer {population_words(lookback)} an as-of instant T makes a
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
    lookback_days: int | None = None,
    step_days: int = 7,
    max_train_dates: int = 12,
    model: ChurnModel | None = None,
    name: str = MODEL_NAME,
    service: str = FEATURE_SERVICE,
) -> PredictiveResult:
    """Train, evaluate on the time-based holdout, log and register ``name`` (alias champion or challenger)."""
    window = Window(as_of, horizon_days, lookback_days, step_days, max_train_dates)
    prep = prepare(settings, ws, intent_labels, window, service=service, what="intent")
    parts, holdout = prep.parts, prep.parts["holdout"]
    require_classes(parts, INTENT_LABEL, "buyers and non-buyers")
    rows = {k: len(v) for k, v in parts.items()}

    est = model or ChurnModel(monotone=False)
    fit = fit_binary(est, prep, INTENT_LABEL, calib_metrics=False)
    y, metrics = fit.y, fit.metrics
    metrics["horizon_days"] = float(horizon_days)
    train_all = prep.train_all
    base = fit_rfm_baselines(train_all, train_all[INTENT_LABEL].to_numpy(), holdout, "purchase")
    metrics.update(baseline_metrics(y, base, metrics, brier=False, p=fit.p))

    registry = Registry(settings)
    decision = decide_by(
        registry,
        name,
        holdout,
        lambda s: roc_auc(y, s),
        metrics["holdout_roc_auc"],
        metric_name="ROC-AUC",
        floor=first_model_floor(metrics),
    )
    if decision.champion_value is not None:
        metrics["champion_holdout_roc_auc"] = decision.champion_value
    record = training_record(
        est,
        prep,
        service=service,
        metrics=metrics,
        rows=rows,
        model_card=_model_card(horizon_days, lookback_days, metrics, rows, len(prep.names)),
        figures=binary_figures(est, fit, f"intent (holdout {prep.plan.holdout_as_of.date()})", base),
        tags=promotion_tags(decision, fit.tags),
    )
    reg = register(
        registry,
        name,
        est.booster_,
        record,
        decision.alias,
        prep.plan,
        tags={**fit.tags, "horizon_days": str(horizon_days)},
    )
    return predictive_result(name, reg, decision, metrics, prep, rows)
