"""Per-prediction reasons: LightGBM ``pred_contrib`` turned into sentences a marketer can read.

A booster's contributions (SHAP values in log-odds) sum, with the bias column, to its raw margin; the churn
booster has its calibration folded into its trees, so they sum to the *calibrated* margin (with the prior's
push, `training.prior.boosted_contributions`, when the model was boosted from one). A reason is one
feature's contribution; the top ``k`` by absolute size are reported, each saying whether it raises or lowers
the risk, so a score always comes with what pushed it up *and* what held it down.

Wording comes from one place, the feature catalogue (`features.definitions.FEATURES`): its description
gives the label ("Purchases in 30 days") and its ``(null: ...)`` note the words for a missing value
("never bought"). Features outside the catalogue fall back to their name. A model boosted from a
buy-till-you-die prior (`training.prior`) has one more reason, the prior's push, said as its chance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from contract.errors import ContractError

if TYPE_CHECKING:
    import lightgbm as lgb

    from training.prior import BTYDPrior

_NULL_NOTE = re.compile(r"\(null:\s*([^)]*)\)")
_PARENS = re.compile(r"\s*\([^)]*\)")
_AS_OF = re.compile(r"\s+(up\s+)?to as_of\b")
_WINDOW = re.compile(r"\bin (the )?(\d+) days\b")
_NAME_WINDOW = re.compile(r"_(\d+)d$")


@dataclass(frozen=True)
class Reason:
    """One feature's push on one score: its value, its log-odds contribution and the sentence for it."""

    feature: str
    value: float | None  # None: the value was missing
    contribution: float  # log-odds; > 0 raises the score
    text: str


@dataclass(frozen=True)
class Phrase:
    """How to say a feature: a label, the words for a missing value, and the number format."""

    label: str
    missing: str
    integer: bool
    percent: bool = False

    def say(self, value: float | None, contribution: float) -> str:
        direction = "raises risk" if contribution > 0 else "lowers risk"
        if value is None:
            shown = self.missing
        elif self.percent:
            shown = f"{value:.0%}"
        elif self.integer or float(value).is_integer():
            shown = f"{value:,.0f}"
        else:
            shown = f"{value:,.2f}"
        return f"{self.label}: {shown} ({direction})"


def _phrase_from(description: str, kind: str) -> Phrase:
    note = _NULL_NOTE.search(description)
    label = _AS_OF.sub("", _PARENS.sub("", description)).strip().rstrip(".").strip()
    label = _WINDOW.sub(r"in the last \2 days", label).replace("Days from the", "Days since the")
    return Phrase(label=label, missing=note.group(1).strip() if note else "unknown", integer=kind == "int")


@cache
def phrases() -> dict[str, Phrase]:
    """Feature name -> phrase, derived from the feature catalogue's descriptions (the one wording table)."""
    from features.definitions import FEATURES

    out = {name: _phrase_from(description, kind) for name, kind, description in FEATURES}
    for name, said in out.items():
        if "_" in said.label:  # a formula, not words: say the name instead
            out[name] = Phrase(_label_from_name(name), said.missing, said.integer)
    return out


def _label_from_name(feature: str) -> str:
    words = _NAME_WINDOW.sub(r" in the last \1 days", feature).replace("_", " ")
    return words.replace("avg ", "average ").capitalize()


def phrase(feature: str) -> Phrase:
    known = phrases().get(feature)
    if known is not None:
        return known
    return Phrase(label=_label_from_name(feature), missing="unknown", integer=False)


def reasons_from(
    names: list[str],
    values: np.ndarray,
    contrib: np.ndarray,
    k: int = 3,
    said: dict[str, Phrase] | None = None,
) -> list[list[Reason]]:
    """Top-``k`` reasons per row from feature ``values`` (n, f) and contributions (n, f [+ bias]);
    ``said`` words the names the feature catalogue does not know."""
    if k < 1:
        raise ContractError("k", "must be at least 1", k)
    contrib = contrib[:, : len(names)]
    if values.shape != contrib.shape:
        raise ContractError("values", "must have one column per feature", values.shape)
    k = min(k, len(names))
    # stable order by |contribution| descending; ties keep the feature order
    top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
    rows = np.arange(len(contrib))[:, None]
    top_c, top_v = contrib[rows, top], values[rows, top]
    words = [(said or {}).get(n) or phrase(n) for n in names]
    out: list[list[Reason]] = []
    for idx_row, c_row, v_row in zip(top.tolist(), top_c.tolist(), top_v.tolist(), strict=True):
        reasons = []
        for j, c, v in zip(idx_row, c_row, v_row, strict=True):
            if c == 0.0:
                break  # a feature that did not move the score is no reason
            value = None if v != v else v  # NaN -> None
            reasons.append(Reason(names[j], value, c, words[j].say(value, c)))
        out.append(reasons)
    return out


def top_reasons(
    booster: lgb.Booster, X: pd.DataFrame, k: int = 3, *, prior: BTYDPrior | None
) -> list[list[Reason]]:
    """For each row of ``X``, its ``k`` largest contributions (by absolute log-odds), as reasons; ``prior``:
    the one the booster was boosted from (required, so no caller drops it by default)."""
    names = list(booster.feature_name())
    missing = [c for c in names if c not in X.columns]
    if missing:
        raise ContractError("X", f"missing feature columns {missing}")
    return model_reasons(booster, prior, X[names].to_numpy(dtype="float64", na_value=np.nan), k)


def model_reasons(
    booster: lgb.Booster, prior: BTYDPrior | None, values: np.ndarray, k: int = 3, *, num_threads: int = 0
) -> list[list[Reason]]:
    """Top-``k`` reasons per row of a feature matrix in the booster's order, the prior's push among them."""
    from training.prior import REASON, boosted_contributions

    names, vals, contrib = boosted_contributions(booster, prior, values, num_threads=num_threads)
    said = None
    if prior is not None:
        said = {REASON: Phrase(prior.reason_label(), "unknown", integer=False, percent=True)}
    return reasons_from(names, vals, contrib, k, said)
