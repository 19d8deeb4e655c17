"""`cxi train identity`: the identity-match model (anonymous profiles -> known customers), tracked in MLflow.

Trains the classifier of `identity.match.anonymous.AnonymousMatcher` on the workspace: candidate pairs of
profile fragments labelled by the deterministic graph alone (fragments of one known customer match; customers
holding different user_ids do not), LightGBM calibrated on its own held-out split; a further
EVALUATION_SHARE of the labelled pairs, seen by neither, is what the run reports and is gated on. Logged like
every CXI model: params, precision / recall / F1 per threshold, the binary metrics and diagnostic plots every
model gets (`training.evaluation`: ROC/PR-AUC, Brier, calibration error; ROC, PR, calibration, gain) and a
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
from sklearn.metrics import log_loss

from contract.errors import ContractError
from contract.settings import Settings
from contract.workspace import Workspace
from training.evaluation import binary_metrics, diagnostic_figures
from training.registry import CHALLENGER, CHAMPION, Registry, TrainingRecord

if TYPE_CHECKING:
    from identity.match.anonymous import AnonymousMatcher
    from identity.match.supervised import SupervisedModel

MODEL_NAME = "identity_match"
THRESHOLDS: tuple[float, ...] = tuple(round(t, 2) for t in np.arange(0.5, 0.96, 0.05))
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


def _threshold_figure(metrics: dict[str, float]) -> Figure:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    keys = [f"{t:.2f}".replace(".", "_") for t in THRESHOLDS]
    for what in ("precision", "recall", "f1"):
        ax.plot(THRESHOLDS, [metrics[f"{what}_at_{k}"] for k in keys], marker=".", label=what)
    ax.set(xlabel="link threshold", ylabel="evaluation pairs", title="precision / recall / F1 by threshold")
    ax.legend()
    return fig


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
    from identity.match.supervised import SupervisedModel, stratified_split

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
    fit_rows, held = stratified_split(y_all, EVALUATION_SHARE, matcher.seed + 1)
    model = SupervisedModel(
        calibration=matcher.calibration,
        holdout=matcher.holdout,
        num_boost_round=matcher.num_boost_round,
        seed=matcher.seed,
    ).fit(x_all[fit_rows], y_all[fit_rows], list(FEATURES))
    x_hold, y = x_all[held], y_all[held]
    p = model.predict_proba(x_hold)
    metrics = (
        threshold_metrics(y, p)
        | {f"holdout_{k}": v for k, v in binary_metrics(y, p).items()}
        | {"holdout_log_loss": float(log_loss(y, p, labels=[0, 1]))}
    )
    rows = {"matches": n_pos, "non_matches": n_neg, "candidates": len(pairs), "holdout": len(y)}

    registry = Registry(settings)
    before = registry.alias_version(MODEL_NAME, CHAMPION)
    alias = CHAMPION
    if before is not None:
        with tempfile.TemporaryDirectory() as tmp:
            _, folder = registry.download_artifact_model(MODEL_NAME, Path(tmp))
            champion = SupervisedModel.load(folder)
            metrics["champion_holdout_log_loss"] = float(
                log_loss(y, champion.predict_proba(x_hold), labels=[0, 1])
            )
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
        figures={
            **diagnostic_figures(y, p, "(evaluation pairs)"),
            "threshold_curves": _threshold_figure(metrics),
        },
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
