"""Probability calibration that travels inside the registered LightGBM booster.

Platt scaling on the booster's raw margin m: p = sigmoid(a·m + b). An affine map of the margin is folded into
the trees themselves (every leaf value × a, plus b on the first tree), so the registered booster predicts
calibrated probabilities and its ``pred_contrib`` still sums to the calibrated margin: serving applies nothing.
A model boosted from a prior (`training.prior`) calibrates trees + prior together; the prior then carries the
slope ``a`` as its scale.

The method is chosen on a held-out calibration slice by cross-fitted Brier score among ``none`` and
``platt``; isotonic regression is measured too and reported, but cannot be folded into trees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from contract.errors import ContractError

METHODS: tuple[str, ...] = ("none", "platt")


@dataclass(frozen=True)
class Calibration:
    """The chosen map p = sigmoid(a·margin + b) and the cross-fitted Brier scores it was chosen by."""

    method: str
    a: float
    b: float
    brier: dict[str, float]  # none / platt / isotonic on the calibration slice (cross-fitted)
    rows: int

    def apply(self, margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * np.asarray(margin) + self.b)))

    def tags(self) -> dict[str, str]:
        return {
            "calibration.method": self.method,
            "calibration.a": f"{self.a:.6g}",
            "calibration.b": f"{self.b:.6g}",
            "calibration.in_booster": "true",
        }


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) of the logistic regression of y on the margin (unpenalised)."""
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(margin).reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _folds(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % k


def choose_calibration(margin: np.ndarray, y: np.ndarray, *, folds: int = 2, seed: int = 0) -> Calibration:
    """Fit Platt on the slice and pick ``platt`` or ``none`` by cross-fitted Brier (isotonic reported only)."""
    margin, y = np.asarray(margin, dtype="float64"), np.asarray(y, dtype="float64")
    if margin.shape != y.shape or margin.ndim != 1:
        raise ContractError("calibration slice", "margin and labels must be 1-D of one length")
    if len(np.unique(y)) < 2 or len(y) < 2 * folds:
        raise ContractError("calibration slice", "needs both classes and a few rows", len(y))
    fold = _folds(len(y), folds, seed)
    out = {"none": np.empty_like(y), "platt": np.empty_like(y), "isotonic": np.empty_like(y)}
    for k in range(folds):
        fit, held = fold != k, fold == k
        out["none"][held] = _sigmoid(margin[held])
        if len(np.unique(y[fit])) < 2:
            out["platt"][held] = out["isotonic"][held] = y[fit].mean()
            continue
        a, b = fit_platt(margin[fit], y[fit])
        out["platt"][held] = _sigmoid(a * margin[held] + b)
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(margin[fit], y[fit])
        out["isotonic"][held] = iso.predict(margin[held])
    brier = {k: float(np.mean((v - y) ** 2)) for k, v in out.items()}
    if brier["platt"] < brier["none"]:
        a, b = fit_platt(margin, y)
        return Calibration("platt", a, b, brier, len(y))
    return Calibration("none", 1.0, 0.0, brier, len(y))


_LEAF = re.compile(r"^(leaf_value|internal_value)=(.*)$")


def fold_into_booster(
    booster: lgb.Booster, a: float, b: float, num_iteration: int | None = None
) -> lgb.Booster:
    """A new booster (trees up to ``num_iteration``) whose raw margin is ``a · margin + b``."""
    if not np.isfinite(a) or not np.isfinite(b):
        raise ContractError("calibration", "a and b must be finite", (a, b))
    text = booster.model_to_string(num_iteration=num_iteration)
    tree = -1
    lines = []
    for line in text.splitlines():
        if line.startswith("tree_sizes="):
            continue  # byte offsets of the trees: stale once values change; LightGBM then parses in order
        if line.startswith("Tree="):
            tree = int(line[5:])
        elif tree >= 0 and (m := _LEAF.match(line)):
            vals = np.array(m.group(2).split(), dtype="float64") * a
            if tree == 0:
                vals += b
            line = f"{m.group(1)}=" + " ".join(repr(float(v)) for v in vals)
        elif line.startswith("end of trees"):
            tree = -1
        lines.append(line)
    return lgb.Booster(model_str="\n".join(lines) + "\n")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-count bins: the row-weighted mean |observed rate − mean prediction|."""
    y, p = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    order = np.argsort(p, kind="stable")
    err = 0.0
    for idx in np.array_split(order, bins):
        if len(idx):
            err += len(idx) * abs(y[idx].mean() - p[idx].mean())
    return float(err / len(y))
