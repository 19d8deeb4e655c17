"""Normalisation of personal identifiers, in one place.

Emails and phones are canonicalised, then SHA-256 hashed at the boundary: the event log only ever holds the
hashes. Each rule has a scalar form (the HTTP API, one event) and a vectorised form over a pandas Series
(importers); a test pins that the two agree.

Phones become E.164 (``+442079460958``) with ``phonenumbers`` (Google's libphonenumber metadata), so a number
written internationally (``+44 20 7946 0958``, ``0044 20 7946 0958``) and nationally (``020 7946 0958``, read
with a default region such as ``GB``) hash alike: real CRM exports mix both forms. A number is taken in E.164
when libphonenumber finds it *possible* (its length fits the country's numbering plan), not *valid* (it is
in an allocated range): validity follows range metadata that changes with every release, and a number that
stopped being valid would fall back to another form and its hash would silently stop linking. A number that
cannot be read (no country code and no region, an unknown country code, a length no plan allows, a local
number without its area code) keeps the digits-only form CXI always used (digits and a leading '+', '00'
read as '+'). So without a region only numbers with a country code are parsed, and for well-formed ones the
E.164 form is the digits-only form: existing hashes stay as they were (``tests/contract`` pins this on
libphonenumber's example number of every region and type). What changes without a region is noise inside an
international number: a trunk '0' (``+44 (0)20 7946 0958``) is dropped and letters (``+1 800 FLOWERS``) read
as digits, as the number would be dialled. An extension (``ext. 12``) is kept as trailing digits, as
before. The pinned ``phonenumbers`` version (requirements.lock) fixes the metadata; upgrading it can change
the form of national numbers at the edge of a plan's lengths, never of well-formed international ones.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from contract.errors import ContractError

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


def check_phone_region(region: str | None) -> str | None:
    """The region as libphonenumber names it (upper case), or ``ContractError`` naming ``phone_region``."""
    if region is None:
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ContractError(
            "phone_region",
            "not a known region (ISO 3166 alpha-2 code, e.g. GB, US, FR; GB for the UK)",
            region,
        )
    return code


def _phone_digits(v: str) -> str:
    """The digits-only form (of a stripped value): digits and a leading '+'; '00' becomes '+'."""
    digits = re.sub(r"\D", "", v)
    if v.startswith("00"):
        return "+" + digits[2:]
    return ("+" if v.startswith("+") else "") + digits


def _phone_e164(v: str, region: str | None) -> str | None:
    """E.164 (plus the extension's digits, if any) of a stripped value, or None when it cannot be read."""
    if v.startswith("00"):
        v = "+" + v[2:]
    elif region is None and not v.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(v, region)
    except NumberParseException:
        return None
    # IS_POSSIBLE only: a local-only number (no area code) would get a wrong E.164 form
    if phonenumbers.is_possible_number_with_reason(number) != ValidationResult.IS_POSSIBLE:
        return None
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return e164 + re.sub(r"\D", "", number.extension or "")


def normalize_phone(value: str, region: str | None = None) -> str:
    """E.164 when the number can be read (with a '+' / '00' country code, or in `region`'s national format
    when a region is given), else digits and a leading '+' ('00' international prefix becomes '+')."""
    return _normalize_phone(value, check_phone_region(region))


def _normalize_phone(value: str, region: str | None) -> str:
    v = value.strip()
    return _phone_e164(v, region) or _phone_digits(v)


def is_valid_phone(normalized: str) -> bool:
    digits = normalized.lstrip("+")
    return digits.isdigit() and 6 <= len(digits) <= 15


def is_sha256(value: str) -> bool:
    return bool(_SHA256_RE.match(value))


# --- vectorised forms (same rules, for importers) -------------------------------------------------------


def normalize_email_series(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().str.lower()


def normalize_phone_series(s: pd.Series, region: str | None = None) -> pd.Series:
    """``normalize_phone`` of each value, computed once per distinct value (an import repeats numbers, and
    parsing one costs ~20 µs); nulls stay null."""
    region = check_phone_region(region)
    v = s.astype("string")
    codes, uniques = pd.factorize(v)
    forms = np.array([_normalize_phone(u, region) for u in uniques] + [None], dtype=object)
    return pd.Series(forms[codes], index=s.index, dtype="string")  # code -1 (null) takes the None


def sha256_series(s: pd.Series) -> pd.Series:
    """Hash non-null values; nulls stay null."""
    v = s.astype("string")
    present = v.dropna()
    hashed = pd.Series(
        [hashlib.sha256(x.encode("utf-8")).hexdigest() for x in present], index=present.index, dtype="string"
    )
    return hashed.reindex(v.index)
