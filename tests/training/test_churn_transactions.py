"""Churn trains on a plain imported transaction history (`cxi import transactions`), no other events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from contract import Settings, Workspace

START = datetime(2024, 1, 1, tzinfo=UTC)


def transactions(customers: int, days: int, seed: int) -> pd.DataFrame:
    """Customers buy at their own rate until a hidden stop (vectorised)."""
    rng = np.random.default_rng(seed)
    begin = rng.uniform(0, days * 0.6, customers)
    end = np.minimum(begin + rng.exponential(days * 0.6, customers), days)
    counts = rng.poisson(rng.gamma(2.0, 0.06, customers) * (end - begin)) + 1
    cust = np.repeat(np.arange(customers), counts)
    t = begin[cust] + rng.random(len(cust)) * (end - begin)[cust]
    return pd.DataFrame(
        {
            "order_id": np.char.add("t", np.arange(len(cust)).astype(str)),
            "customer_id": np.char.add("C", cust.astype(str)),
            "occurred_at": pd.Timestamp(START) + pd.to_timedelta(np.round(t * 86400), unit="s"),
            "amount": np.round(rng.gamma(2.0, 25.0, len(cust)), 2),
        }
    )


@pytest.mark.slow
@pytest.mark.integration
def test_train_on_transactions_only(make_settings: Callable[..., Settings]) -> None:
    from events.importers import import_frame
    from features.store import FeatureRepo
    from identity import IdentityResolver
    from training.churn import train_churn
    from training.model import ChurnModel

    settings = make_settings(churn_horizon_days=21, churn_activity="purchase")
    ws = Workspace(settings.workspace)
    frame = transactions(1500, 120, seed=4)
    report = import_frame(ws, "transactions", frame, source="pos")
    assert report.accepted == len(frame), report
    with ws.connect("events") as con:
        types = {r[0] for r in con.execute("SELECT DISTINCT type FROM events").fetchall()}
    assert types == {"purchase"}
    IdentityResolver(ws).resolve()
    repo = FeatureRepo(settings)
    repo.build(ws)
    repo.apply()

    result = train_churn(settings, ws, model=ChurnModel(num_threads=1))
    m = result.metrics
    assert m["holdout_roc_auc"] > 0.65, m
    assert m["bgnbd_customers"] > 100
    for name in ("recency", "logreg_rfm", "bgnbd"):
        assert 0.5 < m[f"baseline_{name}_roc_auc"] < 1.0, (name, m)
