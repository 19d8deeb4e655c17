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


def _weighted_aucs(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC under each row of ``weights`` (b × n row multiplicities), ties counted half: one sort, no loop."""
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])  # groups of tied scores
    w = weights[:, order]
    pos = np.add.reduceat(w * ys, starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - ys), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def auc_difference_interval(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """AUC(a) - AUC(b) on the same rows, with a paired percentile bootstrap interval (both scored on each
    resample), so a difference within noise reads as such instead of as a win or a loss."""
    y = np.asarray(y, dtype="float64")
    p_a, p_b = np.asarray(p_a, dtype="float64"), np.asarray(p_b, dtype="float64")
    if not (len(y) == len(p_a) == len(p_b)) or len(np.unique(y)) < 2:
        raise ContractError("y, p_a, p_b", "need one length and both classes", len(y))
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_bootstrap, 100):  # chunks bound the b × n weight matrix
        b = min(100, n_bootstrap - start)
        w = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y)), size=b).astype("float64")
        ok = ((w * y).sum(axis=1) > 0) & ((w * (1 - y)).sum(axis=1) > 0)
        diffs.append(_weighted_aucs(y, p_a, w[ok]) - _weighted_aucs(y, p_b, w[ok]))
    d = np.concatenate(diffs)
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return roc_auc(y, p_a) - roc_auc(y, p_b), float(low), float(high)


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
        ylabel="Observed positive rate",
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
