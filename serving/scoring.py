"""The scoring core, plain Python (no BentoML): identifier -> customer -> online features -> champion model.

`ChurnScorer.from_settings` wires the real components (identity map index, Feast online store, MLflow
champion); the constructor takes any objects with the same small interfaces, so the core is testable alone.
The model reads its features from the Feast feature service it was trained on (recorded in the registry),
in the booster's own feature order: the same vector training saw, so serving cannot skew.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from contract.errors import CXIError, NotFoundError
from serving.schemas import ChurnScore, ChurnScoreRequest, ScoreReason

if TYPE_CHECKING:
    from contract.settings import Settings
    from serving.reload import ChampionWatch

log = logging.getLogger(__name__)

AS_OF_COLUMN = "features_as_of"
#: Reasons returned with each score.
REASONS = 3


class ModelMismatchError(CXIError):
    """The champion expects features its feature service does not provide."""


class IdentityLookup(Protocol):
    def customer_for(self, identifier_type: str, value: str) -> str | None: ...


class OnlineFeatures(Protocol):
    def online(self, customer_ids: list[str], service: str = "churn_v1") -> pd.DataFrame: ...


class Booster(Protocol):
    def feature_name(self) -> list[str]: ...
    def predict(self, data: Any, **kwargs: Any) -> Any: ...


class Champion(Protocol):
    """What serving needs of `training.registry.ChampionModel`."""

    name: str
    version: str
    booster: Any
    feature_service: str

    def predict_matrix(self, values: np.ndarray, *, num_threads: int = 0) -> np.ndarray: ...
    def reasons(self, values: np.ndarray, k: int = 3, *, num_threads: int = 0) -> list[list[Any]]: ...


@dataclass(frozen=True)
class FeatureVector:
    """The model-ordered feature row for one customer, as read from the online store."""

    customer_id: str
    values: np.ndarray  # shape (1, n_features), float64, NaN = missing, in booster.feature_name() order
    as_of: datetime | None


@dataclass(frozen=True)
class ActiveModel:
    """The champion being served and its feature order; swapped as one object when the alias moves."""

    champion: Champion
    feature_names: list[str]

    @classmethod
    def of(cls, champion: Champion) -> ActiveModel:
        return cls(champion, list(champion.booster.feature_name()))


class ChurnScorer:
    """Score churn for one customer named by any identifier.

    With a ``watch`` (`serving.reload.ChampionWatch`), a request first asks it, at most every few seconds,
    whether the ``champion`` alias moved, and swaps in the new booster atomically: a request in flight keeps
    the model it started with, and a new champion that cannot be served is logged and skipped.
    """

    def __init__(
        self,
        identity: IdentityLookup,
        features: OnlineFeatures,
        champion: Champion,
        *,
        watch: ChampionWatch | None = None,
        reasons: int = REASONS,
        phone_region: str | None = None,
    ) -> None:
        """`phone_region`: the region a raw phone without a country code is read in, as the imports read
        it (setting `default_phone_region`), so a lookup by phone finds what an import stored."""
        self.identity = identity
        self.phone_region = phone_region
        self.features = features
        self.active = ActiveModel.of(champion)
        self.watch = watch
        self.reasons = reasons
        self._swap_lock = threading.Lock()

    @property
    def champion(self) -> Champion:
        return self.active.champion

    @property
    def feature_names(self) -> list[str]:
        return self.active.feature_names

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        identity: IdentityLookup | None = None,
        features: OnlineFeatures | None = None,
    ) -> ChurnScorer:
        """The registered churn champion (watched for moves) over an identity lookup and online features.

        Defaults: the workspace's batch identity index and the Feast online store as materialized; the
        service passes its real-time engine for both, so scores reflect events at once."""
        from contract.workspace import Workspace
        from features.store import FeatureRepo
        from identity import IdentityIndex
        from serving.reload import ChampionWatch, ReloadSettings
        from training.churn import MODEL_NAME
        from training.registry import Registry

        registry = Registry(settings)
        champion = registry.champion(MODEL_NAME)
        watch = ChampionWatch.for_registry(registry, MODEL_NAME, champion.version, ReloadSettings())
        if features is None:
            repo = FeatureRepo(settings)
            repo.open_online()  # now, not in the first request
            features = repo
        scorer = cls(
            identity if identity is not None else IdentityIndex.load(Workspace(settings.workspace)),
            features,
            champion,
            watch=watch,
            phone_region=settings.default_phone_region,
        )
        scorer.check_features()
        log.info(
            "churn scorer ready: %s v%s, %d features",
            champion.name,
            champion.version,
            len(scorer.feature_names),
        )
        return scorer

    def check_features(self, active: ActiveModel | None = None) -> None:
        """Fail fast when the champion's features are not all in its feature service."""
        from features.definitions import feature_names

        active = active or self.active
        champion = active.champion
        served = set(feature_names(champion.feature_service))
        missing = [f for f in active.feature_names if f not in served]
        if missing:
            raise ModelMismatchError(
                f"model {champion.name!r} v{champion.version} expects features missing from "
                f"feature service {champion.feature_service!r}: {', '.join(missing)}"
            )

    # --- hot reload ------------------------------------------------------------------------------------------
    def refresh(self) -> ActiveModel:
        """The model to use for this request: swaps in a new champion when the watch reports one."""
        watch = self.watch
        if watch is None or not watch.due():
            return self.active
        if not self._swap_lock.acquire(blocking=False):  # another request is checking: serve what we have
            return self.active
        try:
            champion = watch.poll()
            if champion is not None:
                candidate = ActiveModel.of(champion)
                self.check_features(candidate)
                self.active = candidate  # one attribute store: atomic for concurrent readers
                log.info("churn champion moved: now %s v%s", champion.name, champion.version)
        except Exception as exc:  # keep serving the old champion; say why once per failed version
            log.warning(
                "churn champion not reloaded, still serving v%s: %s", self.active.champion.version, exc
            )
        finally:
            self._swap_lock.release()
        return self.active

    # --- the three steps -----------------------------------------------------------------------------------
    def resolve(self, request: ChurnScoreRequest) -> str:
        """The customer id a request names; NotFoundError names the identifier when it is unknown."""
        kind, value = request.identifier(self.phone_region)
        if kind == "customer_id":
            return value
        customer_id = self.identity.customer_for(kind, value)
        if customer_id is None:
            shown = "<hash of the given value>" if request.email or request.phone else repr(value)
            raise NotFoundError(
                f"{_field(request)}: no customer is known by this identifier ({kind} {shown})"
            )
        return customer_id

    def vector(self, customer_id: str, active: ActiveModel | None = None) -> FeatureVector:
        """The online feature row for a customer, in the booster's feature order."""
        active = active or self.active
        frame = self.features.online([customer_id], service=active.champion.feature_service)
        missing = [f for f in active.feature_names if f not in frame.columns]
        if missing:
            raise ModelMismatchError(f"online features lack model inputs: {', '.join(missing)}")
        values = frame[active.feature_names].head(1).to_numpy(dtype="float64", na_value=np.nan)
        as_of = _as_of(frame)
        # No snapshot for this id: Feast answers nulls for every feature of an unknown entity.
        absent = as_of is None if AS_OF_COLUMN in frame.columns else bool(np.isnan(values).all())
        if values.shape[0] == 0 or absent:
            raise NotFoundError(
                f"customer_id: no online features for customer {customer_id!r} "
                "(unknown customer, or features not materialized since it appeared)"
            )
        return FeatureVector(customer_id=customer_id, values=values, as_of=as_of)

    def predict(self, vector: FeatureVector, active: ActiveModel | None = None) -> float:
        """One row, one thread: OpenMP start-up costs more than a single prediction (same numbers)."""
        champion = (active or self.active).champion
        return float(champion.predict_matrix(vector.values, num_threads=1)[0])

    def explain(self, vector: FeatureVector, active: ActiveModel | None = None) -> list[ScoreReason]:
        """The top reasons of one score (largest absolute log-odds contributions, signed)."""
        champion = (active or self.active).champion
        (reasons,) = champion.reasons(vector.values, self.reasons, num_threads=1)
        return [ScoreReason(**vars(r)) for r in reasons]

    def score(self, request: ChurnScoreRequest) -> ChurnScore:
        active = self.refresh()
        customer_id = self.resolve(request)
        vector = self.vector(customer_id, active)
        return ChurnScore(
            customer_id=customer_id,
            churn_probability=self.predict(vector, active),
            model_name=active.champion.name,
            model_version=str(active.champion.version),
            features_as_of=vector.as_of,
            reasons=self.explain(vector, active) if self.reasons else [],
        )


def _field(request: ChurnScoreRequest) -> str:
    return next(iter(request.model_dump(exclude_none=True)))


def _as_of(frame: pd.DataFrame) -> datetime | None:
    if AS_OF_COLUMN not in frame.columns or frame.empty:
        return None
    value = pd.Timestamp(frame[AS_OF_COLUMN].iloc[0]) if pd.notna(frame[AS_OF_COLUMN].iloc[0]) else None
    if value is None:
        return None
    return (value.tz_localize(UTC) if value.tzinfo is None else value.tz_convert(UTC)).to_pydatetime()
