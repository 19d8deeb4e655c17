"""Expand the simulated activity into the brand's exports: events, transactions and logged decisions.

Sessions become ordered event sequences with one `np.repeat` per event type; identifiers follow the
identity state of each session (anonymous before login, user_id after, guest email at checkout, ...).

Store visits are identified three ways: a loyalty card (``store_purchase`` with ``loyalty_id`` only), the
customer's account at the till (a row of the transactions export, imported as a ``purchase``), or nothing
at all. The contract needs one identifier per event, so an anonymous store sale carries a one-off receipt
id in ``anonymous_id`` (``rcpt-<hex>``): it links to nobody, as in a real till log. The truth still knows
whose receipt it was.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from simulator.config import CATEGORIES, OFFERS, SimConfig
from simulator.network import network_columns
from simulator.offers import CHANNELS, SEGMENTS
from simulator.population import Population, hex_ids

_NO_OFFER = OFFERS.index("no_offer")
_PRODUCTS_PER_CATEGORY = 40
_QUERY_WORDS = np.array(["", " sale", " new", " best", " cheap", " gift"], dtype=object)
_COLUMNS = (
    "_person", "_t", "type", "channel", "anonymous_id", "device_id", "user_id", "email_sha256", "phone_sha256",
    "loyalty_id", "ip", "user_agent", "product_id", "category", "price", "quantity", "revenue", "order_id",
    "offer_id", "query", "consent", "_device", "_session",
)  # fmt: skip
_CONSENT_KEYS = ("analytics", "personalization", "marketing", "advertising")
_CONSENT_RATES = np.array([0.8, 0.6, 0.45, 0.35])


def _obj(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Object column: ``values`` where ``mask``, else None."""
    out = np.full(len(mask), None, dtype=object)
    out[mask] = np.asarray(values, dtype=object)[mask] if np.ndim(values) else values
    return out


def _catalogue(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Product ids and prices, shape (categories, products)."""
    c, j = np.meshgrid(np.arange(len(CATEGORIES)), np.arange(_PRODUCTS_PER_CATEGORY), indexing="ij")
    ids = ("SKU-" + pd.Series(c.ravel() * 1000 + j.ravel()).astype(str).str.zfill(5)).to_numpy(object)
    level = rng.uniform(2.5, 4.5, len(CATEGORIES))[:, None]
    price = np.round(np.exp(level + rng.normal(0, 0.5, c.shape)), 2) - 0.01
    return ids.reshape(c.shape), np.maximum(price, 0.99)


def email_hashes(pop: Population) -> np.ndarray:
    return np.array([hashlib.sha256(e.strip().lower().encode()).hexdigest() for e in pop.email], dtype=object)


class EventBuilder:
    """Collects event columns from several activity kinds, then sorts and ids them."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {}
        self.n = 0

    def add(self, n: int, **cols: object) -> None:
        for k in [*self.cols, *(c for c in cols if c not in self.cols)]:  # stable order (no sets)
            v = cols.get(k)
            arr = (
                np.full(n, None, dtype=object)
                if v is None
                else (np.full(n, v, dtype=object) if np.ndim(v) == 0 else np.asarray(v))
            )
            self.cols.setdefault(k, [np.full(self.n, None, dtype=object)] if self.n else []).append(arr)
        self.n += n

    def frame(self) -> pd.DataFrame:
        cols = {k: np.concatenate(v) if len(v) > 1 else v[0] for k, v in self.cols.items()}
        return pd.DataFrame({k: cols.get(k, np.full(self.n, None, dtype=object)) for k in _COLUMNS})


def build_exports(
    cfg: SimConfig, pop: Population, act: dict[str, dict[str, np.ndarray]], rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Events (with a hidden ``_person`` column), transactions, decisions and offer truth."""
    sku, price = _catalogue(rng)
    ehash = email_hashes(pop)
    ses = act["session"]
    # anonymous ids: one per (device, cookie generation)
    keys = np.concatenate(
        [
            ses["device"] * 4096 + ses["gen"],
            act.get("email_click", {}).get("device", np.zeros(0, np.int64)) * 4096
            + act.get("email_click", {}).get("gen", np.zeros(0, np.int64)),
        ]
    )
    ukeys = np.unique(keys)
    anon_ids = hex_ids(rng, len(ukeys), "anon-")

    def anon(device: np.ndarray, gen: np.ndarray) -> np.ndarray:
        return anon_ids[np.searchsorted(ukeys, device * 4096 + gen)]

    eb = EventBuilder()
    s = len(ses["person"])
    # --- session events ------------------------------------------------------------------------------
    dec = act.get("decision", {})
    offer_of = np.full(s, -1, np.int64)
    reward_of = np.zeros(s, bool)
    if len(dec.get("session", [])):
        offer_of[dec["session"]] = dec["action"]
        reward_of[dec["session"]] = dec["reward"]
    shown = offer_of >= 0
    shown[shown] = offer_of[shown] != _NO_OFFER
    counts = {
        "start": np.ones(s, np.int64),
        "consent_update": ses["consent"].astype(np.int64),
        "auth": (ses["signup"] | (ses["logged"] & ~ses["app"])).astype(np.int64),
        "search": ses["search"].astype(np.int64),
        "offer_shown": shown.astype(np.int64),
        "product_view": ses["views"],
        "add_to_cart": ses["cart"].astype(np.int64),
        "remove_from_cart": ses["stockout"].astype(np.int64),
        "checkout_start": ses["checkout"].astype(np.int64),
        "offer_accepted": (shown & reward_of).astype(np.int64),
        "purchase": ses["buy"].astype(np.int64),
        "logout": ses["logout"].astype(np.int64),
    }
    si = np.concatenate([np.repeat(np.arange(s), c) for c in counts.values()])
    kind = np.concatenate([np.full(c.sum(), i) for i, c in enumerate(counts.values())])
    order = np.lexsort((kind, si))  # kinds are listed in session order
    si, kind = si[order], kind[order]
    first = np.searchsorted(si, si)  # index of the session's first event
    rank = np.arange(len(si)) - first
    gap = rng.integers(15, 120, s)
    t = ses["t"][si] + rank * gap[si]
    names = np.array(list(counts), dtype=object)
    etype = names[kind]
    app = ses["app"][si]
    etype = np.where(etype == "start", np.where(app, "app_open", "page_view"), etype)
    etype = np.where(etype == "auth", np.where(ses["signup"][si], "signup", "login"), etype)
    person = ses["person"][si]
    logged = ses["logged"][si]
    auth_k = list(counts).index("auth")
    carries_user = logged & ((app & ~ses["signup"][si]) | (kind >= auth_k))
    cat = ses["category"][si]
    prod_j = rng.integers(0, _PRODUCTS_PER_CATEGORY, len(si))
    cart_j = rng.integers(0, _PRODUCTS_PER_CATEGORY, s)[si]
    has_product = np.isin(
        etype, ["product_view", "add_to_cart", "remove_from_cart", "purchase", "checkout_start"]
    )
    j = np.where(etype == "product_view", prod_j, cart_j)
    is_buy = etype == "purchase"
    qty = 1 + (rng.random(len(si)) < 0.2)
    in_cart = np.isin(etype, ["add_to_cart", "remove_from_cart", "purchase"])
    unit = price[cat, j]
    n_orders = int(is_buy.sum())
    order_ids = _obj(np.zeros(len(si)), np.zeros(len(si), bool))
    order_ids[is_buy] = ("WEB-" + pd.Series(np.arange(n_orders)).astype(str).str.zfill(8)).to_numpy(object)
    is_search = etype == "search"
    query = (
        pd.Series(np.asarray(CATEGORIES, object)[cat]).str.replace("_", " ")
        + _QUERY_WORDS[rng.integers(0, 6, len(si))]
    )
    consent = np.full(len(si), None, dtype=object)
    ci = np.nonzero(etype == "consent_update")[0]
    grants = rng.random((len(ci), 4)) < _CONSENT_RATES
    consent[ci] = [dict(zip(_CONSENT_KEYS, map(bool, g), strict=True)) for g in grants]
    offer = np.isin(etype, ["offer_shown", "offer_accepted"])
    dev = ses["device"][si]
    eb.add(
        len(si),
        _person=person,
        _t=t,
        type=etype,
        channel=np.where(app, "app", "web"),
        anonymous_id=anon(dev, ses["gen"][si]),
        device_id=pop.device_id[dev],
        user_id=_obj(pop.user_id[person], carries_user),
        email_sha256=_obj(ehash[person], (is_buy & ses["guest_email"][si]) | (etype == "signup")),
        _device=dev,
        _session=si,
        product_id=_obj(sku[cat, j], has_product),
        category=_obj(np.asarray(CATEGORIES, object)[cat], has_product | is_search),
        price=np.where(has_product, unit, np.nan),
        quantity=np.where(in_cart, qty, np.nan),
        revenue=np.where(is_buy, np.round(unit * qty, 2), np.nan),
        order_id=order_ids,
        offer_id=_obj(np.asarray(OFFERS, object)[np.maximum(offer_of[si], 0)], offer),
        query=_obj(query.to_numpy(object), is_search),
        consent=consent,
    )
    # --- email opens and clicks (a click lands on the web, on whatever device it was read) -------------
    eo, ec = act.get("email_open"), act.get("email_click")
    if eo is not None:
        eb.add(
            len(eo["person"]),
            _person=eo["person"],
            _t=eo["t"],
            type="email_open",
            channel="email",
            email_sha256=ehash[eo["person"]],
        )
    if ec is not None and len(ec["person"]):
        aid, did = anon(ec["device"], ec["gen"]), pop.device_id[ec["device"]]
        click_session = s + np.arange(len(ec["person"]))  # the click and its landing page share a context
        eb.add(
            len(ec["person"]),
            _person=ec["person"],
            _t=ec["t"],
            type="email_click",
            channel="email",
            email_sha256=ehash[ec["person"]],
            anonymous_id=aid,
            device_id=did,
            _device=ec["device"],
            _session=click_session,
        )
        eb.add(
            len(ec["person"]),
            _person=ec["person"],
            _t=ec["t"] + 5,
            type="page_view",
            channel="web",
            anonymous_id=aid,
            device_id=did,
            _device=ec["device"],
            _session=click_session,
        )
    # --- store visits: loyalty card, account at the till (a transaction), or anonymous ----------------
    st = act["store"]
    sj = rng.integers(0, _PRODUCTS_PER_CATEGORY, len(st["person"]))
    sq = 1 + rng.poisson(0.4, len(st["person"]))
    amount = np.round(price[st["category"], sj] * sq, 2)
    store_orders = ("POS-" + pd.Series(np.arange(len(sj))).astype(str).str.zfill(8)).to_numpy(object)
    ev = st["mode"] != 1
    receipts = hex_ids(rng, int((st["mode"] == 2).sum()), "rcpt-")
    anon_store = np.full(len(sj), None, dtype=object)
    anon_store[st["mode"] == 2] = receipts
    eb.add(
        int(ev.sum()),
        _person=st["person"][ev],
        _t=st["t"][ev],
        type="store_purchase",
        channel="store",
        loyalty_id=_obj(pop.loyalty_id[st["person"]], st["mode"] == 0)[ev],
        anonymous_id=anon_store[ev],
        product_id=sku[st["category"], sj][ev],
        category=np.asarray(CATEGORIES, object)[st["category"]][ev],
        price=price[st["category"], sj][ev],
        quantity=sq[ev].astype(float),
        revenue=amount[ev],
        order_id=store_orders[ev],
    )
    tx = st["mode"] == 1
    start = cfg.start_ts
    transactions = pd.DataFrame(
        {
            "customer_id": pop.user_id[st["person"][tx]],
            "occurred_at": start + pd.to_timedelta(st["t"][tx], unit="s"),
            "amount": amount[tx],
            "order_id": store_orders[tx],
            "product_id": sku[st["category"], sj][tx],
            "category": np.asarray(CATEGORIES, object)[st["category"]][tx],
            "quantity": sq[tx],
            "channel": "store",
        }
    )
    tx_truth = pd.DataFrame({"order_id": store_orders[tx], "person_id": pop.person_id[st["person"][tx]]})
    # --- support tickets -----------------------------------------------------------------------------
    tk = act["ticket"]["person"]
    acct = pop.has_account[tk]
    by_phone = ~acct & (rng.random(len(tk)) < 0.5)  # a phone call: the caller's number is all we have
    phash = np.array([hashlib.sha256(x.encode()).hexdigest() for x in pop.phone[tk]], dtype=object)
    eb.add(
        len(tk),
        _person=tk,
        _t=act["ticket"]["t"],
        type="support_ticket",
        channel="support",
        user_id=_obj(pop.user_id[tk], acct),
        email_sha256=_obj(ehash[tk], ~acct & ~by_phone),
        phone_sha256=_obj(phash, by_phone),
    )
    events = eb.frame()
    events = events.iloc[np.lexsort((np.arange(len(events)), events["_t"].to_numpy(np.int64)))].reset_index(
        drop=True
    )
    hidden = {c: pd.to_numeric(events[c]).fillna(-1).astype(np.int64) for c in ("_device", "_session")}
    ip, ua, network_truth = network_columns(cfg, pop, events.assign(**hidden), cfg.seed)
    events["ip"], events["user_agent"] = ip, ua
    events = events.drop(columns=["_device", "_session"])
    events.insert(
        0, "event_id", ("evt-" + pd.Series(np.arange(len(events))).astype(str).str.zfill(9)).to_numpy(object)
    )
    events.insert(1, "occurred_at", start + pd.to_timedelta(events.pop("_t").to_numpy(np.int64), unit="s"))
    for c in ("price", "quantity", "revenue"):
        events[c] = events[c].astype(float)
    events["quantity"] = events["quantity"].astype("Int64")
    decisions, offer_truth = _decisions(cfg, pop, ses, dec)
    return {
        "events": events,
        "transactions": transactions,
        "decisions": decisions,
        "offer_truth": offer_truth,
        "transactions_truth": tx_truth,
        "network_truth": network_truth,
    }


def _decisions(
    cfg: SimConfig, pop: Population, ses: dict[str, np.ndarray], dec: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = len(dec.get("person", []))
    ids = ("dec-" + pd.Series(np.arange(m)).astype(str).str.zfill(8)).to_numpy(object)
    action = dec["action"] if m else np.zeros(0, np.int64)
    decisions = pd.DataFrame(
        {
            "decision_id": ids,
            "customer_id": pop.user_id[dec["person"]] if m else np.zeros(0, object),
            "occurred_at": cfg.start_ts
            + pd.to_timedelta(ses["t"][dec["session"]] + 1 if m else [], unit="s"),
            "action": np.asarray(OFFERS, object)[action],
            "propensity": dec["propensity"][np.arange(m), action] if m else np.zeros(0),
            "reward": dec["reward"].astype(float) if m else np.zeros(0),
            "tenure_days": dec["tenure"].astype(np.int64) if m else np.zeros(0, np.int64),
            "recent_views": dec["recent_views"].astype(np.int64) if m else np.zeros(0, np.int64),
            "segment": np.asarray(SEGMENTS, object)[dec["segment"]] if m else np.zeros(0, object),
            "channel": np.asarray(CHANNELS, object)[dec["channel"]] if m else np.zeros(0, object),
        }
    )
    k = len(OFFERS)
    truth = pd.DataFrame(
        {
            "decision_id": np.repeat(ids, k),
            "person_id": np.repeat(pop.person_id[dec["person"]] if m else np.zeros(0, object), k),
            "action": np.tile(np.asarray(OFFERS, object), m),
            "true_response_probability": dec["truth"].ravel() if m else np.zeros(0),
            "logging_propensity": dec["propensity"].ravel() if m else np.zeros(0),
            "chosen": (np.arange(k)[None, :] == action[:, None]).ravel() if m else np.zeros(0, bool),
        }
    )
    return decisions, truth
