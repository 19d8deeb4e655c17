"""Next-best-action: the logging policy (recorded propensities) and the true response model (hidden).

Both are functions of the decision context; the true response also depends on each person's latent price
sensitivity and content affinity, which the context only partly reveals (through the segment).
"""

from __future__ import annotations

import numpy as np

from simulator.config import OFFERS

SEGMENTS: tuple[str, ...] = ("new", "regular", "vip", "lapsing")
CHANNELS: tuple[str, ...] = ("web", "app")

# logging policy: the brand's hand-written rules (segment x offer scores), nudged by recent views and channel
_POLICY_SEGMENT = np.array(
    [  # d10   d20   ship  content none
        [0.8, 0.2, 0.6, 0.0, 0.0],  # new
        [0.3, -0.5, 0.4, 0.3, 0.6],  # regular
        [-0.5, -1.0, 0.5, 0.8, 0.9],  # vip
        [0.6, 1.0, 0.2, -0.3, -0.5],  # lapsing
    ]
)
_POLICY_VIEWS = np.array([0.0, 0.0, 0.25, 0.15, 0.0])
_POLICY_CHANNEL = np.array([[0.0, 0.0, 0.3, -0.2, 0.0], [0.0, 0.0, -0.2, 0.4, 0.0]])

# true response: base rate per offer, latent-trait loadings, segment and channel effects
_BASE = np.array([-2.3, -2.1, -2.4, -2.8, -2.7])
_PRICE_LOAD = np.array([0.55, 0.95, 0.35, -0.2, 0.0])
_CONTENT_LOAD = np.array([-0.1, -0.2, 0.0, 0.9, 0.1])
_SEGMENT_EFFECT = np.array(
    [
        [0.3, 0.3, 0.5, -0.2, -0.3],  # new: shipping barrier matters
        [0.0, 0.0, 0.0, 0.1, 0.1],
        [-0.2, -0.3, 0.2, 0.5, 0.6],  # vip buys anyway
        [0.4, 0.7, 0.0, -0.4, -0.6],  # lapsing: only deep discounts move them
    ]
)
_CHANNEL_EFFECT = np.array([[0.0, 0.0, 0.15, -0.15, 0.0], [0.0, 0.0, -0.1, 0.25, 0.0]])
_VIEWS_EFFECT = 0.18


def segment_of(tenure_days: np.ndarray, purchases: np.ndarray, days_since_last: np.ndarray) -> np.ndarray:
    """Observable segment index (see SEGMENTS) from tenure, purchases so far and recency."""
    seg = np.full(len(tenure_days), 1, dtype=np.int64)
    seg[purchases >= 3] = 2
    seg[days_since_last > 14] = 3
    seg[tenure_days < 30] = 0
    return seg


def logging_propensities(
    segment: np.ndarray, recent_views: np.ndarray, channel: np.ndarray, epsilon: float
) -> np.ndarray:
    """(n, K) probabilities of the logging policy: softmax of rule scores mixed with uniform exploration."""
    score = (
        _POLICY_SEGMENT[segment] + np.log1p(recent_views)[:, None] * _POLICY_VIEWS + _POLICY_CHANNEL[channel]
    )
    score -= score.max(axis=1, keepdims=True)
    soft = np.exp(score)
    soft /= soft.sum(axis=1, keepdims=True)
    return (1.0 - epsilon) * soft + epsilon / len(OFFERS)


def true_response(
    price_sensitivity: np.ndarray,
    content_affinity: np.ndarray,
    segment: np.ndarray,
    recent_views: np.ndarray,
    channel: np.ndarray,
) -> np.ndarray:
    """(n, K) true probability that the person converts under each offer."""
    logit = (
        _BASE
        + price_sensitivity[:, None] * _PRICE_LOAD
        + content_affinity[:, None] * _CONTENT_LOAD
        + _SEGMENT_EFFECT[segment]
        + _CHANNEL_EFFECT[channel]
        + _VIEWS_EFFECT * np.log1p(recent_views)[:, None]
    )
    return 1.0 / (1.0 + np.exp(-logit))


def sample_rows(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from each row's categorical distribution, given one uniform per row."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    return np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1)
