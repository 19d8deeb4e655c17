"""`train_nba`: learn a next-best-action policy from the logged decisions, evaluate it off-policy on a
held-out time split, log everything to MLflow and register it (``champion`` only if it passes the ship
rule of ``training.nba.evaluation``, ``challenger`` otherwise)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contract.settings import Settings
from contract.workspace import Workspace
from training.nba.data import load_decisions, time_split
from training.nba.eligibility import EligibilityRules
from training.nba.evaluation import OfflineEvaluation, evaluate_offline, interval_figure
from training.nba.policy import NBAPolicy
from training.registry import CHALLENGER, CHAMPION, Registry, TrainingRecord

MODEL_NAME = "nba"


@dataclass
class NBAResult:
    name: str
    version: str | None
    alias: str | None
    run_id: str | None
    policy: NBAPolicy
    evaluation: OfflineEvaluation
    rows: dict[str, int]
    seconds: float


def model_card(policy: NBAPolicy, ev: OfflineEvaluation, rows: dict[str, int], window: dict[str, str]) -> str:
    t = ev.table.pivot(index="policy", columns="estimator", values="value").round(4)
    rules = policy.eligibility.model_dump_json(indent=2) if policy.eligibility else "none"
    control = (
        f"control `{policy.control_}`"
        if policy.control_
        else f"no control (`{policy.control}` not logged: uplift is null)"
    )
    dropped = policy.encoder_.dropped_
    return "\n".join(
        [
            "# Next-best-action policy",
            "",
            f"Learned with `{policy.method}` policy learning from {rows['train']} logged decisions "
            f"({window['train_start']} .. {window['train_end']}); actions {policy.actions_}, "
            f"{control}; serves epsilon-greedy with epsilon = {policy.epsilon}.",
            "",
            f"Context features: numeric {policy.encoder_.numeric_}, categorical {list(policy.encoder_.categories_)}"
            + (f"; dropped (too many categories): {dropped}." if dropped else "."),
            "",
            f"## Off-policy evaluation ({rows['holdout']} held-out decisions, {window['holdout_start']} .. "
            f"{window['holdout_end']})",
            "",
            t.to_markdown() if _has_tabulate() else t.to_string(),
            "",
            f"Best single action: `{ev.best_action}`.",
            "",
            f"**Ship: {'yes' if ev.ship else 'no'}** ({ev.reason}). Rule: ship only if the DR lower bound "
            "beats the logging policy's value on the same held-out decisions.",
            "",
            "## Eligibility rules",
            "",
            f"```json\n{rules}\n```",
        ]
    )


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def train_nba(
    settings: Settings,
    ws: Workspace,
    *,
    decisions: pd.DataFrame | None = None,
    policy: NBAPolicy | None = None,
    eligibility: EligibilityRules | None = None,
    holdout_fraction: float = 0.25,
    n_bootstrap: int = 500,
    seed: int = 0,
    register: bool = True,
    name: str = MODEL_NAME,
) -> NBAResult:
    """Fit on the earlier decisions, evaluate on the later ones, log to MLflow and register the policy.

    Without ``policy``, a default ``NBAPolicy`` whose control action is ``settings.nba_control_action``."""
    t0 = time.perf_counter()
    frame = load_decisions(ws) if decisions is None else decisions
    train, holdout = time_split(frame, holdout_fraction)
    policy = policy or NBAPolicy(seed=seed, control=settings.nba_control_action)
    if eligibility is not None:
        policy.eligibility = eligibility
    policy.fit(train)
    ev = evaluate_offline(policy, train, holdout, n_bootstrap=n_bootstrap, seed=seed)
    rows = {"train": len(train), "holdout": len(holdout)}
    version = alias = run_id = None
    if register:
        window = {
            "train_start": str(train["occurred_at"].min()),
            "train_end": str(train["occurred_at"].max()),
            "holdout_start": str(holdout["occurred_at"].min()),
            "holdout_end": str(holdout["occurred_at"].max()),
        }
        record = TrainingRecord(
            params={
                **policy.get_params(),
                "holdout_fraction": holdout_fraction,
                "n_bootstrap": n_bootstrap,
                "control_found": policy.control_ is not None,
                "context_numeric": ",".join(policy.encoder_.numeric_),
                "context_dropped": ",".join(policy.encoder_.dropped_),
            },
            metrics=ev.metrics(),
            feature_service="decisions_context",
            data_window=window,
            row_counts=rows,
            input_example=holdout[[c for c in policy.encoder_.columns_]].head(5),
            model_card=model_card(policy, ev, rows, window),
            figures={"ope_intervals": interval_figure(ev.table)},
            tags={
                "ship": str(ev.ship).lower(),
                "ship_reason": ev.reason,
                "actions": ",".join(policy.actions_),
            },
        )
        with tempfile.TemporaryDirectory() as tmp:
            reg = Registry(settings)
            rv = reg.log_artifact_model(name, policy.save(Path(tmp) / "policy"), record, run_name="nba")
            alias = CHAMPION if ev.ship else CHALLENGER
            reg.set_alias(name, rv.version, alias)
        version, run_id = rv.version, rv.run_id
    return NBAResult(name, version, alias, run_id, policy, ev, rows, time.perf_counter() - t0)


def load_policy(
    settings: Settings, *, alias: str = CHAMPION, name: str = MODEL_NAME
) -> tuple[str, NBAPolicy]:
    """(version, policy) registered under ``models:/<name>@<alias>``."""
    with tempfile.TemporaryDirectory() as tmp:
        version, path = Registry(settings).download_artifact_model(name, Path(tmp), alias)
        return version, NBAPolicy.load(path)
