"""The population: people, households, devices, accounts, cards and latent traits (all vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.config import CATEGORIES, DEVICE_KINDS, SimConfig
from simulator.names import EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, PLACES, STREETS

MAX_SLOTS = 4  # three own device kinds + one shared household device


def hex_ids(rng: np.random.Generator, n: int, prefix: str, digits: int = 16) -> np.ndarray:
    """``n`` distinct random-looking ids ``<prefix><hex>`` (object array)."""
    vals = rng.integers(0, 2**62, size=n, dtype=np.int64)
    while len(np.unique(vals)) < n:  # astronomically rare; keeps ids unique for the truth
        vals = np.unique(np.concatenate([vals, rng.integers(0, 2**62, size=n, dtype=np.int64)]))[:n]
    s = pd.Series(vals).map(lambda v: format(v, "016x")[-digits:])
    return (prefix + s).to_numpy(dtype=object)


def digit_ids(rng: np.random.Generator, n: int, prefix: str, digits: int) -> np.ndarray:
    """``n`` distinct zero-padded numeric ids."""
    vals = rng.choice(10**digits, size=n, replace=False) if n < 10**digits else np.arange(n)
    return (prefix + pd.Series(vals).astype(str).str.zfill(digits)).to_numpy(dtype=object)


@dataclass
class Population:
    n: int
    person_id: np.ndarray
    household_id: np.ndarray
    partner: np.ndarray  # index of the household partner or -1
    first_name: np.ndarray
    last_name: np.ndarray
    email: np.ndarray
    phone: np.ndarray  # E.164 (+44...)
    dob: np.ndarray  # datetime64[D]
    street: np.ndarray  # "12 High Street"
    city: np.ndarray
    region: np.ndarray
    postcode: np.ndarray
    store_only: np.ndarray
    has_account: np.ndarray
    existing: np.ndarray
    has_loyalty: np.ndarray
    in_crm: np.ndarray
    user_id: np.ndarray  # None where no account
    loyalty_id: np.ndarray
    customer_number: np.ndarray
    arrival_day: np.ndarray
    base_rate: np.ndarray
    drift: np.ndarray
    decliner: np.ndarray
    store_rate: np.ndarray
    price_sensitivity: np.ndarray
    content_affinity: np.ndarray
    interest: np.ndarray  # (n, categories) probabilities
    tenure0: np.ndarray  # account age in days at the start
    email_subscribed: np.ndarray
    shared_email: np.ndarray  # this person's CRM email is the partner's (family address)
    # devices
    device_kind: np.ndarray  # (n_devices,) index into DEVICE_KINDS
    device_id: np.ndarray
    device_shared: np.ndarray
    slots: np.ndarray  # (n, MAX_SLOTS) device index or -1
    slot_weight: np.ndarray  # (n, MAX_SLOTS) choice weights (0 where empty)


def _households(cfg: SimConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = cfg.customers
    pairs = int(n * cfg.household_share) // 2
    order = rng.permutation(n)
    partner = np.full(n, -1, dtype=np.int64)
    a, b = order[: 2 * pairs : 2], order[1 : 2 * pairs : 2]
    partner[a], partner[b] = b, a
    household = np.arange(n, dtype=np.int64)
    household[b] = a  # a household is named after its first member
    _, household = np.unique(household, return_inverse=True)
    return partner, household


def _emails(first: np.ndarray, last: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = pd.Series(first).str.lower()
    la = pd.Series(last).str.lower().str.replace("'", "", regex=False)
    style = rng.integers(0, 4, len(first))
    local = np.select(
        [style == 0, style == 1, style == 2],
        [f + "." + la, f + la, f.str[0] + "." + la],
        f + "_" + la,
    )
    num = pd.Series(rng.integers(1, 999, len(first))).astype(str)
    with_num = rng.random(len(first)) < 0.6
    local = np.where(with_num, pd.Series(local) + num, local)
    dom = np.asarray(EMAIL_DOMAINS, dtype=object)[rng.integers(0, len(EMAIL_DOMAINS), len(first))]
    email = pd.Series(local) + "@" + pd.Series(dom)
    dup = email.duplicated(keep="first")  # the truth needs one owner per address: disambiguate
    d = dup.to_numpy()
    email[dup] = [
        f"{a}.{i}@{b}" for a, i, b in zip(np.asarray(local)[d], np.nonzero(d)[0], dom[d], strict=True)
    ]
    return email.to_numpy(dtype=object)


def addresses(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Random UK-style addresses (street, city, region, postcode)."""
    place = rng.integers(0, len(PLACES), n)
    city = np.asarray([p[0] for p in PLACES], dtype=object)[place]
    region = np.asarray([p[1] for p in PLACES], dtype=object)[place]
    area = pd.Series(np.asarray([p[2] for p in PLACES], dtype=object)[place])
    letters = np.asarray(list("ABDEFGHJLNPQRSTUWXYZ"), dtype=object)
    pc = (
        area
        + pd.Series(rng.integers(1, 30, n)).astype(str)
        + " "
        + pd.Series(rng.integers(1, 10, n)).astype(str)
        + pd.Series(letters[rng.integers(0, 20, n)])
        + pd.Series(letters[rng.integers(0, 20, n)])
    )
    street = (
        pd.Series(rng.integers(1, 200, n)).astype(str)
        + " "
        + pd.Series(np.asarray(STREETS, dtype=object)[rng.integers(0, len(STREETS), n)])
    )
    return {
        "street": street.to_numpy(dtype=object),
        "city": city,
        "region": region,
        "postcode": pc.to_numpy(dtype=object),
    }


def _devices(
    cfg: SimConfig, rng: np.random.Generator, online: np.ndarray, partner: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(online)
    primary = rng.choice(len(DEVICE_KINDS), size=n, p=[0.3, 0.45, 0.25])
    owns = (rng.random((n, len(DEVICE_KINDS))) < cfg.extra_device_rate) | (
        np.arange(len(DEVICE_KINDS))[None, :] == primary[:, None]
    )
    owns &= online[:, None]
    owner, kind = np.nonzero(owns)
    weight = np.where(kind == primary[owner], 1.0, 0.45)
    # shared household device: one desktop used by both partners
    first_of_pair = (partner > np.arange(n)) & online & (partner >= 0)
    first_of_pair &= online[np.maximum(partner, 0)]
    share = first_of_pair & (rng.random(n) < cfg.shared_device_share)
    sharers = np.nonzero(share)[0]
    n_own = len(owner)
    n_dev = n_own + len(sharers)
    device_kind = np.concatenate([kind, np.zeros(len(sharers), dtype=np.int64)])
    device_shared = np.concatenate([np.zeros(n_own, bool), np.ones(len(sharers), bool)])
    slots = np.full((n, MAX_SLOTS), -1, dtype=np.int64)
    slot_weight = np.zeros((n, MAX_SLOTS))
    slots[owner, kind] = np.arange(n_own)
    slot_weight[owner, kind] = weight
    shared_idx = n_own + np.arange(len(sharers))
    for members in (sharers, partner[sharers]):
        slots[members, 3] = shared_idx
        slot_weight[members, 3] = 0.7
    device_id = hex_ids(rng, n_dev, "dev-")
    return device_kind, device_id, device_shared, slots, slot_weight


def build_population(cfg: SimConfig, rng: np.random.Generator) -> Population:
    n = cfg.customers
    partner, household = _households(cfg, rng)
    first = np.asarray(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.asarray(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
    has_p = partner >= 0
    same_last = has_p & (rng.random(n) < 0.7)
    lead = np.minimum(np.arange(n), np.where(has_p, partner, np.arange(n)))
    last = np.where(same_last, last[lead], last)
    addr = addresses(rng, n)
    for k in addr:  # a household shares its address
        addr[k] = addr[k][np.where(has_p, lead, np.arange(n))]
    phone = ("+447" + pd.Series(rng.integers(100_000_000, 999_999_999, n)).astype(str)).to_numpy(dtype=object)
    dob = (np.datetime64("1950-01-01") + rng.integers(0, 365 * 55, n).astype("timedelta64[D]")).astype(
        "datetime64[D]"
    )

    store_only = rng.random(n) < cfg.store_only_share
    online = ~store_only
    has_account = online & (rng.random(n) >= cfg.never_login_share)
    existing = rng.random(n) < cfg.existing_share
    has_loyalty = rng.random(n) < np.where(store_only, 0.85, cfg.loyalty_share)
    in_crm = (rng.random(n) < cfg.crm_share) | (existing & has_account & (rng.random(n) < 0.5))
    user_id = np.where(has_account, digit_ids(rng, n, "U", 8), None)
    loyalty_id = np.where(has_loyalty, digit_ids(rng, n, "LOY", 10), None)
    customer_number = digit_ids(rng, n, "CN-", 7)

    horizon = cfg.days
    arrival = np.where(
        existing, rng.integers(0, min(14, horizon), n), rng.integers(0, max(horizon - 3, 1), n)
    )
    base_rate = cfg.sessions_per_day * rng.lognormal(-0.5, 1.0, n) * online
    decliner = rng.random(n) < cfg.decliner_share
    drift = np.where(decliner, -rng.uniform(0.01, 0.06, n), rng.normal(0.0, 0.004, n))
    store_rate = cfg.store_visits_per_day * rng.lognormal(-0.5, 1.0, n) * np.where(store_only, 3.0, 1.0)
    interest = rng.dirichlet(np.full(len(CATEGORIES), 0.3), size=n)
    tenure0 = np.where(existing, rng.integers(30, 3 * 365, n), 0)
    email_subscribed = (has_account | in_crm) & (rng.random(n) < 0.7)
    shared_email = has_p & (rng.random(n) < cfg.shared_email_share) & (np.arange(n) != lead)
    device_kind, device_id, device_shared, slots, slot_weight = _devices(cfg, rng, online, partner)
    return Population(
        n=n,
        person_id=("P" + pd.Series(np.arange(n)).astype(str).str.zfill(7)).to_numpy(dtype=object),
        household_id=household,
        partner=partner,
        first_name=first,
        last_name=last,
        email=_emails(first, last, rng),
        phone=phone,
        dob=dob,
        street=addr["street"],
        city=addr["city"],
        region=addr["region"],
        postcode=addr["postcode"],
        store_only=store_only,
        has_account=has_account,
        existing=existing,
        has_loyalty=has_loyalty,
        in_crm=in_crm,
        user_id=user_id,
        loyalty_id=loyalty_id,
        customer_number=customer_number,
        arrival_day=arrival,
        base_rate=base_rate,
        drift=drift,
        decliner=decliner,
        store_rate=store_rate,
        price_sensitivity=rng.normal(0.0, 1.0, n),
        content_affinity=rng.normal(0.0, 1.0, n),
        interest=interest,
        tenure0=tenure0,
        email_subscribed=email_subscribed,
        shared_email=shared_email,
        device_kind=device_kind,
        device_id=device_id,
        device_shared=device_shared,
        slots=slots,
        slot_weight=slot_weight,
    )
