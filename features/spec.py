"""What the customer features are, once: event counters, windows, latest-of instants and every output formula.

Two engines run this one definition and must agree to the last digit the data allows:

* `features.compute`: one DuckDB statement (batch snapshots and training; plain SQL, so a Spark profile can
  run the same text);
* `features.compute_live`: NumPy over the few customers an event touches (the live path, where DuckDB's fixed
  ~30 ms planning cost per statement is the whole latency budget).

Both build the same per-(customer, instant) *state* from the events (running totals of each counter, latest
instant of each kind, session start, last category) and read it *as of* an instant and at the window starts;
the outputs are `features.expr` formulas over that state (`b.*` the state as of the row's instant, `w7.*` etc.
folded in as `b.w7_*`, `k.`/`c.`/`p.` the cart and category parts), rendered to SQL or evaluated in NumPy.
"""

from __future__ import annotations

from contract.schemas import PURCHASE_TYPES
from features.expr import (
    Expr,
    Lit,
    Minutes,
    bigint,
    coalesce,
    col,
    double,
    epoch,
    floor,
    greatest,
    isin,
    nullif,
    when,
)

#: A gap longer than this between two events of a customer starts a new session.
SESSION_GAP_MINUTES = 30

#: Columns the feature function needs in its events input.
EVENT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "occurred_at",
    "type",
    "category",
    "revenue",
    "price",
    "quantity",
)

# --- per event (`e`): type, amount = coalesce(revenue, price * coalesce(quantity, 1)), quantity, ts ---------
_TYPE, _AMOUNT, _QTY = col("e.type"), col("e.amount"), col("e.quantity")
IS_PURCHASE = isin(_TYPE, sorted(PURCHASE_TYPES))
#: A purchase that is not a return: it counts as a purchase and sets the purchase instants.
PAID = IS_PURCHASE & (coalesce(_AMOUNT, 0) >= 0)


def _is(kind: str) -> Expr:
    return _TYPE.eq(kind)


#: Additive counters kept as running totals: name -> value of one event row `e`.
COUNTERS: dict[str, Expr] = {
    "events": Lit(1),
    "purchases": when(PAID, 1, 0),
    "revenue": when(IS_PURCHASE, coalesce(_AMOUNT, 0), 0),
    "product_views": when(_is("product_view"), 1, 0),
    "cart_adds": when(_is("add_to_cart"), 1, 0),
    "email_opens": when(_is("email_open"), 1, 0),
    "email_clicks": when(_is("email_click"), 1, 0),
    "support_tickets": when(_is("support_ticket"), 1, 0),
    "cart_qty": when(
        _is("add_to_cart"), coalesce(_QTY, 1), when(_is("remove_from_cart"), 0 - coalesce(_QTY, 1), 0)
    ),
}
#: Counted once per instant (max, not sum): the lines of one order share its time, so a 20-line invoice is
#: one purchase (revenue still adds up every line).
PER_INSTANT = frozenset({"purchases"})
#: Running totals: the counters, plus sessions, active days and purchase days (flags on each customer's
#: instants: a purchase day is a UTC day with a purchase, counted at its first purchase instant).
RUNNING: tuple[str, ...] = (*COUNTERS, "sessions", "active_days", "purchase_days")

#: Events whose latest instant is kept: name -> which events (a predicate over one event row `e`).
LAST_OF: dict[str, Expr] = {
    "email_open": _is("email_open"),
    "email_click": _is("email_click"),
    "cart_add": _is("add_to_cart"),
    "product_view": _is("product_view"),
    "support_ticket": _is("support_ticket"),
}

#: Window lengths in days; the state is read as of each window's start too (`b.w{d}_<running>`).
WINDOW_DAYS: tuple[int, ...] = (7, 30, 90)
_WINDOWS: tuple[tuple[str, int, str], ...] = (
    *(("events", d, "BIGINT") for d in (7, 30, 90)),
    *(("sessions", d, "BIGINT") for d in (7, 30, 90)),
    *(("purchases", d, "BIGINT") for d in (7, 30, 90)),
    *(("revenue", d, "DOUBLE") for d in (7, 30, 90)),
    *(("product_views", d, "BIGINT") for d in (7, 30)),
    ("email_opens", 30, "BIGINT"),
    ("email_clicks", 30, "BIGINT"),
    *(("support_tickets", d, "BIGINT") for d in (30, 90)),
)

_DAY = 86400.0
b = col  # state columns read as `b.<name>`


def _days(expr: Expr) -> Expr:
    return epoch(expr) / _DAY


def _since(ts: str) -> Expr:
    """Days from the state's instant `b.<ts>` to the row's as_of (null when there is none)."""
    return _days(b("b.t") - b(f"b.{ts}"))


def _window(name: str, days: int, kind: str = "BIGINT") -> Expr:
    delta = coalesce(b(f"b.c_{name}"), 0) - coalesce(b(f"b.w{days}_{name}"), 0)
    return bigint(delta) if kind == "BIGINT" else double(delta)


def _share(num: str, den: str) -> Expr:
    """num / den, null when den is 0 (no activity in the longer window)."""
    return double(col(num)) / nullif(col(den), 0)


def _gap(first: str, last: str, count: str) -> Expr:
    """Mean gap in days between `count` occurrences from `first` to `last` (null below two)."""
    n = b(f"b.{count}")
    return when(n >= 2, _days(b(f"b.{last}") - b(f"b.{first}")) / (n - 1))


def _outputs() -> dict[str, Expr]:
    active_gap = _gap("first_ts", "last_ts", "c_active_days")
    purchase_gap = _gap("first_purchase_ts", "last_purchase_ts", "c_purchases")
    return {
        "days_since_last_event": _since("last_ts"),
        "days_since_last_purchase": _since("last_purchase_ts"),
        "days_since_first_seen": _since("first_ts"),
        **{f"{n}_{d}d": _window(n, d, k) for n, d, k in _WINDOWS},
        "avg_order_value_90d": when(col("purchases_90d") > 0, col("revenue_90d") / col("purchases_90d")),
        "cart_adds_no_purchase_30d": bigint(coalesce(col("k.cart_adds_no_purchase_30d"), 0)),
        "distinct_categories_30d": bigint(coalesce(col("c.distinct_categories_30d"), 0)),
        **{f"active_days_{d}d": _window("active_days", d) for d in WINDOW_DAYS},
        "active_days_total": bigint(coalesce(b("b.c_active_days"), 0)),
        "events_total": bigint(coalesce(b("b.c_events"), 0)),
        "purchases_total": bigint(coalesce(b("b.c_purchases"), 0)),
        "purchase_days_total": bigint(coalesce(b("b.c_purchase_days"), 0)),
        "revenue_total": double(coalesce(b("b.c_revenue"), 0)),
        "days_since_first_purchase": _since("first_purchase_ts"),
        **{f"days_since_last_{k}": _since(f"last_{k}_ts") for k in LAST_OF if k != "support_ticket"},
        "days_since_support_ticket": _since("last_support_ticket_ts"),
        "active_gap_mean_days": active_gap,
        "overdue_ratio_active": _since("last_ts") / nullif(active_gap, 0),
        "purchase_gap_mean_days": purchase_gap,
        "overdue_ratio_purchase": _since("last_purchase_ts") / nullif(purchase_gap, 0),
        "activity_rate_tenure": double(coalesce(b("b.c_active_days"), 0)) / greatest(_since("first_ts"), 1.0),
        "share_events_7d_of_30d": _share("events_7d", "events_30d"),
        "share_events_30d_of_90d": _share("events_30d", "events_90d"),
        "share_active_days_30d_of_90d": _share("active_days_30d", "active_days_90d"),
        "share_purchases_30d_of_90d": _share("purchases_30d", "purchases_90d"),
        "snapshot_at": bigint(floor(epoch(b("b.as_of")))),
    }


#: Every batch feature (plus `snapshot_at`), in output order: name -> formula over the state.
OUTPUTS: dict[str, Expr] = _outputs()

#: The short live windows (the `customer_live` view), appended after OUTPUTS when asked for.
LIVE: dict[str, Expr] = {
    "events_30m": bigint(coalesce(b("b.c_events"), 0) - coalesce(b("b.m30_events"), 0)),
    "events_today": bigint(coalesce(b("b.c_events"), 0) - coalesce(b("b.day_events"), 0)),
    "session_minutes": when(
        b("b.t") - b("b.last_ts") <= Minutes(SESSION_GAP_MINUTES),
        epoch(b("b.t") - b("b.session_start_ts")) / 60.0,
        0.0,
    ),
    "cart_items": bigint(greatest(coalesce(b("b.c_cart_qty"), 0) - coalesce(b("p.c_cart_qty"), 0), 0)),
    "minutes_since_last_event": epoch(b("b.t") - b("b.last_ts")) / 60.0,
    "last_category": b("b.last_category"),
}
#: The live feature names, in the order `customer_features(..., live=True)` appends them.
LIVE_COLUMNS: tuple[str, ...] = tuple(LIVE)


def output_kind(expr: Expr) -> str:
    """'BIGINT', 'DOUBLE' or 'VARCHAR': the SQL type a formula yields (what the NumPy engine casts to)."""
    from features.expr import Col, Func

    if isinstance(expr, Func) and expr.name == "cast_bigint":
        return "BIGINT"
    if isinstance(expr, Col) and expr.name == "b.last_category":
        return "VARCHAR"
    return "DOUBLE"
