"""Candidate pairs by blocking: records that agree exactly on some key (a phonetic name code and a postcode,
a date of birth, an email local part, ...) are compared; all others are assumed non-matches.

Each rule's key is the concatenation of its derived columns (missing when any part is). Blocks bigger than
``max_block_size`` are skipped (and counted): a block of n records costs n²/2 comparisons, and such
common keys (a frequent surname without a postcode, a placeholder value) carry little evidence. Pairs of
every rule are generated with numpy (no loop over records), then unioned and deduplicated; each pair
remembers the first rule that found it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BlockingRule:
    """Records agreeing exactly on all of ``columns`` (columns of `block_keys`) become candidate pairs."""

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


def _phonetic(s: pd.Series, fn_name: str) -> pd.Series:
    """A jellyfish code of each value, computed once per distinct value (first token only)."""
    import jellyfish

    fn = getattr(jellyfish, fn_name)
    first = s.str.split(" ").str[0]
    uniq = pd.unique(first.dropna())
    codes = dict(zip(uniq, (fn(u) or None for u in uniq), strict=True))
    return first.map(codes)


def block_keys(prep: pd.DataFrame) -> pd.DataFrame:
    """The prepared frame plus derived blocking columns (phonetic codes, initials, birth year)."""
    keys = prep.copy()
    for col, short in (("first_name", "first"), ("last_name", "last")):
        s = prep[col].astype("string")
        keys[f"{short}_metaphone"] = _phonetic(s, "metaphone")
        keys[f"{short}_soundex"] = _phonetic(s, "soundex")
        keys[f"{short}_initial"] = s.str.slice(0, 1)
    keys["dob_year"] = prep["dob"].astype("string").str.slice(0, 4)
    return keys


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


def _key_codes(keys: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray | None:
    """Integer code per record of the rule's key (-1 = missing); None when a column is absent or empty."""
    parts = []
    for c in columns:
        if c not in keys.columns or keys[c].isna().all():
            return None
        parts.append(keys[c].astype("string"))
    key = parts[0]
    for p in parts[1:]:
        key = key + "\x1f" + p
    codes, _ = pd.factorize(key, use_na_sentinel=True)
    return codes.astype(np.int64)


def _within_blocks(codes: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """All pairs (i < j) of records sharing a code, blocks over ``cap`` skipped; vectorised."""
    valid = np.flatnonzero(codes >= 0)
    if len(valid) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), 0, 0
    sizes = np.bincount(codes[valid])
    too_big = sizes > cap
    skipped_blocks = int(too_big.sum())
    skipped_pairs = int((sizes[too_big] * (sizes[too_big] - 1) // 2).sum())
    keep = valid[(sizes[codes[valid]] >= 2) & ~too_big[codes[valid]]]
    order = keep[np.lexsort((keep, codes[keep]))]  # records grouped by code, ascending ids within a block
    c = codes[order]
    m = len(order)
    if m == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), skipped_blocks, skipped_pairs
    start = np.r_[0, np.flatnonzero(c[1:] != c[:-1]) + 1]
    block_size = np.diff(np.r_[start, m])
    pos_in_block = np.arange(m) - np.repeat(start, block_size)
    after = np.repeat(block_size, block_size) - 1 - pos_in_block  # partners following each record
    left_pos = np.repeat(np.arange(m), after)
    first_of_run = np.repeat(np.cumsum(after) - after, after)
    right_pos = left_pos + 1 + (np.arange(len(left_pos)) - first_of_run)
    return order[left_pos], order[right_pos], skipped_blocks, skipped_pairs


def candidate_pairs(
    prep: pd.DataFrame,
    rules: list[BlockingRule] | None = None,
    *,
    max_block_size: int = 500,
    link_only: bool = False,
) -> Candidates:
    """Union of the pairs of every rule. ``link_only``: only pairs of records from different sources."""
    keys = block_keys(prep)
    rules = list(rules) if rules is not None else default_rules(prep)
    n = len(prep)
    source = pd.factorize(prep["source"])[0]
    found: list[np.ndarray] = []
    rule_of: list[np.ndarray] = []
    stats: list[RuleStats] = []
    names: list[str] = []
    for rule in rules:
        codes = _key_codes(keys, rule.columns)
        if codes is None:
            continue
        a, b, sb, sp = _within_blocks(codes, max_block_size)
        if link_only:
            cross = source[a] != source[b]
            a, b = a[cross], b[cross]
        stats.append(RuleStats(rule.name, len(a), sb, sp))
        found.append(a * n + b)
        rule_of.append(np.full(len(a), len(names), dtype=np.int16))
        names.append(rule.name)
    if not found:
        empty = np.empty(0, np.int64)
        return Candidates(empty, empty, np.empty(0, np.int16), tuple(names), tuple(stats))
    all_codes = np.concatenate(found)
    uniq, first = np.unique(all_codes, return_index=True)
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
