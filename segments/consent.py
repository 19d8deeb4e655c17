"""Per-purpose consent per customer, carried through merges: the most restrictive statement wins.

Statements come from ``consent_update`` events (``properties.consent = {purpose: bool}``) and from customer
records (a column ``consent_<purpose>``, or the same key among the record's extra columns, ``extra_ids``;
values true/false, yes/no, 1/0, granted/denied, opt_in/opt_out).

* An original profile is what made the statement: for an event, its most trusted identifier
  (`contract.schemas.IDENTIFIER_TYPES` order: a logged-in update belongs to the user_id, an anonymous banner
  answer to its cookie); for a record, the record (``<source>:<record_id>``).
* Per profile and purpose the latest statement counts (events by ``occurred_at``, records by ``ingested_at``).
* Per customer and purpose: denied if any of its profiles' latest statements denies (a merge never widens
  consent), granted if some profile granted and none denied, and unknown if no profile said anything.
* Unknown takes the default of `Settings.consent_default_granted` (default: analytics and personalization
  granted; marketing and advertising denied until given).

Batch: `customer_consent` in DuckDB over the workspace. Live: `consent_of` over one customer's events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from contract.errors import ContractError
from contract.schemas import IDENTIFIER_TYPES, ConsentPurpose
from contract.settings import Settings
from contract.workspace import Workspace

PURPOSES: tuple[str, ...] = tuple(p.value for p in ConsentPurpose)
COLUMNS: dict[str, str] = {p: f"consent_{p}" for p in PURPOSES}
STATEMENT_COLUMNS: tuple[str, ...] = ("customer_id", "profile", "purpose", "at", "granted")
_TRUE = ("true", "t", "yes", "y", "1", "granted", "grant", "opt_in", "opted_in", "on")
_FALSE = ("false", "f", "no", "n", "0", "denied", "deny", "opt_out", "opted_out", "revoked", "off")


def defaults(settings: Settings) -> dict[str, bool]:
    """Purpose -> granted when nothing is known (from `Settings.consent_default_granted`)."""
    unknown = [p for p in settings.consent_default_granted if p not in PURPOSES]
    if unknown:
        raise ContractError("consent_default_granted", f"unknown purposes {unknown} (known: {PURPOSES})")
    return {p: p in settings.consent_default_granted for p in PURPOSES}


def parse_flag(value: object) -> bool | None:
    """A consent value as a bool; None when absent or not understood."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        return True if v in _TRUE else False if v in _FALSE else None
    return None


def _flag_sql(expr: str) -> str:
    t = ", ".join(f"'{v}'" for v in _TRUE)
    f = ", ".join(f"'{v}'" for v in _FALSE)
    return (
        f"CASE WHEN lower(trim({expr})) IN ({t}) THEN true WHEN lower(trim({expr})) IN ({f}) THEN false END"
    )


def _profile_sql() -> str:
    cases = " ".join(f"WHEN {t} IS NOT NULL THEN '{t}:' || {t}" for t in IDENTIFIER_TYPES)
    return f"CASE {cases} END"


def _statements_sql(con: duckdb.DuckDBPyConnection, ws: Workspace) -> str | None:
    """SQL of the latest statement per (customer, profile, purpose): customer_id, profile, purpose, at,
    granted; None when the workspace holds no statement source."""
    from identity.resolved import MAP_TABLE, attach_customer_ids

    parts: list[str] = []
    if ws.exists("events") and ws.exists(MAP_TABLE):
        view = attach_customer_ids(con)
        for p in PURPOSES:
            parts.append(f"""
                SELECT customer_id, {_profile_sql()} AS profile, '{p}' AS purpose, occurred_at AS "at",
                       {_flag_sql(f"json_extract_string(properties, '$.consent.{p}')")} AS granted
                FROM {view} WHERE type = 'consent_update' AND customer_id IS NOT NULL""")
    if ws.exists("records") and ws.exists(MAP_TABLE):
        cols = {r[0] for r in con.execute("DESCRIBE records").fetchall()}
        for p in PURPOSES:
            raw = f"json_extract_string(r.extra_ids, '$.consent_{p}')"
            if f"consent_{p}" in cols:
                raw = f"coalesce(CAST(r.consent_{p} AS VARCHAR), {raw})"
            parts.append(f"""
                SELECT m.customer_id, 'record:' || r.source || ':' || r.record_id AS profile,
                       '{p}' AS purpose, r.ingested_at AS "at", {_flag_sql(raw)} AS granted
                FROM records r JOIN {MAP_TABLE} m ON m.identifier_type = 'record'
                  AND m.identifier_value = r.source || ':' || r.record_id""")
    if not parts:
        return None
    return f"""
        WITH s AS ({" UNION ALL ".join(parts)})
        SELECT customer_id, profile, purpose, max("at") AS "at", arg_max(granted, "at") AS granted
        FROM s WHERE granted IS NOT NULL GROUP BY customer_id, profile, purpose"""


def statements(settings: Settings, ws: Workspace) -> pd.DataFrame:
    """The latest statement per customer, original profile and purpose (customer_id, profile, purpose, at,
    granted): the state the live path keeps and folds (`fold`)."""
    from identity.resolved import GUARD_TABLE, MAP_TABLE

    with ws.connect("events", "records", MAP_TABLE, GUARD_TABLE) as con:
        sql = _statements_sql(con, ws)
        if sql is None:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in STATEMENT_COLUMNS})
        return con.execute(sql + " ORDER BY customer_id, profile, purpose").df()


def customer_consent(settings: Settings, ws: Workspace) -> pd.DataFrame:
    """customer_id + ``consent_<purpose>`` (nullable boolean: None = nothing known) for every customer with
    a statement, folded most-restrictive-first over its profiles. Empty when nothing was stated."""
    from identity.resolved import GUARD_TABLE, MAP_TABLE

    with ws.connect("events", "records", MAP_TABLE, GUARD_TABLE) as con:
        latest = _statements_sql(con, ws)
        if latest is None:
            return pd.DataFrame({"customer_id": pd.Series(dtype="object")}).assign(
                **{c: pd.Series(dtype="boolean") for c in COLUMNS.values()}
            )
        pivot = ", ".join(
            f"bool_and(granted) FILTER (WHERE purpose = '{p}') AS {c}" for p, c in COLUMNS.items()
        )
        out = con.execute(
            f"SELECT customer_id, {pivot} FROM ({latest}) GROUP BY customer_id ORDER BY customer_id"
        ).df()
    return out.astype({c: "boolean" for c in COLUMNS.values()})


def with_consent(frame: pd.DataFrame, consent: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """``frame`` (with customer_id) plus plain-bool ``consent_<purpose>`` columns, defaults filled in."""
    out = frame.drop(columns=[c for c in COLUMNS.values() if c in frame.columns]).merge(
        consent[["customer_id", *COLUMNS.values()]], on="customer_id", how="left"
    )
    for p, granted in defaults(settings).items():
        col = out[COLUMNS[p]].astype("boolean")
        out[COLUMNS[p]] = col.fillna(granted).to_numpy(dtype=bool)
    return out


# --- live: one customer's events ------------------------------------------------------------------------


def _consent_of_props(props: object) -> Mapping[str, Any]:
    if isinstance(props, str):
        try:
            props = json.loads(props)
        except ValueError:
            return {}
    if isinstance(props, Mapping):
        c = props.get("consent")
        if isinstance(c, str):
            try:
                c = json.loads(c)
            except ValueError:
                return {}
        return c if isinstance(c, Mapping) else {}
    return {}


def statements_of(
    events: pd.DataFrame | Iterable[Mapping[str, Any]],
    customer_ids: Iterable[str] | None = None,
    records: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Latest statement per (customer, profile, purpose) in a few events (rows that are not
    ``consent_update`` are ignored) and records; ``customer_ids`` gives each event's customer (default: its
    ``customer_id`` field), records need a ``customer_id`` column. Same rules as `statements`."""
    rows = events.to_dict("records") if isinstance(events, pd.DataFrame) else list(events)
    owners = list(customer_ids) if customer_ids is not None else [e.get("customer_id") for e in rows]
    latest: dict[tuple[str, str, str], tuple[pd.Timestamp, bool]] = {}

    def state(customer: str, profile: str, purpose: str, at: Any, flag: bool | None) -> None:
        if flag is None:
            return
        key, t = (customer, profile, purpose), pd.Timestamp(at)
        if key not in latest or t >= latest[key][0]:
            latest[key] = (t, flag)

    for e, customer in zip(rows, owners, strict=True):
        if e.get("type") != "consent_update":
            continue
        profile = next((f"{t}:{e[t]}" for t in IDENTIFIER_TYPES if e.get(t)), f"event:{e.get('event_id')}")
        for p, v in _consent_of_props(e.get("properties")).items():
            if p in PURPOSES:
                state(str(customer), profile, p, e["occurred_at"], parse_flag(v))
    for r in records.to_dict("records") if records is not None else []:
        extra = _consent_of_props({"consent": r.get("extra_ids")}) if r.get("extra_ids") else {}
        profile = f"record:{r.get('source')}:{r.get('record_id')}"
        for p in PURPOSES:
            v = r.get(f"consent_{p}")
            v = extra.get(f"consent_{p}") if v is None or (isinstance(v, float) and np.isnan(v)) else v
            state(str(r.get("customer_id")), profile, p, r.get("ingested_at"), parse_flag(v))
    return pd.DataFrame(
        [(c, prof, p, t, g) for (c, prof, p), (t, g) in latest.items()], columns=list(STATEMENT_COLUMNS)
    )


def fold(statements: pd.DataFrame, settings: Settings) -> dict[str, dict[str, bool]]:
    """customer -> purpose -> granted: denied if any profile's latest statement denies, else granted if one
    grants, else the default. For the few customers of a live batch (not vectorised)."""
    base = defaults(settings)
    out: dict[str, dict[str, bool]] = {}
    for (customer, purpose), granted in statements.groupby(["customer_id", "purpose"])["granted"]:
        out.setdefault(str(customer), dict(base))[str(purpose)] = bool(granted.astype(bool).all())
    return out


def consent_of(
    events: pd.DataFrame | Iterable[Mapping[str, Any]],
    settings: Settings,
    records: pd.DataFrame | None = None,
) -> dict[str, bool]:
    """Consent of ONE customer (purpose -> granted) from its events and, optionally, its customer records;
    the same rules as `customer_consent`, defaults filled in."""
    rows = events.to_dict("records") if isinstance(events, pd.DataFrame) else list(events)
    recs = records.assign(customer_id="_") if records is not None else None
    folded = fold(statements_of(rows, ["_"] * len(rows), recs), settings)
    return folded.get("_", defaults(settings))
