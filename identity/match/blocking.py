"""Candidate pairs by blocking: records that agree exactly on some key (a phonetic name code and a postcode,
a date of birth, an email local part, ...) are compared; all others are assumed non-matches.

Each rule's key combines the integer codes of its columns (missing when any part is; `BlockKeys`). Blocks
bigger than ``max_block_size`` are skipped (and counted): such common keys (a frequent surname without a
postcode, a placeholder value) carry little evidence. Blocks bigger than ``window`` are walked as a sorted
neighbourhood: in name order each record meets only the next ``window - 1`` records of its block. A block
of n records then costs n·window pairs instead of n²/2, so candidates grow linearly with the records even
under keys of bounded cardinality (a date of birth shared by hundreds of people in a million records).
Pairs of every rule are generated with numpy (no loop over records), then unioned and deduplicated; each
pair remembers the first rule that found it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from identity.match.compare import Column


@dataclass(frozen=True)
class BlockingRule:
    """Records agreeing exactly on all of ``columns`` (prepared or `DERIVED_COLUMNS`) become candidate pairs."""

    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.columns)


#: Generic default rules; rules naming columns the records lack (or hold no value in) are skipped.
DEFAULT_RULES: tuple[BlockingRule, ...] = (
    BlockingRule(("last_metaphone", "postcode")),
    BlockingRule(("dob",)),
    BlockingRule(("last_name", "first_initial")),
    BlockingRule(("first_soundex", "last_soundex")),
    BlockingRule(("first_metaphone", "dob_year")),
    BlockingRule(("address", "postcode")),
    BlockingRule(("email_local",)),
    BlockingRule(("phone",)),
    BlockingRule(("email_sha256",)),
    BlockingRule(("user_id",)),
    BlockingRule(("loyalty_id",)),
)


@dataclass(frozen=True)
class RuleStats:
    rule: str
    pairs: int  # pairs this rule generated (before the union)
    skipped_blocks: int  # blocks above the size cap
    skipped_pairs: int  # pairs those blocks would have generated
    windowed_blocks: int = 0  # blocks above the window, paired by sorted neighbourhood only


@dataclass(frozen=True)
class Candidates:
    """Deduplicated candidate pairs (i < j, row positions in the prepared frame) and how they were found."""

    i: np.ndarray
    j: np.ndarray
    rule: np.ndarray  # int16: index into `rules` of the first rule that found the pair
    rules: tuple[str, ...]
    stats: tuple[RuleStats, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.i)


def _first_token(v: str) -> str:
    return v.split(" ", 1)[0]


def _derivations() -> dict[str, tuple[str, Callable[[str], str | None]]]:
    """Derived blocking columns: name -> (prepared column, function of one value)."""
    import jellyfish

    out: dict[str, tuple[str, Callable[[str], str | None]]] = {}
    for col, short in (("first_name", "first"), ("last_name", "last")):
        out[f"{short}_metaphone"] = (col, lambda v: jellyfish.metaphone(_first_token(v)) or None)
        out[f"{short}_soundex"] = (col, lambda v: jellyfish.soundex(_first_token(v)) or None)
        out[f"{short}_initial"] = (col, lambda v: v[:1] or None)
    out["dob_year"] = ("dob", lambda v: v[:4] or None)
    return out


DERIVED_COLUMNS: tuple[str, ...] = (
    "first_metaphone",
    "first_soundex",
    "first_initial",
    "last_metaphone",
    "last_soundex",
    "last_initial",
    "dob_year",
)


class BlockKeys:
    """Integer code per record (-1 = missing) of every blocking column: a prepared column factorised once,
    derived columns (phonetic codes of the first token, initials, birth year) computed once per distinct
    value of their column. Rule keys are combined from these codes, never from concatenated strings."""

    def __init__(self, prep: pd.DataFrame, columns: dict[str, Column] | None = None) -> None:
        self.prep = prep
        self._columns = columns if columns is not None else {}
        self._codes: dict[str, np.ndarray | None] = {}
        self._derived: dict[str, tuple[str, Callable[[str], str | None]]] | None = None

    def _factorised(self, col: str) -> tuple[np.ndarray, np.ndarray]:
        if col not in self._columns:
            self._columns[col] = Column(self.prep[col])
        return self._columns[col].codes, self._columns[col].uniques

    def codes(self, name: str) -> np.ndarray | None:
        """Codes of one column; None when the records lack it or never fill it."""
        if name not in self._codes:
            out: np.ndarray | None = None
            if name in DERIVED_COLUMNS:
                if self._derived is None:
                    self._derived = _derivations()
                col, fn = self._derived[name]
                if col in self.prep.columns:
                    codes, uniques = self._factorised(col)
                    derived = pd.factorize(
                        np.array([fn(str(u)) for u in uniques], dtype=object), use_na_sentinel=True
                    )[0].astype(np.int64)
                    out = np.append(derived, -1)[np.where(codes >= 0, codes, len(derived))]
            elif name in self.prep.columns:
                out = self._factorised(name)[0]
            self._codes[name] = out if out is not None and (out >= 0).any() else None
        return self._codes[name]

    def key(self, columns: tuple[str, ...]) -> np.ndarray | None:
        """Code per record of a rule's key (-1 when any part is missing); None when a column is absent."""
        key: np.ndarray | None = None
        for c in columns:
            part = self.codes(c)
            if part is None:
                return None
            if key is None:
                key = part
                continue
            both = (key >= 0) & (part >= 0)
            combined = np.where(both, key * (int(part.max()) + 1) + part, -1)
            key = pd.factorize(combined)[0].astype(np.int64)  # compact again: no overflow on long keys
            key[~both] = -1
        return key


#: Sorting key inside blocks bigger than the window: records of one person sort next to each other.
SORT_COLUMNS: tuple[str, ...] = ("last_name", "first_name", "dob", "postcode", "address")

#: An extra column blocks only when it is identifier-like: at least this share of its present values distinct
#: (a house number or a gender code identifies nobody and would make blocks of thousands of pairs).
MIN_ID_DISTINCT_SHARE = 0.5


def default_rules(prep: pd.DataFrame) -> list[BlockingRule]:
    """`DEFAULT_RULES` plus one exact rule per identifier-like extra column (``id:<name>``)."""
    extra = []
    for c in (c for c in prep.columns if c.startswith("id:")):
        present = prep[c].dropna()
        if len(present) and present.nunique() >= MIN_ID_DISTINCT_SHARE * len(present):
            extra.append(BlockingRule((c,)))
    return [*DEFAULT_RULES, *extra]


def _within_blocks(
    codes: np.ndarray, cap: int, window: int | None = None, rank: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Pairs (i < j) of records sharing a code, vectorised: (i, j, skipped blocks, skipped pairs, windowed
    blocks). Blocks over ``cap`` are skipped. With ``window``, a block bigger than it is walked in ``rank``
    order (a sorted neighbourhood) and each record is paired with the ``window - 1`` records after it, so
    a block of n costs n·window pairs, not n²/2; smaller blocks give all their pairs."""
    empty = np.empty(0, np.int64)
    valid = np.flatnonzero(codes >= 0)
    if len(valid) < 2:
        return empty, empty, 0, 0, 0
    sizes = np.bincount(codes[valid])
    too_big = sizes > cap
    skipped_blocks = int(too_big.sum())
    skipped_pairs = int((sizes[too_big] * (sizes[too_big] - 1) // 2).sum())
    windowed = int(((sizes > window) & ~too_big).sum()) if window else 0
    keep = valid[(sizes[codes[valid]] >= 2) & ~too_big[codes[valid]]]
    within = (keep,) if rank is None else (keep, rank[keep])
    order = keep[np.lexsort((*within, codes[keep]))]  # grouped by code, in rank (then id) order inside
    c = codes[order]
    m = len(order)
    if m == 0:
        return empty, empty, skipped_blocks, skipped_pairs, windowed
    start = np.r_[0, np.flatnonzero(c[1:] != c[:-1]) + 1]
    block_size = np.diff(np.r_[start, m])
    pos_in_block = np.arange(m) - np.repeat(start, block_size)
    after = np.repeat(block_size, block_size) - 1 - pos_in_block  # partners following each record
    if window:
        after = np.minimum(after, window - 1)
    left_pos = np.repeat(np.arange(m), after)
    first_of_run = np.repeat(np.cumsum(after) - after, after)
    right_pos = left_pos + 1 + (np.arange(len(left_pos)) - first_of_run)
    a, b = order[left_pos], order[right_pos]
    return np.minimum(a, b), np.maximum(a, b), skipped_blocks, skipped_pairs, windowed


def sort_rank(prep: pd.DataFrame, columns: tuple[str, ...] = SORT_COLUMNS) -> np.ndarray:
    """Rank of each record by its sorting key (the present ``columns`` joined; missing parts sort as
    empty), computed by Arrow's sort (no Python comparison of strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [pa.array(prep[c], type=pa.string(), from_pandas=True) for c in columns if c in prep.columns]
    if not parts:
        return np.zeros(len(prep), dtype=np.int64)
    joined = pc.binary_join_element_wise(*(pc.fill_null(p, "") for p in parts), "\x1f")
    return np.asarray(pc.rank(joined, sort_keys="ascending", tiebreaker="first"), dtype=np.int64)


def candidate_pairs(
    prep: pd.DataFrame,
    rules: list[BlockingRule] | None = None,
    *,
    max_block_size: int = 500,
    window: int | None = 5,
    link_only: bool = False,
    columns: dict[str, Column] | None = None,
) -> Candidates:
    """Union of the pairs of every rule. ``window``: blocks bigger than it give sorted-neighbourhood pairs
    only (see `_within_blocks`; None = all pairs). ``link_only``: only pairs across sources. ``columns``:
    the factorisation cache `compare_pairs` shares (filled when given)."""
    keys = BlockKeys(prep, columns)
    rank = sort_rank(prep) if window else None
    rules = list(rules) if rules is not None else default_rules(prep)
    n = len(prep)
    source = pd.factorize(prep["source"])[0]
    found: list[np.ndarray] = []
    rule_of: list[np.ndarray] = []
    stats: list[RuleStats] = []
    names: list[str] = []
    for rule in rules:
        codes = keys.key(rule.columns)
        if codes is None:
            continue
        a, b, sb, sp, wb = _within_blocks(codes, max_block_size, window, rank)
        if link_only:
            cross = source[a] != source[b]
            a, b = a[cross], b[cross]
        stats.append(RuleStats(rule.name, len(a), sb, sp, wb))
        found.append(a * n + b)
        rule_of.append(np.full(len(a), len(names), dtype=np.int16))
        names.append(rule.name)
    if not found:
        empty = np.empty(0, np.int64)
        return Candidates(empty, empty, np.empty(0, np.int16), tuple(names), tuple(stats))
    # union by hashing, not sorting: pairs keep the order in which the rules first found them
    inverse, uniq = pd.factorize(np.concatenate(found))
    seen = np.maximum.accumulate(inverse)
    first = np.flatnonzero(np.r_[True, inverse[1:] > seen[:-1]]) if len(inverse) else inverse
    return Candidates(uniq // n, uniq % n, np.concatenate(rule_of)[first], tuple(names), tuple(stats))


def true_pair_count(entity: np.ndarray, source: np.ndarray | None = None) -> int:
    """Number of record pairs of the same entity (only cross-source pairs when ``source`` is given)."""
    ent = pd.factorize(pd.Series(entity))[0]
    if source is None:
        sizes = np.bincount(ent[ent >= 0])
        return int((sizes * (sizes - 1) // 2).sum())
    src = pd.factorize(pd.Series(source))[0]
    ok = ent >= 0
    both = pd.Series(np.ones(int(ok.sum())), index=pd.MultiIndex.from_arrays([ent[ok], src[ok]]))
    per = both.groupby(level=[0, 1]).size()
    total = per.groupby(level=0).sum()
    same = (per * (per - 1) // 2).groupby(level=0).sum()
    return int((total * (total - 1) // 2 - same).sum())


def blocking_recall(cands: Candidates, entity: np.ndarray, source: np.ndarray | None = None) -> float:
    """Share of true pairs (same ``entity``, non-null) that blocking kept as candidates."""
    ent = pd.Series(entity)
    hit = (ent.iloc[cands.i].to_numpy() == ent.iloc[cands.j].to_numpy()) & ent.iloc[
        cands.i
    ].notna().to_numpy()
    total = true_pair_count(np.asarray(entity, dtype=object), source)
    return float(hit.sum() / total) if total else 1.0
