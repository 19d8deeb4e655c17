"""Unsupervised matching: the Fellegi–Sunter model, fitted by expectation–maximisation.

Each comparison k has levels l with m[k][l] = P(level | match) and u[k][l] = P(level | non-match); a
pair's match weight is Σ log2(m/u) over its non-missing comparisons, and with the prior λ (share of
matches among candidates) its probability is 1 / (1 + (1-λ)/λ · 2^-weight). u starts from random record
pairs (almost all non-matches); EM then fits m, λ and, by default, u itself on the candidate pairs: the
non-matches that blocking lets through agree on blocked columns far more often than random pairs do (two
unrelated "Smith"s in one surname block), and holding u at its random-pair value would let EM explain
them as matches. EM runs on the distinct level patterns with their counts, so its cost does not grow with
the number of pairs. Exact agreement on a comparison with term-frequency adjustment adds
log2(u_random / frequency of the agreed value), as Splink does: two "Smith"s are weaker evidence than two
"Szymanowski"s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identity.match.compare import ComparedPairs

_EPS = 1e-9
#: Term frequencies below this share of the average exact-agreement rate count as this (bounds the bonus).
_TF_FLOOR = 0.05


def level_frequencies(levels: np.ndarray, n_levels: list[int], pseudo: float = 0.5) -> list[np.ndarray]:
    """Per comparison, the share of each level among non-missing values (additively smoothed)."""
    out = []
    for k, nl in enumerate(n_levels):
        col = levels[:, k]
        counts = np.bincount(col[col >= 0], minlength=nl).astype(np.float64) + pseudo
        out.append(counts / counts.sum())
    return out


def _patterns(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct level rows, their counts and each pair's pattern index. Rows are packed into one integer
    (base = levels + 2 per comparison) and hashed, far cheaper than sorting rows on millions of pairs."""
    import pandas as pd

    n, k = levels.shape
    base = int(levels.max(initial=-1)) + 2
    if n == 0 or k == 0 or k * np.log2(max(base, 2)) >= 62:
        uniq, inverse, counts = np.unique(levels, axis=0, return_inverse=True, return_counts=True)
        return uniq, counts.astype(np.float64), inverse.reshape(-1)
    packed = np.zeros(n, dtype=np.int64)
    for c in range(k):
        packed = packed * base + (levels[:, c].astype(np.int64) + 1)
    inverse, keys = pd.factorize(packed)
    uniq = np.empty((len(keys), k), dtype=levels.dtype)
    rest = keys.copy()
    for c in range(k - 1, -1, -1):
        uniq[:, c] = rest % base - 1
        rest //= base
    counts = np.bincount(inverse, minlength=len(keys)).astype(np.float64)
    return uniq, counts, inverse.astype(np.int64)


def _log2_ratio(pat: np.ndarray, m: list[np.ndarray], u: list[np.ndarray]) -> np.ndarray:
    """Per pattern and comparison the weight log2(m/u) of its level (0 where missing)."""
    w = np.zeros(pat.shape, dtype=np.float64)
    for k in range(pat.shape[1]):
        lv = pat[:, k]
        ok = lv >= 0
        w[ok, k] = np.log2(m[k][lv[ok]] + _EPS) - np.log2(u[k][lv[ok]] + _EPS)
    return w


@dataclass
class FellegiSunter:
    """Fellegi–Sunter with EM. Learned: ``m_``, ``u_`` (lists of level arrays), ``lambda_``, ``n_iter_``."""

    max_iter: int = 200
    tol: float = 1e-7
    fix_u: bool = False  # True: keep u at its random-pair estimate (Splink's choice) instead of refitting it
    lambda_init: float = 0.1

    def fit(
        self, levels: np.ndarray, n_levels: list[int], random_levels: np.ndarray | None = None
    ) -> FellegiSunter:
        """Fit on the candidate pairs' levels (pairs × comparisons, -1 missing); ``random_levels``: the
        levels of random record pairs, for u."""
        if levels.ndim != 2 or levels.shape[1] != len(n_levels):
            raise ValueError(
                f"levels: expected pairs × {len(n_levels)} comparisons, got shape {levels.shape}"
            )
        if random_levels is not None and len(random_levels):
            u = level_frequencies(random_levels, n_levels)
            fix_u = self.fix_u
            self.u_random_ = u
        else:
            u = [np.linspace(2.0, 0.2, nl) ** 3 / (np.linspace(2.0, 0.2, nl) ** 3).sum() for nl in n_levels]
            fix_u = False
            self.u_random_ = None
        m = [np.linspace(0.2, 2.0, nl) ** 3 / (np.linspace(0.2, 2.0, nl) ** 3).sum() for nl in n_levels]
        lam = self.lambda_init
        pat, counts, _ = _patterns(levels)
        total = counts.sum()
        it = 0
        for it in range(1, self.max_iter + 1):  # noqa: B007 (n_iter_ below)
            logit = np.log2(lam / (1 - lam)) + _log2_ratio(pat, m, u).sum(axis=1)
            post = 1.0 / (1.0 + np.exp2(-np.clip(logit, -60, 60)))
            wm, wu = counts * post, counts * (1 - post)
            new_lam = float(np.clip(wm.sum() / total, 1e-7, 1 - 1e-7))
            new_m, new_u = [], []
            for k, nl in enumerate(n_levels):
                lv = pat[:, k]
                ok = lv >= 0
                cm = np.bincount(lv[ok], weights=wm[ok], minlength=nl) + _EPS
                new_m.append(cm / cm.sum())
                if fix_u:
                    new_u.append(u[k])
                else:
                    cu = np.bincount(lv[ok], weights=wu[ok], minlength=nl) + _EPS
                    new_u.append(cu / cu.sum())
            delta = max(
                abs(new_lam - lam),
                *(float(np.abs(a - b).max()) for a, b in zip(new_m, m, strict=True)),
                *(float(np.abs(a - b).max()) for a, b in zip(new_u, u, strict=True)),
            )
            m, u, lam = new_m, new_u, new_lam
            if delta < self.tol:
                break
        self.m_, self.u_, self.lambda_, self.n_iter_ = m, u, lam, it
        return self

    @classmethod
    def from_labels(cls, levels: np.ndarray, y: np.ndarray, n_levels: list[int]) -> FellegiSunter:
        """m, u and λ counted on labelled pairs (``y`` 1 match, 0 non-match): the weights of each level as
        the labels see them, used to show per-comparison evidence beside a supervised model."""
        fs = cls()
        fs.m_ = level_frequencies(levels[y == 1], n_levels)
        fs.u_ = level_frequencies(levels[y == 0], n_levels)
        fs.lambda_ = float(np.clip((y == 1).mean(), 1e-7, 1 - 1e-7))
        fs.n_iter_ = 0
        fs.u_random_ = None
        return fs

    def _column_weight(self, pairs: ComparedPairs, k: int, tf_adjust: bool) -> np.ndarray:
        """Weight (bits) per pair of comparison k: a lookup of its level's log2(m/u) (0 where missing),
        term-frequency adjusted on exact agreement where configured."""
        lv = pairs.levels[:, k]
        table = np.log2(self.m_[k] + _EPS) - np.log2(self.u_[k] + _EPS)
        w = np.append(table, 0.0)[np.where(lv >= 0, lv, len(table))]
        if tf_adjust and pairs.comparisons[k].tf:
            top = len(self.m_[k]) - 1
            exact = np.flatnonzero(lv == top)
            u_tf = np.clip(pairs.tf[exact, k].astype(np.float64), 1e-6, 1.0)
            w[exact] = np.log2(self.m_[k][top] + _EPS) - np.log2(np.maximum(u_tf, self.u_[k][top] * 0.05))
        return w

    def weights(self, pairs: ComparedPairs, tf_adjust: bool = True) -> np.ndarray:
        """Match weight (bits) per pair and comparison, term-frequency adjusted where configured."""
        w = np.zeros(pairs.levels.shape, dtype=np.float64)
        for k in range(pairs.levels.shape[1]):
            w[:, k] = self._column_weight(pairs, k, tf_adjust)
        return w

    def prior_weight(self) -> float:
        return float(np.log2(self.lambda_ / (1 - self.lambda_)))

    def predict_proba(self, pairs: ComparedPairs, tf_adjust: bool = True) -> np.ndarray:
        """Match probability per pair (weights summed column by column: memory of one column, not all)."""
        logit = np.full(len(pairs), self.prior_weight(), dtype=np.float64)
        for k in range(pairs.levels.shape[1]):
            logit += self._column_weight(pairs, k, tf_adjust)
        return 1.0 / (1.0 + np.exp2(-np.clip(logit, -60, 60)))
