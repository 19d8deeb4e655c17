"""Generated customer frames (features, scores, consent) for segment tests: seeded, vectorised, small."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segments.consent import COLUMNS


def customers(n: int, seed: int = 0, *, consent: bool = True) -> pd.DataFrame:
    """``n`` customers with every column the default definitions name, plus consent columns."""
    rng = np.random.default_rng(seed)
    first_seen = rng.uniform(0, 200, n)
    last_event = np.minimum(rng.exponential(20, n), first_seen)
    purchases = rng.poisson(1.2, n)
    first_purchase = np.where(purchases > 0, rng.uniform(0, 1, n) * first_seen, np.nan)
    last_purchase = np.where(purchases > 0, np.minimum(first_purchase, rng.exponential(30, n)), np.nan)
    frame = pd.DataFrame(
        {
            "customer_id": np.char.add("c", np.arange(n).astype(str).astype("U12")).astype(object),
            "churn_probability": rng.beta(2, 3, n),
            "intent_probability": rng.beta(1.5, 4, n),
            "predicted_value": rng.gamma(2.0, 50.0, n),
            "days_since_first_seen": first_seen,
            "days_since_last_event": last_event,
            "days_since_first_purchase": first_purchase,
            "days_since_last_purchase": last_purchase,
            "purchases_total": purchases,
            "purchases_30d": rng.binomial(purchases, 0.3),
            "share_active_days_30d_of_90d": rng.uniform(0, 1, n),
            "active_days_total": rng.integers(1, 60, n),
        }
    )
    if consent:
        for i, col in enumerate(COLUMNS.values()):
            frame[col] = rng.random(n) < (0.95, 0.9, 0.6, 0.5)[i]
    return frame
