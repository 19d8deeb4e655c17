"""The hidden truth: who is who, who churned when, and what every offer would have done.

Derived from the generated exports, so it is consistent with them by construction: every identifier value
that appears in events, records or transactions is listed with its person(s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from contract.normalize import normalize_email_series, normalize_phone_series, sha256_series
from simulator.config import SimConfig
from simulator.population import Population

EVENT_IDENTIFIERS = ("user_id", "email_sha256", "phone_sha256", "loyalty_id", "device_id", "anonymous_id")


def identifiers(events: pd.DataFrame, records: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """(identifier_type, identifier_value, person_id, n_persons, shared) for every identifier seen."""
    parts = []
    for col in EVENT_IDENTIFIERS:
        if col in events:
            m = events[col].notna()
            parts.append(
                pd.DataFrame(
                    {
                        "identifier_type": col,
                        "identifier_value": events.loc[m, col],
                        "person_id": events.loc[m, "person_id"],
                    }
                )
            )
    parts.append(
        pd.DataFrame(
            {
                "identifier_type": "user_id",
                "identifier_value": transactions["customer_id"],
                "person_id": transactions["person_id"],
            }
        )
    )
    rec = records
    parts.append(
        pd.DataFrame(
            {
                "identifier_type": "record",
                "identifier_value": rec["source"] + ":" + rec["record_id"],
                "person_id": rec["person_id"],
            }
        )
    )
    for col, kind, norm in (
        ("email", "email_sha256", normalize_email_series),
        ("phone", "phone_sha256", normalize_phone_series),
    ):
        m = rec[col].notna()
        parts.append(
            pd.DataFrame(
                {
                    "identifier_type": kind,
                    "identifier_value": sha256_series(norm(rec.loc[m, col])).to_numpy(),
                    "person_id": rec.loc[m, "person_id"],
                }
            )
        )
    for col in ("user_id", "loyalty_id"):
        m = rec[col].notna()
        parts.append(
            pd.DataFrame(
                {
                    "identifier_type": col,
                    "identifier_value": rec.loc[m, col],
                    "person_id": rec.loc[m, "person_id"],
                }
            )
        )
    out = pd.concat(parts, ignore_index=True).astype(str).drop_duplicates()
    out = out.sort_values(["identifier_type", "identifier_value", "person_id"], ignore_index=True)
    out["n_persons"] = (
        out.groupby(["identifier_type", "identifier_value"])["person_id"].transform("size").astype(np.int64)
    )
    out["shared"] = out["n_persons"] > 1
    return out


def person_flags(
    pop: Population,
    events: pd.DataFrame,
    sessions: pd.DataFrame,
    records: pd.DataFrame,
    churn_day: np.ndarray,
    cfg: SimConfig,
) -> pd.DataFrame:
    """One row per person: household, latent traits, churn and the identity states they went through."""
    ev = events
    p = ev["_person"].to_numpy()
    n = pop.n

    def any_of(mask: np.ndarray) -> np.ndarray:
        return np.bincount(p[mask], minlength=n) > 0

    strong = ev[["user_id", "email_sha256", "phone_sha256", "loyalty_id"]].notna().any(axis=1).to_numpy()
    has_events = any_of(np.ones(len(ev), bool))
    logged_any = any_of(ev["user_id"].notna().to_numpy())
    in_records = np.bincount(records["_person"], minlength=n) > 0
    dev_per_person = ev.loc[ev["device_id"].notna()].groupby("_person")["device_id"].nunique()
    anon_per_dev = ev.loc[ev["device_id"].notna()].groupby(["_person", "device_id"])["anonymous_id"].nunique()
    cookie_cleared = anon_per_dev[anon_per_dev > 1].index.get_level_values(0).unique()
    shared_devs = set(pop.device_id[pop.device_shared])
    on_shared = ev["device_id"].isin(shared_devs).to_numpy()
    # email clicked on a device where the person never logged in
    login_devs = ev.loc[
        ev["user_id"].notna() & ev["device_id"].notna(), ["_person", "device_id"]
    ].drop_duplicates()
    clicks = ev.loc[ev["type"] == "email_click", ["_person", "device_id"]].drop_duplicates()
    other = clicks.merge(login_devs, how="left", on=["_person", "device_id"], indicator=True)
    click_other = np.zeros(n, bool)
    click_other[other.loc[other["_merge"] == "left_only", "_person"].to_numpy(np.int64)] = True
    store = ev["type"].eq("store_purchase").to_numpy()
    sp, first = sessions["person"].to_numpy(), sessions["first"].to_numpy()
    logged_out = np.bincount(sp[~first & ~sessions["logged"].to_numpy()], minlength=n) > 0
    flags = pd.DataFrame(
        {
            "person_id": pop.person_id,
            "household_id": pop.household_id,
            "partner_id": np.where(pop.partner >= 0, pop.person_id[np.maximum(pop.partner, 0)], None),
            "user_id": pop.user_id,
            "loyalty_id": pop.loyalty_id,
            "email": pop.email,
            "first_name": pop.first_name,
            "last_name": pop.last_name,
            "arrival_day": pop.arrival_day,
            "has_events": has_events,
            "has_account": pop.has_account,
            "store_only": pop.store_only,
            "anonymous_only": has_events & ~any_of(strong) & ~in_records,
            "never_login": has_events & ~logged_any & ~pop.store_only,
            "logged_out_return": logged_out & logged_any,
            "multi_device": np.bincount(
                dev_per_person.index.to_numpy(np.int64),
                weights=(dev_per_person > 1).to_numpy(float),
                minlength=n,
            )
            > 0,
            "cookie_cleared": np.isin(np.arange(n), cookie_cleared.to_numpy(np.int64)),
            "shared_device": any_of(on_shared),
            "shared_device_login": any_of(on_shared & ev["user_id"].notna().to_numpy()),
            "email_click_other_device": click_other,
            "loyalty_store_purchase": any_of(store & ev["loyalty_id"].notna().to_numpy()),
            "anonymous_store_purchase": any_of(store & ev["anonymous_id"].notna().to_numpy()),
            "decliner": pop.decliner,
            "price_sensitivity": pop.price_sensitivity,
            "content_affinity": pop.content_affinity,
            "churn_day": np.where(np.isfinite(churn_day), churn_day, -1).astype(np.int64),
            "churned_in_window": churn_day <= cfg.days,
        }
    )
    flags["churned_at"] = (
        cfg.start_ts + pd.to_timedelta(np.where(np.isfinite(churn_day), churn_day, 0), unit="D")
    ).where(np.isfinite(churn_day))
    return flags


def churn_labels(
    cfg: SimConfig, pop: Population, events: pd.DataFrame, churn_day: np.ndarray
) -> pd.DataFrame:
    """Latent churn (and observed inactivity, where the horizon lies inside the window) per as-of date."""
    h = cfg.churn_horizon_days
    day = ((events["occurred_at"] - cfg.start_ts) // pd.Timedelta(days=1)).to_numpy(np.int64)
    person = events["_person"].to_numpy(np.int64)
    rows = []
    for a in range(cfg.churn_label_every_days, cfg.days + 1, cfg.churn_label_every_days):
        alive = np.nonzero((pop.arrival_day < a) & (churn_day > a))[0]
        in_h = (day >= a) & (day < a + h)
        active = np.bincount(person[in_h], minlength=pop.n) > 0
        complete = a + h <= cfg.days
        rows.append(
            pd.DataFrame(
                {
                    "person_id": pop.person_id[alive],
                    "as_of": cfg.start_ts + pd.Timedelta(days=a),
                    "churned": churn_day[alive] <= a + h,
                    "horizon_days": h,
                    "horizon_complete": complete,
                    "inactive_in_horizon": pd.array(
                        ~active[alive] if complete else [None] * len(alive), dtype="boolean"
                    ),
                }
            )
        )
    return (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=["person_id", "as_of", "churned", "horizon_days"])
    )
