"""Fellegi–Sunter EM recovers known m, u and λ from synthetic comparison vectors."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.match.compare import ComparedPairs, Comparison
from identity.match.fellegi_sunter import FellegiSunter, _patterns, level_frequencies

M = [
    np.array([0.05, 0.15, 0.8]),
    np.array([0.1, 0.9]),
    np.array([0.02, 0.08, 0.2, 0.7]),
    np.array([0.2, 0.8]),
]
U = [
    np.array([0.85, 0.1, 0.05]),
    np.array([0.7, 0.3]),
    np.array([0.9, 0.05, 0.03, 0.02]),
    np.array([0.95, 0.05]),
]


def _sample(n: int, lam: float, seed: int, missing: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    match = rng.random(n) < lam
    levels = np.empty((n, len(M)), dtype=np.int8)
    for k, (m, u) in enumerate(zip(M, U, strict=True)):
        levels[match, k] = rng.choice(len(m), size=int(match.sum()), p=m)
        levels[~match, k] = rng.choice(len(u), size=int((~match).sum()), p=u)
        levels[rng.random(n) < missing, k] = -1
    return levels, match


def test_em_recovers_m_u_and_lambda() -> None:
    levels, _ = _sample(60_000, 0.2, seed=1)
    fs = FellegiSunter(fix_u=False).fit(levels, [len(m) for m in M])
    assert abs(fs.lambda_ - 0.2) < 0.01
    for k in range(len(M)):
        np.testing.assert_allclose(fs.m_[k], M[k], atol=0.02)
        np.testing.assert_allclose(fs.u_[k], U[k], atol=0.02)


def test_em_with_u_from_random_pairs() -> None:
    """u from (almost all non-match) random pairs, fixed; EM then finds m and λ."""
    levels, match = _sample(40_000, 0.1, seed=2)
    random_levels, _ = _sample(40_000, 0.0, seed=3)
    fs = FellegiSunter(fix_u=True).fit(levels, [len(m) for m in M], random_levels)
    for k in range(len(M)):
        np.testing.assert_allclose(fs.u_[k], level_frequencies(random_levels, [len(u) for u in U])[k])
        np.testing.assert_allclose(fs.m_[k], M[k], atol=0.02)
    assert abs(fs.lambda_ - match.mean()) < 0.01


def test_bad_shape_is_named() -> None:
    try:
        FellegiSunter().fit(np.zeros((5, 2), dtype=np.int8), [3, 3, 3])
    except ValueError as exc:
        assert "levels" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected a ValueError")


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 300), st.integers(1, 9), st.integers(0, 2**31))
def test_patterns_pack_rows_exactly(n: int, k: int, seed: int) -> None:
    """Level rows packed into integers give the distinct rows, their counts and each pair's row back."""
    levels = np.random.default_rng(seed).integers(-1, 4, size=(n, k)).astype(np.int8)
    uniq, counts, inverse = _patterns(levels)
    np.testing.assert_array_equal(uniq[inverse], levels)
    assert counts.sum() == n and len(uniq) == len(np.unique(levels, axis=0))
    assert (np.bincount(inverse, minlength=len(uniq)) == counts).all()


def test_predict_proba_sums_the_per_comparison_weights() -> None:
    """The column-by-column sum equals prior + Σ weights (the per-comparison evidence shown to users)."""
    levels, _ = _sample(5_000, 0.2, seed=4)
    fs = FellegiSunter().fit(levels, [len(m) for m in M])
    comps = tuple(Comparison(f"c{k}", f"c{k}", "phone") for k in range(len(M)))
    pairs = ComparedPairs(comps, levels, np.zeros(levels.shape, np.float32), np.full(levels.shape, np.nan))
    logit = fs.prior_weight() + fs.weights(pairs).sum(axis=1)
    np.testing.assert_allclose(fs.predict_proba(pairs), 1 / (1 + np.exp2(-logit)), rtol=1e-9)
