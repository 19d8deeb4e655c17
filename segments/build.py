"""The batch build: every customer scored by the champion models over Feast features, segmented, persisted.

Customers are those known at the as-of instant (`training.scoring.known_customers`, default: the newest
feature snapshot); features come from Feast point-in-time (`training.pipeline.point_in_time_features`, one
read per feature service); scores from the ``churn`` champion (required) and the ``intent`` / ``value``
champions when registered (segments that need a missing score are skipped, their members kept). Consent is
folded from the workspace (`segments.consent`), percentile thresholds are frozen from this build's scores, and
the previous membership drives hysteresis and the entry/exit events.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from contract.errors import NotFoundError
from contract.settings import Settings
from contract.workspace import Workspace
from segments.consent import COLUMNS as CONSENT_COLUMNS
from segments.consent import customer_consent, with_consent
from segments.definitions import Definitions, load
from segments.evaluate import Evaluation, evaluate, freeze
from segments.store import Build, SegmentStore

REQUIRED_MODELS = ("churn",)
OPTIONAL_MODELS = ("intent", "value")


@dataclass
class BuildReport:
    """What a build did: per-segment sizes and changes (``stats``), exclusions, timings."""

    build: Build
    stats: pd.DataFrame
    skipped: dict[str, str]
    models: dict[str, str]
    customers: int
    with_consent_statement: int
    previous_build: str | None
    seconds: dict[str, float]

    @property
    def build_id(self) -> str:
        return self.build.build_id

    def summary(self) -> str:
        entered, exited = int(self.stats["entered"].sum()), int(self.stats["exited"].sum())
        models = ", ".join(f"{k} v{v}" for k, v in self.models.items())
        return (
            f"build {self.build_id}: {self.customers} customers as of {self.build.as_of:%Y-%m-%d}, "
            f"{len(self.stats)} segments ({entered} entries, {exited} exits); models {models}"
            + (f"; skipped {', '.join(self.skipped)}" if self.skipped else "")
        )


def definitions(settings: Settings) -> Definitions:
    """The segment definitions of these settings (`Settings.segments_file`, default the shipped set)."""
    return load(settings.segments_file)


def score_frame(settings: Settings, ws: Workspace, as_of: datetime) -> tuple[pd.DataFrame, dict[str, str]]:
    """customer_id + every feature + the score of each available champion, for customers known at
    ``as_of``; and model -> version used."""
    from training.pipeline import point_in_time_features
    from training.registry import Registry
    from training.scoring import SCORE_COLUMNS, known_customers

    registry = Registry(settings)
    wanted = [m for m in (*REQUIRED_MODELS, *OPTIONAL_MODELS) if registry.champion_version(m) is not None]
    for m in REQUIRED_MODELS:
        if m not in wanted:
            raise NotFoundError(f"model: no {m} champion is registered; run `cxi train {m}` first")
    champions = {m: registry.champion(m) for m in wanted}
    customers = known_customers(settings, ws, as_of)
    entity = customers[["customer_id"]].assign(event_timestamp=pd.Timestamp(as_of))
    frame: pd.DataFrame | None = None
    for service in dict.fromkeys(c.feature_service or "churn_v1" for c in champions.values()):
        features, _ = point_in_time_features(settings, entity, service)
        features = features.drop(columns=["event_timestamp"])
        frame = (
            features
            if frame is None
            else frame.merge(
                features[["customer_id", *features.columns.difference(frame.columns)]], on="customer_id"
            )
        )
        for name, champ in champions.items():
            if (champ.feature_service or "churn_v1") == service:
                X = features[champ.feature_names].apply(pd.to_numeric, errors="coerce").astype("float64")
                frame[SCORE_COLUMNS[name]] = champ.predict(X)
    assert frame is not None
    return frame, {name: champ.version for name, champ in champions.items()}


def build_segments(
    settings: Settings,
    ws: Workspace,
    *,
    as_of: date | datetime | None = None,
    defs: Definitions | None = None,
    now: datetime | None = None,
) -> BuildReport:
    """Score, segment and persist every customer; returns sizes, changes and exclusions per segment."""
    from features.store import FeatureRepo
    from training.scoring import as_of_instant

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    defs = defs or definitions(settings)
    instant = as_of_instant(as_of) if as_of is not None else FeatureRepo(settings).latest_snapshot()
    frame, models = score_frame(settings, ws, instant)
    timings["score"] = time.perf_counter() - t0
    t = time.perf_counter()
    consent = customer_consent(settings, ws)
    frame = with_consent(frame, consent, settings)
    timings["consent"] = time.perf_counter() - t
    report = build_from_frame(ws, defs, frame, as_of=instant, models=models, now=now)
    report.with_consent_statement = int(frame["customer_id"].isin(consent["customer_id"]).sum())
    report.seconds = {**timings, **report.seconds, "total": time.perf_counter() - t0}
    return report


def build_from_frame(
    ws: Workspace,
    defs: Definitions,
    frame: pd.DataFrame,
    *,
    as_of: datetime,
    models: dict[str, str] | None = None,
    now: datetime | None = None,
) -> BuildReport:
    """Evaluate and persist a build over a ready frame (customer_id, features, scores, consent columns):
    the part of `build_segments` after scoring, also used by tests and the benchmark."""
    missing = [c for c in CONSENT_COLUMNS.values() if c not in frame.columns]
    if missing:
        raise NotFoundError(f"frame: consent columns missing {missing} (segments.consent.with_consent)")
    store = SegmentStore(ws)
    at = now or datetime.now(UTC)
    build_id = f"b{at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    previous_build = store.latest_build()
    t = time.perf_counter()
    previous = store.current() if previous_build is not None else None
    thresholds = freeze(defs, frame)
    result: Evaluation = evaluate(defs, frame, previous, thresholds, at=at, build_id=build_id, complete=True)
    t_eval = time.perf_counter() - t
    t = time.perf_counter()
    build = store.write_build(
        result, thresholds, build_id=build_id, at=at, as_of=as_of, customers=len(frame), models=models or {}
    )
    return BuildReport(
        build=build,
        stats=result.stats,
        skipped=result.skipped,
        models=models or {},
        customers=len(frame),
        with_consent_statement=0,
        previous_build=previous_build.build_id if previous_build else None,
        seconds={"evaluate": t_eval, "persist": time.perf_counter() - t},
    )
