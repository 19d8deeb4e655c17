"""Fellegi–Sunter EM recovers known m, u and λ from synthetic comparison vectors."""

from __future__ import annotations

import numpy as np

from identity.match.fellegi_sunter import FellegiSunter, level_frequencies

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
