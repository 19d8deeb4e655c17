"""`generate(config) -> SimData`: the pure, seeded generator (no workspace, no files)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.behaviour import Progress, simulate_days
from simulator.config import SimConfig, SimData
from simulator.eventlog import build_exports
from simulator.population import build_population
from simulator.records import build_records
from simulator.truth import churn_labels, identifiers, person_flags


def generate(config: SimConfig, progress: Progress | None = None) -> SimData:
    """Simulate the brand. Same config (seed included) -> identical frames."""
    rng_pop, rng_days, rng_export, rng_records = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(4)
    )
    pop = build_population(config, rng_pop)
    act, churn_day = simulate_days(config, pop, rng_days, progress)
    if progress:
        progress("build events", 0.0)
    ex = build_exports(config, pop, act, rng_export)
    events = ex["events"]
    if progress:
        progress("build events", 1.0)
    uid = events.loc[events["user_id"].notna(), "_person"].to_numpy(np.int64)
    ecom_people = np.union1d(np.unique(uid), np.nonzero(pop.has_account & pop.existing)[0])
    records, rec_truth = build_records(pop, ecom_people, rng_records)
    if progress:
        progress("build records", 1.0)
    sessions = pd.DataFrame({k: act["session"][k] for k in ("person", "first", "logged")})
    rec_all = pd.concat([df.assign(source=s) for s, df in records.items()], ignore_index=True)
    rec_all = rec_all.merge(rec_truth[["source", "record_id", "person_id"]], on=["source", "record_id"])
    rec_all["_person"] = rec_all["person_id"].str[1:].astype(np.int64)
    tx = ex["transactions"].assign(person_id=ex["transactions_truth"]["person_id"].to_numpy())
    events["person_id"] = pop.person_id[events["_person"].to_numpy()]
    truth = {
        "persons": pd.concat(
            [person_flags(pop, events, sessions, rec_all, churn_day, config), ex["network_truth"]], axis=1
        ),
        "identifiers": identifiers(events, rec_all, tx),
        "records": rec_truth,
        "events": events[["event_id", "person_id"]].copy(),
        "transactions": ex["transactions_truth"],
        "churn": churn_labels(config, pop, events, churn_day),
        "offers": ex["offer_truth"],
    }
    events = events.drop(columns=["_person", "person_id"])
    if progress:
        progress("truth", 1.0)
    return SimData(
        events=events,
        records=records,
        transactions=ex["transactions"],
        decisions=ex["decisions"],
        truth=truth,
    )
