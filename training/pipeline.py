"""The generic supervised pipeline behind intent and value (and, later, churn): labels at planned as-of
instants, point-in-time features through Feast, customer-grouped splits, a champion/challenger decision on
one holdout, and registration through `training.registry`.

Time design as in `training.churn`: the holdout as-of T_h is the latest day end with T_h + H inside the log;
training as-of instants lie at T_h - H and every ``step_days`` before, so no training label sees past T_h.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from contract.errors import ContractError, WorkspaceError
from contract.settings import Settings
from contract.workspace import Workspace
from training.churn import ChurnPlan, plan_as_of
from training.labels import log_bounds
from training.registry import CHALLENGER, CHAMPION, RegisteredVersion, Registry, TrainingRecord

#: Served with the features but not a model input: an absolute time says nothing that carries over in time.
NOT_MODEL_INPUTS: frozenset[str] = frozenset({"snapshot_at"})
LabelFn = Callable[..., pd.DataFrame]


@dataclass
class PredictiveResult:
    """What one training run of a non-churn model produced."""

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


def labelled_rows(
    ws: Workspace,
    label_fn: LabelFn,
    *,
    horizon_days: int,
    as_of: datetime | date | None,
    lookback_days: int,
    step_days: int,
    max_train_dates: int,
    what: str,
) -> Labelled:
    """Plan the as-of instants for the log in ``ws`` and compute ``label_fn``'s labels at all of them.

    A log too short for the horizon is a ContractError on ``as_of`` that says how long it must be."""
    from identity import attach_customer_ids

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
                as_of=as_of,
                lookback_days=lookback_days,
                step_days=step_days,
                max_train_dates=max_train_dates,
            )
        except WorkspaceError as exc:
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
            lookback_days=lookback_days,
        )
    return Labelled(plan, labels, first, last)


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


def split(frame: pd.DataFrame, plan: ChurnPlan) -> dict[str, pd.DataFrame]:
    """train / valid (15% of customers) / calib (another 15%) from the training instants; holdout at T_h."""
    is_holdout = (frame["event_timestamp"] == pd.Timestamp(plan.holdout_as_of)).to_numpy()
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
) -> Decision:
    """Score the current champion of ``name`` on ``holdout`` with ``metric(predictions)``; the new model becomes
    champion unless it is worse (ties promote)."""
    before = registry.champion_version(name)
    if before is None:
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
    registry: Registry, name: str, booster: object, record: TrainingRecord, decision: Decision, run_name: str
) -> RegisteredVersion:
    """Log the run, register a new version of ``name`` and point the decided alias at it."""
    reg = registry.log_training(name, booster, record, run_name=run_name)  # type: ignore[arg-type]
    registry.set_alias(name, reg.version, decision.alias)
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
