"""Holdout metrics and diagnostic plots (ROC, precision-recall, calibration, lift/gain, feature importance).

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


def top_decile_lift(y: np.ndarray, p: np.ndarray, fraction: float = 0.1) -> float:
    """Churn rate among the top ``fraction`` highest scores over the overall rate (ties broken by order)."""
    y = np.asarray(y, dtype="float64")
    k = max(1, round(fraction * len(y)))
    top = np.argsort(-np.asarray(p, dtype="float64"), kind="stable")[:k]
    return float(y[top].mean() / y.mean())


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score, ECE, top-decile lift and the base rate."""
    from training.calibration import expected_calibration_error

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        raise ContractError(
            "holdout", "needs both churned and retained customers to score a model", int(y[0])
        )
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "top_decile_lift": top_decile_lift(y, p),
        "base_rate": float(np.mean(y)),
    }


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def diagnostic_figures(
    y: np.ndarray,
    p: np.ndarray,
    title: str = "",
    *,
    baselines: dict[str, np.ndarray] | None = None,
    importance: dict[str, float] | None = None,
) -> dict[str, Figure]:
    """ROC, precision-recall, calibration, lift/gain (with ``baselines``' scores overlaid on ROC, PR and
    gain) and, given ``importance``, a feature-importance bar chart."""
    figs: dict[str, Figure] = {}
    others = baselines or {}

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"CXI AUC {roc_auc_score(y, p):.3f}")
    for name, s in others.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, linewidth=1, label=f"{name} {roc_auc_score(y, s):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC {title}".strip())
    ax.legend(loc="lower right")
    figs["roc"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    precision, recall, _ = precision_recall_curve(y, p)
    ax.plot(recall, precision, label=f"CXI AP {average_precision_score(y, p):.3f}")
    for name, s in others.items():
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, linewidth=1, label=f"{name} {average_precision_score(y, s):.3f}")
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
    figs["lift_gain"] = _gain_figure(y, {"CXI": p, **others}, title)
    if importance:
        figs["feature_importance"] = _importance_figure(importance, title)
    return figs


def gain_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of customers contacted, share of churners caught) when contacting by descending score."""
    y = np.asarray(y, dtype="float64")[np.argsort(-np.asarray(p, dtype="float64"), kind="stable")]
    x = np.arange(1, len(y) + 1) / len(y)
    return np.concatenate([[0.0], x]), np.concatenate([[0.0], np.cumsum(y) / y.sum()])


def _gain_figure(y: np.ndarray, scores: dict[str, np.ndarray], title: str) -> Figure:
    fig = Figure(figsize=(10, 5))
    gain_ax, lift_ax = fig.subplots(1, 2)
    for name, s in scores.items():
        x, g = gain_curve(y, s)
        gain_ax.plot(x, g, label=name)
        keep = x >= 0.05
        lift_ax.plot(x[keep], g[keep] / x[keep], label=f"{name} (top 10%: {top_decile_lift(y, s):.2f}x)")
    gain_ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    gain_ax.set(xlabel="Share contacted", ylabel="Share of churners caught", title=f"Gain {title}".strip())
    lift_ax.axhline(1.0, linestyle="--", color="grey")
    lift_ax.set(xlabel="Share contacted", ylabel="Lift", title=f"Lift {title}".strip())
    gain_ax.legend(loc="lower right")
    lift_ax.legend(loc="upper right")
    return fig


def _importance_figure(importance: dict[str, float], title: str) -> Figure:
    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig = Figure(figsize=(6, max(3.0, 0.25 * len(items))))
    ax = fig.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="Total gain", title=f"Feature importance {title}".strip())
    fig.tight_layout()
    return fig
