"""Supervised matching: a LightGBM classifier on pairs labelled by deterministic evidence, calibrated.

Labels come from identifiers that are certain (records sharing a user_id or loyalty_id are the same
customer; two different user_ids are two customers); those identifiers are constraints, never features.
The booster is trained on part of the labelled pairs and calibrated (isotonic regression, or Platt
scaling) on the held-out rest, so its output is a match probability, not a score. LightGBM is imported
only here, only when this mode runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

_UNSAFE = re.compile(r"[^0-9A-Za-z_]")


def booster_feature_names(names: list[str]) -> list[str]:
    """Names LightGBM accepts (no JSON special characters, unique): ``f<k>_<name with unsafe -> _>``.

    The human-readable names stay in ``SupervisedModel.feature_names_`` for evidence and explanations."""
    return [f"f{k}_{_UNSAFE.sub('_', n)}" for k, n in enumerate(names)]


def stratified_split(y: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random split of row positions into (kept, held out): ``holdout`` of each class held out."""
    rng = np.random.default_rng(seed)
    train, calib = [], []
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        cut = max(1, round(len(idx) * holdout))
        calib.append(idx[:cut])
        train.append(idx[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(calib))


@dataclass
class SupervisedModel:
    """LightGBM + calibration. Learned: ``booster_``, ``calibrator_``, ``feature_names_`` (human-readable;
    the booster itself sees `booster_feature_names` of them), and the held-out calibration pairs' rows
    (``holdout_index_``, positions in ``x``), labels (``holdout_labels_``) and calibrated probabilities
    (``holdout_proba_``) from which a link threshold or a precision estimate can be read."""

    calibration: Literal["isotonic", "platt"] = "isotonic"
    holdout: float = 0.3
    num_boost_round: int = 200
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def fit(self, x: np.ndarray, y: np.ndarray, feature_names: list[str]) -> SupervisedModel:
        """Train on labelled pairs (``y`` 1 = same customer, 0 = different)."""
        import lightgbm as lgb

        y = np.asarray(y, dtype=np.int8)
        if x.shape[0] != len(y):
            raise ValueError(f"x: {x.shape[0]} rows but {len(y)} labels")
        if min((y == 1).sum(), (y == 0).sum()) < 2:
            raise ValueError("y: supervised matching needs at least two positive and two negative pairs")
        train, calib = stratified_split(y, self.holdout, self.seed)
        params = {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "feature_fraction": 0.9,
            "num_threads": 1,
            "seed": self.seed,
            "deterministic": True,
            "verbose": -1,
            **self.params,
        }
        if x.shape[1] != len(feature_names):
            raise ValueError(f"feature_names: {len(feature_names)} names for {x.shape[1]} feature columns")
        data = lgb.Dataset(
            x[train],
            label=y[train],
            feature_name=booster_feature_names(list(feature_names)),
            free_raw_data=True,
        )
        self.booster_ = lgb.train(params, data, num_boost_round=self.num_boost_round)
        self.feature_names_ = list(feature_names)
        raw = self.booster_.predict(x[calib], raw_score=True, num_threads=1)
        self.calibrator_ = self._calibrator(raw, y[calib])
        self.holdout_index_ = calib
        self.holdout_labels_ = y[calib]
        self.holdout_proba_ = self._calibrated(raw)
        return self

    def _calibrator(self, raw: np.ndarray, y: np.ndarray) -> Any:
        if self.calibration == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
        if self.calibration == "platt":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
        raise ValueError(f"calibration: must be 'isotonic' or 'platt' (got {self.calibration!r})")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated match probability per pair."""
        return self._calibrated(self.booster_.predict(x, raw_score=True, num_threads=1))

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        if self.calibration == "platt":
            return self.calibrator_.predict_proba(raw.reshape(-1, 1))[:, 1]
        return np.asarray(self.calibrator_.predict(raw), dtype=np.float64)

    def save(self, directory: Path) -> Path:
        """Write the fitted model to ``directory`` (the booster as LightGBM text, the calibrator, the feature
        names and settings as JSON): what `load` reads back, and what the registry stores."""
        import json

        import joblib

        directory.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(directory / "booster.txt"))
        joblib.dump(self.calibrator_, directory / "calibrator.joblib")
        meta = {
            "calibration": self.calibration,
            "holdout": self.holdout,
            "num_boost_round": self.num_boost_round,
            "seed": self.seed,
            "params": self.params,
            "feature_names": self.feature_names_,
        }
        (directory / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: Path) -> SupervisedModel:
        """A model written by `save` (only files this project wrote: the calibrator is a pickle)."""
        import json

        import joblib
        import lightgbm as lgb

        meta = json.loads((directory / "model.json").read_text())
        model = cls(
            calibration=meta["calibration"],
            holdout=meta["holdout"],
            num_boost_round=meta["num_boost_round"],
            seed=meta["seed"],
            params=meta["params"],
        )
        model.booster_ = lgb.Booster(model_file=str(directory / "booster.txt"))
        model.calibrator_ = joblib.load(directory / "calibrator.joblib")
        model.feature_names_ = list(meta["feature_names"])
        return model

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per pair and feature, the contribution to the booster's log-odds (SHAP values; last column: bias)."""
        return np.asarray(self.booster_.predict(x, pred_contrib=True, num_threads=1))
