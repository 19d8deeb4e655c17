"""Choosing a link threshold from held-out labelled pairs: the lowest calibrated probability at which the
estimated precision of the pairs linked still meets a target (maximum recall under a false-merge budget).

The estimate is the share of true matches among held-out labelled pairs (never trained on) scoring at or above
the threshold. Labelled pairs stand in for the unlabelled candidates, so the estimate is only as good as that
stand-in; a choice below ``floor`` (default 0.5: a link more likely wrong than right) is never made, and with
too few held-out matches, or no threshold meeting the target, the conservative ``fallback`` is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold and how it was chosen (``rule``: ``held-out`` or ``fallback: <why>``)."""

    threshold: float
    precision: float  # estimated on the held-out pairs at the threshold (nan when not estimated)
    recall: float  # share of held-out matches at or above it (nan when not estimated)
    matches: int  # held-out matches the estimate rests on
    rule: str

    def __str__(self) -> str:
        if self.rule != "held-out":
            return f"threshold {self.threshold:.3f} ({self.rule})"
        return (
            f"threshold {self.threshold:.3f} (held-out precision {self.precision:.4f}, recall {self.recall:.4f} "
            f"over {self.matches} held-out matches)"
        )


def precision_at(proba: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, int]:
    """Share of matches among held-out pairs at or above ``threshold`` and how many pairs that is."""
    sel = np.asarray(proba) >= threshold
    n = int(sel.sum())
    return (float(np.asarray(y)[sel].mean()) if n else float("nan")), n


def precision_threshold(
    proba: np.ndarray,
    y: np.ndarray,
    target: float = 0.99,
    *,
    fallback: float = 0.9,
    floor: float = 0.5,
    min_matches: int = 20,
) -> ThresholdChoice:
    """The lowest threshold (among the held-out probabilities, at least ``floor``) whose held-out precision
    is at least ``target``; ``fallback`` when fewer than ``min_matches`` held-out matches or none meets it."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target: must lie in (0, 1] (got {target})")
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int8)
    n_pos = int((y == 1).sum())
    if n_pos < min_matches:
        return ThresholdChoice(
            fallback, float("nan"), float("nan"), n_pos, f"fallback: {n_pos} held-out matches"
        )
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys == 1)
    last = np.r_[ps[1:] != ps[:-1], True]  # the last pair of each run of equal probabilities
    cand, prec, rec = ps[last], tp[last] / (np.flatnonzero(last) + 1), tp[last] / n_pos
    ok = (prec >= target) & (cand >= floor)
    if not ok.any():
        return ThresholdChoice(
            fallback, float("nan"), float("nan"), n_pos, f"fallback: no threshold reaches precision {target}"
        )
    k = int(np.flatnonzero(ok)[-1])  # lowest qualifying threshold = highest recall
    return ThresholdChoice(float(cand[k]), float(prec[k]), float(rec[k]), n_pos, "held-out")
