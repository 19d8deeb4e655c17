"""Seeded noisy-duplicate customer records with known truth, for the matcher's tests and benchmark.

Every entity gets a name (surnames Zipf-distributed, so some are common), a birth date, an address, a
postcode, an email and a phone; each of its 1-3 records copies them through independent noise: typos,
day/month swaps, missing values, a changed email. The hidden entity id comes back separately.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_SYL = [
    "an",
    "be",
    "ca",
    "do",
    "el",
    "fi",
    "ga",
    "ho",
    "is",
    "ju",
    "ka",
    "lo",
    "ma",
    "ne",
    "or",
    "pa",
    "ri",
    "so",
    "tu",
    "va",
    "wi",
    "ya",
    "zo",
    "mi",
    "ra",
    "te",
    "lu",
    "no",
    "si",
    "de",
]
_STREETS = ["street", "road", "avenue", "lane", "close", "way"]


def _word(rng: np.random.Generator, parts: int) -> str:
    return "".join(rng.choice(_SYL, size=parts))


def _typo(rng: np.random.Generator, s: str) -> str:
    if len(s) < 2:
        return s
    k = int(rng.integers(0, len(s)))
    op = rng.integers(0, 3)
    if op == 0:
        return s[:k] + s[k + 1 :]
    if op == 1:
        return s[:k] + str(rng.choice(list("abcdefghijklmnopqrstuvwxyz"))) + s[k + 1 :]
    k = min(k, len(s) - 2)
    return s[:k] + s[k + 1] + s[k] + s[k + 2 :]


def make_records(
    n_entities: int = 600,
    *,
    seed: int = 0,
    sources: tuple[str, ...] = ("crm", "shop"),
    user_id_rate: float = 0.0,
    noise: float = 1.0,
    max_records: int = 3,
) -> tuple[pd.DataFrame, pd.Series]:
    """(records in the CustomerRecord columns, entity id per record). ``noise`` scales every error rate."""
    rng = np.random.default_rng(seed)
    surnames = [_word(rng, int(rng.integers(2, 4))) for _ in range(max(20, n_entities // 4))]
    weights = 1.0 / np.arange(1, len(surnames) + 1) ** 0.8
    weights /= weights.sum()
    firsts = [_word(rng, int(rng.integers(2, 4))) for _ in range(max(20, n_entities // 3))]
    rows: list[dict[str, object]] = []
    entity: list[int] = []
    first_of = rng.choice(np.asarray(firsts, dtype=object), size=n_entities)
    last_of = rng.choice(np.asarray(surnames, dtype=object), size=n_entities, p=weights)
    for e in range(n_entities):
        first, last = str(first_of[e]), str(last_of[e])
        dob = pd.Timestamp("1940-01-01") + pd.Timedelta(days=int(rng.integers(0, 60 * 365)))
        postcode = f"{rng.integers(10000, 99999)}"
        address = f"{rng.integers(1, 200)} {_word(rng, 2)} {rng.choice(_STREETS)}"
        email = f"{first}.{last}{rng.integers(1, 99)}@{rng.choice(['mail.com', 'post.org', 'web.net'])}"
        phone = f"0{rng.integers(600000000, 799999999)}"
        n_rec = int(rng.integers(1, max_records + 1))
        chosen = rng.choice(sources, size=n_rec, replace=len(sources) < n_rec)
        for r in range(n_rec):
            p = noise if r else 0.0  # the first record of an entity is clean
            f, la, d = first, last, dob.strftime("%Y-%m-%d")
            if rng.random() < 0.25 * p:
                f = _typo(rng, f)
            if rng.random() < 0.2 * p:
                la = _typo(rng, la)
            if rng.random() < 0.08 * p and dob.day <= 12:
                d = dob.strftime("%Y-%d-%m")
            elif rng.random() < 0.08 * p:
                d = (dob + pd.Timedelta(days=int(rng.integers(1, 9)))).strftime("%Y-%m-%d")
            pc = postcode if rng.random() >= 0.1 * p else _typo(rng, postcode)
            rows.append(
                {
                    "source": str(chosen[r]),
                    "record_id": f"r{len(rows):06d}",
                    "first_name": f.title() if rng.random() >= 0.05 * p else None,
                    "last_name": la.upper() if rng.random() < 0.3 else la.title(),
                    "date_of_birth": d if rng.random() >= 0.1 * p else None,
                    "postcode": pc if rng.random() >= 0.1 * p else None,
                    "address_line1": address if rng.random() >= 0.15 * p else _typo(rng, address),
                    "email": email if rng.random() >= 0.4 * p else None,
                    "phone": phone if rng.random() >= 0.4 * p else None,
                    "user_id": f"u{e:05d}" if rng.random() < user_id_rate else None,
                }
            )
            entity.append(e)
    records = pd.DataFrame(rows)
    return records, pd.Series(entity, name="entity")


def pair_f1(pairs: pd.DataFrame, records: pd.DataFrame, entity: pd.Series, threshold: float = 0.5) -> float:
    """F1 of the predicted pairs (probability >= threshold) against all true pairs of ``records``."""
    key = records["source"].astype(str) + ":" + records["record_id"].astype(str)
    ent = dict(zip(key, entity, strict=True))
    hit = pairs[pairs["match_probability"] >= threshold]
    left = (hit["source_l"] + ":" + hit["record_id_l"]).map(ent)
    right = (hit["source_r"] + ":" + hit["record_id_r"]).map(ent)
    tp = int((left.to_numpy() == right.to_numpy()).sum())
    sizes = entity.value_counts().to_numpy()
    true = int((sizes * (sizes - 1) // 2).sum())
    precision = tp / len(hit) if len(hit) else 0.0
    recall = tp / true if true else 1.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
