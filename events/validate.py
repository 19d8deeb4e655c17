"""Vectorised validation: the rules of the contract's pydantic models (``contract.schemas``), column-wise.

Each ``check_*`` takes a frame whose columns are already named like the contract (after ``--map``) and
returns a :class:`Checked`: the canonical typed columns for every row, and for each rejected row the
field it failed on and why. A row gets the first rule it breaks, in the order pydantic would report
(raw email/phone first, then fields, then cross-field rules). ``tests/events`` pins that these verdicts
match the pydantic models on generated rows.

Deliberate leniencies, identical for every row: ids and text given as numbers are cast to text; a JSON
string is accepted wherever an object is (``properties``, ``consent``); columns that are not contract
fields are event properties (events), extra identifiers (records) or context (decisions); naive
timestamps are read in ``tz`` (``tz=None`` rejects them, as ``AwareDatetime`` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.normalize import _EMAIL_RE, check_phone_region, normalize_email_series, normalize_phone_series
from contract.schemas import (
    AUTHENTICATED_TYPES,
    IDENTIFIER_TYPES,
    PURCHASE_TYPES,
    Channel,
    CustomerRecord,
    Event,
    EventType,
)
from events.columns import (
    as_number,
    as_text,
    blank_as_missing,
    column,
    is_junk,
    is_null,
    length_outside,
    sha256_text,
    text,
    to_numpy_bool,
    truthy,
)
from events.properties import check_consent, gather
from events.timestamps import parse_timestamps

EVENT_FIELDS: frozenset[str] = frozenset({*Event.model_fields, "email", "phone"})
RECORD_FIELDS: tuple[str, ...] = tuple(k for k in CustomerRecord.model_fields if k != "extra_ids")
TEXT_PROPS: tuple[str, ...] = ("product_id", "category", "order_id", "offer_id", "query")
_SHA256 = r"^[0-9a-f]{64}\n?$"  # Python's `$` also matches before a final newline; so does the contract
_EVENT_TYPES = pa.array([t.value for t in EventType])
_CHANNELS = pa.array([c.value for c in Channel])


class Blame:
    """First failure per row wins: a code per row indexing (field, reason) labels."""

    def __init__(self, n: int) -> None:
        self.code = np.zeros(n, dtype=np.int32)
        self.labels: list[tuple[str | None, str | None]] = [(None, None)]
        self._index: dict[tuple[str, str], int] = {}

    def fail(self, mask: np.ndarray, field: str, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool) & (self.code == 0)
        if mask.any():
            key = (field, reason)
            if key not in self._index:
                self._index[key] = len(self.labels)
                self.labels.append(key)
            self.code[mask] = self._index[key]

    def fail_each(self, reasons: np.ndarray, field: str) -> None:
        """Per-row reasons (None = fine) for one field."""
        for reason in pd.unique(reasons[reasons != None]):  # noqa: E711 (element-wise)
            self.fail(reasons == reason, field, str(reason))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        fields = np.array([f for f, _ in self.labels], dtype=object)
        reasons = np.array([r for _, r in self.labels], dtype=object)
        return fields[self.code], reasons[self.code]


@dataclass
class Checked:
    """Canonical columns for all rows, plus the verdict per row."""

    table: pa.Table
    field: np.ndarray  # object: None where the row is valid
    reason: np.ndarray
    extras: pd.Series | None = None  # events: nested extra properties (dict or None)
    extra_columns: list[str] = field(default_factory=list)  # columns of `table` that are extras / context

    @property
    def ok(self) -> np.ndarray:
        return np.asarray(self.field == None, dtype=bool)  # noqa: E711 (element-wise)


def _text(
    b: Blame,
    df: pd.DataFrame,
    name: str,
    lo: int = 0,
    hi: int | None = None,
    *,
    required: bool = False,
    label: str | None = None,
) -> pa.Array:
    arr = text(df, name)
    if required:
        b.fail(is_null(arr), label or name, "required")
    if lo or hi is not None:
        b.fail(length_outside(arr, lo, hi), label or name, _length_reason(lo, hi))
    return arr


def _length_reason(lo: int, hi: int | None) -> str:
    if hi is None:
        return "must not be empty" if lo == 1 else f"must have at least {lo} characters"
    return f"must have {lo} to {hi} characters" if lo else f"must have at most {hi} characters"


def _number(
    b: Blame,
    values: pd.Series,
    label: str,
    *,
    required: bool = False,
    minimum: float | None = None,
    exclusive: bool = False,
    maximum: float | None = None,
    integer: bool = False,
) -> np.ndarray:
    x, bad = as_number(values)
    if required:
        b.fail(np.isnan(x) & ~bad, label, "required")
    b.fail(bad, label, "not a number")
    with np.errstate(invalid="ignore"):
        if integer:
            b.fail(~np.isnan(x) & ~(np.isfinite(x) & (x == np.floor(x))), label, "must be a whole number")
        if minimum is not None:
            low = (x <= minimum) if exclusive else (x < minimum)
            b.fail(low, label, f"must be {'>' if exclusive else '>='} {minimum:g}")
        if maximum is not None:
            b.fail(x > maximum, label, f"must be <= {maximum:g}")
    return x


def _raw_pii(raw: pd.Series, given: pa.Array, normalize, valid) -> tuple[pa.Array, np.ndarray]:  # type: ignore[no-untyped-def]
    """Hash a raw email/phone column unless a digest is given (as the contract's before-validator does)."""
    use = raw.notna().to_numpy() & ~truthy(given)
    if not use.any():
        return given, np.zeros(len(raw), dtype=bool)
    text = pd.Series(as_text(raw[use]).to_pandas(), dtype="string")
    norm = normalize(text)
    ok = valid(norm)
    hashed = sha256_text(norm.where(ok))
    merged = np.asarray(given.to_numpy(zero_copy_only=False), dtype=object)
    merged[np.flatnonzero(use)] = hashed.to_numpy(zero_copy_only=False)
    bad = np.zeros(len(raw), dtype=bool)
    bad[np.flatnonzero(use)] = ~ok.to_numpy()
    return pa.array(merged, type=pa.string()), bad


def email_ok(norm: pd.Series) -> pd.Series:
    return norm.str.match(_EMAIL_RE.pattern).fillna(False).astype(bool)


def phone_ok(norm: pd.Series) -> pd.Series:
    return norm.str.lstrip("+").str.len().between(6, 15).fillna(False).astype(bool)


def check_events(
    df: pd.DataFrame,
    *,
    tz: str | None = "UTC",
    negative_revenue: bool = False,
    date_format: str | None = None,
    phone_region: str | None = None,
) -> Checked:
    """The rules of ``contract.schemas.Event`` (``negative_revenue`` admits returns from transactions;
    ``date_format``: see ``events.timestamps``; ``phone_region``: the region of raw phones without a country
    code, see ``contract.normalize``).

    Small batches (live ingestion) are checked row by row (``events.rowwise``, same results, ~20x cheaper
    per call); larger ones, and shapes the row-wise path does not cover, column-wise.
    """
    from events import rowwise

    phone_region = check_phone_region(phone_region)
    if len(df) <= rowwise.SMALL_BATCH and date_format is None:
        try:
            return rowwise.check_events_small(df, tz, negative_revenue, phone_region)
        except (rowwise.Unsupported, pa.ArrowException, UnicodeError):
            pass
    return check_events_columnwise(
        df, tz=tz, negative_revenue=negative_revenue, date_format=date_format, phone_region=phone_region
    )


def check_events_columnwise(
    df: pd.DataFrame,
    *,
    tz: str | None = "UTC",
    negative_revenue: bool = False,
    date_format: str | None = None,
    phone_region: str | None = None,
) -> Checked:
    """``check_events`` over whole columns (pandas/Arrow/DuckDB): the batch importer's path."""
    n = len(df)
    b = Blame(n)
    ids: dict[str, pa.Array] = {}
    ids["email_sha256"], bad = _raw_pii(
        column(df, "email"), text(df, "email_sha256"), normalize_email_series, email_ok
    )
    b.fail(bad, "email", "not a valid email address")
    ids["phone_sha256"], bad = _raw_pii(
        column(df, "phone"),
        text(df, "phone_sha256"),
        partial(normalize_phone_series, region=phone_region),
        phone_ok,
    )
    b.fail(bad, "phone", "not a valid phone number")

    event_id = _text(b, df, "event_id", 1, 128, required=True)
    times = parse_timestamps(column(df, "occurred_at"), tz=tz, date_format=date_format)
    b.fail_each(times.error, "occurred_at")
    type_ = _text(b, df, "type", required=True)
    b.fail(
        ~is_null(type_) & ~to_numpy_bool(pc.is_in(type_, value_set=_EVENT_TYPES)),
        "type",
        "not a known event type",
    )
    channel = _text(b, df, "channel", required=True)
    b.fail(
        ~is_null(channel) & ~to_numpy_bool(pc.is_in(channel, value_set=_CHANNELS)),
        "channel",
        "not a known channel",
    )
    for k in IDENTIFIER_TYPES:
        arr = ids.get(k)
        if arr is None:
            arr = ids[k] = as_text(column(df, k))
        b.fail(length_outside(arr, 1, 256), k, _length_reason(1, 256))
        if k in ("email_sha256", "phone_sha256"):
            sha = to_numpy_bool(pc.match_substring_regex(arr, _SHA256))
            b.fail(~is_null(arr) & ~sha, k, "must be a lower-case hex SHA-256 digest (64 characters)")
        else:
            b.fail(is_junk(arr), k, "placeholder value is not an identifier")
    ip = _text(b, df, "ip", 0, 64)
    user_agent = _text(b, df, "user_agent", 0, 1024)

    g = gather(df, EVENT_FIELDS)
    b.fail_each(g.error, "properties")
    props: dict[str, pa.Array] = {k: as_text(g.props[k]) for k in TEXT_PROPS}
    price = _number(b, g.props["price"], "properties.price", minimum=0)
    quantity = _number(b, g.props["quantity"], "properties.quantity", minimum=1, integer=True)
    revenue = _number(b, g.props["revenue"], "properties.revenue", minimum=None if negative_revenue else 0)
    consent, consent_err = check_consent(g.props["consent"])
    b.fail_each(consent_err, "properties.consent")

    any_id = np.zeros(n, dtype=bool)
    for k in IDENTIFIER_TYPES:
        any_id |= truthy(ids[k])
    b.fail(~any_id, "identifiers", "at least one of " + ", ".join(IDENTIFIER_TYPES) + " is required")
    types = np.asarray(type_.to_numpy(zero_copy_only=False), dtype=object)
    auth = pd.Series(types).isin(sorted(AUTHENTICATED_TYPES - {"purchase"})).to_numpy()
    b.fail(auth & is_null(ids["user_id"]), "user_id", "required for login and signup events")
    buy = pd.Series(types).isin(sorted(PURCHASE_TYPES)).to_numpy()
    b.fail(
        buy & np.isnan(revenue) & np.isnan(price),
        "properties.revenue",
        "required for purchase events (or properties.price)",
    )
    empty = np.ones(n, dtype=bool)
    given = np.flatnonzero(consent.notna().to_numpy())
    empty[given] = [not d for d in consent.iloc[given]]
    b.fail((types == "consent_update") & empty, "properties.consent", "required for consent_update events")

    with np.errstate(invalid="ignore"):
        q = np.where(
            np.isfinite(quantity) & (np.abs(quantity) < 2**62) & (quantity == np.floor(quantity)),
            quantity,
            np.nan,
        )
    cols: dict[str, pa.Array] = {
        "event_id": event_id,
        "occurred_at": pa.array(times.values, type=pa.timestamp("us", tz="UTC"), from_pandas=True),
        "type": type_,
        "channel": channel,
        **{k: ids[k] for k in IDENTIFIER_TYPES},
        "ip": ip,
        "user_agent": user_agent,
        "product_id": props["product_id"],
        "category": props["category"],
        "price": pa.array(price, from_pandas=True),
        "quantity": pa.array(pd.array(q, dtype="Int64")),
        "order_id": props["order_id"],
        "revenue": pa.array(revenue, from_pandas=True),
        "offer_id": props["offer_id"],
        "query": props["query"],
        "consent": pa.array(consent.map(_dumps, na_action="ignore").tolist(), type=pa.string()),
    }
    extra = {f"x:{c}": _arrow(df[c]) for c in g.extra_columns}
    field_, reason = b.arrays()
    return Checked(pa.table({**cols, **extra}), field_, reason, g.extras, list(extra))


def _dumps(d: object) -> str:
    import json

    return json.dumps(d)


def _arrow(s: pd.Series) -> pa.Array:
    """A column as Arrow as-is, or as text when its values do not share a type."""
    try:
        return pa.array(s, from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return as_text(s)


def check_records(
    df: pd.DataFrame, *, source: str, date_format: str | None = None, phone_region: str | None = None
) -> Checked:
    """The rules of ``contract.schemas.CustomerRecord``; `source` fills rows without one; `date_format`
    reads the date of birth (see ``events.timestamps``); `phone_region` reads phones without a country code
    (see ``contract.normalize``)."""
    phone_region = check_phone_region(phone_region)
    n = len(df)
    b = Blame(n)
    src = text(df, "source")
    src = pc.if_else(pc.is_null(src), pa.scalar(source, pa.string()), src)
    b.fail(length_outside(src, 1, None), "source", _length_reason(1, None))
    record_id = _text(b, df, "record_id", 1, required=True)
    texts = {
        k: text(df, k)
        for k in RECORD_FIELDS
        if k not in ("source", "record_id", "email", "phone", "date_of_birth")
    }
    raw_email_text = text(df, "email")
    raw_email = pd.Series(raw_email_text.to_pandas(), dtype="string")
    raw_email = raw_email.where(~is_junk(raw_email_text))  # a placeholder ("N/A") is a missing address
    email = normalize_email_series(raw_email)
    email = email.where(email.str.len() > 0)
    b.fail((email.notna() & ~email_ok(email)).to_numpy(), "email", "not a valid email address")
    email = email.where(email_ok(email))
    phone = normalize_phone_series(pd.Series(text(df, "phone").to_pandas(), dtype="string"), phone_region)
    phone = phone.where(phone.str.len() > 0)
    dob = parse_timestamps(blank_as_missing(column(df, "date_of_birth")), tz="UTC", date_format=date_format)
    dob_err = np.where(dob.error == "required", None, dob.error)
    b.fail_each(dob_err, "date_of_birth")
    literal = pd.Series(text(df, "date_of_birth").to_pandas(), dtype="string").str.strip()
    literal = pd.to_datetime(literal.str.extract(r"^(\d{4}-\d{2}-\d{2})", expand=False), errors="coerce")
    # a literal date as written (no time-zone shift), else the parsed instant's UTC day; nulls stay null
    dates = literal.where(literal.notna(), dob.values.dt.tz_convert("UTC").dt.tz_localize(None))

    for k in ("user_id", "loyalty_id"):  # placeholders are no identifiers: cleared, not rejected
        texts[k] = pc.if_else(pa.array(is_junk(texts[k])), pa.scalar(None, pa.string()), texts[k])
    extras = [c for c in df.columns if c not in RECORD_FIELDS]
    cols = {
        "source": src,
        "record_id": record_id,
        "first_name": texts["first_name"],
        "last_name": texts["last_name"],
        "email": pa.array(email.astype(object).where(email.notna(), None).tolist(), type=pa.string()),
        "email_sha256": sha256_text(email),
        "phone": pa.array(phone.astype(object).where(phone.notna(), None).tolist(), type=pa.string()),
        "phone_sha256": sha256_text(phone.where(phone_ok(phone))),
        "date_of_birth": pc.cast(pa.array(dates, from_pandas=True), pa.date32()),
        **{
            k: texts[k]
            for k in (
                "address_line1",
                "address_line2",
                "city",
                "postcode",
                "region",
                "country",
                "user_id",
                "loyalty_id",
            )
        },
    }
    extra = {f"x:{c}": as_text(df[c]) for c in extras}
    field_, reason = b.arrays()
    return Checked(pa.table({**cols, **extra}), field_, reason, None, list(extra))


def check_decisions(df: pd.DataFrame, *, tz: str | None = "UTC", date_format: str | None = None) -> Checked:
    """The rules of ``contract.schemas.Decision``; other columns are context, kept as they are."""
    b = Blame(len(df))
    decision_id = _text(b, df, "decision_id", 1, required=True)
    customer_id = _text(b, df, "customer_id", 1, required=True)
    times = parse_timestamps(column(df, "occurred_at"), tz=tz, date_format=date_format)
    b.fail_each(times.error, "occurred_at")
    action = _text(b, df, "action", 1, required=True)
    propensity = _number(
        b, column(df, "propensity"), "propensity", required=True, minimum=0, exclusive=True, maximum=1
    )
    reward = _number(b, column(df, "reward"), "reward", required=True)
    base = ("decision_id", "customer_id", "occurred_at", "action", "propensity", "reward")
    cols = {
        "decision_id": decision_id,
        "customer_id": customer_id,
        "occurred_at": pa.array(times.values, type=pa.timestamp("us", tz="UTC"), from_pandas=True),
        "action": action,
        "propensity": pa.array(propensity, from_pandas=True),
        "reward": pa.array(reward, from_pandas=True),
    }
    extra = {c: _arrow(df[c]) for c in df.columns if c not in base}
    field_, reason = b.arrays()
    return Checked(pa.table({**cols, **extra}), field_, reason, None, list(extra))
