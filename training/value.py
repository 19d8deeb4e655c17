"""Predicted value: expected revenue over the next H days (default 90) for customers known (or active in a lookback).

Same pipeline as churn and intent (`training.pipeline`): labels from the log
(`training.targets.value_labels`), features only through Feast, a LightGBM regressor with a Tweedie objective
(zero-inflated, right-skewed revenue) and early stopping, a time-based holdout, the "last 90 days carried
forward" baseline in the same run, and registration as ``value`` (champion unless its holdout RMSE is worse
than the current champion's on the same rows).

A 90-day horizon needs a log of about 2 x 90 + 15 days (a holdout as-of with 90 observed days after it and a
training as-of 90 days before that); a shorter log is a ContractError on ``as_of`` asking for a shorter
``horizon_days``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from contract.errors import ContractError
from contract.settings import Settings
from contract.workspace import Workspace
from training.evaluation import gain_curve
from training.labels import population_words
from training.pipeline import (
    PredictiveResult,
    Window,
    decide_by,
    gain_importance,
    predictive_result,
    prepare,
    promotion_tags,
    register,
    require_rows,
    training_record,
)
from training.registry import Registry
from training.targets import VALUE_LABEL, value_labels

MODEL_NAME = "value"
FEATURE_SERVICE = "churn_v1"
DEFAULT_HORIZON_DAYS = 90
#: The window of the revenue feature the carry-forward baseline scales to the horizon.
BASELINE_FEATURE, BASELINE_DAYS = "revenue_90d", 90


class ValueModel:
    """LightGBM regression of future revenue (scikit-learn style: params in __init__, learned attrs end in _)."""

    def __init__(
        self,
        *,
        objective: str = "tweedie",
        tweedie_variance_power: float = 1.3,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_data_in_leaf: int = 50,
        feature_fraction: float = 0.9,
        lambda_l2: float = 1.0,
        num_boost_round: int = 1000,
        early_stopping_rounds: int = 50,
        seed: int = 0,
        num_threads: int = 0,
    ) -> None:
        self.objective = objective
        self.tweedie_variance_power = tweedie_variance_power
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.feature_fraction = feature_fraction
        self.lambda_l2 = lambda_l2
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.seed = seed
        self.num_threads = num_threads

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def fit(self, X: pd.DataFrame, y: np.ndarray, *, eval_set: tuple[pd.DataFrame, np.ndarray]) -> ValueModel:
        """Train on X (numeric features) and y (revenue >= 0), stopping early on ``eval_set``'s RMSE."""
        y = np.asarray(y, dtype="float64")
        if len(y) != len(X) or not np.isfinite(y).all() or (y < 0).any():
            raise ContractError("y", "must be one finite, non-negative revenue per row of X")
        params = {
            "objective": self.objective,
            "metric": "rmse",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }
        if self.objective == "tweedie":
            params["tweedie_variance_power"] = self.tweedie_variance_power
        train = lgb.Dataset(X.astype("float64"), label=y, feature_name=list(X.columns))
        valid = lgb.Dataset(
            eval_set[0][list(X.columns)].astype("float64"), label=eval_set[1], reference=train
        )
        booster = lgb.train(
            params,
            train,
            num_boost_round=self.num_boost_round,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        # keep only the trees up to the best iteration, so a plain predict of the registered booster is the model
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=self.best_iteration_))
        self.feature_names_ = list(X.columns)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(X[self.feature_names_].astype("float64")))


def top_decile_capture(y: np.ndarray, pred: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the total actual revenue earned by the top ``fraction`` of customers by prediction."""
    y = np.asarray(y, dtype="float64")
    total = y.sum()
    if total <= 0:
        return float("nan")
    k = max(1, round(fraction * len(y)))
    top = np.argsort(-np.asarray(pred, dtype="float64"), kind="stable")[:k]
    return float(y[top].sum() / total)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, Spearman rank correlation, top-decile revenue capture and predicted/actual total ratio."""
    y, pred = np.asarray(y, dtype="float64"), np.asarray(pred, dtype="float64")
    rho = spearmanr(y, pred).statistic if np.ptp(pred) > 0 and np.ptp(y) > 0 else float("nan")
    return {
        "rmse": float(np.sqrt(np.mean((y - pred) ** 2))),
        "mae": float(np.mean(np.abs(y - pred))),
        "spearman": float(rho),
        "top_decile_capture": top_decile_capture(y, pred),
        "total_ratio": float(pred.sum() / y.sum()) if y.sum() > 0 else float("nan"),
        "mean_actual": float(y.mean()),
    }


def carry_forward(features: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Baseline: the last 90 days' revenue, scaled to the horizon."""
    if BASELINE_FEATURE not in features.columns:
        raise ContractError("features", f"missing column {BASELINE_FEATURE!r} for the carry-forward baseline")
    past = features[BASELINE_FEATURE].fillna(0.0).clip(lower=0).to_numpy(dtype="float64")
    return past * (horizon_days / BASELINE_DAYS)


def _figures(
    y: np.ndarray, scores: dict[str, np.ndarray], title: str, importance: dict[str, float]
) -> dict[str, Figure]:
    figs: dict[str, Figure] = {}
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    for name, s in scores.items():
        x, g = gain_curve(y, s)
        ax.plot(x, g, label=f"{name} (top 10%: {top_decile_capture(y, s):.2f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="Share of customers (by prediction)", ylabel="Share of revenue", title=f"Gain {title}")
    ax.legend(loc="lower right")
    figs["revenue_gain"] = fig

    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    pred = scores["CXI"]
    deciles = pd.qcut(pd.Series(pred).rank(method="first"), 10, labels=False)
    by = pd.DataFrame({"d": deciles, "pred": pred, "y": y}).groupby("d")[["pred", "y"]].mean()
    ax.plot(by.index + 1, by["pred"], marker="o", label="predicted")
    ax.plot(by.index + 1, by["y"], marker="s", label="actual")
    ax.set(xlabel="Decile of predicted value", ylabel="Mean revenue", title=f"Calibration {title}")
    ax.legend(loc="upper left")
    figs["calibration"] = fig

    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig = Figure(figsize=(6, max(3.0, 0.25 * len(items))))
    ax = fig.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="Total gain", title=f"Feature importance {title}")
    fig.tight_layout()
    figs["feature_importance"] = fig
    return figs


def _model_card(
    horizon: int, lookback: int | None, metrics: dict[str, float], rows: dict[str, int], n: int
) -> str:
    table = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()))
    return f"""# Predicted-value model ({MODEL_NAME})

**Predicts** the expected revenue (net of returns, floored at 0) of a customer {population_words(lookback)}
an as-of instant T over the following {horizon} days.

**Features**: Feast feature service `{FEATURE_SERVICE}` ({n} inputs), point-in-time as of T.
**Model**: LightGBM, Tweedie objective, early stopping on a customer-grouped validation split.

**Data**: {rows["train"]} train / {rows["valid"]} early-stopping rows, time-based holdout of
{rows["holdout"]} rows.

**Baseline** on the same holdout: the last 90 days' revenue carried forward to the horizon (`baseline_*`).

| metric | value |
|---|---|
{table}
"""


def train_value(
    settings: Settings,
    ws: Workspace,
    *,
    as_of: datetime | date | None = None,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    lookback_days: int | None = None,
    step_days: int = 7,
    max_train_dates: int = 12,
    model: ValueModel | None = None,
    name: str = MODEL_NAME,
    service: str = FEATURE_SERVICE,
) -> PredictiveResult:
    """Train, evaluate on the time-based holdout, log and register ``name`` (alias champion or challenger)."""
    window = Window(as_of, horizon_days, lookback_days, step_days, max_train_dates)
    prep = prepare(settings, ws, value_labels, window, service=service, what="value")
    parts, names = prep.parts, prep.names
    train = pd.concat([parts["train"], parts["calib"]])  # no calibration step: its rows train
    valid, holdout = parts["valid"], parts["holdout"]
    rows = {"train": len(train), "valid": len(valid), "holdout": len(holdout)}
    require_rows({"train": train, "valid": valid, "holdout": holdout}, minimum=10)

    est = model or ValueModel()
    est.fit(
        train[names], train[VALUE_LABEL].to_numpy(), eval_set=(valid[names], valid[VALUE_LABEL].to_numpy())
    )
    y = holdout[VALUE_LABEL].to_numpy()
    pred = est.predict(holdout)
    base = carry_forward(holdout, horizon_days)
    metrics = {f"holdout_{k}": v for k, v in regression_metrics(y, pred).items()}
    metrics |= {f"baseline_carry_forward_{k}": v for k, v in regression_metrics(y, base).items()}
    metrics["delta_rmse_vs_baseline"] = metrics["holdout_rmse"] - metrics["baseline_carry_forward_rmse"]
    metrics["delta_spearman_vs_baseline"] = (
        metrics["holdout_spearman"] - metrics["baseline_carry_forward_spearman"]
    )
    metrics["best_iteration"] = float(est.best_iteration_)
    metrics["horizon_days"] = float(horizon_days)

    registry = Registry(settings)
    decision = decide_by(
        registry,
        name,
        holdout,
        lambda s: float(np.sqrt(np.mean((y - s) ** 2))),
        metrics["holdout_rmse"],
        metric_name="RMSE",
        higher_is_better=False,
    )
    if decision.champion_value is not None:
        metrics["champion_holdout_rmse"] = decision.champion_value
    title = f"value (holdout {prep.plan.holdout_as_of.date()})"
    record = training_record(
        est,
        prep,
        service=service,
        metrics=metrics,
        rows=rows,
        model_card=_model_card(horizon_days, lookback_days, metrics, rows, len(names)),
        figures=_figures(y, {"CXI": pred, "carry_forward": base}, title, gain_importance(est.booster_)),
        tags=promotion_tags(decision),
    )
    reg = register(
        registry,
        name,
        est.booster_,
        record,
        decision.alias,
        prep.plan,
        tags={"horizon_days": str(horizon_days)},
    )
    return predictive_result(name, reg, decision, metrics, prep, rows)
