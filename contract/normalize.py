"""Normalisation of personal identifiers, in one place.

Emails and phones are canonicalised, then SHA-256 hashed at the boundary: the event log only ever holds the
hashes. Each rule has a scalar form (the HTTP API, one event) and a vectorised form over a pandas Series
(importers); a test pins that the two agree.
"""

from __future__ import annotations

import hashlib
import re

import pandas as pd

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
JUNK_VALUES: frozenset[str] = frozenset(
    {"", "null", "none", "nan", "n/a", "na", "undefined", "0", "-", "unknown"}
)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize_email(value: str) -> str:
    """Trim and lower-case, the canonical form ad platforms hash (Google/Meta customer-match rules)."""
    return value.strip().lower()


def is_valid_email(value: str) -> bool:
    return bool(_EMAIL_RE.match(value))


def normalize_phone(value: str) -> str:
    """Keep digits and a leading '+'; '00' international prefix becomes '+'."""
    v = value.strip()
    plus = v.startswith("+") or v.startswith("00")
    digits = re.sub(r"\D", "", v)
    if v.startswith("00"):
        digits = digits[2:]
    return ("+" if plus else "") + digits


def is_valid_phone(normalized: str) -> bool:
    digits = normalized.lstrip("+")
    return digits.isdigit() and 6 <= len(digits) <= 15


def is_sha256(value: str) -> bool:
    return bool(_SHA256_RE.match(value))


# --- vectorised forms (same rules, for importers) -------------------------------------------------------


def normalize_email_series(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().str.lower()


def normalize_phone_series(s: pd.Series) -> pd.Series:
    v = s.astype("string").str.strip()
    plus = v.str.startswith("+") | v.str.startswith("00")
    digits = v.str.replace(r"\D", "", regex=True)
    digits = digits.where(~v.str.startswith("00"), digits.str.slice(2))
    return digits.where(~plus, "+" + digits)


def sha256_series(s: pd.Series) -> pd.Series:
    """Hash non-null values; nulls stay null."""
    v = s.astype("string")
    present = v.dropna()
    hashed = pd.Series(
        [hashlib.sha256(x.encode("utf-8")).hexdigest() for x in present], index=present.index, dtype="string"
    )
    return hashed.reindex(v.index)
