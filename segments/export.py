"""File exports of a segment for ad and email platforms: hashed identifiers only, consent enforced.

One row per (customer, hashed identifier): ``customer_id``, ``segment``, ``identifier_type`` (``email_sha256``
or ``phone_sha256``) and ``sha256`` — SHA-256 of the normalised email (trimmed, lower-case) or phone (E.164,
``Settings.default_phone_region`` reading numbers without a country code; `contract.normalize`), the form
Google Customer Match and Meta Custom Audiences expect. Hashes come from the identity map (``email_sha256`` /
``phone_sha256`` identifiers) and from the customer records' raw emails and phones, re-normalised and hashed
here. No raw email or phone is ever written.

Only customers with the purpose's consent are exported (marketing for email, advertising for ads), taken
fresh from the workspace at export time (`segments.consent`, most restrictive across merged profiles), and
the segment must be activated on that purpose's channel. Everyone left out is counted in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa

from contract.errors import ContractError
from contract.normalize import normalize_email_series, normalize_phone_series, sha256_series
from contract.schemas import ConsentPurpose
from contract.settings import Settings
from contract.workspace import Workspace
from segments.consent import COLUMNS, customer_consent, with_consent
from segments.definitions import CHANNEL_PURPOSE, Definitions
from segments.store import SegmentStore

FORMATS = ("csv", "parquet")
#: Purposes an export may be made for (a file export is email or advertising activation).
EXPORT_PURPOSES = (ConsentPurpose.marketing, ConsentPurpose.advertising)


@dataclass(frozen=True)
class ExportReport:
    path: Path
    segment: str
    purpose: str
    members: int
    exported_customers: int
    rows: int
    excluded_consent: int
    without_identifier: int


def hashed_identifiers(
    ws: Workspace, customer_ids: pd.Series, phone_region: str | None = None
) -> pd.DataFrame:
    """customer_id, identifier_type, sha256 for the given customers (distinct), from the identity map and
    from records (normalised and hashed here; phones without a country code read in `phone_region`)."""
    from identity.resolved import MAP_TABLE

    ids = pa.table({"customer_id": pa.array(customer_ids.astype(str).tolist(), pa.string())})
    parts = []
    with ws.connect(MAP_TABLE, "records") as con:
        con.register("_ids", ids)
        if ws.exists(MAP_TABLE):
            parts.append(
                con.execute(f"""
                SELECT m.customer_id, m.identifier_type, m.identifier_value AS sha256
                FROM {MAP_TABLE} m JOIN _ids USING (customer_id)
                WHERE m.identifier_type IN ('email_sha256', 'phone_sha256')""").df()
            )
            if ws.exists("records"):
                raw = con.execute(f"""
                    SELECT m.customer_id, r.email, r.phone FROM records r
                    JOIN {MAP_TABLE} m ON m.identifier_type = 'record'
                      AND m.identifier_value = r.source || ':' || r.record_id
                    JOIN _ids USING (customer_id)""").df()
                for kind, col, norm in (
                    ("email_sha256", "email", normalize_email_series),
                    ("phone_sha256", "phone", partial(normalize_phone_series, region=phone_region)),
                ):
                    v = raw[["customer_id", col]].dropna()
                    v = v[v[col].astype(str).str.strip() != ""]
                    if len(v):
                        parts.append(
                            pd.DataFrame(
                                {
                                    "customer_id": v["customer_id"].to_numpy(),
                                    "identifier_type": kind,
                                    "sha256": sha256_series(norm(v[col])).astype(object).to_numpy(),
                                }
                            )
                        )
    if not parts:
        return pd.DataFrame(columns=["customer_id", "identifier_type", "sha256"])
    out = pd.concat(parts, ignore_index=True).dropna().drop_duplicates()
    return out.sort_values(["customer_id", "identifier_type", "sha256"], kind="stable").reset_index(drop=True)


def export(
    settings: Settings,
    ws: Workspace,
    segment: str,
    *,
    format: str = "csv",
    purpose: ConsentPurpose | str = ConsentPurpose.marketing,
    out: Path | None = None,
    defs: Definitions | None = None,
) -> ExportReport:
    """Write the segment's consenting members' hashed identifiers to ``out`` (default
    ``<workspace>/exports/<segment>-<purpose>.<format>``)."""
    from segments.build import definitions

    if format not in FORMATS:
        raise ContractError("format", f"must be one of {', '.join(FORMATS)}", format)
    try:
        p = ConsentPurpose(str(getattr(purpose, "value", purpose)))
    except ValueError:
        raise ContractError("purpose", "must be marketing (email) or advertising (ads)", purpose) from None
    if p not in EXPORT_PURPOSES:
        raise ContractError("purpose", "must be marketing (email) or advertising (ads)", p.value)
    seg = (defs or definitions(settings)).segment(segment)
    if seg.stage is None and p not in seg.purposes:
        channels = [c for c, q in CHANNEL_PURPOSE.items() if q == p]
        raise ContractError(
            "purpose",
            f"segment {segment!r} is not activated on {'/'.join(channels)} (its channels: "
            f"{', '.join(seg.channels) or 'none'})",
            p.value,
        )
    members = _all_members(SegmentStore(ws), segment)
    consent = with_consent(members[["customer_id"]], customer_consent(settings, ws), settings)
    allowed = consent.loc[consent[COLUMNS[p.value]], "customer_id"]
    hashed = hashed_identifiers(ws, allowed, settings.default_phone_region)
    hashed.insert(1, "segment", segment)
    path = out or ws.root / "exports" / f"{segment}-{p.value}.{format}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "csv":
        hashed.to_csv(path, index=False)
    else:
        hashed.to_parquet(path, index=False)
    exported = int(hashed["customer_id"].nunique())
    return ExportReport(
        path=path,
        segment=segment,
        purpose=p.value,
        members=len(members),
        exported_customers=exported,
        rows=len(hashed),
        excluded_consent=len(members) - len(allowed),
        without_identifier=len(allowed) - exported,
    )


def _all_members(store: SegmentStore, segment: str) -> pd.DataFrame:
    pages, cursor = [], None
    while True:
        page = store.members(segment, cursor, limit=10_000)
        pages.append(page.rows)
        if page.next_cursor is None:
            return pd.concat(pages, ignore_index=True)
        cursor = page.next_cursor
