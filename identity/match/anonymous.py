"""`AnonymousMatcher`: link anonymous-only profiles (cookies and devices that never logged in) to known people.

``fit(con)`` builds profile fragments from the resolved events (`identity.match.profiles`), generates
candidate pairs by blocking and labels them by the deterministic graph only: two devices of one known customer
are a match (what the matcher would have seen had that customer never logged in on one of them), devices of
two customers holding different user_ids a non-match. A LightGBM classifier is trained on them and
calibrated on held-out pairs (`identity.match.supervised.SupervisedModel`). ``links(con)`` scores each
anonymous fragment against known customers' fragments and keeps, per anonymous profile, the single best known
customer at or above ``threshold``, as edges for the resolver with per-link evidence (comparison values and
their log-odds contributions).
"""

from __future__ import annotations

import json
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from contract.errors import ContractError
from identity.match.profiles import FEATURES, build_fragments, candidate_pairs, compare
from identity.match.supervised import SupervisedModel

#: Columns of `AnonymousMatcher.links` (the resolver's probabilistic-edge format).
EDGE_COLUMNS: tuple[str, ...] = (
    "left_type",
    "left_value",
    "right_type",
    "right_value",
    "probability",
    "evidence",
)
_VIEW = "_am_events"


def _edge_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c == "probability" else object) for c in EDGE_COLUMNS})


class AnonymousMatcher:
    """Probabilistic matcher of anonymous profiles (see the module docstring)."""

    def __init__(
        self,
        threshold: float = 0.8,
        *,
        max_block: int = 50,
        min_labels: int = 20,
        calibration: Literal["isotonic", "platt"] = "isotonic",
        holdout: float = 0.3,
        num_boost_round: int = 200,
        seed: int = 0,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ContractError("threshold", "must lie strictly between 0 and 1", threshold)
        if max_block < 2:
            raise ContractError("max_block", "must be at least 2", max_block)
        if min_labels < 2:
            raise ContractError("min_labels", "must be at least 2", min_labels)
        if not 0.0 < holdout < 1.0:
            raise ContractError("holdout", "must lie strictly between 0 and 1", holdout)
        self.threshold = threshold
        self.max_block = max_block
        self.min_labels = min_labels
        self.calibration = calibration
        self.holdout = holdout
        self.num_boost_round = num_boost_round
        self.seed = seed

    # --- stages -------------------------------------------------------------------------------------------

    def pairs(
        self, con: duckdb.DuckDBPyConnection, *, resolved: str | None = None, block_sizes: str | None = None
    ) -> pd.DataFrame:
        """Every candidate fragment pair of ``con`` with comparison features and deterministic ``label``
        (1 match, 0 non-match, -1 unknown); with ``probability`` when fitted. ``con`` must hold `events` and
        `identity_map` (and `identity_guard_log` when written), e.g. ``ws.connect(...)`` after resolving.

        ``resolved``: a view of events that already carry their ``customer_id`` (the live matcher's slice),
        used instead of resolving `events`; ``block_sizes``: see `profiles.candidate_pairs`."""
        from identity.resolved import attach_customer_ids

        view = resolved or attach_customer_ids(con, _VIEW)
        build_fragments(con, view)
        candidate_pairs(con, self.max_block, block_sizes)
        frame = compare(con)
        if hasattr(self, "model_") and len(frame):
            frame["probability"] = self.model_.predict_proba(self.design(frame))
        return frame

    @staticmethod
    def design(frame: pd.DataFrame) -> np.ndarray:
        """The comparison features of `pairs` rows, in model order (the classifier's input)."""
        return frame[list(FEATURES)].to_numpy(dtype=np.float64)

    # --- estimator API ------------------------------------------------------------------------------------

    def fit(self, con: duckdb.DuckDBPyConnection) -> AnonymousMatcher:
        """Train and calibrate on the deterministically labelled pairs of ``con``."""
        frame = self.pairs(con)
        lab = frame[frame["label"] >= 0] if len(frame) else frame
        y = lab["label"].to_numpy(np.int8) if len(lab) else np.zeros(0, np.int8)
        n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
        if min(n_pos, n_neg) < self.min_labels:
            raise ContractError(
                "events",
                f"too few deterministically labelled fragment pairs to train on ({n_pos} matches, {n_neg} "
                f"non-matches; need {self.min_labels} of each): are there ip/user_agent columns and "
                "customers who logged in on several devices?",
            )
        self.model_ = SupervisedModel(
            calibration=self.calibration,
            holdout=self.holdout,
            num_boost_round=self.num_boost_round,
            seed=self.seed,
        ).fit(self.design(lab), y, list(FEATURES))
        self.n_labels_ = {"matches": n_pos, "non_matches": n_neg}
        self.n_candidates_ = len(frame)
        return self

    def holdout_precision(self, threshold: float | None = None) -> tuple[float, int]:
        """Share of matches among the held-out labelled pairs (never trained on) scoring at or above
        ``threshold`` (default: the link threshold), and how many pairs that is. The labelled pairs are
        fragments of known customers, so for anonymous-vs-known pairs this is an optimistic bound."""
        if not hasattr(self, "model_"):
            raise ContractError("AnonymousMatcher", "not fitted: call fit(con) first")
        from identity.match.threshold import precision_at

        t = self.threshold if threshold is None else threshold
        return precision_at(self.model_.holdout_proba_, self.model_.holdout_labels_, t)

    def scores(self, con: duckdb.DuckDBPyConnection, **slice_: str | None) -> pd.DataFrame:
        """Scored candidate pairs of an anonymous fragment (side ``a``) and a known customer's (side ``b``);
        ``slice_``: `pairs`' ``resolved`` and ``block_sizes``."""
        if not hasattr(self, "model_"):
            raise ContractError("AnonymousMatcher", "not fitted: call fit(con) first")
        frame = self.pairs(con, **slice_)
        if not len(frame):
            return frame
        swap = frame["known_a"].to_numpy(bool) & ~frame["known_b"].to_numpy(bool)
        cross = swap | (~frame["known_a"].to_numpy(bool) & frame["known_b"].to_numpy(bool))
        out = frame.copy()
        for col in ("customer", "frag", "frag_type", "known", "anchor"):
            a, b = out[f"{col}_a"].to_numpy(object), out[f"{col}_b"].to_numpy(object)
            out[f"{col}_a"], out[f"{col}_b"] = np.where(swap, b, a), np.where(swap, a, b)
        return out[cross].reset_index(drop=True)

    def links(self, con: duckdb.DuckDBPyConnection, **slice_: str | None) -> pd.DataFrame:
        """Edges (left_type, left_value, right_type, right_value, probability, evidence JSON): each anonymous
        profile's identifier -> the identifier anchoring its best known customer, probability >= threshold.
        An anonymous profile links to at most one known customer. ``slice_``: `pairs`' ``resolved`` and
        ``block_sizes`` (the live matcher)."""
        scored = self.scores(con, **slice_)
        if not len(scored):
            return _edge_frame()
        # best pair per (anonymous profile, known customer), then the best known customer per profile
        scored = scored.sort_values(
            ["customer_a", "probability", "customer_b", "frag_a", "frag_b"],
            ascending=[True, False, True, True, True],
            kind="mergesort",
        )
        best = scored.drop_duplicates("customer_a", keep="first")
        best = best[best["probability"] >= self.threshold].reset_index(drop=True)
        if not len(best):
            return _edge_frame()
        contrib = self.model_.contributions(self.design(best))
        # anchor: a user_id value, or "<type>\x1f<value>" of the customer's strongest identifier
        anchor = best["anchor_b"].astype(str)
        typed = anchor.str.contains(chr(31), regex=False).to_numpy()
        parts = anchor.str.partition(chr(31))
        right_type = np.where(typed, parts[0].to_numpy(object), "user_id").astype(object)
        right_value = np.where(typed, parts[2].to_numpy(object), anchor.to_numpy(object)).astype(object)
        n_cust = scored.groupby("customer_a")["customer_b"].nunique().reindex(best["customer_a"]).to_numpy()
        evidence = [
            json.dumps(
                {
                    "method": "anonymous_profile_match",
                    "blocking": rules.split(","),
                    "fragments": [fa, fb],
                    "comparisons": {
                        f: (None if np.isnan(v) else round(float(v), 4))
                        for f, v in zip(FEATURES, xs, strict=True)
                    },
                    "contributions": {f: round(float(c), 4) for f, c in zip(FEATURES, cs[:-1], strict=True)},
                    "bias": round(float(cs[-1]), 4),
                    "candidate_customers": int(k),
                },
                sort_keys=True,
            )
            for rules, fa, fb, xs, cs, k in zip(
                best["rules"], best["frag_a"], best["frag_b"], self.design(best), contrib, n_cust, strict=True
            )
        ]
        return pd.DataFrame(
            {
                "left_type": best["frag_type_a"].astype(object),
                "left_value": best["frag_a"].astype(object),
                "right_type": pd.Series(right_type, dtype=object),
                "right_value": pd.Series(right_value, dtype=object),
                "probability": best["probability"].astype(float),
                "evidence": pd.Series(evidence, dtype=object),
            }
        )
