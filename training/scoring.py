"""Batch scoring: every customer known at an as-of date, scored by a model's champion, with its top reasons.

* Customers known at the date: those with a feature snapshot at or before it (the feature store's customers,
  resolved with the identity map the snapshots were built from, so ids join 1:1 with the features).
* ``user_id``: the brand's user id of the customer, when one was seen by the date (the first seen if several).
* Features: `FeatureRepo.historical` with one entity row per customer at the as-of instant (point in time).
* Score column named after the model (`SCORE_COLUMNS`), equal to the champion's ``predict`` (the registered
  model: its booster, plus the prior a churn model was boosted from).
* ``reasons``: JSON list of the top-k reasons of `training.explain.model_reasons` (LightGBM ``pred_contrib``
  on the model's raw scale: log-odds for churn/intent, log revenue for value, and a prior's push as one
  more reason): feature, value, contribution, text.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from contract.errors import ContractError, WorkspaceError
from contract.settings import Settings
from contract.workspace import Workspace
from training.labels import to_utc
from training.registry import ChampionModel, Registry

SCORE_COLUMNS: dict[str, str] = {
    "churn": "churn_probability",
    "intent": "intent_probability",
    "value": "predicted_value",
}
FORMATS: tuple[str, ...] = (".csv", ".parquet")


def as_of_instant(as_of: date | datetime) -> datetime:
    """A date means its day end (the feature snapshot instant), 23:59:59 UTC; a datetime is taken as is."""
    if isinstance(as_of, datetime):
        return to_utc(as_of)
    if isinstance(as_of, date):
        return datetime(as_of.year, as_of.month, as_of.day, 23, 59, 59, tzinfo=UTC)
    raise ContractError("as_of", "must be a date or datetime", as_of)


def known_customers(settings: Settings, ws: Workspace, as_of: datetime) -> pd.DataFrame:
    """customer_id and user_id (or null) of every customer with a feature snapshot at or before ``as_of``."""
    from features.definitions import JOIN_KEY, TIMESTAMP_FIELD, snapshot_path

    path = snapshot_path(settings)
    if not path.exists():
        raise WorkspaceError(f"no feature snapshots at {path}: run `cxi features build` first")
    with ws.connect("identity_map") as con:
        has_map = ws.exists("identity_map")
        users = (
            "SELECT customer_id, arg_min(identifier_value, first_seen) AS user_id FROM identity_map "
            "WHERE identifier_type = 'user_id' AND first_seen <= $t GROUP BY customer_id"
            if has_map
            else "SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS user_id WHERE false"
        )
        sql = f"""
            WITH known AS (
                SELECT DISTINCT {JOIN_KEY} AS customer_id FROM read_parquet($path)
                WHERE {TIMESTAMP_FIELD} <= $t
            ), users AS ({users})
            SELECT k.customer_id, u.user_id FROM known k LEFT JOIN users u USING (customer_id)
            ORDER BY k.customer_id
        """
        out = con.execute(sql, {"path": str(path), "t": as_of}).df()
    if out.empty:
        raise ContractError(
            "as_of", "no customer has a feature snapshot at or before this date", as_of.isoformat()
        )
    return out


def _trained_horizon(registry: Registry, champ: ChampionModel) -> int | None:
    value = registry.metric(champ.run_id, "horizon_days") if champ.run_id else None
    if value is None and champ.run_id:
        param = registry.client.get_run(champ.run_id).data.params.get("horizon_days")
        value = float(param) if param is not None else None
    return None if value is None else int(value)


def reasons_json(champ: ChampionModel, values: np.ndarray, k: int = 3) -> list[str]:
    """Per row of a matrix of the model's features, a JSON list of its top-``k`` reasons
    (`ChampionModel.reasons`, largest first):
    ``[{"feature", "value", "contribution", "text"}, ...]``; contributions are on the model's raw scale."""
    return [
        json.dumps(
            [
                {"feature": r.feature, "value": r.value, "contribution": r.contribution, "text": r.text}
                for r in row
            ]
        )
        for row in champ.reasons(values, k)
    ]


def score_customers(
    settings: Settings,
    ws: Workspace,
    model: str,
    *,
    as_of: date | datetime,
    horizon_days: int | None = None,
    reasons: int = 3,
) -> pd.DataFrame:
    """One row per customer known at ``as_of``: customer_id, user_id, <score column>, reasons, model_version.

    ``horizon_days``, when given, must match the horizon the champion was trained for (ContractError if not)."""
    from training.pipeline import point_in_time_features

    if model not in SCORE_COLUMNS:
        raise ContractError("model", f"must be one of {', '.join(SCORE_COLUMNS)}", model)
    t = as_of_instant(as_of)
    registry = Registry(settings)
    champ = registry.champion(model)
    if horizon_days is not None:
        trained = _trained_horizon(registry, champ)
        if trained is not None and trained != horizon_days:
            raise ContractError(
                "horizon_days",
                f"the {model} champion v{champ.version} predicts a {trained}-day horizon; "
                f"train a {model} model with --horizon-days {horizon_days} first",
                horizon_days,
            )
    customers = known_customers(settings, ws, t)
    entity = customers[["customer_id"]].assign(event_timestamp=pd.Timestamp(t))
    frame, _ = point_in_time_features(settings, entity, champ.feature_service or "churn_v1")
    missing = [c for c in champ.feature_names if c not in frame.columns]
    if missing:
        raise WorkspaceError(
            f"feature service {champ.feature_service!r} lacks the model's features {missing}"
        )
    X = frame[champ.feature_names].apply(pd.to_numeric, errors="coerce").astype("float64")
    out = customers.copy()
    values = champ.matrix(X)  # once, for the scores and their reasons
    out[SCORE_COLUMNS[model]] = champ.predict_matrix(values)
    out["reasons"] = reasons_json(champ, values, reasons)
    out["model_version"] = champ.version
    out["as_of"] = pd.Timestamp(t)
    return out


def write_scores(frame: pd.DataFrame, out: Path) -> Path:
    """Write ``frame`` as CSV or Parquet, chosen by the extension of ``out``."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ContractError("out", f"must end in {' or '.join(FORMATS)}", str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    return out
