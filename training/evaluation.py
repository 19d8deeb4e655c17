"""Holdout metrics and diagnostic plots (ROC, precision-recall, calibration) for binary classifiers.

Figures are built with matplotlib's object API (no pyplot, no global backend), so this works headless.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from contract.errors import ContractError


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score and the base rate."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        raise ContractError(
            "holdout", "needs both churned and retained customers to score a model", int(y[0])
        )
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "base_rate": float(np.mean(y)),
    }


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def diagnostic_figures(y: np.ndarray, p: np.ndarray, title: str = "") -> dict[str, Figure]:
    """ROC, precision-recall and calibration (reliability) plots of scores ``p`` against labels ``y``."""
    figs: dict[str, Figure] = {}

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC {title}".strip())
    ax.legend(loc="lower right")
    figs["roc"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    precision, recall, _ = precision_recall_curve(y, p)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, p):.3f}")
    ax.axhline(float(np.mean(y)), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="Recall", ylabel="Precision", title=f"Precision-recall {title}".strip())
    ax.legend(loc="upper right")
    figs["pr"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot(mean_pred, frac_pos, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.set(
        xlabel="Mean predicted probability",
        ylabel="Observed churn rate",
        title=f"Calibration {title}".strip(),
    )
    ax.legend(loc="upper left")
    figs["calibration"] = fig
    return figs
