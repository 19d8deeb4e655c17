"""`NBAPolicy`: a next-best-action policy learned from logged decisions and their propensities.

``method="dr"``, doubly robust policy learning: reward models per action are cross-fitted (each row
scored by models that never saw it), turned into DR pseudo-rewards per row and action,
``G[i, b] = q(x_i, b) + 1[a_i = b] * (r_i - q(x_i, a_i)) / p_i`` (weights capped at ``max_weight``), and
one LightGBM regressor per action learns E[G | x, b] (an unbiased target for E[r | x, b] even where the
logging policy was selective). ``method="direct"`` fits the reward models on logged rows only instead;
``method="pooled"`` (the default) fits ONE reward model on all logged rows with the action as a
categorical feature, so actions share statistical strength (a per-action model sees ~1/K of the rows).
``method="auto"`` picks one of those, or the best single action, by its doubly robust value on a later
validation slice of the training rows (``training.nba.selection``; model selection by OPE, never by any
truth), then refits it on all of them.
The policy serves epsilon-greedy over the eligible actions; uplift is measured against the control
(no-offer) action, named by ``control`` (the ``nba_control_action`` setting, ``cxi train nba --control``).
When no control is named, or the named one never occurs in the training decisions, the policy still learns
(with a logged warning naming the actions that do occur) but has no uplift: ``uplift`` and the ``uplift``
column of ``recommend`` are null (NaN), never the expected reward passed off as lift.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from contract.errors import ContractError
from training.nba.data import ContextEncoder, check_decisions
from training.nba.eligibility import EligibilityRules

log = logging.getLogger(__name__)

ID_COLUMNS: tuple[str, ...] = ("decision_id", "customer_id")
METHODS: tuple[str, ...] = ("dr", "direct", "pooled", "auto")
ACTION_FEATURE = "_action"


class NBAPolicy:
    """Estimator-style: ``NBAPolicy(...).fit(decisions) -> self``, then ``action_probabilities`` / ``recommend``."""

    def __init__(
        self,
        *,
        control: str | None = "no_offer",
        method: str = "pooled",
        epsilon: float = 0.05,
        n_folds: int = 3,
        max_weight: float = 50.0,
        n_estimators: int = 150,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 100,
        eligibility: EligibilityRules | None = None,
        validation_fraction: float = 0.25,
        seed: int = 0,
    ) -> None:
        self.control = control
        self.method = method
        self.epsilon = epsilon
        self.n_folds = n_folds
        self.max_weight = max_weight
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.eligibility = eligibility
        self.validation_fraction = validation_fraction
        self.seed = seed

    # --- fitting -----------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        keys = ("control", "method", "epsilon", "n_folds", "max_weight", "n_estimators", "learning_rate")
        keys += ("num_leaves", "min_child_samples", "validation_fraction", "seed")
        return {k: getattr(self, k) for k in keys}

    def _lgb_params(self, objective: str) -> dict[str, Any]:
        return {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "num_threads": 2,
            "seed": self.seed,
            "verbose": -1,
            "deterministic": True,
        }

    def _fit_one(self, X: np.ndarray, y: np.ndarray, objective: str, pooled: bool = False) -> lgb.Booster:
        names, cats = self.encoder_.columns_, self.encoder_.categorical_indices_
        if pooled:  # the last column of X is the action code, a categorical feature
            names, cats = [*names, ACTION_FEATURE], [*cats, len(names)]
        data = lgb.Dataset(X, y, feature_name=names, categorical_feature=cats or "auto")
        return lgb.train(self._lgb_params(objective), data, num_boost_round=self.n_estimators)

    def _fit_pooled(self, X: np.ndarray, a: np.ndarray, y: np.ndarray, objective: str) -> lgb.Booster:
        """One reward model over all logged rows; the action is a categorical feature."""
        return self._fit_one(np.column_stack([X, a.astype(np.float64)]), y, objective, pooled=True)

    @staticmethod
    def _predict_pooled(model: lgb.Booster, X: np.ndarray, K: int) -> np.ndarray:
        """(n, K) predictions of a pooled model: every row scored under every action."""
        if not len(X):
            return np.zeros((0, K))
        n = len(X)
        stacked = np.column_stack([np.tile(X, (K, 1)), np.repeat(np.arange(K, dtype=np.float64), n)])
        return model.predict(stacked).reshape(K, n).T

    def fit(self, decisions: pd.DataFrame) -> NBAPolicy:
        if self.method not in METHODS:
            raise ContractError("method", f"must be one of {list(METHODS)}", self.method)
        if not 0 <= self.epsilon <= 1:
            raise ContractError("epsilon", "must be in [0, 1]", self.epsilon)
        check_decisions(decisions)
        self.actions_: list[str] = sorted(decisions["action"].astype(str).unique().tolist())
        if len(self.actions_) < 2:
            raise ContractError("action", "need at least two logged actions to learn a policy", self.actions_)
        self.control_ = self.control if self.control in self.actions_ else None
        if self.control is not None and self.control_ is None:
            log.warning(
                "control action %r does not occur in the training decisions (actions: %s): training anyway, "
                "but uplift will be null; name the control (the nba_control_action setting, "
                "`cxi train nba --control NAME`) to measure uplift against it",
                self.control,
                ", ".join(self.actions_),
            )
        if self.eligibility is not None:
            self.eligibility.check_actions(self.actions_)
        self.encoder_ = ContextEncoder().fit(decisions)
        if not self.encoder_.columns_:
            raise ContractError("decisions", "no context columns to learn from (numeric or categorical)")
        X = self.encoder_.transform(decisions)
        a = pd.Categorical(decisions["action"].astype(str), categories=self.actions_).codes.astype(np.int64)
        r = decisions["reward"].to_numpy(float)
        p = decisions["propensity"].to_numpy(float)
        self.binary_ = bool(np.isin(r, (0.0, 1.0)).all())
        objective = "cross_entropy" if self.binary_ and (r.min() >= 0) else "regression"
        self.fixed_action_: str | None = None
        self.selection_: dict[str, float] = {}
        self.fitted_method_ = self.method
        if self.method == "auto":
            from training.nba.selection import select_method

            # a fixed action (not None) means a single action beat every learned policy on validation
            self.fitted_method_, self.fixed_action_, self.selection_ = select_method(self, decisions)
        self.pooled_ = self.fitted_method_ == "pooled"
        if self.fitted_method_ == "direct":
            self.models_ = [self._fit_one(X[a == k], r[a == k], objective) for k in range(len(self.actions_))]
        elif self.fitted_method_ == "pooled":
            self.models_ = [self._fit_pooled(X, a, r, objective)]
        else:
            G = self._pseudo_rewards(X, a, r, p, objective)
            self.models_ = [self._fit_one(X, G[:, k], "regression") for k in range(len(self.actions_))]
        self.n_rows_ = len(decisions)
        return self

    def _pseudo_rewards(
        self, X: np.ndarray, a: np.ndarray, r: np.ndarray, p: np.ndarray, obj: str
    ) -> np.ndarray:
        """DR pseudo-rewards (n, K) from cross-fitted reward models."""
        n, K = len(r), len(self.actions_)
        fold = np.random.default_rng(self.seed).integers(0, self.n_folds, n)
        q = np.empty((n, K))
        for f in range(self.n_folds):
            tr, te = fold != f, fold == f
            for k in range(K):
                rows = tr & (a == k)
                q[te, k] = (
                    self._fit_one(X[rows], r[rows], obj).predict(X[te]) if rows.sum() >= 2 else r[rows].mean()
                )
        w = np.minimum(1.0 / p, self.max_weight)
        G = q.copy()
        idx = np.arange(n)
        G[idx, a] += w * (r - q[idx, a])
        return G

    # --- scoring -----------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise ContractError("policy", "not fitted: call fit(decisions) or NBAPolicy.load(path) first")

    def expected_rewards(self, contexts: pd.DataFrame) -> pd.DataFrame:
        """(n, K) estimated expected reward of each action for each context row."""
        self._check_fitted()
        X = self.encoder_.transform(contexts)
        K = len(self.actions_)
        if self.pooled_:
            q = self._predict_pooled(self.models_[0], X, K)
        else:
            q = np.column_stack([m.predict(X) for m in self.models_]) if len(X) else np.zeros((0, K))
        return pd.DataFrame(q, columns=self.actions_, index=contexts.index)

    def uplift(self, contexts: pd.DataFrame) -> pd.DataFrame:
        """Expected reward of each action minus the control's; all NaN (null) when the policy has no control
        action (none named, or the named one was not in the training decisions): no baseline, no uplift."""
        q = self.expected_rewards(contexts)
        return q.sub(q[self.control_], axis=0) if self.control_ else q * np.nan

    def eligible(self, contexts: pd.DataFrame) -> np.ndarray:
        """(n, K) eligibility mask from the policy's rules (all True without rules)."""
        self._check_fitted()
        if self.eligibility is None:
            return np.ones((len(contexts), len(self.actions_)), dtype=bool)
        mask = self.eligibility.mask(contexts, self.actions_)
        if len(mask) and not mask.any(axis=1).all():
            raise ContractError("eligibility", "some contexts have no eligible action; set default_action")
        return mask

    def action_probabilities(self, contexts: pd.DataFrame, epsilon: float | None = None) -> pd.DataFrame:
        """(n, K) serving distribution: epsilon-greedy over eligible actions (ineligible ones get 0)."""
        eps = self.epsilon if epsilon is None else epsilon
        if not 0 <= eps <= 1:
            raise ContractError("epsilon", "must be in [0, 1]", eps)
        q = self.expected_rewards(contexts).to_numpy()
        if self.fixed_action_ is not None:  # the single-action fallback: prefer it wherever eligible
            q = np.zeros_like(q)
            q[:, self.actions_.index(self.fixed_action_)] = 1.0
        return pd.DataFrame(
            self._probabilities(q, self.eligible(contexts), eps),
            columns=self.actions_,
            index=contexts.index,
        )

    @staticmethod
    def _probabilities(q: np.ndarray, mask: np.ndarray, eps: float) -> np.ndarray:
        n, K = q.shape
        best = np.where(mask, q, -np.inf).argmax(axis=1)
        greedy = np.zeros((n, K))
        greedy[np.arange(n), best] = 1.0
        return (1 - eps) * greedy + eps * mask / np.maximum(mask.sum(axis=1, keepdims=True), 1)

    def recommend(
        self, contexts: pd.DataFrame, epsilon: float | None = None, rng: np.random.Generator | None = None
    ) -> pd.DataFrame:
        """One sampled action per context row, with the probability it was chosen (the propensity to log).

        Columns: the context's ``decision_id`` / ``customer_id`` (when given), ``action``, ``probability``,
        ``expected_reward`` of that action and its ``uplift`` over the control action's expected reward;
        ``uplift`` is null (NaN) for every row when the policy has no control action (``control_`` is None)."""
        rng = rng or np.random.default_rng()
        q = self.expected_rewards(contexts)
        probs = self.action_probabilities(contexts, epsilon).to_numpy()
        cum = probs.cumsum(axis=1)
        u = rng.random(len(probs)) * cum[:, -1]
        pick = (cum > u[:, None]).argmax(axis=1)
        rows = np.arange(len(probs))
        out = pd.DataFrame(index=contexts.index)
        for col in ID_COLUMNS:
            if col in contexts.columns:
                out[col] = contexts[col].to_numpy()
        out["action"] = np.asarray(self.actions_, dtype=object)[pick]
        out["probability"] = probs[rows, pick]
        out["expected_reward"] = q.to_numpy()[rows, pick]
        base = q[self.control_].to_numpy() if self.control_ else np.full(len(q), np.nan)
        out["uplift"] = out["expected_reward"].to_numpy() - base
        return out.reset_index(drop=True)

    # --- persistence (native LightGBM files + a JSON spec) -------------------------------------------
    def save(self, directory: Path) -> Path:
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        files = []
        for k, m in enumerate(self.models_):
            m.save_model(str(d / f"reward_{k}.txt"))
            files.append(f"reward_{k}.txt")
        spec = {
            "params": self.get_params(),
            "actions": self.actions_,
            "control": self.control_,
            "binary": self.binary_,
            "n_rows": self.n_rows_,
            "fitted_method": self.fitted_method_,
            "pooled": self.pooled_,
            "fixed_action": self.fixed_action_,
            "selection": self.selection_,
            "encoder": self.encoder_.to_dict(),
            "eligibility": self.eligibility.model_dump() if self.eligibility else None,
            "models": files,
        }
        (d / "policy.json").write_text(json.dumps(spec, indent=2))
        return d

    @classmethod
    def load(cls, directory: Path) -> NBAPolicy:
        d = Path(directory)
        if not (d / "policy.json").is_file():
            raise ContractError(str(d), "not a saved NBA policy (no policy.json)")
        spec = json.loads((d / "policy.json").read_text())
        rules = EligibilityRules.model_validate(spec["eligibility"]) if spec["eligibility"] else None
        self = cls(**spec["params"], eligibility=rules)
        self.actions_, self.control_, self.binary_ = spec["actions"], spec["control"], spec["binary"]
        self.n_rows_ = spec["n_rows"]
        self.fitted_method_ = spec.get("fitted_method", self.method)
        self.pooled_ = bool(spec.get("pooled", False))
        self.fixed_action_ = spec.get("fixed_action")
        self.selection_ = spec.get("selection", {})
        self.encoder_ = ContextEncoder.from_dict(spec["encoder"])
        self.models_ = [lgb.Booster(model_file=str(d / f)) for f in spec["models"]]
        return self
