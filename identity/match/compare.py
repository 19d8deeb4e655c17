"""Comparison of candidate pairs, vectorised: each comparison gives every pair an agreement level
(-1 missing, 0 disagree, ... highest = exact) and a similarity score.

Similarities come from rapidfuzz's aligned pairwise scorers (``process.cpdist``, C++, multi-threaded):
Jaro-Winkler on names and emails, token-set ratio on addresses, Damerau-Levenshtein on ids, postcodes,
phones and dates (plus a month/day swap). Values are factorised once per column, so exact agreement is an
integer comparison and term frequencies (how common the agreed value is) come from a bincount; the
similarity of a value pair is computed once however many candidate pairs repeat it, and pairs are
compared a million at a time so memory stays bounded at any number of candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Level labels per comparison kind, lowest (disagree) first; the last is always exact agreement.
LEVELS: dict[str, tuple[str, ...]] = {
    "name": ("else", "jaro_winkler>=0.80", "jaro_winkler>=0.92", "exact"),
    "text": ("else", "token_set>=0.70", "token_set>=0.90", "exact"),
    "date": ("else", "same year", "one part differs / day-month swap / one typo", "exact"),
    "postcode": ("else", "first 3 characters", "one edit", "exact"),
    "email": ("else", "jaro_winkler>=0.88", "local part", "exact"),
    "phone": ("else", "one edit", "exact"),
    "id": ("else", "two edits", "one edit", "exact"),
}


@dataclass(frozen=True)
class Comparison:
    """Compare column ``column`` of the prepared records as ``kind`` (a key of `LEVELS`)."""

    name: str
    column: str
    kind: str
    tf: bool = False  # term-frequency adjustment of exact agreement (rare values count more)

    @property
    def levels(self) -> tuple[str, ...]:
        return LEVELS[self.kind]


#: Default comparisons; those whose column the records lack (or never fill) are left out.
DEFAULT_COMPARISONS: tuple[Comparison, ...] = (
    Comparison("first_name", "first_name", "name", tf=True),
    Comparison("last_name", "last_name", "name", tf=True),
    Comparison("dob", "dob", "date"),
    Comparison("postcode", "postcode", "postcode", tf=True),
    Comparison("address", "address", "text"),
    Comparison("city", "city", "name", tf=True),
    Comparison("email", "email", "email"),
    Comparison("phone", "phone", "phone"),
)


def default_comparisons(prep: pd.DataFrame) -> list[Comparison]:
    """`DEFAULT_COMPARISONS` present in ``prep``, plus each extra identifier (``id:<name>``) as a noisy id."""
    extra = [Comparison(c, c, "id", tf=True) for c in prep.columns if c.startswith("id:")]
    return [c for c in (*DEFAULT_COMPARISONS, *extra) if c.column in prep and prep[c.column].notna().any()]


@dataclass(frozen=True)
class ComparedPairs:
    """Levels (pairs × comparisons, int8, -1 = missing), similarity scores and term frequencies per pair."""

    comparisons: tuple[Comparison, ...]
    levels: np.ndarray
    scores: np.ndarray  # float32 pairs × comparisons, NaN = missing
    tf: np.ndarray  # float32 pairs × comparisons: frequency of the agreed value on exact agreement, else NaN

    def __len__(self) -> int:
        return self.levels.shape[0]

    def features(self) -> tuple[np.ndarray, list[str]]:
        """Model inputs: per comparison the level, the score and -log(term frequency) (NaN when absent)."""
        lv = self.levels.astype(np.float32)
        lv[self.levels < 0] = np.nan
        with np.errstate(divide="ignore"):
            rarity = (-np.log(self.tf)).astype(np.float32)
        names = [c.name for c in self.comparisons]
        cols = [*names, *(f"{n}_score" for n in names), *(f"{n}_rarity" for n in names)]
        return np.hstack([lv, self.scores, rarity]), cols


class Column:
    """One prepared column factorised once: codes per record, distinct values, value frequencies, and
    derived codes per distinct value (date parts, prefixes) computed once, compared as integers."""

    def __init__(self, values: pd.Series) -> None:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        self.codes = codes.astype(np.int64)
        self.uniques = np.asarray(uniques, dtype=object)
        n_present = max(int((self.codes >= 0).sum()), 1)
        self.freq = np.bincount(self.codes[self.codes >= 0], minlength=len(self.uniques)) / n_present
        self._derived: dict[str, np.ndarray] = {}

    def derived(self, name: str) -> np.ndarray:
        """Integer code per distinct value of a part: ``y``/``m``/``d`` (YYYY-MM-DD), ``p3`` (first three
        characters), ``local`` (email local part). -1 where the part is missing."""
        if name not in self._derived:
            s = pd.Series(self.uniques, dtype="string")
            part = {
                "y": lambda: s.str.slice(0, 4),
                "m": lambda: s.str.slice(5, 7),
                "d": lambda: s.str.slice(8, 10),
                "p3": lambda: s.str.slice(0, 3),
                "local": lambda: s.str.split("@").str[0],
            }[name]()
            self._derived[name] = pd.factorize(part, use_na_sentinel=True)[0].astype(np.int64)
        return self._derived[name]


def _cpdist(a: np.ndarray, b: np.ndarray, scorer: object) -> np.ndarray:
    from rapidfuzz.process import cpdist

    if len(a) == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(cpdist(a.tolist(), b.tolist(), scorer=scorer, workers=-1), dtype=np.float64)


def _compare_one(comp: Comparison, col: Column, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, ...]:
    """Levels, scores and term frequencies of one comparison. Similarities are computed once per distinct
    unordered pair of values (every scorer is symmetric): candidate pairs repeat value pairs a lot."""
    from rapidfuzz import fuzz
    from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

    ci, cj = col.codes[i], col.codes[j]
    missing = (ci < 0) | (cj < 0)
    exact = (ci == cj) & ~missing
    top = len(comp.levels) - 1
    level = np.zeros(len(i), dtype=np.int8)
    level[missing], level[exact] = -1, top
    score = np.zeros(len(i), dtype=np.float32)
    score[missing], score[exact] = np.nan, 1.0
    tf = np.full(len(i), np.nan, dtype=np.float32)
    tf[exact] = col.freq[ci[exact]]
    rest = np.flatnonzero(~missing & ~exact)
    lo, hi = np.minimum(ci[rest], cj[rest]), np.maximum(ci[rest], cj[rest])
    inverse, pair_codes = pd.factorize(lo * len(col.uniques) + hi)
    ua, ub = pair_codes // len(col.uniques), pair_codes % len(col.uniques)
    a, b = col.uniques[ua], col.uniques[ub]
    lv = np.zeros(len(ua), dtype=np.int8)

    def same(part: str) -> np.ndarray:
        codes = col.derived(part)
        return (codes[ua] == codes[ub]) & (codes[ua] >= 0)

    if comp.kind in ("name", "email"):
        s = _cpdist(a, b, JaroWinkler.normalized_similarity)
        if comp.kind == "name":
            lv[s >= 0.80] = 1
            lv[s >= 0.92] = 2
        else:
            lv[s >= 0.88] = 1
            lv[same("local")] = 2
    elif comp.kind == "text":
        s = _cpdist(a, b, fuzz.token_set_ratio) / 100.0
        lv[s >= 0.70] = 1
        lv[s >= 0.90] = 2
    else:
        d = _cpdist(a, b, DamerauLevenshtein.distance)
        s = 1.0 / (1.0 + d)
        if comp.kind == "id":
            lv[d <= 2] = 1
            lv[d <= 1] = 2
        elif comp.kind == "phone":
            lv[d <= 1] = 1
        elif comp.kind == "postcode":
            lv[same("p3")] = 1
            lv[d <= 1] = 2
        else:  # date, YYYY-MM-DD
            y, m, dd = same("y"), same("m"), same("d")
            ym, yd = col.derived("m"), col.derived("d")
            swap = y & (ym[ua] == yd[ub]) & (yd[ua] == ym[ub])
            lv[y] = 1
            lv[(y.astype(int) + m + dd == 2) | swap | (d <= 1)] = 2
    level[rest] = lv[inverse]
    score[rest] = s.astype(np.float32)[inverse]
    return level, score, tf


#: Pairs compared per chunk: bounds the temporaries (codes, masks, value-pair hash tables) whatever the
#: number of candidates, and keeps each hash table small enough to stay in cache.
CHUNK_PAIRS = 1_000_000


def compare_pairs(
    prep: pd.DataFrame,
    i: np.ndarray,
    j: np.ndarray,
    comparisons: list[Comparison],
    columns: dict[str, Column] | None = None,
) -> ComparedPairs:
    """Compare records ``i[k]`` and ``j[k]`` of ``prep`` on every comparison, `CHUNK_PAIRS` pairs at a time
    (``columns``: a factorisation cache keyed by column name, filled when given)."""
    cache = columns if columns is not None else {}
    levels = np.empty((len(i), len(comparisons)), dtype=np.int8)
    scores = np.empty((len(i), len(comparisons)), dtype=np.float32)
    tfs = np.empty((len(i), len(comparisons)), dtype=np.float32)
    for k, comp in enumerate(comparisons):
        if comp.column not in cache:
            cache[comp.column] = Column(prep[comp.column])
        for lo in range(0, len(i), CHUNK_PAIRS):
            hi = lo + CHUNK_PAIRS
            levels[lo:hi, k], scores[lo:hi, k], tfs[lo:hi, k] = _compare_one(
                comp, cache[comp.column], i[lo:hi], j[lo:hi]
            )
    return ComparedPairs(tuple(comparisons), levels, scores, tfs)
