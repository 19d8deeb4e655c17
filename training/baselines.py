"""Churn baselines scored on the very holdout of the LightGBM model, in the same run.

* ``recency``: days since the last activity, ranked (as probabilities: a one-feature logistic fit on the
  training rows, monotone in recency, so its ranking is exactly the raw recency's);
* ``logreg_rfm``: scaled logistic regression on recency, frequency and monetary value (log1p);
* ``bgnbd``: BG/NBD fitted by maximum likelihood on each customer's activity days up to the holdout as-of
  (unsupervised: it never sees a label), scored as P(no activity in the horizon), not P(alive).

"Activity" follows the churn definition: any event, or only purchases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contract.errors import ContractError
from contract.schemas import PURCHASE_TYPES
from training.btyd import BGNBD
from training.labels import ACTIVITIES, EVENTS_VIEW, to_utc

BASELINES: tuple[str, ...] = ("recency", "logreg_rfm", "bgnbd")


@dataclass
class BaselineScores:
    """Holdout scores (probabilities of churn) per baseline, in holdout row order, and fit details."""

    scores: dict[str, np.ndarray]
    info: dict[str, float] = field(default_factory=dict)


def rfm_frame(features: pd.DataFrame, activity: str) -> pd.DataFrame:
    """Recency, frequency, monetary columns from the churn feature frame (for the chosen activity)."""
    if activity not in ACTIVITIES:
        raise ContractError("activity", f"must be one of {', '.join(ACTIVITIES)}", activity)
    rec_col, freq_col = (
        ("days_since_last_event", "events_90d")
        if activity == "any"
        else ("days_since_last_purchase", "purchases_90d")
    )
    needed = [rec_col, freq_col, "revenue_90d", "days_since_first_seen"]
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise ContractError("features", f"missing columns for the RFM baselines: {missing}")
    # never active (e.g. never bought): as if the activity happened at first sight, a lower bound on recency
    recency = features[rec_col].fillna(features["days_since_first_seen"]).fillna(0.0).clip(lower=0)
    return pd.DataFrame(
        {
            "recency": recency.to_numpy(dtype="float64"),
            "frequency": features[freq_col].fillna(0).clip(lower=0).to_numpy(dtype="float64"),
            "monetary": features["revenue_90d"].fillna(0).clip(lower=0).to_numpy(dtype="float64"),
        }
    )


def fit_rfm_baselines(
    train: pd.DataFrame, y_train: np.ndarray, holdout: pd.DataFrame, activity: str
) -> dict[str, np.ndarray]:
    """``recency`` and ``logreg_rfm`` fitted on training rows, scored on holdout rows."""
    tr, ho = (np.log1p(rfm_frame(f, activity)) for f in (train, holdout))
    out: dict[str, np.ndarray] = {}
    for name, cols in (("recency", ["recency"]), ("logreg_rfm", ["recency", "frequency", "monetary"])):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(tr[cols], y_train)
        out[name] = model.predict_proba(ho[cols])[:, 1]
    return out


def activity_summary(
    con: duckdb.DuckDBPyConnection, as_of: datetime, *, activity: str, view: str = EVENTS_VIEW
) -> pd.DataFrame:
    """Per customer seen by ``as_of``: x (repeat activity days), t_x, T (days from the first activity day).

    Customers with no activity yet get x = t_x = 0 and T counted from their first event of any kind;
    ``active`` tells the two apart (only active customers fit the BG/NBD model)."""
    if activity not in ACTIVITIES:
        raise ContractError("activity", f"must be one of {', '.join(ACTIVITIES)}", activity)
    t = to_utc(as_of)
    flag = (
        "TRUE"
        if activity == "any"
        else "type IN (" + ", ".join(f"'{p}'" for p in sorted(PURCHASE_TYPES)) + ")"
    )
    con.execute("SET TimeZone = 'UTC'")
    sql = f"""
        WITH ev AS (
            SELECT customer_id, CAST(timezone('UTC', occurred_at) AS DATE) AS day, {flag} AS act
            FROM {view} WHERE customer_id IS NOT NULL AND occurred_at <= ?::TIMESTAMPTZ
        ),
        per AS (
            SELECT customer_id, min(day) AS first_seen,
                   min(day) FILTER (WHERE act) AS first_act, max(day) FILTER (WHERE act) AS last_act,
                   count(DISTINCT day) FILTER (WHERE act) AS n_days
            FROM ev GROUP BY customer_id
        )
        SELECT customer_id, n_days > 0 AS active,
               CAST(greatest(n_days - 1, 0) AS DOUBLE) AS x,
               CAST(coalesce(last_act - first_act, 0) AS DOUBLE) AS t_x,
               CAST(CAST(timezone('UTC', ?::TIMESTAMPTZ) AS DATE) - coalesce(first_act, first_seen) + 1 AS DOUBLE) AS T
        FROM per ORDER BY customer_id
    """
    return con.execute(sql, [t, t]).df()


def fit_bgnbd_baseline(
    summary: pd.DataFrame, customer_ids: pd.Series, horizon_days: int
) -> tuple[np.ndarray, dict[str, float]]:
    """Fit BG/NBD on the active customers of ``summary``; P(no activity in the horizon) for ``customer_ids``."""
    active = summary[summary["active"]]
    model = BGNBD().fit(active["x"].to_numpy(), active["t_x"].to_numpy(), active["T"].to_numpy())
    rows = summary.set_index("customer_id").reindex(customer_ids.astype(str).to_numpy())
    if rows["x"].isna().any():
        missing = rows.index[rows["x"].isna()][:3].tolist()
        raise ContractError("customer_ids", f"customers without history at the as-of date: {missing}")
    p = model.prob_no_purchase(
        float(horizon_days), rows["x"].to_numpy(), rows["t_x"].to_numpy(), rows["T"].to_numpy()
    )
    info = {f"bgnbd_{k}": v for k, v in model.params_.as_dict().items()}
    info["bgnbd_customers"] = float(len(active))
    return np.clip(p, 1e-6, 1 - 1e-6), info


def churn_baselines(
    train: pd.DataFrame,
    y_train: np.ndarray,
    holdout: pd.DataFrame,
    summary: pd.DataFrame,
    *,
    horizon_days: int,
    activity: str,
) -> BaselineScores:
    """Every baseline's holdout scores (``holdout`` needs customer_id and the churn feature columns)."""
    scores = fit_rfm_baselines(train, y_train, holdout, activity)
    scores["bgnbd"], info = fit_bgnbd_baseline(summary, holdout["customer_id"], horizon_days)
    return BaselineScores({k: scores[k] for k in BASELINES}, info)
