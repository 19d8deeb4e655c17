"""Link thresholds chosen on held-out labelled pairs under a precision target."""

from __future__ import annotations

import numpy as np

from identity.match.threshold import precision_threshold


def test_the_lowest_threshold_meeting_the_target_is_chosen() -> None:
    # 100 sure matches at 0.98, a plateau at 0.55 holding 60 matches and 40 non-matches, 200 non-matches low
    p = np.r_[np.full(100, 0.98), np.full(100, 0.55), np.full(200, 0.01)]
    y = np.r_[np.ones(100), np.ones(60), np.zeros(40), np.zeros(200)].astype(np.int8)
    choice = precision_threshold(p, y, 0.99)
    assert choice.threshold == 0.98 and choice.precision == 1.0 and choice.rule == "held-out"
    assert precision_threshold(p, y, 0.8).threshold == 0.55  # the plateau passes a looser target


def test_falls_back_without_enough_held_out_matches() -> None:
    p, y = np.array([0.9, 0.2]), np.array([1, 0], dtype=np.int8)
    choice = precision_threshold(p, y, 0.99, fallback=0.9)
    assert choice.threshold == 0.9 and choice.rule.startswith("fallback")


def test_never_below_the_floor() -> None:
    p = np.r_[np.full(50, 0.3), np.full(50, 0.1)]
    y = np.r_[np.ones(50), np.zeros(50)].astype(np.int8)
    assert precision_threshold(p, y, 0.99, fallback=0.9).rule.startswith("fallback")
