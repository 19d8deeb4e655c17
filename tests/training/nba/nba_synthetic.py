"""A tiny synthetic decision log with a known truth: three segments, three actions plus a control, the best
action differs per segment and the logging policy prefers the wrong one."""

from __future__ import annotations

import numpy as np
import pandas as pd

ACTIONS = ["gift", "no_offer", "promo_a", "promo_b"]  # sorted, as NBAPolicy orders them
SEGMENTS = ["s0", "s1", "s2"]
# true conversion probability per segment (rows) and action (columns)
MU = np.array(
    [
        [0.10, 0.05, 0.30, 0.10],  # s0: promo_a
        [0.10, 0.05, 0.10, 0.35],  # s1: promo_b
        [0.25, 0.05, 0.10, 0.10],  # s2: gift
    ]
)
# logging policy: prefers a wrong action per segment, with exploration
LOGGING = np.array(
    [
        [0.15, 0.15, 0.10, 0.60],
        [0.60, 0.15, 0.15, 0.10],
        [0.10, 0.15, 0.60, 0.15],
    ]
)


def make_log(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(decisions frame, true mu (n, K)); context: segment, a noise number, tenure_days, consent."""
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, len(SEGMENTS), n)
    cum = LOGGING[seg].cumsum(axis=1)
    action = (cum > rng.random(n)[:, None]).argmax(axis=1)
    mu = MU[seg]
    reward = (rng.random(n) < mu[np.arange(n), action]).astype(float)
    frame = pd.DataFrame(
        {
            "decision_id": [f"d{seed}-{i:06d}" for i in range(n)],
            "customer_id": [f"U{i % 997:04d}" for i in range(n)],
            "occurred_at": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(np.arange(n) * 60, unit="s"),
            "action": np.asarray(ACTIONS, dtype=object)[action],
            "propensity": LOGGING[seg, action],
            "reward": reward,
            "segment": np.asarray(SEGMENTS, dtype=object)[seg],
            "noise": rng.random(n),
            "tenure_days": rng.integers(0, 400, n),
            "consent": rng.random(n) < 0.8,
        }
    )
    return frame, mu


def policy_value(pi: np.ndarray, mu: np.ndarray) -> float:
    """True expected reward of a stochastic policy pi (n, K) on contexts with true responses mu (n, K)."""
    return float((pi * mu).sum(axis=1).mean())
