"""Household negatives: training pairs the deterministic identifiers do not label but the records settle.

Partners and family members often share an email, a phone, a surname and an address; what tells them
apart is the person: a clearly different first name (not a typo, not the names swapped) and a clearly
different date of birth (not a typo or a day/month swap). Records sharing a household identifier exactly
and disagreeing on both are taken as non-matches for the supervised model, so it sees what a household
looks like; they are training labels only, never constraints at link time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from identity.match.compare import ComparedPairs


def _level(compared: ComparedPairs, name: str) -> np.ndarray | None:
    for k, comp in enumerate(compared.comparisons):
        if comp.name == name:
            return compared.levels[:, k]
    return None


def household_negatives(
    prep: pd.DataFrame,
    i: np.ndarray,
    j: np.ndarray,
    compared: ComparedPairs,
    household_ids: tuple[str, ...] = ("email", "email_sha256", "phone"),
) -> np.ndarray:
    """Bool per pair (``i[k]``, ``j[k]``): the records share a ``household_ids`` value exactly, their first
    names disagree (lowest level, both present, not swapped with the last name) and so do their dates of
    birth (both present, below the typo / day-month-swap level)."""
    first, dob = _level(compared, "first_name"), _level(compared, "dob")
    out = np.zeros(len(i), dtype=bool)
    if first is None or dob is None or len(i) == 0:
        return out
    shared = np.zeros(len(i), dtype=bool)
    for col in household_ids:
        if col in prep:
            v = prep[col].to_numpy(dtype=object)
            shared |= pd.notna(v[i]) & (v[i] == v[j])
    fn = prep["first_name"].to_numpy(dtype=object)
    ln = prep["last_name"].to_numpy(dtype=object) if "last_name" in prep else np.full(len(prep), None)
    swapped = (pd.notna(fn[i]) & (fn[i] == ln[j])) | (pd.notna(fn[j]) & (fn[j] == ln[i]))
    return shared & (first == 0) & (dob >= 0) & (dob <= 1) & ~swapped
