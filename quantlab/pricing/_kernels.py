"""Numba kernels for Black-76 and Black-Scholes-Merton prices and greeks.

Pure functions over contiguous 1-D float64 arrays that fill preallocated outputs; no I/O, no
validation (the public wrappers in ``black76.py`` / ``bsm.py`` do that). Every ``*_1d`` loop has a
``*_1d_par`` twin compiled with ``parallel=True``; the wrappers pick one by array size.

Every premium is intrinsic value plus the time value of the out-of-the-money twin, evaluated with
Jaeckel's normalised Black function (asymptotic and small-t expansions, in ``_iv_kernels``): far
out-of-the-money and near-expiry premia keep full relative precision instead of losing digits to
the difference of two nearly equal terms.
"""

from __future__ import annotations

import math

import numpy as np

from quantlab._numba import jit, prange
from quantlab.pricing._iv_kernels import _black_otm, _log_moneyness

SQRT2 = math.sqrt(2.0)
INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@jit(inline="always", error_model="numpy", fastmath={"contract"})
def norm_cdf(x: float) -> float:
    """Standard normal CDF, accurate in both tails (erfc has full relative precision)."""
    return 0.5 * math.erfc(-x / SQRT2)


@jit(inline="always", error_model="numpy", fastmath={"contract"})
def norm_pdf(x: float) -> float:
    return INV_SQRT2PI * math.exp(-0.5 * x * x)


@jit(inline="always", error_model="numpy", fastmath={"contract"})
def _time_value(F: float, K: float, sd: float) -> float:
    """Undiscounted time value (the out-of-the-money option's premium), full relative precision.

    The textbook difference ``F N(d1) - K N(d2)`` (out-of-the-money side) is used when it keeps at
    least 13 significant digits (the result is at least 1e-3 of the larger term); otherwise, far out
    of the money or close to expiry, Jaeckel's normalised Black function takes over.
    """
    d1 = math.log(F / K) / sd + 0.5 * sd
    d2 = d1 - sd
    if K >= F:
        return _checked_tv(F, K, sd, F * norm_cdf(d1), K * norm_cdf(d2))
    return _checked_tv(F, K, sd, K * norm_cdf(-d2), F * norm_cdf(-d1))


@jit(inline="always", error_model="numpy", fastmath={"contract"})
def _checked_tv(F: float, K: float, sd: float, big: float, small: float) -> float:
    """``big - small`` when that keeps 13 digits, else the normalised Black time value."""
    tv = big - small
    if tv > 1e-3 * big:
        return tv
    x = _log_moneyness(F, K)
    if abs(x) == np.inf:
        return 0.0
    return math.sqrt(F) * math.sqrt(K) * _black_otm(-abs(x), sd)


@jit(inline="always", error_model="numpy", fastmath={"contract"})
def _b76_undiscounted(F: float, K: float, sd: float, is_call: bool) -> float:
    """Undiscounted Black price with total standard deviation sd = sigma*sqrt(T) > 0."""
    # time value of the out-of-the-money twin, plus intrinsic for the in-the-money side (parity)
    tv = _time_value(F, K, sd)
    intrinsic = (F - K) if is_call else (K - F)
    if intrinsic > 0.0:
        return intrinsic + tv
    return tv


@jit(inline="always", error_model="numpy", fastmath={"contract"})
def b76_price_scalar(F: float, K: float, T: float, sigma: float, df: float, is_call: bool) -> float:
    if not (F == F and K == K and T == T and sigma == sigma and df == df):
        return np.nan
    sd = sigma * math.sqrt(T) if T > 0.0 else 0.0
    if sd <= 0.0:
        intrinsic = (F - K) if is_call else (K - F)
        return df * max(intrinsic, 0.0)
    return df * _b76_undiscounted(F, K, sd, is_call)


@jit(error_model="numpy", fastmath={"contract"})
def b76_price_1d(F, K, T, sigma, df, is_call, out):
    for i in range(out.shape[0]):
        out[i] = b76_price_scalar(F[i], K[i], T[i], sigma[i], df[i], is_call[i])


@jit(parallel=True, error_model="numpy", fastmath={"contract"})
def b76_price_1d_par(F, K, T, sigma, df, is_call, out):
    for i in prange(out.shape[0]):
        out[i] = b76_price_scalar(F[i], K[i], T[i], sigma[i], df[i], is_call[i])


@jit(inline="always", error_model="numpy", fastmath={"contract"})
def b76_greeks_one(F, K, T, sigma, df, is_call, i, price, delta, gamma, vega):
    if not (F == F and K == K and T == T and sigma == sigma and df == df):
        price[i] = np.nan
        delta[i] = np.nan
        gamma[i] = np.nan
        vega[i] = np.nan
        return
    sd = sigma * math.sqrt(T) if T > 0.0 else 0.0
    if sd <= 0.0:
        intrinsic = (F - K) if is_call else (K - F)
        price[i] = df * max(intrinsic, 0.0)
        itm = intrinsic > 0.0
        if is_call:
            delta[i] = df if itm else 0.0
        else:
            delta[i] = -df if itm else 0.0
        gamma[i] = 0.0
        vega[i] = 0.0
        return
    lnfk = math.log(F / K)
    d1 = lnfk / sd + 0.5 * sd
    d2 = d1 - sd
    n1 = norm_pdf(d1)
    # one pair of CDFs on the out-of-the-money side serves the price and both deltas
    if K >= F:
        a = norm_cdf(d1)
        call_delta = a
        tv = _checked_tv(F, K, sd, F * a, K * norm_cdf(d2))
    else:
        a = norm_cdf(-d1)
        call_delta = 1.0 - a
        tv = _checked_tv(F, K, sd, K * norm_cdf(-d2), F * a)
    intrinsic = (F - K) if is_call else (K - F)
    price[i] = df * (intrinsic + tv) if intrinsic > 0.0 else df * tv
    if is_call:
        delta[i] = df * call_delta
    else:
        delta[i] = df * (call_delta - 1.0) if K >= F else -df * a
    gamma[i] = df * n1 / (F * sd)
    vega[i] = df * F * n1 * math.sqrt(T)


@jit(error_model="numpy", fastmath={"contract"})
def b76_greeks_1d(F, K, T, sigma, df, is_call, price, delta, gamma, vega):
    for i in range(price.shape[0]):
        b76_greeks_one(F[i], K[i], T[i], sigma[i], df[i], is_call[i], i, price, delta, gamma, vega)


@jit(parallel=True, error_model="numpy", fastmath={"contract"})
def b76_greeks_1d_par(F, K, T, sigma, df, is_call, price, delta, gamma, vega):
    for i in prange(price.shape[0]):
        b76_greeks_one(F[i], K[i], T[i], sigma[i], df[i], is_call[i], i, price, delta, gamma, vega)


@jit(inline="always", error_model="numpy", fastmath={"contract"})
def _bsm_one(S, K, T, r, q, sigma, is_call, i, price, delta, gamma, vega, theta, rho):
    if not (S == S and K == K and T == T and r == r and q == q and sigma == sigma):
        price[i] = np.nan
        delta[i] = np.nan
        gamma[i] = np.nan
        vega[i] = np.nan
        theta[i] = np.nan
        rho[i] = np.nan
        return
    Tp = T if T > 0.0 else 0.0
    dq = math.exp(-q * Tp)
    dr = math.exp(-r * Tp)
    F = S * math.exp((r - q) * Tp)
    sd = sigma * math.sqrt(Tp)
    if sd <= 0.0:
        # no diffusion left: the option is its discounted forward intrinsic value
        itm = (F > K) if is_call else (K > F)
        sign = 1.0 if is_call else -1.0
        if itm:
            price[i] = sign * (S * dq - K * dr)
            delta[i] = sign * dq
            theta[i] = sign * (q * S * dq - r * K * dr)
            rho[i] = sign * K * Tp * dr
        else:
            price[i] = 0.0
            delta[i] = 0.0
            theta[i] = 0.0
            rho[i] = 0.0
        gamma[i] = 0.0
        vega[i] = 0.0
        return
    d1 = math.log(F / K) / sd + 0.5 * sd
    d2 = d1 - sd
    n1 = norm_pdf(d1)
    sqT = math.sqrt(Tp)
    # CDFs of the out-of-the-money side (small, exact); the other side by complement
    if K >= F:
        Nd1 = norm_cdf(d1)
        Nd2 = norm_cdf(d2)
        Nmd1 = 1.0 - Nd1
        Nmd2 = 1.0 - Nd2
        tv = _checked_tv(F, K, sd, F * Nd1, K * Nd2)
    else:
        Nmd1 = norm_cdf(-d1)
        Nmd2 = norm_cdf(-d2)
        Nd1 = 1.0 - Nmd1
        Nd2 = 1.0 - Nmd2
        tv = _checked_tv(F, K, sd, K * Nmd2, F * Nmd1)
    intrinsic = (F - K) if is_call else (K - F)
    price[i] = dr * (intrinsic + tv) if intrinsic > 0.0 else dr * tv
    decay = -S * dq * n1 * sigma / (2.0 * sqT)
    if is_call:
        delta[i] = dq * Nd1
        theta[i] = decay - r * K * dr * Nd2 + q * S * dq * Nd1
        rho[i] = K * Tp * dr * Nd2
    else:
        delta[i] = -dq * Nmd1
        theta[i] = decay + r * K * dr * Nmd2 - q * S * dq * Nmd1
        rho[i] = -K * Tp * dr * Nmd2
    gamma[i] = dq * n1 / (S * sd)
    vega[i] = S * dq * n1 * sqT


@jit(error_model="numpy", fastmath={"contract"})
def bsm_greeks_1d(S, K, T, r, q, sigma, is_call, price, delta, gamma, vega, theta, rho):
    for i in range(price.shape[0]):
        _bsm_one(
            S[i],
            K[i],
            T[i],
            r[i],
            q[i],
            sigma[i],
            is_call[i],
            i,
            price,
            delta,
            gamma,
            vega,
            theta,
            rho,
        )


@jit(parallel=True, error_model="numpy", fastmath={"contract"})
def bsm_greeks_1d_par(S, K, T, r, q, sigma, is_call, price, delta, gamma, vega, theta, rho):
    for i in prange(price.shape[0]):
        _bsm_one(
            S[i],
            K[i],
            T[i],
            r[i],
            q[i],
            sigma[i],
            is_call[i],
            i,
            price,
            delta,
            gamma,
            vega,
            theta,
            rho,
        )
