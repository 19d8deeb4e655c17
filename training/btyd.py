"""BG/NBD ("buy till you die", Fader, Hardie & Lee 2005), vectorised numpy/scipy, fitted by maximum likelihood.

Per customer: ``x`` repeat transactions, ``t_x`` time of the last one and ``T`` the age, both measured from
the first transaction (any time unit, days here). While alive a customer buys at Poisson rate
λ ~ Gamma(r, rate α); after every repeat transaction they drop out with probability p ~ Beta(a, b).

Churn baseline: the probability of **no** transaction in (T, T + t]. Given alive at T, λ's posterior is
Gamma(r + x, α + T) and dropping out only follows a purchase, so

    P(X(T, T+t) = 0) = (1 - P(alive)) + P(alive) · ((α + T) / (α + T + t)) ** (r + x).

Not P(alive) alone: a one-time buyer (x = 0) has P(alive) = 1 however long ago they bought.

``modified=True`` is the MBG/NBD (Batislam, Denizel & Filiztekin 2007): a customer may also drop out at the
first transaction, so P(alive) = 1 / (1 + a / (b + x) · ((α + T) / (α + t_x)) ** (r + x)) for every x. Its
P(no transaction) falls whenever a transaction happens now (x + 1, t_x = T) or the last one moves later,
which the BG/NBD does not guarantee for one-time buyers; CXI's churn prior (`training.prior`) relies on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from contract.errors import ContractError


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


def _check(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))
    if not (x.shape == t_x.shape == T.shape) or x.ndim != 1:
        raise ContractError("x, t_x, T", "must be 1-D arrays of one length", (x.shape, t_x.shape, T.shape))
    for name, v in (("x", x), ("t_x", t_x), ("T", T)):
        if not np.isfinite(v).all() or (v < 0).any():
            raise ContractError(name, "must be finite and non-negative")
    if (t_x > T + 1e-9).any():
        raise ContractError("t_x", "must not exceed T (the last transaction falls within the customer's age)")
    if ((x > 0) & (t_x <= 0)).any():
        raise ContractError("t_x", "must be positive for customers with repeat transactions (x > 0)")
    return x, t_x, T


def log_likelihood(
    params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, modified: bool = False
) -> np.ndarray:
    """Per-customer log-likelihood of (x, t_x, T) under ``params`` (``modified``: the MBG/NBD)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    if modified:  # alive through T, or dropped out at the last transaction (possibly the first, x = 0)
        alive = betaln(a, b + x + 1) - betaln(a, b) - (r + x) * np.log(alpha + T)
        gone = betaln(a + 1, b + x) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
        return a1 + np.logaddexp(alive, gone)
    a2 = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    a3 = np.full_like(x, -np.inf)
    xr = x[repeat]
    a3[repeat] = betaln(a + 1, b + xr - 1) - betaln(a, b) - (r + xr) * np.log(alpha + t_x[repeat])
    return a1 + np.logaddexp(a2, a3)


#: Log-parameter bounds (in units of the mean customer age): keeps a degenerate sample from overflowing.
BOUNDS = [(-12.0, 12.0)] * 4


class BGNBD:
    """BG/NBD with the estimator contract: ``fit(x, t_x, T)`` returns self, learned ``params_``
    (``modified=True``: the MBG/NBD)."""

    def __init__(self, *, penalizer: float = 0.0, max_iter: int = 2000, modified: bool = False) -> None:
        self.penalizer = penalizer
        self.max_iter = max_iter
        self.modified = modified

    def fit(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBD:
        """Maximum likelihood over log-parameters (L-BFGS-B from a few starts; the best one is kept)."""
        x, t_x, T = _check(x, t_x, T)
        if len(x) < 10:
            raise ContractError("x", "BG/NBD needs at least 10 customers to fit", len(x))
        scale = float(np.mean(T)) or 1.0  # fit in units of the mean age: well-conditioned α

        def nll(theta: np.ndarray) -> float:
            with np.errstate(all="ignore"):
                p = BGNBDParams(*np.exp(theta))
                ll = log_likelihood(p, x, t_x / scale, T / scale, modified=self.modified)
                value = float(-ll.mean() + self.penalizer * np.sum(np.exp(2 * theta)))
            return value if np.isfinite(value) else 1e10

        best = None
        for start in (np.zeros(4), np.log([0.5, 0.5, 1.0, 3.0]), np.log([2.0, 0.1, 0.5, 1.0])):
            res = minimize(nll, start, method="L-BFGS-B", bounds=BOUNDS, options={"maxiter": self.max_iter})
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
        if best is None:
            raise ContractError("x", "BG/NBD likelihood is not finite at any start; check the inputs")
        r, alpha, a, b = np.exp(best.x)
        self.params_ = BGNBDParams(float(r), float(alpha * scale), float(a), float(b))
        self.log_likelihood_ = float(-best.fun * len(x))
        self.converged_ = bool(best.success)
        return self

    def _params(self) -> BGNBDParams:
        if not hasattr(self, "params_"):
            raise ContractError("model", "is not fitted; call fit first")
        return self.params_

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(still alive at T | x, t_x, T)."""
        p = self._params()
        x, t_x, T = _check(x, t_x, T)
        return p_alive(p, x, t_x, T, modified=self.modified)

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """E[number of transactions in (T, T + t] | x, t_x, T]."""
        p = self._params()
        x, t_x, T = _check(x, t_x, T)
        r, alpha, a, b = p.r, p.alpha, p.a, p.b
        if self.modified:
            raise ContractError("modified", "expected purchases are implemented for the BG/NBD only", True)
        if np.isclose(a, 1.0):
            raise ContractError("a", "expected purchases are undefined at a = 1 in closed form", a)
        z = t / (alpha + T + t)
        term = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return (a + b + x - 1) / (a - 1) * term * p_alive(p, x, t_x, T)

    def prob_no_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(no transaction in (T, T + t] | x, t_x, T): the churn baseline score."""
        if t <= 0:
            raise ContractError("t", "the horizon must be positive", t)
        p = self._params()
        x, t_x, T = _check(x, t_x, T)
        return prob_no_purchase(p, t, x, t_x, T, modified=self.modified)


def p_alive(
    p: BGNBDParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, modified: bool = False
) -> np.ndarray:
    """P(alive at T); for the BG/NBD exactly 1 without repeat transactions (the model's blind spot)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = (p.r + x) * (np.log(p.alpha + T) - np.log(p.alpha + t_x))
        if modified:
            odds = p.a / (p.b + x) * np.exp(log_ratio)
        else:
            odds = np.where(x > 0, p.a / np.maximum(p.b + x - 1, 1e-12) * np.exp(log_ratio), 0.0)
    return 1.0 / (1.0 + odds)


def prob_no_purchase(
    p: BGNBDParams, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, modified: bool = False
) -> np.ndarray:
    """P(no transaction in (T, T + t] | x, t_x, T), unchecked (see `BGNBD.prob_no_purchase`)."""
    alive = p_alive(p, x, t_x, T, modified=modified)
    return (1.0 - alive) + alive * ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x)


def simulate(
    params: BGNBDParams,
    T: np.ndarray,
    horizon: float,
    seed: int = 0,
    max_purchases: int = 400,
    *,
    modified: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw customers from the BG/NBD (``modified``: MBG/NBD) process: (x, t_x) observed in (0, T] and the
    count in (T, T + horizon]."""
    rng = np.random.default_rng(seed)
    T = np.asarray(T, dtype="float64")
    n = len(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    times = np.cumsum(rng.exponential(1.0, (n, max_purchases)), axis=1) / lam[:, None]
    lives = rng.geometric(p)  # repeat purchases up to and including the one after which they drop out
    if modified:
        lives = lives - 1  # the first purchase may be the one after which they drop out
    if ((times[:, -1] <= T + horizon) & (lives >= max_purchases)).any():
        raise ContractError("max_purchases", "too small for these parameters and times", max_purchases)
    made = np.arange(1, max_purchases + 1)[None, :] <= lives[:, None]
    seen = made & (times <= T[:, None])
    x = seen.sum(axis=1).astype("float64")
    t_x = np.where(x > 0, np.max(np.where(seen, times, 0.0), axis=1), 0.0)
    future = (made & (times > T[:, None]) & (times <= (T + horizon)[:, None])).sum(axis=1)
    return x, t_x, future.astype("float64")
