"""Day-by-day behaviour, vectorised over people: sessions, emails, store visits, tickets, decisions, churn.

Each day draws every alive person's activity at once (numpy); the per-day results are plain arrays that
`eventlog` later expands into events. Latent churn runs `churn_horizon_days` past the window so the truth
labels of the last as-of dates are complete; nothing is emitted after the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulator.config import SimConfig
from simulator.offers import logging_propensities, sample_rows, segment_of, true_response
from simulator.population import MAX_SLOTS, Population

APP = 2  # index of "app" in DEVICE_KINDS
_HOURS = np.array(
    [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3.5, 3.5, 4, 4.5, 4, 3.5, 3.5, 4, 4.5, 5.5, 6.5, 7, 6, 4, 2.5]
)
_HOURS = _HOURS / _HOURS.sum()
_WEEKDAY = np.array([0.9, 0.95, 0.95, 1.0, 1.05, 1.2, 1.15])
_STORE_WEEKDAY = np.array([0.7, 0.8, 0.8, 0.9, 1.1, 1.7, 1.3])

Progress = Callable[[str, float], None]


@dataclass
class Activity:
    """Per-kind columns accumulated over the days (lists of arrays, concatenated by `finish`)."""

    parts: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)

    def add(self, kind: str, **cols: np.ndarray) -> None:
        store = self.parts.setdefault(kind, {})
        for k, v in cols.items():
            store.setdefault(k, []).append(np.asarray(v))

    def finish(self) -> dict[str, dict[str, np.ndarray]]:
        return {kind: {k: np.concatenate(v) for k, v in cols.items()} for kind, cols in self.parts.items()}


def _season(day_of_year: int) -> float:
    """Winter sales in January, a spring lull, a pre-Christmas peak."""
    base = 1.0 + 0.15 * np.cos(2 * np.pi * (day_of_year - 340) / 365)
    sale = 1.5 if day_of_year < 10 or 330 <= day_of_year <= 333 else 1.0
    return float(base * sale)


def _seconds(rng: np.random.Generator, day: int, n: int) -> np.ndarray:
    hour = rng.choice(24, size=n, p=_HOURS)
    return day * 86400 + hour * 3600 + rng.integers(0, 3600, n)


def simulate_days(
    cfg: SimConfig, pop: Population, rng: np.random.Generator, progress: Progress | None = None
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Run the days. Returns activity columns by kind and each person's churn day (inf = never)."""
    n, total_days = pop.n, cfg.days + cfg.churn_horizon_days
    act = Activity()
    churn_day = np.full(n, np.inf)
    log_eng = np.zeros(n)
    frailty = rng.lognormal(0.0, 0.5, n)
    bad_ema, buy_ema = np.zeros(n), np.zeros(n)
    seen = np.zeros(n, bool)
    registered = pop.existing & pop.has_account
    signup_day = np.where(registered, -pop.tenure0, 10**6)
    purchases = np.zeros(n, np.int64)
    last_active = np.full(n, -(10**6))
    views7 = np.zeros((7, n))
    n_dev = len(pop.device_id)
    dev_gen = np.zeros(n_dev, np.int64)
    dev_seen_gen = np.full(n_dev, -1, np.int64)
    slot_cum = np.cumsum(pop.slot_weight, axis=1)
    start_doy = cfg.start_ts.dayofyear
    start_wd = cfg.start_ts.weekday()
    offset = 0  # sessions emitted so far (decisions point at their session)
    search_bias = 1.0 / (1.0 + np.exp(-pop.price_sensitivity))  # bargain hunters search more
    view_bias = np.exp(0.3 * pop.content_affinity)  # content lovers browse more

    for d in range(total_days):
        emit = d < cfg.days
        wd = (start_wd + d) % 7
        alive = (pop.arrival_day <= d) & (churn_day > d)
        # --- interests drift, engagement drifts -------------------------------------------------------
        drift_now = rng.random(n) < cfg.interest_drift_rate
        if drift_now.any():
            fresh = rng.dirichlet(np.full(pop.interest.shape[1], 0.3), size=int(drift_now.sum()))
            pop.interest[drift_now] = 0.5 * pop.interest[drift_now] + 0.5 * fresh
        log_eng += pop.drift + rng.normal(0, 0.03, n)
        rate = pop.base_rate * np.exp(log_eng) * _season((start_doy + d - 1) % 365 + 1) * _WEEKDAY[wd]
        # --- online sessions ----------------------------------------------------------------------------
        k = rng.poisson(rate * alive)
        arrive = alive & (pop.arrival_day == d) & ~seen & ~pop.store_only
        k[arrive] = np.maximum(k[arrive], 1)  # arrival day: the first (anonymous) visit
        p = np.repeat(np.arange(n), k)
        s = len(p)
        slot = np.minimum(
            (slot_cum[p] < rng.random(s)[:, None] * slot_cum[p, -1:]).sum(axis=1), MAX_SLOTS - 1
        )
        dev = pop.slots[p, slot]
        cleared = rng.random(s) < cfg.cookie_clear_rate
        np.add.at(dev_gen, dev[cleared], 1)
        gen = dev_gen[dev]
        # first session of the person ever / of this cookie
        _, first_idx = np.unique(p, return_index=True)
        first_person = np.zeros(s, bool)
        first_person[first_idx] = ~seen[p[first_idx]]
        seen[p] = True
        _, first_dev = np.unique(dev, return_index=True)
        new_cookie = np.zeros(s, bool)
        new_cookie[first_dev] = gen[first_dev] > dev_seen_gen[dev[first_dev]]
        dev_seen_gen[dev] = gen
        app = pop.device_kind[dev] == APP
        # identity: first visits anonymous; account holders log in sometimes; new ones sign up once
        acct = pop.has_account[p] & ~first_person
        signup = acct & ~registered[p] & (rng.random(s) < 0.5)
        su_idx = np.nonzero(signup)[0]
        keep = np.zeros(s, bool)
        keep[su_idx[np.unique(p[su_idx], return_index=True)[1]]] = True
        signup &= keep  # at most one signup per person
        registered[p[signup]] = True
        signup_day[p[signup]] = d
        login_p = np.where(app, cfg.login_rate_app, cfg.login_rate_web)
        logged = signup | (acct & registered[p] & (signup_day[p] < d) & (rng.random(s) < login_p))
        # browsing funnel
        views = 1 + rng.poisson(1.6 * view_bias[p])
        search = rng.random(s) < cfg.search_rate * 2 * search_bias[p]
        cat = sample_rows(pop.interest[p], rng.random(s))
        cart = rng.random(s) < cfg.cart_rate * np.minimum(views, 4) / 2.5
        stockout = cart & (rng.random(s) < cfg.stockout_rate)
        checkout = cart & ~stockout & (rng.random(s) < 0.75)
        buy = checkout & (rng.random(s) < cfg.purchase_rate / 0.75)
        guest_email = buy & ~logged & (rng.random(s) < cfg.guest_checkout_email_rate)
        consent = new_cookie & (rng.random(s) < cfg.consent_banner_rate)
        logout = logged & ~app & (rng.random(s) < 0.1)
        # next-best-action decisions on logged-in sessions
        decide = logged & (rng.random(s) < cfg.decision_rate)
        dp = p[decide]
        tenure = d - signup_day[dp]
        recent_views = views7[:, dp].sum(axis=0)
        seg = segment_of(tenure, purchases[dp], d - last_active[dp])
        chan = app[decide].astype(np.int64)
        prop = logging_propensities(seg, recent_views, chan, cfg.logging_epsilon)
        truth = true_response(pop.price_sensitivity[dp], pop.content_affinity[dp], seg, recent_views, chan)
        action = sample_rows(prop, rng.random(len(dp)))
        reward = rng.random(len(dp)) < truth[np.arange(len(dp)), action]
        # --- emails (campaign days), store visits, support tickets -------------------------------------
        if wd in cfg.email_days:
            sub = np.nonzero(alive & pop.email_subscribed)[0]
            opened = sub[rng.random(len(sub)) < cfg.email_open_rate * np.exp(np.minimum(log_eng[sub], 0.5))]
            clicked = opened[rng.random(len(opened)) < cfg.email_click_rate]
            clicked = clicked[~pop.store_only[clicked]]
            cslot = np.minimum(
                (slot_cum[clicked] < rng.random(len(clicked))[:, None] * slot_cum[clicked, -1:]).sum(axis=1),
                MAX_SLOTS - 1,
            )
            cdev = pop.slots[clicked, cslot]
            if emit:
                act.add("email_open", person=opened, t=_seconds(rng, d, len(opened)))
                act.add(
                    "email_click",
                    person=clicked,
                    t=_seconds(rng, d, len(clicked)),
                    device=cdev,
                    gen=dev_gen[cdev],
                )
        visits = rng.poisson(pop.store_rate * _STORE_WEEKDAY[wd] * alive)
        sp = np.repeat(np.arange(n), visits)
        mode_u = rng.random(len(sp))
        store_mode = np.where(
            pop.has_loyalty[sp] & (mode_u < cfg.loyalty_card_use_rate),
            0,  # loyalty card
            np.where(
                pop.has_account[sp] & (rng.random(len(sp)) < cfg.pos_account_rate), 1, 2
            ),  # account / anonymous
        )
        store_cat = sample_rows(pop.interest[sp], rng.random(len(sp)))
        tickets_rate = cfg.support_rate_per_day * (1 + 8 * bad_ema + 2 * buy_ema) * alive
        tp = np.nonzero(rng.random(n) < tickets_rate)[0]
        if emit:
            act.add(
                "session", person=p, device=dev, gen=gen, t=_seconds(rng, d, s), app=app, signup=signup,
                logged=logged, first=first_person, views=views, search=search, category=cat, cart=cart,
                stockout=stockout, checkout=checkout, buy=buy, guest_email=guest_email, consent=consent,
                logout=logout, decided=decide,
            )  # fmt: skip
            act.add(
                "decision", person=dp, session=np.nonzero(decide)[0] + offset,
                tenure=tenure, recent_views=recent_views, segment=seg, channel=chan, action=action,
                reward=reward, propensity=prop, truth=truth,
            )  # fmt: skip
            offset += s
            act.add("store", person=sp, t=_seconds(rng, d, len(sp)), mode=store_mode, category=store_cat)
            act.add("ticket", person=tp, t=_seconds(rng, d, len(tp)))
        # --- state updates and churn hazard -------------------------------------------------------------
        n_buy = np.bincount(p[buy], minlength=n) + visits
        n_bad = np.bincount(p[stockout], minlength=n) + np.bincount(tp, minlength=n)
        bad_ema = 0.93 * bad_ema + n_bad
        buy_ema = 0.95 * buy_ema + n_buy
        purchases += n_buy
        active_today = (k > 0) | (visits > 0)
        last_active[active_today] = d
        views7[d % 7] = np.bincount(p, weights=views, minlength=n)
        hazard = (
            cfg.churn_base_hazard
            * frailty
            * np.exp(
                1.5 * np.maximum(-log_eng, 0) + 0.5 * np.minimum(bad_ema, 4) - 0.6 * np.minimum(buy_ema, 3)
            )
        )
        churn_now = alive & (rng.random(n) < np.minimum(hazard, 1.0))
        churn_day[churn_now] = d + 1  # active today, gone from tomorrow
        if progress is not None:
            progress("simulate days", (d + 1) / total_days)
    return act.finish(), churn_day
