"""Customer records from three systems (crm, ecom, loyalty) with the noise real systems have.

Noise: typos, nicknames, swapped first/last names, missing fields, an old address after a move, a shared
family email, phone number formats, letter case, and duplicates within a source. The truth keeps each
record's person and which noise it carries.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.names import NICKNAMES, nicknames, typos
from simulator.population import Population, addresses, digit_ids

_NOISE = ("typo", "nickname", "swapped_names", "missing_fields", "moved_address", "shared_email", "duplicate")
#: source -> (typo, nickname, swapped, missing-field rate, duplicate) rates
_RATES: dict[str, tuple[float, float, float, float, float]] = {
    "crm": (0.06, 0.12, 0.03, 0.25, 0.05),
    "ecom": (0.02, 0.15, 0.01, 0.15, 0.0),
    "loyalty": (0.05, 0.2, 0.02, 0.3, 0.02),
}
_FIELDS = {
    "crm": ("first_name", "last_name", "email", "phone", "date_of_birth", "address_line1", "city", "postcode", "region", "country", "user_id", "customer_number"),
    "ecom": ("first_name", "last_name", "email", "phone", "address_line1", "city", "postcode", "country", "user_id"),
    "loyalty": ("first_name", "last_name", "email", "phone", "date_of_birth", "postcode", "loyalty_id"),
}  # fmt: skip
_OPTIONAL = ("phone", "date_of_birth", "address_line1", "city", "postcode", "region", "email")


def _phone_formats(phone: pd.Series, rng: np.random.Generator) -> pd.Series:
    """+447700900123 -> as typed: international, national with spaces, 0044 prefix."""
    nat = "0" + phone.str[3:]
    style = rng.integers(0, 4, len(phone))
    return pd.Series(
        np.select(
            [style == 0, style == 1, style == 2],
            [phone, nat.str[:5] + " " + nat.str[5:], "0044 " + phone.str[3:7] + " " + phone.str[7:]],
            "+44 " + phone.str[3:7] + " " + phone.str[7:10] + " " + phone.str[10:],
        ),
        index=phone.index,
    )


def _base(pop: Population, idx: np.ndarray, source: str, rng: np.random.Generator) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "_person": idx,
            "first_name": pop.first_name[idx],
            "last_name": pop.last_name[idx],
            "email": pop.email[idx],
            "phone": _phone_formats(pd.Series(pop.phone[idx]), rng).to_numpy(object),
            "date_of_birth": pd.to_datetime(pop.dob[idx]),
            "address_line1": pop.street[idx],
            "city": pop.city[idx],
            "postcode": pop.postcode[idx],
            "region": pop.region[idx],
            "country": np.where(rng.random(len(idx)) < 0.5, "GB", "United Kingdom"),
            "user_id": pop.user_id[idx],
            "loyalty_id": pop.loyalty_id[idx],
            "customer_number": pop.customer_number[idx],
        }
    )
    for k in _NOISE:
        df[f"_{k}"] = False
    return df


def _apply_noise(df: pd.DataFrame, source: str, rng: np.random.Generator, pop: Population) -> pd.DataFrame:
    r_typo, r_nick, r_swap, r_miss, _ = _RATES[source]
    n = len(df)
    nick = (rng.random(n) < r_nick) & df["first_name"].isin(list(NICKNAMES)).to_numpy()
    if nick.any():
        df.loc[nick, "first_name"] = nicknames(df.loc[nick, "first_name"].tolist(), rng)
        df.loc[nick, "_nickname"] = True
    swap = rng.random(n) < r_swap
    df.loc[swap, ["first_name", "last_name"]] = df.loc[swap, ["last_name", "first_name"]].to_numpy()
    df.loc[swap, "_swapped_names"] = True
    typo = rng.random(n) < r_typo
    which = rng.integers(0, 4, n)
    for i, col in enumerate(("first_name", "last_name", "email", "address_line1")):
        m = typo & (which == i) & df[col].notna().to_numpy()
        if m.any() and col == "email":  # typos hit the local part; the address stays well-formed
            local, _, domain = df.loc[m, col].str.partition("@").T.to_numpy()
            df.loc[m, col] = [f"{a}@{b}" for a, b in zip(typos(list(local), rng), domain, strict=True)]
            df.loc[m, "_typo"] = True
        elif m.any():
            df.loc[m, col] = typos(df.loc[m, col].tolist(), rng)
            df.loc[m, "_typo"] = True
    miss = rng.random((n, len(_OPTIONAL))) < r_miss
    miss[:, _OPTIONAL.index("email")] &= rng.random(n) < 0.4  # emails are dropped less often
    for i, col in enumerate(_OPTIONAL):
        df.loc[miss[:, i], col] = None
    df["_missing_fields"] |= miss.any(axis=1)
    upper = rng.random(n) < 0.05
    df.loc[upper, "last_name"] = df.loc[upper, "last_name"].str.upper()
    return df


def _crm_specific(df: pd.DataFrame, rng: np.random.Generator, pop: Population) -> pd.DataFrame:
    n = len(df)
    moved = rng.random(n) < 0.12  # the CRM still holds the address before the move
    old = addresses(rng, int(moved.sum()))
    df.loc[moved, "address_line1"] = old["street"]
    df.loc[moved, "city"] = old["city"]
    df.loc[moved, "postcode"] = old["postcode"]
    df.loc[moved, "region"] = old["region"]
    df.loc[moved, "_moved_address"] = True
    person = df["_person"].to_numpy()
    fam = pop.shared_email[person]
    df.loc[fam, "email"] = pop.email[pop.partner[person[fam]]]
    df.loc[fam, "_shared_email"] = True
    df.loc[rng.random(n) < 0.55, "user_id"] = None  # the CRM knows the login id only for some
    cn = df["customer_number"].astype("string")
    style = rng.random(n)
    cn = cn.where(style >= 0.04, cn.str.replace("CN-", "cn", regex=False))  # formatting drift
    cn = cn.where(
        (style < 0.04) | (style >= 0.06),
        cn.str[:-1] + pd.Series(rng.integers(0, 10, n)).astype(str).to_numpy(),
    )
    cn = cn.where((style < 0.06) | (style >= 0.1), None)
    df["customer_number"] = cn.astype(object).where(cn.notna(), None)
    return df


def _duplicates(df: pd.DataFrame, source: str, rng: np.random.Generator, pop: Population) -> pd.DataFrame:
    rate = _RATES[source][4]
    dup = df[rng.random(len(df)) < rate].copy()
    if dup.empty:
        return df
    dup = _apply_noise(dup, source, rng, pop)
    dup["_duplicate"] = True
    return pd.concat([df, dup], ignore_index=True)


def build_records(
    pop: Population, ecom_people: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Records per source (as exported) and the record truth."""
    people = {
        "crm": np.nonzero(pop.in_crm)[0],
        "ecom": np.sort(ecom_people),
        "loyalty": np.nonzero(pop.has_loyalty)[0],
    }
    out: dict[str, pd.DataFrame] = {}
    truth = []
    for source, idx in people.items():
        df = _apply_noise(_base(pop, idx, source, rng), source, rng, pop)
        if source == "ecom":  # the login email is always there (typed by its owner, maybe with a typo)
            df["email"] = df["email"].where(df["email"].notna(), pop.email[idx])
        if source == "crm":
            df = _crm_specific(df, rng, pop)
        df = _duplicates(df, source, rng, pop)
        df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
        df.insert(0, "record_id", digit_ids(rng, len(df), source[0].upper(), 8))
        t = df[["record_id", "_person", *[f"_{k}" for k in _NOISE]]].rename(columns=lambda c: c.lstrip("_"))
        t.insert(0, "source", source)
        t.insert(2, "person_id", pop.person_id[t.pop("person").to_numpy()])
        truth.append(t)
        out[source] = df[["record_id", *_FIELDS[source]]].copy()
    return out, pd.concat(truth, ignore_index=True)
