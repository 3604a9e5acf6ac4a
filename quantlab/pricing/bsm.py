"""Black-Scholes-Merton prices and greeks on spot with a continuous dividend yield."""

from __future__ import annotations

from typing import Any

import numpy as np

from quantlab._convert import FloatArray, check_positive, out_array
from quantlab.pricing import _kernels as k
from quantlab.pricing.black76 import PARALLEL_MIN, prepare

_NAMES = ("S", "K", "T", "r", "q", "sigma")
GREEKS = ("price", "delta", "gamma", "vega", "theta", "rho")


def _inputs(S: Any, K: Any, T: Any, r: Any, q: Any, sigma: Any, is_call: Any):
    shape, arrays = prepare(_NAMES, (S, K, T, r, q, sigma), "is_call", is_call)
    S_, K_, T_, _, _, s_, _ = arrays
    check_positive("S", S_, hint="S is the spot price.")
    check_positive("K", K_, hint="K is the strike.")
    check_positive("T", T_, allow_zero=True, hint="T is a year fraction.")
    check_positive("sigma", s_, allow_zero=True, hint="sigma is a decimal (0.2 = 20%).")
    return shape, arrays


def bsm_greeks(
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    q: Any,
    sigma: Any,
    is_call: Any,
    *,
    out: dict[str, np.ndarray] | None = None,
) -> dict[str, FloatArray]:
    """Black-Scholes-Merton price and greeks with continuous dividend yield ``q``.

    Returns a dict of float64 arrays (broadcast shape of the inputs):

    - ``price``;
    - ``delta``: dV/dS (call ``e^{-qT} N(d1)``);
    - ``gamma``: d2V/dS2;
    - ``vega``: dV/dsigma per 1.00 of vol;
    - ``theta``: dV/dt per calendar year, i.e. ``-dV/dT`` (divide by 365 for one day);
    - ``rho``: dV/dr per 1.00 of rate.

    Parameters
    ----------
    S, K : array_like
        Spot and strike (positive).
    T : array_like
        Year fraction (>= 0).
    r, q : array_like
        Continuously compounded rate and dividend yield (decimals).
    sigma : array_like
        Volatility, decimal (>= 0).
    is_call : array_like
        True / 1 / 'C' for calls, False / 0 / 'P' for puts.
    out : dict of numpy.ndarray, optional
        float64 buffers (the six keys above) of the broadcast shape to write into.

    Examples
    --------
    >>> from quantlab.pricing import bsm_greeks
    >>> g = bsm_greeks(105.0, 100.0, 0.5, 0.10, 0.10, 0.36, True)
    >>> round(float(g["delta"]), 4)
    0.5946
    """
    shape, (S_, K_, T_, r_, q_, s_, c_) = _inputs(S, K, T, r, q, sigma, is_call)
    n = S_.shape[0]
    outs = [out_array(f"out[{g!r}]", None if out is None else out.get(g), shape) for g in GREEKS]
    kern = k.bsm_greeks_1d_par if n >= PARALLEL_MIN else k.bsm_greeks_1d
    kern(S_, K_, T_, r_, q_, s_, c_, *outs)
    return {name: o.reshape(shape) for name, o in zip(GREEKS, outs, strict=True)}


def bsm_price(S: Any, K: Any, T: Any, r: Any, q: Any, sigma: Any, is_call: Any) -> FloatArray:
    """Black-Scholes-Merton premium with continuous dividend yield ``q``.

    Priced as Black-76 on the forward ``F = S e^{(r-q)T}`` with ``df = e^{-rT}``. Arguments as
    :func:`bsm_greeks`.

    Examples
    --------
    >>> from quantlab.pricing import bsm_price
    >>> round(float(bsm_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, True)), 4)
    4.7594
    """
    shape, (S_, K_, T_, r_, q_, s_, c_) = _inputs(S, K, T, r, q, sigma, is_call)
    Tp = np.maximum(T_, 0.0)
    F = S_ * np.exp((r_ - q_) * Tp)
    df = np.exp(-r_ * Tp)
    out = np.empty(S_.shape[0], dtype=np.float64)
    kern = k.b76_price_1d_par if out.shape[0] >= PARALLEL_MIN else k.b76_price_1d
    kern(F, K_, T_, s_, df, c_, out)
    return out.reshape(shape)
