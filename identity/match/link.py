"""`RecordMatcher`: probabilistic record linkage with an estimator's interface.

``fit(records)`` prepares the records, generates candidate pairs by blocking, compares them, labels the
pairs that deterministic identifiers settle (same user_id / loyalty_id: match; two different user_ids:
non-match; in supervised training also household pairs, see `identity.match.household`) and fits either a
calibrated LightGBM classifier on them (``supervised``) or a Fellegi–Sunter model by EM (``unsupervised``);
``auto`` picks supervised when both classes have ``min_labels`` pairs.
``threshold="auto"`` links at the lowest probability whose precision on the supervised model's held-out
labelled pairs meets ``precision_target`` (`identity.match.threshold`; unsupervised: ``fallback_threshold``).
``link(records)`` scores the candidate pairs, clusters them under the constraints and returns the clusters
(record -> customer_id) and the scored pairs with per-comparison evidence; ``explain(pair)`` details one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from contract.errors import ContractError
from identity.match.blocking import BlockingRule, Candidates, candidate_pairs, default_rules
from identity.match.cluster import cluster_pairs, customer_ids
from identity.match.compare import Column, ComparedPairs, Comparison, compare_pairs, default_comparisons
from identity.match.fellegi_sunter import FellegiSunter
from identity.match.household import household_negatives
from identity.match.records import prepare
from identity.match.supervised import SupervisedModel
from identity.match.threshold import ThresholdChoice, precision_threshold

Mode = Literal["auto", "supervised", "unsupervised"]
MODES: tuple[str, ...] = ("auto", "supervised", "unsupervised")


@dataclass(frozen=True)
class LinkResult:
    """``clusters``: source, record_id, customer_id, cluster_size. ``pairs``: the scored candidate pairs
    (at or above ``min_pair_probability``) with match_probability, linked and per-comparison level_* / w_*."""

    clusters: pd.DataFrame
    pairs: pd.DataFrame
    mode: str
    stats: dict[str, object] = field(default_factory=dict)


@dataclass
class _Scored:
    prep: pd.DataFrame
    cands: Candidates
    compared: ComparedPairs
    labels: np.ndarray  # int8 per pair: 1 match, 0 non-match, -1 unknown (deterministic evidence)


class RecordMatcher:
    """Probabilistic matcher of customer records (see the module docstring)."""

    def __init__(
        self,
        mode: Mode = "auto",
        threshold: float | Literal["auto"] = 0.5,
        *,
        precision_target: float = 0.99,
        fallback_threshold: float = 0.9,
        link_only: bool = False,
        blocking: list[BlockingRule] | None = None,
        comparisons: list[Comparison] | None = None,
        max_block_size: int = 500,
        window: int | None = 5,
        random_pairs: int = 20_000,  # u's starting point only: EM refits u on the candidates
        min_labels: int = 50,
        constraint: str = "user_id",
        label_ids: tuple[str, ...] = ("user_id", "loyalty_id"),
        household_ids: tuple[str, ...] = ("email", "email_sha256", "phone"),
        calibration: Literal["isotonic", "platt"] = "isotonic",
        tf_adjust: bool = True,
        min_pair_probability: float = 0.01,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ContractError("mode", f"must be one of {', '.join(MODES)}", mode)
        for name, value in (("threshold", threshold), ("fallback_threshold", fallback_threshold)):
            if not (value == "auto" and name == "threshold") and not (
                isinstance(value, int | float) and 0.0 < value < 1.0
            ):
                raise ContractError(name, "must lie strictly between 0 and 1 (or be 'auto')", value)
        if not 0.0 < precision_target <= 1.0:
            raise ContractError("precision_target", "must lie in (0, 1]", precision_target)
        if max_block_size < 2:
            raise ContractError("max_block_size", "must be at least 2", max_block_size)
        self.mode = mode
        self.threshold = threshold
        self.precision_target = precision_target
        self.fallback_threshold = fallback_threshold
        self.link_only = link_only
        self.blocking = blocking
        self.comparisons = comparisons
        if window is not None and window < 2:
            raise ContractError("window", "must be at least 2 (or None: all pairs of every block)", window)
        self.max_block_size = max_block_size
        self.window = window
        self.random_pairs = random_pairs
        self.min_labels = min_labels
        self.constraint = constraint
        self.label_ids = label_ids
        self.household_ids = household_ids
        self.calibration = calibration
        self.tf_adjust = tf_adjust
        self.min_pair_probability = min_pair_probability
        self.seed = seed

    # --- stages -------------------------------------------------------------------------------------------

    def _score_input(self, records: pd.DataFrame, comparisons: list[Comparison] | None) -> _Scored:
        t0 = time.perf_counter()
        prep = prepare(records)
        t1 = time.perf_counter()
        self._columns: dict[str, Column] = {}
        cands = candidate_pairs(
            prep,
            self.blocking if self.blocking is not None else default_rules(prep),
            max_block_size=self.max_block_size,
            window=self.window,
            link_only=self.link_only,
            columns=self._columns,
        )
        t2 = time.perf_counter()
        comps = comparisons if comparisons is not None else self._comparisons(prep)
        compared = compare_pairs(prep, cands.i, cands.j, comps, self._columns)
        t3 = time.perf_counter()
        labels = self._labels(prep, cands.i, cands.j)
        self._times = {"prepare_s": t1 - t0, "block_s": t2 - t1, "compare_s": t3 - t2}
        return _Scored(prep, cands, compared, labels)

    def _comparisons(self, prep: pd.DataFrame) -> list[Comparison]:
        chosen = self.comparisons if self.comparisons is not None else default_comparisons(prep)
        skip = {*self.label_ids, self.constraint}
        return [c for c in chosen if c.column not in skip]

    def _labels(self, prep: pd.DataFrame, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        y = np.full(len(i), -1, dtype=np.int8)
        if self.constraint in prep:
            c = pd.factorize(prep[self.constraint])[0]
            y[(c[i] >= 0) & (c[j] >= 0) & (c[i] != c[j])] = 0
        for col in self.label_ids:
            if col in prep:
                v = pd.factorize(prep[col])[0]
                y[(v[i] >= 0) & (v[i] == v[j])] = 1
        return y

    def _random_levels(self, prep: pd.DataFrame, comps: list[Comparison]) -> np.ndarray:
        """Levels of random record pairs (for u), seeded; only cross-source pairs when ``link_only``."""
        n = len(prep)
        if n < 2 or self.random_pairs <= 0:
            return np.empty((0, len(comps)), dtype=np.int8)
        rng = np.random.default_rng(self.seed)
        k = int(min(self.random_pairs, n * (n - 1) // 2))
        a = rng.integers(0, n, size=2 * k)
        b = rng.integers(0, n, size=2 * k)
        ok = a != b
        if self.link_only:
            src = pd.factorize(prep["source"])[0]
            ok &= src[a] != src[b]
        a, b = a[ok][:k], b[ok][:k]
        return compare_pairs(prep, a, b, comps, self._columns).levels

    # --- estimator API ------------------------------------------------------------------------------------

    def fit(self, records: pd.DataFrame) -> RecordMatcher:
        """Learn the match model from the records (labels from deterministic identifiers when present)."""
        scored = self._score_input(records, None)
        comps = list(scored.compared.comparisons)
        if not comps:
            raise ContractError(
                "records", "no comparable columns (names, date_of_birth, postcode, email, ...)"
            )
        n_pos, n_neg = int((scored.labels == 1).sum()), int((scored.labels == 0).sum())
        n_household = 0
        mode = self.mode
        if mode == "auto":
            mode = "supervised" if min(n_pos, n_neg) >= self.min_labels else "unsupervised"
        t0 = time.perf_counter()
        if mode == "supervised":
            if min(n_pos, n_neg) < 2:
                raise ContractError(
                    "mode",
                    f"supervised needs labelled pairs of both kinds (got {n_pos} matches, {n_neg} non-matches)",
                )
            x, names = scored.compared.features()
            y = scored.labels.copy()
            household = household_negatives(
                scored.prep, scored.cands.i, scored.cands.j, scored.compared, self.household_ids
            )
            y[(y < 0) & household] = 0  # training labels only: at link time the model decides these pairs
            n_household = int(((scored.labels < 0) & household).sum())
            lab = y >= 0
            self.model_ = SupervisedModel(calibration=self.calibration, seed=self.seed).fit(
                x[lab], y[lab], names
            )
            self.level_weights_ = FellegiSunter.from_labels(
                scored.compared.levels[lab], y[lab], [len(c.levels) for c in comps]
            )
        else:
            random_levels = self._random_levels(scored.prep, comps)
            self.model_ = FellegiSunter().fit(
                scored.compared.levels, [len(c.levels) for c in comps], random_levels
            )
            self.level_weights_ = self.model_
        self.mode_ = mode
        self.threshold_choice_ = self._choose_threshold()
        self.threshold_ = self.threshold_choice_.threshold
        self.comparisons_ = comps
        self.n_labels_ = {"matches": n_pos, "non_matches": n_neg, "household_non_matches": n_household}
        self._fitted = self._last = scored
        self._fit_records = records
        self._times["fit_s"] = time.perf_counter() - t0
        return self

    def _choose_threshold(self) -> ThresholdChoice:
        """A given threshold as is; ``auto``: chosen on the supervised model's held-out labelled pairs
        (`identity.match.threshold`), else (unsupervised: no labels) the conservative fallback."""
        if self.threshold != "auto":
            return ThresholdChoice(float(self.threshold), float("nan"), float("nan"), 0, "given")
        if isinstance(self.model_, SupervisedModel):
            return precision_threshold(
                self.model_.holdout_proba_,
                self.model_.holdout_labels_,
                self.precision_target,
                fallback=self.fallback_threshold,
            )
        return ThresholdChoice(
            self.fallback_threshold,
            float("nan"),
            float("nan"),
            0,
            "fallback: unsupervised, no held-out labels",
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ContractError("RecordMatcher", "not fitted: call fit(records) or link(records) first")

    def _model_proba(self, compared: ComparedPairs) -> np.ndarray:
        if isinstance(self.model_, FellegiSunter):
            return self.model_.predict_proba(compared, self.tf_adjust)
        return self.model_.predict_proba(compared.features()[0])

    def _evidence(self, compared: ComparedPairs, exact: bool = False) -> np.ndarray:
        """Per pair and comparison: the level's weight in bits, log2(m/u) (Fellegi–Sunter's, or counted on
        the labelled pairs in supervised mode); with ``exact`` in supervised mode the booster's log-odds
        contributions instead (TreeSHAP: milliseconds per pair, so only for `explain`)."""
        if isinstance(self.model_, FellegiSunter) or not exact:
            return self.level_weights_.weights(compared, self.tf_adjust)
        contrib = self.model_.contributions(compared.features()[0])
        k = len(compared.comparisons)
        return contrib[:, :k] + contrib[:, k : 2 * k] + contrib[:, 2 * k : 3 * k]

    def _positions(self, prep: pd.DataFrame, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        keys = pd.Series(
            np.arange(len(prep)), index=pd.MultiIndex.from_arrays([prep["source"], prep["record_id"]])
        )
        out = []
        for side in ("l", "r"):
            cols = [f"source_{side}", f"record_id_{side}"]
            missing = [c for c in cols if c not in pairs.columns]
            if missing:
                raise ContractError("pairs", f"missing column(s) {', '.join(missing)}")
            idx = pd.MultiIndex.from_arrays([pairs[cols[0]].astype(str), pairs[cols[1]].astype(str)])
            pos = keys.reindex(idx)
            if pos.isna().any():
                bad = idx[pos.isna().to_numpy()][0]
                raise ContractError(
                    f"record_id_{side}",
                    "no such record among the records last fitted or linked",
                    f"{bad[0]}:{bad[1]}",
                )
            out.append(pos.to_numpy(dtype=np.int64))
        return out[0], out[1]

    def predict_proba(self, pairs: pd.DataFrame | None = None) -> np.ndarray:
        """Model match probability of pairs (columns source_l, record_id_l, source_r, record_id_r) of the
        records last fitted or linked; all their candidate pairs when None."""
        self._check_fitted()
        if pairs is None:
            return self._model_proba(self._last.compared)
        i, j = self._positions(self._last.prep, pairs)
        return self._model_proba(compare_pairs(self._last.prep, i, j, self.comparisons_, self._columns))

    def link(self, records: pd.DataFrame | None = None) -> LinkResult:
        """Score and cluster ``records`` (fitting on them first when not fitted)."""
        if not hasattr(self, "model_"):
            if records is None:
                raise ContractError("records", "required when the matcher is not fitted")
            self.fit(records)
        scored = (
            self._fitted
            if records is None or records is self._fit_records
            else self._score_input(records, self.comparisons_)
        )
        self._last = scored
        t0 = time.perf_counter()
        prep, cands, compared = scored.prep, scored.cands, scored.compared
        model_p = self._model_proba(compared)
        prob = np.where(scored.labels == 1, 1.0, np.where(scored.labels == 0, 0.0, model_p))
        group = pd.factorize(prep[self.constraint])[0] if self.constraint in prep else np.full(len(prep), -1)
        cl = cluster_pairs(len(prep), cands.i, cands.j, prob, self.threshold_, group)
        cid = customer_ids(prep["source"].to_numpy(), prep["record_id"].to_numpy(), cl.labels)
        t1 = time.perf_counter()
        size = np.bincount(cl.labels)[cl.labels]
        clusters = pd.DataFrame(
            {
                "source": prep["source"],
                "record_id": prep["record_id"],
                "customer_id": cid,
                "cluster_size": size,
            }
        )
        pairs = self._pairs_frame(scored, model_p, prob, cl.linked)
        stats: dict[str, object] = {
            "records": len(prep),
            "candidates": len(cands),
            "customers": int(cl.labels.max()) + 1 if len(prep) else 0,
            "linked_pairs": int(cl.linked.sum()),
            "refused_pairs": cl.refused,
            "labelled_matches": self.n_labels_["matches"],
            "labelled_non_matches": self.n_labels_["non_matches"],
            "threshold": self.threshold_,
            "threshold_rule": str(self.threshold_choice_),
            "blocking": [s.__dict__ for s in cands.stats],
            **self._times,
            "cluster_s": t1 - t0,
        }
        if isinstance(self.model_, FellegiSunter):
            stats["lambda"] = self.model_.lambda_
            stats["em_iterations"] = self.model_.n_iter_
        return LinkResult(clusters, pairs, self.mode_, stats)

    def _pairs_frame(
        self, scored: _Scored, model_p: np.ndarray, prob: np.ndarray, linked: np.ndarray
    ) -> pd.DataFrame:
        keep = np.flatnonzero(np.maximum(prob, model_p) >= self.min_pair_probability)
        prep, cands, compared = scored.prep, scored.cands, scored.compared
        i, j = cands.i[keep], cands.j[keep]
        src, rid = prep["source"].to_numpy(), prep["record_id"].to_numpy()
        sub = ComparedPairs(
            compared.comparisons, compared.levels[keep], compared.scores[keep], compared.tf[keep]
        )
        ev = self._evidence(sub).astype(np.float32)
        out = pd.DataFrame(
            {
                "source_l": src[i],
                "record_id_l": rid[i],
                "source_r": src[j],
                "record_id_r": rid[j],
                "match_probability": prob[keep],
                "model_probability": model_p[keep],
                "linked": linked[keep],
                "deterministic": scored.labels[keep] >= 0,
                "blocking_rule": np.asarray(cands.rules, dtype=object)[cands.rule[keep]]
                if len(cands.rules)
                else np.empty(0, dtype=object),
            }
        )
        for k, comp in enumerate(compared.comparisons):
            out[f"level_{comp.name}"] = sub.levels[:, k]
        for k, comp in enumerate(compared.comparisons):
            out[f"w_{comp.name}"] = ev[:, k]
        return out

    def explain(
        self, pair: pd.Series | dict[str, str] | tuple[tuple[str, str], tuple[str, str]]
    ) -> pd.DataFrame:
        """Why a pair scores as it does: per comparison the two values, the level and its evidence (FS weight
        in bits with m and u, or the booster's log-odds contribution). ``attrs`` holds the probability."""
        self._check_fitted()
        if isinstance(pair, tuple):
            (sl, rl), (sr, rr) = pair
            pair = {"source_l": sl, "record_id_l": rl, "source_r": sr, "record_id_r": rr}
        frame = pd.DataFrame([{k: pair[k] for k in ("source_l", "record_id_l", "source_r", "record_id_r")}])
        prep = self._last.prep
        i, j = self._positions(prep, frame)
        compared = compare_pairs(prep, i, j, self.comparisons_, self._columns)
        ev = self._evidence(compared, exact=True)[0]
        rows = []
        for k, comp in enumerate(self.comparisons_):
            lv = int(compared.levels[0, k])
            row = {
                "comparison": comp.name,
                "value_l": prep[comp.column].iloc[i[0]],
                "value_r": prep[comp.column].iloc[j[0]],
                "level": "missing" if lv < 0 else comp.levels[lv],
                "evidence": float(ev[k]),
            }
            if lv >= 0:
                row["m"] = float(self.level_weights_.m_[k][lv])
                row["u"] = float(self.level_weights_.u_[k][lv])
            rows.append(row)
        out = pd.DataFrame(rows)
        out.attrs["match_probability"] = float(self._model_proba(compared)[0])
        out.attrs["mode"] = self.mode_
        if isinstance(self.model_, FellegiSunter):
            out.attrs["prior_weight"] = self.model_.prior_weight()
        else:  # evidence is in the booster's log-odds; bias + evidence = its raw score, before calibration
            out.attrs["bias"] = float(self.model_.contributions(compared.features()[0])[0, -1])
        return out
