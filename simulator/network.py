"""Network facts of web and app traffic: the public IP and user agent of each event (all vectorised).

A household has one home broadband line (an IPv4 address from its ISP's prefix, reassigned now and then
within that prefix); phones off wifi come out of their carrier's CGNAT pool, shared by many strangers;
some people sit behind a workplace NAT address shared by their colleagues; now and then a session comes
from a public hotspot. Store, support and email-open events have no IP. Each device has one browser (or
the app) whose version follows the vendor's release train, each device updating after its own delay.

Everything here draws from its own random stream, so the rest of the simulation is unchanged by it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.config import SimConfig
from simulator.population import Population

STREAM = 0x1B7  # second entropy word of this module's random stream: default_rng([seed, STREAM])
_DAY = 86_400
# ISP prefixes (base address, prefix length) and market shares
_ISPS = (("86.128.0.0", 10, 0.30), ("82.0.0.0", 11, 0.22), ("90.192.0.0", 11, 0.20), ("89.240.0.0", 12, 0.13))
_ISPS += (("151.224.0.0", 12, 0.10), ("81.96.0.0", 13, 0.05))
_CARRIERS = (("92.40.0.0", 20, 0.33), ("148.252.128.0", 20, 0.25), ("82.132.208.0", 20, 0.24))
_CARRIERS += (("188.29.160.0", 21, 0.18),)
_BUSINESS = ("194.72.0.0", 14)
_HOTSPOTS = ("213.205.192.0", 22)
_WORK_SHARE = 0.4  # people whose workplace network they browse from
_RELEASES = {  # family: (reference release, its version, days per release)
    "chrome": ("2024-11-12", 131, 28),
    "firefox": ("2024-11-26", 133, 28),
    "samsung": ("2024-10-01", 26, 90),
    "app": ("2024-11-01", 40, 14),
}
_ANDROID_MODELS = np.array(
    ["SM-S918B", "SM-A546B", "Pixel 8", "Pixel 7a", "SM-G991B", "moto g84 5G", "2201116SG"]
)
# browser templates: (device kind, name, {0}=major, {1}=minor, {2}=android major, {3}=model)
_WEB = (
    (0, "chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/{0}.0.0.0 Safari/537.36"),
    (0, "chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/{0}.0.0.0 Safari/537.36 Edg/{0}.0.0.0"),
    (0, "firefox", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{0}.0) Gecko/20100101 Firefox/{0}.0"),
    (0, "ios", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/{0}.{1} Safari/605.1.15"),
    (0, "chrome", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/{0}.0.0.0 Safari/537.36"),
    (0, "firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:{0}.0) Gecko/20100101 Firefox/{0}.0"),
)  # fmt: skip
_WEB_P = np.array([0.44, 0.17, 0.07, 0.17, 0.12, 0.03])
_IOS_WEB = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS {0}_{1} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/{0}.{1} Mobile/15E148 Safari/604.1"
)
_ANDROID_WEB = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{0}.0.0.0 "
    "Mobile Safari/537.36"
)
_SAMSUNG_WEB = (
    "Mozilla/5.0 (Linux; Android {2}; {3}) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/{0}.0 "
    "Chrome/{1}.0.0.0 Mobile Safari/537.36"
)
_IOS_APP = "CXIShop/{0}.{1} (iPhone; iOS {2}; Scale/3.00)"
_ANDROID_APP = "CXIShop/{0}.{1} (Android {2}; {3})"


def _ipv4(base: str, prefix: int, offset: np.ndarray) -> np.ndarray:
    """Dotted quads ``base + offset`` (offset modulo the prefix's size, skipping .0 and .255 hosts)."""
    b = np.array([int(x) for x in base.split(".")], dtype=np.int64)
    size = 1 << (32 - prefix)
    v = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) + np.asarray(offset, np.int64) % size
    v = np.where(np.isin(v & 255, [0, 255]), v ^ 1, v)
    parts = [pd.Series((v >> s) & 255).astype(str) for s in (24, 16, 8, 0)]
    return (parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[3]).to_numpy(object)


def _pick(rng: np.random.Generator, table: tuple[tuple[str, int, float], ...], n: int) -> np.ndarray:
    w = np.array([t[2] for t in table])
    return rng.choice(len(table), size=n, p=w / w.sum())


def _addresses(
    table: tuple[tuple[str, int, float], ...], which: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    out = np.empty(len(which), dtype=object)
    for k, (base, prefix, _) in enumerate(table):
        m = which == k
        out[m] = _ipv4(base, prefix, offset[m])
    return out


def _version(family: str, days: np.ndarray) -> np.ndarray:
    """Major version of ``family`` installed ``days`` (absolute, since the epoch) after its own lag."""
    ref, v0, cycle = _RELEASES[family]
    return v0 + np.floor_divide(days - pd.Timestamp(ref).value // 86_400_000_000_000, cycle).astype(np.int64)


def _ios(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """iOS/Safari (major, minor): a major each September (18 in 2024, then 26 named after 2026), a minor
    about every seven weeks."""

    def sept16(year: np.ndarray) -> np.ndarray:
        return (pd.to_datetime(pd.Series(year).astype(str) + "-09-16").to_numpy("datetime64[D]")).astype(
            np.int64
        )

    year = pd.to_datetime(days, unit="D").year.to_numpy()
    year = year - (days < sept16(year))
    major = np.where(year >= 2025, year - 1999, year - 2006)
    since = days - sept16(year)
    return major, np.minimum(since // 49, 6)


def _render(template_of: np.ndarray, templates: list[str], args: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Format ``templates[template_of[i]]`` with ``(*args[i], extra[i])`` once per distinct combination."""
    key = pd.DataFrame({"t": template_of, **{f"a{k}": args[:, k] for k in range(args.shape[1])}, "x": extra})
    codes = key.groupby(list(key.columns), sort=False, dropna=False).ngroup().to_numpy()
    uniq = key.drop_duplicates().itertuples(index=False)  # same first-appearance order as the groups
    text = np.array([templates[u[0]].format(*u[1:-1], u[-1]) for u in uniq], dtype=object)
    return text[codes]


def household_lines(
    cfg: SimConfig, pop: Population, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per household: ISP index, reassignment times (households × 6, seconds, inf = none), and addresses
    (households × 7 epochs)."""
    h = int(pop.household_id.max()) + 1
    isp = _pick(rng, _ISPS, h)
    changes = rng.poisson(cfg.days / 60.0, h).clip(0, 6)
    at = np.sort(rng.uniform(0, cfg.days * _DAY, (h, 6)), axis=1)
    at[np.arange(6)[None, :] >= changes[:, None]] = np.inf
    offsets = rng.integers(0, 1 << 22, (h, 7))
    ips = _addresses(_ISPS, np.repeat(isp, 7), offsets.ravel()).reshape(h, 7)
    return isp, at, ips


def network_columns(
    cfg: SimConfig, pop: Population, events: pd.DataFrame, seed: int
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(ip, user_agent) per event and the per-person network truth (household line, workplace, carrier).

    ``events`` needs the hidden ``_person``, ``_device`` and ``_session`` columns (-1 where none) and ``_t``
    (seconds since the start). IPs and user agents go only on events with a device."""
    rng = np.random.default_rng([seed, STREAM])
    n = pop.n
    isp, change_at, home_ips = household_lines(cfg, pop, rng)
    works = rng.random(n) < _WORK_SHARE
    n_work = max(int(works.sum()), 1)
    size = rng.pareto(1.1, n_work) + 1.0  # a few big employers, many small ones
    workplace = np.where(works, rng.choice(n_work, n, p=size / size.sum()), -1)
    work_ips = _ipv4(_BUSINESS[0], _BUSINESS[1], rng.integers(0, 1 << (32 - _BUSINESS[1]), n_work))
    carrier = _pick(rng, _CARRIERS, n)
    ios_phone = rng.random(n) < 0.52
    samsung = rng.random(n) < 0.2
    model = _ANDROID_MODELS[rng.integers(0, len(_ANDROID_MODELS), n)]
    android = rng.choice([12, 13, 14, 15], n, p=[0.15, 0.25, 0.35, 0.25])

    dev = events["_device"].to_numpy(np.int64)
    ctx = events["_session"].to_numpy(np.int64)
    has = (dev >= 0) & (ctx >= 0)
    t = events["_t"].to_numpy(np.int64)
    person = events["_person"].to_numpy(np.int64)
    # --- where each session happens: home line, workplace, carrier CGNAT or a hotspot ------------------
    uctx, first, inv = np.unique(ctx[has], return_index=True, return_inverse=True)
    cp, cd, ct = person[has][first], dev[has][first], t[has][first]
    ck = pop.device_kind[cd]
    clock = pd.to_datetime(cfg.start_ts.value + ct * 1_000_000_000, utc=True).tz_convert("Europe/London")
    office = (clock.weekday.to_numpy() < 5) & (clock.hour.to_numpy() >= 9) & (clock.hour.to_numpy() < 17)
    at_work = office & (workplace[cp] >= 0)
    shared = pop.device_shared[cd]
    p_work = np.where(at_work, np.where(ck == 0, 0.7, 0.3), 0.0)
    p_home = np.where(ck == 0, 0.93, np.where(office, 0.35, 0.6)) * (1 - p_work)
    p_home = np.where(shared, 1.0, p_home)
    p_spot = np.where(shared, 0.0, 0.05)
    u = rng.random(len(uctx))
    where = np.select([u < p_home, u < p_home + p_work, u < p_home + p_work + p_spot], [0, 1, 2], 3)
    hh = pop.household_id[cp]
    epoch = (change_at[hh] <= ct[:, None]).sum(axis=1)
    ip_ctx = np.empty(len(uctx), dtype=object)
    m = where == 0
    ip_ctx[m] = home_ips[hh[m], epoch[m]]
    m = where == 1
    ip_ctx[m] = work_ips[workplace[cp[m]]]
    m = where == 2
    ip_ctx[m] = _ipv4(_HOTSPOTS[0], _HOTSPOTS[1], rng.integers(0, 1 << (32 - _HOTSPOTS[1]), int(m.sum())))
    m = where == 3
    ip_ctx[m] = _addresses(_CARRIERS, carrier[cp[m]], rng.integers(0, 1 << 21, int(m.sum())))
    ip = np.full(len(events), None, dtype=object)
    ip[has] = ip_ctx[inv]
    # --- user agents: one browser (or the app) per device, versions following release trains ----------
    owner = np.full(len(pop.device_kind), -1, np.int64)
    for s in range(pop.slots.shape[1]):  # slots are few: device -> one owner (the first, for shared ones)
        d = pop.slots[:, s]
        keep = (d >= 0) & (owner[np.maximum(d, 0)] < 0)
        owner[d[keep]] = np.nonzero(keep)[0]
    web_t = rng.choice(len(_WEB), len(owner), p=_WEB_P / _WEB_P.sum())
    lag = rng.exponential(6.0, len(owner)) + np.where(rng.random(len(owner)) < 0.05, 120.0, 0.0)
    ua = np.full(len(events), None, dtype=object)
    idx = np.nonzero(dev >= 0)[0]
    abs_day = (cfg.start_ts.value // 1_000_000_000 + t[idx]) // _DAY  # a user agent per device and day
    day0 = int(abs_day.min()) if len(idx) else 0
    ukey, inv = np.unique(dev[idx] * 100_000 + (abs_day - day0), return_inverse=True)
    d = ukey // 100_000
    o = np.maximum(owner[d], 0)
    day = ukey % 100_000 + day0 - lag[d].astype(np.int64)
    kind = pop.device_kind[d]
    fam = np.asarray([f for _, f, _ in _WEB], dtype=object)[web_t[d]]
    chrome, firefox = _version("chrome", day), _version("firefox", day)
    ios_major, ios_minor = _ios(day - 14)  # iOS users update more slowly
    desktop_major = np.select([fam == "chrome", fam == "firefox"], [chrome, firefox], ios_major)
    templates = [w[2] for w in _WEB] + [_IOS_WEB, _ANDROID_WEB, _SAMSUNG_WEB, _IOS_APP, _ANDROID_APP]
    base = len(_WEB)
    tmpl = np.select(
        [kind == 0, (kind == 1) & ios_phone[o], (kind == 1) & ~samsung[o], kind == 1, ios_phone[o]],
        [web_t[d], base, base + 1, base + 2, base + 3],
        base + 4,
    )
    app = _version("app", day + lag[d].astype(np.int64) - 3)
    app_minor = (pd.Series(app // 10).astype(str) + "." + pd.Series(app % 10).astype(str)).to_numpy(object)
    app_patch = day % 14 // 5
    os_text = np.where(ios_phone[o], pd.Series(ios_major).astype(str) + "." + pd.Series(ios_minor).astype(str),
                       android[o].astype(str))  # fmt: skip
    a0 = np.select(
        [kind == 2, kind == 0, ios_phone[o], samsung[o]],
        [app_minor, desktop_major, ios_major, _version("samsung", day)],
        chrome,
    )
    a1 = np.select([kind == 2, tmpl == base + 2], [app_patch, chrome], ios_minor)
    a2 = np.where(kind == 2, os_text, android[o].astype(str))
    args = np.column_stack([a0, a1, a2.astype(object)])
    ua[idx] = _render(tmpl, templates, args, model[o])[inv]
    # --- truth -----------------------------------------------------------------------------------------
    hh_all = pop.household_id
    used = np.isfinite(change_at).sum(axis=1) + 1  # addresses a line had over the period, in order
    lines = pd.DataFrame(home_ips).where(np.arange(7)[None, :] < used[:, None]).stack()
    home_list = (
        lines.groupby(level=0).agg(" ".join).reindex(np.arange(len(used)))[hh_all].reset_index(drop=True)
    )
    truth = pd.DataFrame(
        {
            "isp": np.asarray([f"{b}/{p}" for b, p, _ in _ISPS], dtype=object)[isp[hh_all]],
            "home_ips": home_list.to_numpy(object),
            "home_ip_changes": used[hh_all] - 1,
            "workplace": np.where(workplace >= 0, workplace, -1),
            "work_ip": np.where(workplace >= 0, work_ips[np.maximum(workplace, 0)], None),
            "carrier_prefix": np.asarray([f"{b}/{p}" for b, p, _ in _CARRIERS], dtype=object)[carrier],
        }
    )
    return ip, ua, truth
