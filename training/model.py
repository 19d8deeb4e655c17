"""`ChurnModel`: a LightGBM binary classifier with the scikit-learn estimator contract.

Hyper-parameters live in ``__init__``; ``fit`` returns ``self``; learned attributes end in ``_``. What gets
registered is the native ``booster_`` (it carries its feature names), with ``prior_`` when there is one.

Behaviour by construction: with ``monotone=True`` LightGBM's monotone constraints make the trees'
churn risk non-decreasing in recency features (``days_since_last_*``) and non-increasing in activity counts
and revenue, so more recent activity or one more purchase never raises the score, all else equal (the prior
keeps both guarantees; see `training.prior`). With a ``calib_set`` the Platt map chosen on it is folded into
``booster_`` (see `training.calibration`).

With a ``prior`` (`training.prior.BTYDPrior`) boosting starts from its margin (LightGBM ``init_score``) rather
than from a constant: the trees learn corrections to a buy-till-you-die model fitted on the same rows, and the
served log-odds are ``booster_`` (calibrated) + ``prior_.scale`` × the prior's margin. ``booster_`` alone is
then not the model: score with ``predict_proba`` / ``margin``, or the registered model (`training.registry`).

Capacity chosen by validation, not by hand: ``num_leaves`` may be a sequence of candidates; with an
``eval_set`` each is trained with early stopping and the one with the lowest validation log-loss is kept
(``num_leaves_``, with every candidate's loss in ``leaves_logloss_``). Small histories (a transactions-only
import, few purchases per customer) pick shallow trees, richer event histories deeper ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from contract.errors import ContractError
from training.calibration import Calibration, choose_calibration, fold_into_booster
from training.prior import BTYDPrior, boosted_margin

#: Feature-name prefixes with a known direction: +1 risk rises with the value, -1 risk falls.
MONOTONE_PREFIXES: tuple[tuple[str, int], ...] = (
    ("days_since_last_", 1),
    ("events_", -1),
    ("sessions_", -1),
    ("purchases_", -1),
    ("purchase_days_", -1),
    ("revenue_", -1),
    ("product_views_", -1),
    ("email_opens_", -1),
    ("email_clicks_", -1),
)


#: Candidate tree sizes tried on the validation set (the largest one without an ``eval_set``).
NUM_LEAVES_GRID: tuple[int, ...] = (3, 15, 31)


def monotone_directions(names: list[str]) -> list[int]:
    """LightGBM ``monotone_constraints`` for ``names`` (0 where no direction is known)."""
    return [next((d for pre, d in MONOTONE_PREFIXES if n.startswith(pre)), 0) for n in names]


class ChurnModel:
    def __init__(
        self,
        *,
        learning_rate: float = 0.05,
        num_leaves: int | Sequence[int] = NUM_LEAVES_GRID,
        min_data_in_leaf: int = 50,
        feature_fraction: float = 0.9,
        bagging_fraction: float = 0.9,
        lambda_l2: float = 1.0,
        num_boost_round: int = 1000,
        early_stopping_rounds: int = 50,
        seed: int = 0,
        num_threads: int = 0,
        monotone: bool = True,
        prior: BTYDPrior | None = None,
    ) -> None:
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.seed = seed
        self.num_threads = num_threads
        self.monotone = monotone
        self.prior = prior

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters (the prior as its activity, horizon and feature mapping: what MLflow logs)."""
        out = {k: v for k, v in vars(self).items() if not k.endswith("_")}
        prior = out.pop("prior")
        out["prior"] = (
            f"{prior.activity}/{prior.horizon_days}d/mapping {prior.mapping}" if prior is not None else "none"
        )
        return out

    def leaf_candidates(self) -> list[int]:
        """``num_leaves`` as a list of candidates (one for a fixed value)."""
        raw = self.num_leaves
        values = [int(raw)] if isinstance(raw, int | np.integer) else [int(v) for v in raw]
        if not values or min(values) < 2:
            raise ContractError("num_leaves", "must be an integer >= 2 or a non-empty sequence of them", raw)
        return values

    def lgb_params(self, names: list[str] | None = None, num_leaves: int | None = None) -> dict[str, Any]:
        """The parameters handed to ``lightgbm.train`` (monotone constraints need the feature ``names``;
        ``num_leaves`` defaults to the largest candidate)."""
        extra: dict[str, Any] = {}
        if self.monotone and names:
            extra = {
                "monotone_constraints": monotone_directions(names),
                # not "advanced": it can break monotonicity (LightGBM issues 5358, 6155; seen here with init_score)
                "monotone_constraints_method": "intermediate",
            }
        return {
            **extra,
            "objective": "binary",
            "metric": [
                "binary_logloss",
                "auc",
            ],  # early stopping on log-loss: AUC plateaus before calibration
            "learning_rate": self.learning_rate,
            "num_leaves": num_leaves or max(self.leaf_candidates()),
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | np.ndarray,
        *,
        eval_set: tuple[pd.DataFrame, Any] | None = None,
        calib_set: tuple[pd.DataFrame, Any] | None = None,
    ) -> ChurnModel:
        """Train on X (numeric feature columns) and y (0/1); with ``eval_set``, stop early on its log-loss;
        with ``calib_set``, choose and fold in a calibration map (``calibration_``)."""
        y_arr = _labels(y, len(X), "y")
        if X.shape[1] == 0:
            raise ContractError("X", "has no feature columns")
        X = _numeric(X)
        self.prior_: BTYDPrior | None = None
        if self.prior is not None:
            self.prior_ = BTYDPrior(
                self.prior.activity, self.prior.horizon_days, mapping=self.prior.mapping
            ).fit(X)
        train = lgb.Dataset(
            X, label=y_arr, feature_name=list(X.columns), free_raw_data=False, init_score=self._init(X)
        )
        candidates = self.leaf_candidates()
        if eval_set is None:
            self.booster_ = lgb.train(
                self.lgb_params(list(X.columns), max(candidates)),
                train,
                num_boost_round=self.num_boost_round,
                valid_sets=[train],
            )
            self.num_leaves_ = max(candidates)
            self.leaves_logloss_: dict[int, float] = {}
        else:
            Xv = _numeric(eval_set[0])[list(X.columns)]
            yv = _labels(eval_set[1], len(Xv), "eval_set.y")
            valid = lgb.Dataset(Xv, label=yv, reference=train, init_score=self._init(Xv))
            fits: dict[int, lgb.Booster] = {}
            self.leaves_logloss_ = {}
            for leaves in dict.fromkeys(candidates):  # candidates in order, duplicates once
                booster = lgb.train(
                    self.lgb_params(list(X.columns), leaves),
                    train,
                    num_boost_round=self.num_boost_round,
                    valid_sets=[valid],
                    callbacks=[
                        lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)
                    ],
                )
                fits[leaves] = booster
                self.leaves_logloss_[leaves] = float(booster.best_score["valid_0"]["binary_logloss"])
            # ties go to the smaller tree
            self.num_leaves_ = min(self.leaves_logloss_, key=lambda k: (self.leaves_logloss_[k], k))
            self.booster_ = fits[self.num_leaves_]
        self.feature_names_ = list(X.columns)
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        self.calibration_: Calibration | None = None
        if calib_set is not None:
            Xc = _numeric(calib_set[0])[self.feature_names_]
            yc = _labels(calib_set[1], len(Xc), "calib_set.y")
            margin = np.asarray(self.booster_.predict(Xc, raw_score=True, num_iteration=self.best_iteration_))
            margin = margin + self._init(Xc) if self.prior_ is not None else margin
            self.calibration_ = choose_calibration(margin, yc, seed=self.seed)
            self.raw_booster_ = self.booster_
            self.booster_ = fold_into_booster(
                self.booster_, self.calibration_.a, self.calibration_.b, self.best_iteration_
            )
            self.best_iteration_ = self.booster_.current_iteration()
            if self.prior_ is not None:
                self.prior_.scale = self.calibration_.a
        return self

    def _init(self, X: pd.DataFrame) -> np.ndarray | None:
        """The prior's margin where boosting starts (None without a prior)."""
        return None if self.prior_ is None else self.prior_.margin(X)

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """The calibrated log-odds of churn: the trees' raw score plus the scaled prior margin."""
        if not hasattr(self, "booster_"):
            raise ContractError("model", "is not fitted; call fit first")
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ContractError("X", f"missing feature columns {missing}")
        values = _numeric(X[self.feature_names_]).to_numpy()
        return boosted_margin(self.booster_, self.prior_, values)  # booster_ predicts best_iteration_ trees

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n, 2): column 1 is P(churn)."""
        p = 1.0 / (1.0 + np.exp(-self.margin(X)))
        return np.column_stack([1.0 - p, p])


def _numeric(X: pd.DataFrame) -> pd.DataFrame:
    bad = [
        c for c in X.columns if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
    ]
    if bad:
        raise ContractError("X", f"feature columns must be numeric; not: {bad}")
    return X.astype("float64")


def _labels(y: pd.Series | np.ndarray, n: int, field: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n:
        raise ContractError(field, f"must be a 1-D array of {n} labels", arr.shape)
    if not np.isin(arr, (0, 1)).all():
        raise ContractError(field, "labels must be 0 or 1")
    return arr.astype("float64")
