"""The generic supervised pipeline behind churn, intent and value: labels at planned as-of instants,
point-in-time features through Feast, customer-grouped splits, a champion/challenger decision on one holdout,
and registration through `training.registry`.

Time design (no leakage across time). Every as-of instant T is a snapshot instant of the feature store (a
day's 23:59:59 UTC), so features count events <= T and labels events in (T, T + H]. The holdout as-of T_h is
the latest day end with T_h + H inside the log (or ``as_of``); training as-of instants lie at T_h - H and every
``step_days`` before, so no training label sees past T_h.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from contract.errors import ContractError, WorkspaceError
from contract.settings import Settings
from contract.workspace import Workspace
from training.evaluation import auc_difference_interval, binary_metrics, diagnostic_figures, roc_auc
from training.labels import log_bounds, to_utc
from training.registry import CHALLENGER, CHAMPION, RegisteredVersion, Registry, TrainingRecord

logger = logging.getLogger(__name__)

#: Served with the features but not a model input: an absolute time says nothing that carries over in time.
NOT_MODEL_INPUTS: frozenset[str] = frozenset({"snapshot_at"})
LabelFn = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class ChurnPlan:
    """The as-of instants of one training run (churn's name; every model plans the same way)."""

    holdout_as_of: datetime
    train_as_of: list[datetime]
    horizon_days: int
    lookback_days: int | None  # None: every customer known at each as-of
    activity: str


def _day_end(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=UTC)


def plan_as_of(
    first: datetime,
    last: datetime,
    *,
    horizon_days: int,
    as_of: datetime | date | None = None,
    lookback_days: int | None = None,
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


@dataclass
class PredictiveResult:
    """What one training run produced (churn extends it with `training.churn.ChurnResult`)."""

    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    champion_before: str | None
    plan: ChurnPlan
    rows: dict[str, int]
    feature_names: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """Champion/challenger outcome: the alias for the new version and the old champion's holdout metric."""

    alias: str  # champion | challenger
    champion_before: str | None
    champion_value: float | None  # the old champion's metric on the new model's holdout
    reason: str


@dataclass
class Labelled:
    plan: ChurnPlan
    labels: pd.DataFrame
    first: datetime
    last: datetime
    extra: Any = None


@dataclass
class Prepared:
    """Labelled rows with their point-in-time features, split by customer and time."""

    labelled: Labelled
    frame: pd.DataFrame
    names: list[str]
    parts: dict[str, pd.DataFrame]
    window: Window
    started: float

    @property
    def plan(self) -> ChurnPlan:
        return self.labelled.plan

    @property
    def train_all(self) -> pd.DataFrame:
        """Every row of the training as-of instants (train + valid + calib)."""
        return self.frame[~holdout_mask(self.frame, self.plan)]


@dataclass(frozen=True)
class Window:
    """The time arguments of every ``train_*``: holdout as-of, horizon, lookback and training as-of spacing."""

    as_of: datetime | date | None
    horizon_days: int
    lookback_days: int | None = None  # every customer known at T: those `cxi score` scores
    step_days: int = 7
    max_train_dates: int = 12


def labelled_rows(
    ws: Workspace,
    label_fn: LabelFn,
    window: Window,
    *,
    what: str | None,
    activity: str | None = None,
    extra: Callable[[Any, ChurnPlan], Any] | None = None,
) -> Labelled:
    """Plan the as-of instants for the log in ``ws`` and compute ``label_fn``'s labels at all of them.

    With ``what``, a log too short for the horizon is a ContractError on ``as_of`` that says how long it must
    be (else plan_as_of's WorkspaceError). ``activity`` goes to the plan and ``label_fn``; ``extra(con, plan)``
    runs on the same connection and lands in ``Labelled.extra``."""
    from identity import attach_customer_ids

    horizon_days, lookback_days = window.horizon_days, window.lookback_days
    if horizon_days < 1:
        raise ContractError("horizon_days", "must be at least 1 day", horizon_days)
    for table in ("events", "identity_map"):
        if not ws.exists(table):
            raise WorkspaceError(
                f"table {table!r} is missing in workspace {ws.root}: import events and resolve first"
            )
    with ws.connect("events", "identity_map", "identity_guard_log") as con:
        attach_customer_ids(con)
        first, last = log_bounds(con)
        try:
            plan = plan_as_of(
                first,
                last,
                horizon_days=horizon_days,
                as_of=window.as_of,
                lookback_days=lookback_days,
                activity=activity or "any",
                step_days=window.step_days,
                max_train_dates=window.max_train_dates,
            )
        except WorkspaceError as exc:
            if what is None:
                raise
            need = 2 * horizon_days + 15
            raise ContractError(
                "as_of",
                f"no {what} training possible: the event log spans {first.date()}..{last.date()} "
                f"({(last - first).days} days) but a {horizon_days}-day horizon needs a holdout as-of with "
                f"{horizon_days} days after it and a training as-of {horizon_days} days before that, "
                f"after 14 days of history (about {need} days in all); use a shorter --horizon-days",
            ) from exc
        labels = label_fn(
            con,
            [*plan.train_as_of, plan.holdout_as_of],
            horizon_days=horizon_days,
            **({} if activity is None else {"activity": activity}),
            lookback_days=lookback_days,
        )
        more = extra(con, plan) if extra is not None else None
    return Labelled(plan, labels, first, last, more)


def point_in_time_features(
    settings: Settings, entity_rows: pd.DataFrame, service: str
) -> tuple[pd.DataFrame, list[str]]:
    """``entity_rows`` (customer_id, event_timestamp, ...) with the service's features as of each row,
    through `FeatureRepo.historical`; returns the frame and the model-input feature names (float64)."""
    from features.definitions import feature_names
    from features.store import FeatureRepo

    repo = FeatureRepo(settings)
    newest = repo.latest_snapshot()
    needed = entity_rows["event_timestamp"].max()
    if newest < needed:
        raise WorkspaceError(
            f"feature snapshots end at {newest.isoformat()}, before the as-of {needed.isoformat()}: "
            "run `cxi features build` on the current events"
        )
    names = [n for n in feature_names(service) if n not in NOT_MODEL_INPUTS]
    frame = repo.historical(entity_rows, service)
    frame[names] = frame[names].apply(pd.to_numeric, errors="coerce").astype("float64")
    return frame, names


def customer_mask(customer_ids: pd.Series, fraction: float, start: float = 0.0) -> np.ndarray:
    """A stable customer-grouped split: a customer is in it at every as-of instant or at none."""
    buckets = pd.util.hash_pandas_object(customer_ids.astype(str), index=False).to_numpy() % 1000
    return (buckets >= int(start * 1000)) & (buckets < int((start + fraction) * 1000))


def holdout_mask(frame: pd.DataFrame, plan: ChurnPlan) -> np.ndarray:
    """The rows at the holdout as-of."""
    return (frame["event_timestamp"] == pd.Timestamp(plan.holdout_as_of)).to_numpy()


def split(frame: pd.DataFrame, plan: ChurnPlan) -> dict[str, pd.DataFrame]:
    """train / valid (15% of customers) / calib (another 15%) from the training instants; holdout at T_h."""
    is_holdout = holdout_mask(frame, plan)
    train_all = frame[~is_holdout]
    valid = customer_mask(train_all["customer_id"], 0.15)
    calib = customer_mask(train_all["customer_id"], 0.15, start=0.15)
    return {
        "train": train_all[~valid & ~calib],
        "valid": train_all[valid],
        "calib": train_all[calib],
        "holdout": frame[is_holdout],
    }


def gain_importance(booster: object) -> dict[str, float]:
    """Total split gain per feature of a LightGBM booster."""
    names = booster.feature_name()  # type: ignore[attr-defined]
    gains = booster.feature_importance(importance_type="gain").tolist()  # type: ignore[attr-defined]
    return dict(zip(names, gains, strict=True))


def decide_by(
    registry: Registry,
    name: str,
    holdout: pd.DataFrame,
    metric: Callable[[np.ndarray], float],
    new_value: float,
    *,
    metric_name: str,
    higher_is_better: bool = True,
    floor: str | None = None,
) -> Decision:
    """Score the current champion of ``name`` on ``holdout`` with ``metric(predictions)``; the new model becomes
    champion unless it is worse (ties promote). A first model with a ``floor`` reason stays challenger."""
    before = registry.champion_version(name)
    if before is None:
        if floor:
            logger.warning("%s: first model kept as challenger, not champion: %s", name, floor)
            return Decision(CHALLENGER, None, None, f"first model, not made champion: {floor}")
        return Decision(CHAMPION, None, None, "first model")
    champ = registry.champion(name)
    missing = sorted(set(champ.feature_names) - set(holdout.columns))
    if missing:
        return Decision(
            CHAMPION, before, None, f"champion v{before} needs features the holdout lacks: {missing}"
        )
    old = float(metric(champ.predict(holdout)))
    wins = new_value >= old if higher_is_better else new_value <= old
    return Decision(
        CHAMPION if wins else CHALLENGER,
        before,
        old,
        f"holdout {metric_name} {new_value:.4f} vs champion v{before} {old:.4f}",
    )


def register(
    registry: Registry,
    name: str,
    booster: object,
    record: TrainingRecord,
    alias: str,
    plan: ChurnPlan,
    *,
    holdout: tuple[pd.DataFrame, np.ndarray] | None = None,
    tags: dict[str, str] | None = None,
    prior: Any = None,
) -> RegisteredVersion:
    """Log the run, register a new version of ``name`` and point ``alias`` at it; ``holdout`` (X, y) is kept
    with the run for `cxi models promote`, ``tags`` go on the version, ``prior`` is the one the booster was
    boosted from (`training.prior`), registered with it."""
    from training.promotion import record_holdout

    reg = registry.log_training(
        name,
        booster,  # type: ignore[arg-type]
        record,
        run_name=f"{name}-{plan.holdout_as_of.date()}",
        prior=prior,
    )
    if holdout is not None:
        record_holdout(registry, reg.run_id, *holdout)
    registry.set_alias(name, reg.version, alias)
    if tags is not None:
        registry.set_tags(name, reg.version, tags)
    return reg


def data_window(labelled: Labelled) -> dict[str, str]:
    plan = labelled.plan
    return {
        "log_first": labelled.first.isoformat(),
        "log_last": labelled.last.isoformat(),
        "train_as_of_first": plan.train_as_of[0].isoformat(),
        "train_as_of_last": plan.train_as_of[-1].isoformat(),
        "holdout_as_of": plan.holdout_as_of.isoformat(),
    }


def require_rows(parts: dict[str, pd.DataFrame], minimum: int = 1) -> None:
    for part, df in parts.items():
        if len(df) < minimum:
            raise WorkspaceError(f"{part} set is empty: too few customers for a split; import more history")


def prepare(
    settings: Settings,
    ws: Workspace,
    label_fn: LabelFn,
    window: Window,
    *,
    service: str,
    what: str | None,
    activity: str | None = None,
    extra: Callable[[Any, ChurnPlan], Any] | None = None,
    timings: dict[str, float] | None = None,
) -> Prepared:
    """Labels (`labelled_rows`), point-in-time features and the customer/time split, timed into ``timings``."""
    started = time.perf_counter()
    labelled = labelled_rows(ws, label_fn, window, what=what, activity=activity, extra=extra)
    t0 = time.perf_counter()
    frame, names = point_in_time_features(settings, labelled.labels, service)
    if timings is not None:
        timings["labels_s"] = t0 - started
        timings["features_s"] = time.perf_counter() - t0
    return Prepared(labelled, frame, names, split(frame, labelled.plan), window, started)


def require_classes(
    parts: dict[str, pd.DataFrame], label: str, need: str, names: dict[str, str] | None = None
) -> None:
    """Every part must hold both classes of ``label``; ``need`` says which ("churned and retained customers")."""
    for part, df in parts.items():
        if df[label].nunique() < 2:
            shown = (names or {}).get(part, part)
            raise WorkspaceError(f"{shown} set: needs {need}, got {len(df)} rows of one class")


@dataclass
class BinaryFit:
    """A fitted binary classifier's holdout labels/probabilities, metrics and calibration tags."""

    y: np.ndarray
    p: np.ndarray
    metrics: dict[str, float]
    tags: dict[str, str]


def fit_binary(est: Any, prep: Prepared, label: str, *, calib_metrics: bool) -> BinaryFit:
    """Fit ``est`` (a `ChurnModel`) with early stopping on valid and calibration on calib; holdout metrics."""
    parts, names = prep.parts, prep.names
    train, valid, calib, holdout = parts["train"], parts["valid"], parts["calib"], parts["holdout"]
    est.fit(
        train[names],
        train[label],
        eval_set=(valid[names], valid[label]),
        calib_set=(calib[names], calib[label]),
    )
    y = holdout[label].to_numpy()
    p = est.predict_proba(holdout[names])[:, 1]
    metrics = {f"holdout_{k}": v for k, v in binary_metrics(y, p).items()}
    metrics["valid_roc_auc"] = roc_auc(valid[label].to_numpy(), est.predict_proba(valid[names])[:, 1])
    metrics["best_iteration"] = float(est.best_iteration_)
    if getattr(est, "leaves_logloss_", None):  # tree size chosen on valid: every candidate's log-loss
        metrics["num_leaves_chosen"] = float(est.num_leaves_)
        metrics.update({f"valid_logloss_leaves_{k}": v for k, v in est.leaves_logloss_.items()})
    cal = est.calibration_
    tags = cal.tags() if cal else {"calibration.method": "none"}
    if cal and calib_metrics:
        metrics.update({f"calib_brier_{k}": v for k, v in cal.brier.items()})
    return BinaryFit(y, p, metrics, tags)


def binary_figures(est: Any, fit: BinaryFit, title: str, baselines: dict[str, np.ndarray]) -> dict[str, Any]:
    """The diagnostic figures of a binary model on its holdout, with the (uncalibrated) gain importance."""
    importance = gain_importance(getattr(est, "raw_booster_", est.booster_))
    return diagnostic_figures(fit.y, fit.p, title=title, baselines=baselines, importance=importance)


def promotion_tags(decision: Any, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The run tags saying which alias the new version got and why."""
    return {"promotion": decision.alias, "promotion_reason": decision.reason, **(extra or {})}


def baseline_metrics(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    cxi: dict[str, float],
    *,
    brier: bool = True,
    p: np.ndarray | None = None,
) -> dict[str, float]:
    """baseline_<name>_<metric> for every baseline, the best baseline's AUC (and Brier) and CXI's deltas;
    with CXI's holdout scores ``p``, a paired 95% bootstrap interval of the AUC difference
    (``delta_roc_auc_vs_best_baseline_low`` / ``_high``)."""
    out: dict[str, float] = {}
    for name, s in scores.items():
        out.update({f"baseline_{name}_{k}": v for k, v in binary_metrics(y, s).items() if k != "base_rate"})
    best = max(scores, key=lambda n: out[f"baseline_{n}_roc_auc"])
    best_auc = out[f"baseline_{best}_roc_auc"]
    out["best_baseline_roc_auc"] = best_auc
    if brier:
        out["best_baseline_brier"] = min(out[f"baseline_{n}_brier"] for n in scores)
    out["delta_roc_auc_vs_best_baseline"] = cxi["holdout_roc_auc"] - best_auc
    if p is not None:
        _, low, high = auc_difference_interval(y, p, scores[best])
        out["delta_roc_auc_vs_best_baseline_low"] = low
        out["delta_roc_auc_vs_best_baseline_high"] = high
    if brier:
        out["delta_brier_vs_best_baseline"] = cxi["holdout_brier"] - out["best_baseline_brier"]
    return out


def training_record(
    est: Any,
    prep: Prepared,
    *,
    service: str,
    metrics: dict[str, float],
    rows: dict[str, int],
    model_card: str,
    figures: dict[str, Any],
    tags: dict[str, str],
    **params: Any,
) -> TrainingRecord:
    """The run's TrainingRecord: estimator params + horizon, lookback, ``params``, step and sizes."""
    plan, names = prep.plan, prep.names
    return TrainingRecord(
        params={
            **est.get_params(),
            "horizon_days": plan.horizon_days,
            "lookback_days": plan.lookback_days,
            **params,
            "step_days": prep.window.step_days,
            "n_train_dates": len(plan.train_as_of),
            "n_features": len(names),
        },
        metrics=metrics,
        feature_service=service,
        data_window=data_window(prep.labelled),
        row_counts=rows,
        input_example=prep.parts["holdout"][names].head(5),
        model_card=model_card,
        figures=figures,
        tags=tags,
    )


def predictive_result(
    name: str,
    reg: RegisteredVersion,
    decision: Any,
    metrics: dict[str, float],
    prep: Prepared,
    rows: dict[str, int],
    cls: type = PredictiveResult,
    **extra: Any,
) -> Any:
    """``cls`` (PredictiveResult, or ChurnResult with its ``extra`` fields) for a registered run."""
    return cls(
        name=name,
        version=reg.version,
        alias=decision.alias,
        run_id=reg.run_id,
        metrics=metrics,
        champion_before=decision.champion_before,
        plan=prep.plan,
        rows=rows,
        feature_names=prep.names,
        seconds=time.perf_counter() - prep.started,
        **extra,
    )
