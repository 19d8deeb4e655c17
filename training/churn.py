"""Churn training: labels from the event log, features only through Feast, LightGBM, MLflow registry.

Time design (no leakage across time). Every as-of instant T is a snapshot instant of the feature store (a
day's 23:59:59 UTC), so features count events <= T and labels events in (T, T + H].

* holdout: the latest T with T + H <= the end of the log (or ``as_of``);
* training: T_h - H, then every ``step_days`` further back, so every training label window ends by T_h;
* early stopping on a customer-grouped validation split of the training rows (which also picks the tree size
  among `training.model.NUM_LEAVES_GRID` by validation log-loss), and Platt calibration chosen
  on a second, disjoint customer-grouped calibration split (folded into the registered booster);
* boosting starts from the MBG/NBD prior of `training.prior` (setting ``churn_prior``), registered with it;
* baselines (recency, logistic regression on RFM, BG/NBD) scored on the same holdout rows in the same run.

A new model becomes ``champion`` when there is none, or when its holdout ROC-AUC is not below the current
champion's scored on the very same holdout rows; otherwise it gets alias ``challenger``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime

from contract.errors import ContractError
from contract.settings import Settings
from contract.workspace import Workspace
from training.baselines import activity_summary, churn_baselines
from training.labels import churn_labels, population_words
from training.model import ChurnModel
from training.pipeline import (
    NOT_MODEL_INPUTS,
    ChurnPlan,
    PredictiveResult,
    Window,
    baseline_metrics,
    binary_figures,
    fit_binary,
    plan_as_of,
    predictive_result,
    prepare,
    promotion_tags,
    register,
    require_classes,
    training_record,
)
from training.prior import BTYDPrior
from training.promotion import decide, first_model_floor
from training.registry import Registry

__all__ = ["NOT_MODEL_INPUTS", "ChurnPlan", "ChurnResult", "plan_as_of", "train_churn"]

MODEL_NAME = "churn"
FEATURE_SERVICE = "churn_v1"
LABEL = "churned"


@dataclass
class ChurnResult(PredictiveResult):
    """A churn run: a PredictiveResult plus the old champion's AUC, timings, baselines and calibration."""

    champion_before_roc_auc: float | None = None
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


def _prior_words(prior: BTYDPrior | None) -> str:
    if prior is None:
        return "none: boosting starts from a constant."
    params = ", ".join(f"{k} = {v:.4g}" for k, v in prior.to_dict()["params"].items())
    return (
        f"boosting starts from an MBG/NBD model of each customer's activity timing ({params}; fitted on "
        f"the training rows, never on labels; it reads {', '.join(f'`{c}`' for c in prior.columns)}, feature "
        f"mapping {prior.mapping}): the trees learn what it misses, and the served log-odds add "
        f"{prior.scale:.4g} × its log-odds of no activity in {prior.horizon_days} days (`training.prior`). "
        "Registered as an MLflow pyfunc holding both parts."
    )


def _model_card(
    plan: ChurnPlan,
    metrics: dict[str, float],
    rows: dict[str, int],
    features: list[str],
    prior: BTYDPrior | None = None,
) -> str:
    m = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()))
    return f"""# Churn model ({MODEL_NAME})

**Predicts** the probability that a customer {population_words(plan.lookback_days)} an as-of instant T
shows no {"activity" if plan.activity == "any" else "purchase"} in the following {plan.horizon_days} days.

**Features**: Feast feature service `{FEATURE_SERVICE}` ({len(features)} inputs), point-in-time as of T.

**Data**: training as-of {plan.train_as_of[0].date()} .. {plan.train_as_of[-1].date()} ({len(plan.train_as_of)} dates,
{rows["train"]} train / {rows["valid"]} early-stopping / {rows.get("calib", 0)} calibration rows, customer-grouped);
time-based holdout as-of {plan.holdout_as_of.date()} ({rows["holdout"]} rows). Every training label window ends
by the holdout as-of.

**Capacity**: tree size chosen on the early-stopping rows by log-loss (`num_leaves_chosen`, with every
candidate's `valid_logloss_leaves_*`).

**Calibration**: Platt scaling on the raw margin (trees plus prior), chosen on the calibration rows by
cross-fitted Brier; folded into the registered booster, and its slope scales the prior.

**Prior**: {_prior_words(prior)}

**Monotone by construction**: churn risk never falls as the last activity ages, and activity now never raises
it. The trees never raise it with activity counts; the prior may, for a frequent customer gone quiet.

**Baselines** on the same holdout: recency only, logistic regression on RFM, BG/NBD P(no activity in horizon)
(metrics `baseline_*`).

| metric | value |
|---|---|
{m}

**Limitations**: labels and features come from one brand's event log; customers first seen after the
last snapshot are not scored; calibration holds for the training period's base rate (see the holdout ECE).
"""


def train_churn(
    settings: Settings,
    ws: Workspace,
    *,
    as_of: datetime | date | None = None,
    horizon_days: int | None = None,
    lookback_days: int | None = None,
    step_days: int = 7,
    max_train_dates: int = 12,
    model: ChurnModel | None = None,
    name: str = MODEL_NAME,
    service: str = FEATURE_SERVICE,
) -> ChurnResult:
    """Train, evaluate on the time-based holdout, log and register ``name``; alias champion or challenger.

    Needs resolved identities (`cxi identity resolve`) and built feature snapshots (`cxi features build`).
    """
    timings: dict[str, float] = {}
    horizon = settings.churn_horizon_days if horizon_days is None else horizon_days
    if horizon < 1:
        raise ContractError("horizon_days", "must be at least 1 day", horizon)
    activity = settings.churn_activity
    prep = prepare(
        settings,
        ws,
        churn_labels,
        Window(as_of, horizon, lookback_days, step_days, max_train_dates),
        service=service,
        what=None,
        activity=activity,
        extra=lambda con, plan: activity_summary(con, plan.holdout_as_of, activity=activity),
        timings=timings,
    )
    plan, names, parts = prep.plan, prep.names, prep.parts
    holdout, train_all = parts["holdout"], prep.train_all
    rows = {k: len(v) for k, v in parts.items()}
    require_classes(
        parts, LABEL, "churned and retained customers", {"valid": "validation", "calib": "calibration"}
    )

    t0 = time.perf_counter()
    est = model or ChurnModel(
        prior=BTYDPrior(activity, horizon) if settings.churn_prior == "mbgnbd" else None
    )
    fit = fit_binary(est, prep, LABEL, calib_metrics=True)
    timings["fit_s"] = time.perf_counter() - t0
    y_hold, metrics, calibration_tags = fit.y, fit.metrics, fit.tags

    t0 = time.perf_counter()
    base = churn_baselines(
        train_all,
        train_all[LABEL].to_numpy(),
        holdout,
        prep.labelled.extra,
        horizon_days=horizon,
        activity=activity,
    )
    metrics.update(baseline_metrics(y_hold, base.scores, metrics, p=fit.p))
    metrics.update(base.info)
    timings["baselines_s"] = time.perf_counter() - t0
    baselines = {
        n: {k: metrics[f"baseline_{n}_{k}"] for k in ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift")}
        for n in base.scores
    }

    registry = Registry(settings)
    decision = decide(
        registry, name, holdout, y_hold, metrics["holdout_roc_auc"], floor=first_model_floor(metrics)
    )
    if decision.champion_roc_auc is not None:
        metrics["champion_holdout_roc_auc"] = decision.champion_roc_auc

    record = training_record(
        est,
        prep,
        service=service,
        metrics=metrics,
        rows=rows,
        model_card=_model_card(plan, metrics, rows, names, getattr(est, "prior_", None)),
        figures=binary_figures(est, fit, f"(holdout {plan.holdout_as_of.date()})", base.scores),
        tags=promotion_tags(decision, calibration_tags),
        activity=activity,
    )
    t0 = time.perf_counter()
    # the holdout goes with the run: `cxi models promote` re-scores on it
    reg = register(
        registry,
        name,
        est.booster_,
        record,
        decision.alias,
        plan,
        holdout=(holdout[names], y_hold),
        tags=calibration_tags,
        prior=getattr(est, "prior_", None),
    )
    timings["log_register_s"] = time.perf_counter() - t0
    return predictive_result(
        name,
        reg,
        decision,
        metrics,
        prep,
        rows,
        ChurnResult,
        champion_before_roc_auc=decision.champion_roc_auc,
        timings=timings,
        baselines=baselines,
        calibration=calibration_tags,
    )
