"""`cxi train identity`: the identity-match model (anonymous profiles -> known customers), tracked in MLflow.

Trains the classifier of `identity.match.anonymous.AnonymousMatcher` on the workspace: candidate pairs of
profile fragments labelled by the deterministic graph alone (fragments of one known customer match; customers
holding different user_ids do not), LightGBM calibrated on its own held-out split; a further
EVALUATION_SHARE of the labelled pairs, seen by neither, is what the run reports and is gated on. Logged like every CXI model:
params, held-out precision / recall / F1 per threshold, Brier and calibration error, a calibration plot and a
precision-recall-by-threshold plot, the data window and row counts, git SHA, a model card; registered as
``identity_match`` (the booster, calibrator and feature names as files, `SupervisedModel.save`).

The gate: the current champion scores the new run's held-out pairs too; the new model becomes champion when
there is none or when its log-loss on those very pairs is not above the champion's, else ``challenger``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from contract.errors import ContractError
from contract.settings import Settings
from contract.workspace import Workspace
from training.registry import CHALLENGER, CHAMPION, Registry, TrainingRecord

if TYPE_CHECKING:
    from identity.match.anonymous import AnonymousMatcher
    from identity.match.supervised import SupervisedModel

MODEL_NAME = "identity_match"
THRESHOLDS: tuple[float, ...] = tuple(round(t, 2) for t in np.arange(0.5, 0.96, 0.05))
_EPS = 1e-6
#: Labelled pairs kept out of training and calibration, on which the model is reported and gated.
EVALUATION_SHARE = 0.25


@dataclass
class IdentityMatchResult:
    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    rows: dict[str, int]
    champion_before: str | None
    seconds: float
    model: SupervisedModel


def _evaluation_split(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the rows to fit on, labels of the others): a stratified random ``share`` held out."""
    rng = np.random.default_rng(seed + 1)
    fit = np.ones(len(y), dtype=bool)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        fit[rng.choice(idx, max(1, round(len(idx) * share)), replace=False)] = False
    return fit, y[~fit]


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def threshold_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of ``p >= t`` against ``y`` for every t in THRESHOLDS (``*_at_0_80`` ...)."""
    out: dict[str, float] = {}
    for t in THRESHOLDS:
        hit = p >= t
        tp = float(np.sum(hit & (y == 1)))
        precision = tp / hit.sum() if hit.any() else float("nan")
        recall = tp / float(np.sum(y == 1)) if (y == 1).any() else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        key = f"{t:.2f}".replace(".", "_")
        out |= {f"precision_at_{key}": precision, f"recall_at_{key}": recall, f"f1_at_{key}": f1}
    return out


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            err += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(err)


def _figures(y: np.ndarray, p: np.ndarray, metrics: dict[str, float]) -> dict[str, Figure]:
    cal = Figure(figsize=(5, 5))
    ax = cal.subplots()
    idx = np.minimum((p * 10).astype(int), 9)
    xs = [p[idx == b].mean() for b in range(10) if (idx == b).any()]
    ys = [y[idx == b].mean() for b in range(10) if (idx == b).any()]
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.plot(xs, ys, marker="o")
    ax.set(
        xlabel="predicted match probability", ylabel="share of true matches", title="calibration (held out)"
    )
    prt = Figure(figsize=(6, 4))
    ax = prt.subplots()
    keys = [f"{t:.2f}".replace(".", "_") for t in THRESHOLDS]
    for what in ("precision", "recall", "f1"):
        ax.plot(THRESHOLDS, [metrics[f"{what}_at_{k}"] for k in keys], marker=".", label=what)
    ax.set(xlabel="link threshold", ylabel="held-out pairs", title="precision / recall / F1 by threshold")
    ax.legend()
    return {"calibration": cal, "threshold_curves": prt}


def _card(metrics: dict[str, float], rows: dict[str, int], threshold: float) -> str:
    key = f"{threshold:.2f}".replace(".", "_")
    return f"""# Identity-match model ({MODEL_NAME})

**Predicts** the probability that an anonymous profile fragment (a browser or device that never logged in)
and a known customer's fragment are the same person, from web/app-log comparisons (shared devices, IP prefixes
by day and hour, user-agent family, active-day overlap, category / hour / channel similarity).

**Labels** come from the deterministic identity graph only: fragments of one known customer match, fragments
of customers holding different user_ids do not ({rows["matches"]} / {rows["non_matches"]} pairs). No
hand labels, no simulator truth.

**Held-out pairs** ({rows["holdout"]}): precision {metrics[f"precision_at_{key}"]:.3f}, recall
{metrics[f"recall_at_{key}"]:.3f}, F1 {metrics[f"f1_at_{key}"]:.3f} at the link threshold {threshold};
Brier {metrics["holdout_brier"]:.4f}, calibration error {metrics["holdout_ece"]:.4f}.

**Limitations**: held-out pairs are fragments of known customers, so for anonymous-vs-known pairs these are
optimistic bounds; the resolver and the live engine link only when held-out precision meets their target.
"""


def train_identity_match(
    settings: Settings, ws: Workspace, *, threshold: float = 0.8, matcher: AnonymousMatcher | None = None
) -> IdentityMatchResult:
    """Train, log and register the anonymous-profile matcher (``matcher``: an unfitted one with other
    settings); alias champion or challenger (see the module docstring)."""
    from identity.match.anonymous import AnonymousMatcher
    from identity.match.profiles import FEATURES
    from identity.match.supervised import SupervisedModel

    started = time.perf_counter()
    for table in ("events", "identity_map"):
        if not ws.exists(table):
            raise ContractError(table, "missing: import events and run `cxi identity resolve` first")
    matcher = matcher or AnonymousMatcher(threshold=threshold)
    with ws.connect("events", "identity_map", "identity_guard_log") as con:
        pairs = matcher.pairs(con)
    labelled = pairs[pairs["label"] >= 0]
    x_all = matcher.design(labelled)
    y_all = labelled["label"].to_numpy(np.int8)
    n_pos, n_neg = int((y_all == 1).sum()), int((y_all == 0).sum())
    if min(n_pos, n_neg) < 2 * matcher.min_labels:
        raise ContractError(
            "events",
            f"too few deterministically labelled fragment pairs to train and evaluate on ({n_pos} matches, "
            f"{n_neg} non-matches; need {2 * matcher.min_labels} of each): are there ip/user_agent columns "
            "and customers who logged in on several devices?",
        )
    # evaluation pairs neither the booster nor its calibrator sees (the calibrator fits on its own split)
    fit_rows, y = _evaluation_split(y_all, EVALUATION_SHARE, matcher.seed)
    model = SupervisedModel(
        calibration=matcher.calibration,
        holdout=matcher.holdout,
        num_boost_round=matcher.num_boost_round,
        seed=matcher.seed,
    ).fit(x_all[fit_rows], y_all[fit_rows], list(FEATURES))
    x_hold = x_all[~fit_rows]
    p = model.predict_proba(x_hold)
    metrics = threshold_metrics(y, p) | {
        "holdout_log_loss": log_loss(y, p),
        "holdout_brier": float(np.mean((p - y) ** 2)),
        "holdout_ece": calibration_error(y, p),
    }
    rows = {"matches": n_pos, "non_matches": n_neg, "candidates": len(pairs), "holdout": len(y)}

    registry = Registry(settings)
    before = registry.alias_version(MODEL_NAME, CHAMPION)
    alias = CHAMPION
    if before is not None:
        with tempfile.TemporaryDirectory() as tmp:
            _, folder = registry.download_artifact_model(MODEL_NAME, Path(tmp))
            champion = SupervisedModel.load(folder)
            metrics["champion_holdout_log_loss"] = log_loss(y, champion.predict_proba(x_hold))
        if metrics["holdout_log_loss"] > metrics["champion_holdout_log_loss"]:
            alias = CHALLENGER
    record = TrainingRecord(
        params={
            "link_threshold": threshold,
            "max_block": matcher.max_block,
            "evaluation_share": EVALUATION_SHARE,
            "calibration": matcher.calibration,
            "holdout_share": matcher.holdout,
            "num_boost_round": matcher.num_boost_round,
            "features": ",".join(model.feature_names_),
        },
        metrics=metrics,
        feature_service="identity_events",  # the matcher reads the resolved event log, not a Feast service
        data_window=_window(ws),
        row_counts=rows,
        input_example=pd.DataFrame(x_hold[:5], columns=model.feature_names_),
        model_card=_card(metrics, rows, threshold),
        figures=_figures(y, p, metrics),
        tags={"alias_decision": alias},
    )
    with tempfile.TemporaryDirectory() as tmp:
        reg = registry.log_artifact_model(
            MODEL_NAME, model.save(Path(tmp) / "model"), record, run_name=MODEL_NAME
        )
    registry.set_alias(MODEL_NAME, reg.version, alias)
    return IdentityMatchResult(
        MODEL_NAME,
        reg.version,
        alias,
        reg.run_id,
        metrics,
        rows,
        before,
        time.perf_counter() - started,
        model,
    )


def _window(ws: Workspace) -> dict[str, str]:
    with ws.connect("events") as con:
        first, last = con.execute("SELECT min(occurred_at), max(occurred_at) FROM events").fetchall()[0]
    return {"log_first": str(first), "log_last": str(last)}
