"""Transactions become ``purchase`` events: user_id = customer_id, revenue = amount, channel "store" unless
the file has a channel column. Other identifier columns (loyalty_id, email, ...) ride along as the
event's identifiers; any further column is an event property.

The event id is derived, so re-importing the same transactions is idempotent: ``txn:<order_id>`` (plus
``:<product_id>`` when lines carry a product, plus ``:<n>`` for the n-th line of one order and product in
the file, n >= 2: real tills repeat a product within an order), or, without an order id, ``txn:`` + a digest
of the parsed customer, time, amount, product and quantity (two identical lines then count as one).

A file holds lines or whole orders alike: the lines of one order share its time, and the features count a
purchase per instant with purchase lines (`features.compute`), so twenty lines make one order, not twenty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.schemas import AMOUNT_OR_UNIT_PRICE
from events.columns import column, sha256_text, text
from events.timestamps import parse_timestamps
from events.validate import Blame, Checked, _number, _text, check_events

#: Event-rule field names as a transaction file calls them.
_RENAMED = {"user_id": "customer_id", "properties.revenue": "amount"}


def check_transactions(
    df: pd.DataFrame,
    *,
    tz: str | None = "UTC",
    date_format: str | None = None,
    phone_region: str | None = None,
) -> Checked:
    """The rules of ``contract.schemas.Transaction``, then those of the ``purchase`` event it becomes."""
    b = Blame(len(df))
    customer = _text(b, df, "customer_id", 1, required=True)
    times = parse_timestamps(column(df, "occurred_at"), tz=tz, date_format=date_format)
    b.fail_each(times.error, "occurred_at")
    amount = _number(b, column(df, "amount"), "amount")
    unit_price = _number(b, column(df, "unit_price"), "unit_price")
    quantity = _number(b, column(df, "quantity"), "quantity", integer=True)
    with np.errstate(invalid="ignore"):
        b.fail(quantity == 0, "quantity", "must not be 0")
        amount = np.where(np.isnan(amount), unit_price * np.where(np.isnan(quantity), 1.0, quantity), amount)
        b.fail(np.isnan(amount), "amount", AMOUNT_OR_UNIT_PRICE)
        returned = quantity < 0
        b.fail(
            returned & (amount > 0),
            "quantity",
            "negative (units returned) only on a return line (amount <= 0)",
        )
    ev = df.drop(
        columns=[
            c
            for c in ("customer_id", "amount", "unit_price", "revenue", "type", "event_id")
            if c in df.columns
        ]
    )
    ev = ev.assign(
        occurred_at=times.values,  # parsed once: the event rules take the instants (errors are blamed above)
        user_id=pd.Series(customer.to_pandas(), index=df.index, dtype=object),
        revenue=pd.Series(amount, index=df.index),
        type="purchase",
        event_id="txn",
    )
    if returned.any():  # a return line is a purchase event with negative revenue and the units it returns
        ev["quantity"] = column(df, "quantity").where(~returned, pd.Series(-quantity, index=df.index))
    channel = text(df, "channel")
    ev["channel"] = pd.Series(pc.fill_null(channel, "store").to_pandas(), index=df.index, dtype=object)
    checked = check_events(
        ev, tz=tz, negative_revenue=True, date_format=date_format, phone_region=phone_region
    )
    own_field, own_reason = b.arrays()
    mine = own_field != None  # noqa: E711 (element-wise)
    ev_field = np.array([_rename(f) for f in checked.field], dtype=object)
    checked.field = np.where(mine, own_field, ev_field)
    checked.reason = np.where(mine, own_reason, checked.reason)
    table = checked.table.set_column(0, "event_id", event_ids(checked.table))
    checked.table = table
    return checked


def _rename(f: str | None) -> str | None:
    if f is None:
        return None
    if f in _RENAMED:
        return _RENAMED[f]
    return f.removeprefix("properties.")


def event_ids(t: pa.Table) -> pa.Array:
    """Deterministic event ids (see the module docstring)."""
    t = t.combine_chunks()
    readable = pc.binary_join_element_wise("txn", t["order_id"], t["product_id"], ":", null_handling="skip")
    readable = pc.if_else(pc.is_null(t["order_id"]), pa.scalar(None, pa.string()), readable)
    lines = pd.Series(readable.to_numpy(zero_copy_only=False), dtype=object)
    known = lines.notna()
    nth = np.zeros(len(lines), np.int64)
    nth[known.to_numpy()] = lines[known].groupby(lines[known]).cumcount().to_numpy()
    if (nth > 0).any():
        lines = lines.where(nth == 0, lines + ":" + pd.Series(nth + 1).astype(str))
        readable = pa.array(lines.to_numpy(), type=pa.string(), from_pandas=True)
    ok = pc.fill_null(pc.less_equal(pc.utf8_length(readable), 128), False)
    ids = np.asarray(readable.to_numpy(zero_copy_only=False), dtype=object)
    need = np.flatnonzero(~np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool))
    if len(need):
        sub = t.take(pa.array(need))
        parts = [
            sub["user_id"],
            pc.cast(pc.cast(sub["occurred_at"], pa.int64()), pa.string()),
            pc.cast(sub["revenue"], pa.string()),
            sub["order_id"],
            sub["product_id"],
            pc.cast(sub["quantity"], pa.string()),
        ]
        key = pc.binary_join_element_wise(*parts, "|", null_handling="replace", null_replacement="")
        digest = pc.utf8_slice_codeunits(sha256_text(key), 0, 32)
        ids[need] = pc.binary_join_element_wise("txn", digest, ":").to_numpy(zero_copy_only=False)
    return pa.array(ids, type=pa.string())
