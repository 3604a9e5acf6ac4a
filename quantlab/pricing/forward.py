"""Forwards (and, for longer expiries, discount factors) implied by put-call parity.

Index options have no reliable spot at minute resolution; every downstream piece of quantlab
gets the forward of an expiry from this function.

Method
------
Parity for European options: ``C - P = df * (F - K)``. Each strike with a usable pair of quotes
gives one estimate of the forward, ``F_i = K_i + (C_i - P_i) / df`` with mids ``C_i``, ``P_i``.
A pair is *usable* when both options are two-sided (bid > 0, finite ask), not crossed
(bid <= ask) and, when a ``fresh`` mask is given, fresh.

1. Start from the strike with the smallest ``|C - P|`` (the Cboe way) and keep the ``n_pairs``
   usable strikes closest to that first estimate: near the money the quotes are tightest and
   the pair is insensitive to the smile.
2. Weight each estimate by ``1 / u_i**2`` with ``u_i = (call width + put width) / (2 df)``, the
   half-width of the parity band that estimate can sit in (wide quotes count less).
3. Robust step: take the weighted median, drop estimates further from it than
   ``max(4 * 1.4826 * MAD, u_i)`` (a stale or fat-fingered quote), and return the weighted mean
   of the rest. With ``r=None``, fit ``C - P = a - b K`` by weighted least squares on the same
   pairs with the same outlier rejection (iterated twice), giving ``df = b`` and ``F = a / b`` —
   only sensible for longer expiries: at 0-10 DTE the strike range near the money is too
   narrow to pin ``df``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantlab._convert import as_float
from quantlab.errors import InputError
from quantlab.pricing._forward_kernels import MAD_SCALE, OUTLIER_MADS, TICK, fit_forward


@dataclass(frozen=True)
class ForwardFit:
    """Result of :func:`implied_forward` for one expiry.

    ``forward`` is NaN (and ``reason`` says why) when no usable pair was found.
    """

    forward: float
    df: float
    r: float
    n_used: int
    n_usable: int
    stderr: float
    used_strikes: np.ndarray = field(repr=False)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return math.isfinite(self.forward)


def _failed(df: float, r: float, n_usable: int, reason: str) -> ForwardFit:
    return ForwardFit(math.nan, df, r, 0, n_usable, math.nan, np.empty(0), reason)


def implied_forward(
    strikes: Any,
    call_bid: Any,
    call_ask: Any,
    put_bid: Any,
    put_ask: Any,
    T: float,
    r: float | None = None,
    *,
    fresh: Any = None,
    n_pairs: int = 8,
) -> ForwardFit:
    """Forward of one expiry from put-call parity over near-the-money pairs.

    Parameters
    ----------
    strikes, call_bid, call_ask, put_bid, put_ask : array_like
        One row per strike of a single expiry and root (never mix AM and PM roots).
        NaN or null marks a missing quote.
    T : float
        Year fraction to the expiry's settlement (minutes / 525,600), > 0.
    r : float or None
        Continuously compounded rate fixing ``df = exp(-r T)``; only ``F`` is fitted (the normal
        case). ``None`` fits ``df`` too (longer expiries only).
    fresh : array_like of bool, optional
        Per-strike mask of pairs whose quotes are recent enough to use.
    n_pairs : int
        Number of near-the-money pairs used (default 8).

    Returns
    -------
    ForwardFit
        ``forward``, ``df``, ``r``, counts, the standard error of the estimate and the strikes used.

    Examples
    --------
    >>> import numpy as np
    >>> from quantlab.pricing import black76_price, implied_forward
    >>> K = np.arange(4900.0, 5105.0, 5.0); df = np.exp(-0.05 * 7 / 365)
    >>> c = black76_price(5003.2, K, 7 / 365, 0.15, df, True)
    >>> p = black76_price(5003.2, K, 7 / 365, 0.15, df, False)
    >>> fit = implied_forward(K, c - 0.05, c + 0.05, p - 0.05, p + 0.05, 7 / 365, r=0.05)
    >>> round(fit.forward, 6)
    5003.2
    """
    K = as_float("strikes", strikes).ravel()
    arrays = {
        "call_bid": as_float("call_bid", call_bid).ravel(),
        "call_ask": as_float("call_ask", call_ask).ravel(),
        "put_bid": as_float("put_bid", put_bid).ravel(),
        "put_ask": as_float("put_ask", put_ask).ravel(),
    }
    for name, arr in arrays.items():
        if arr.shape != K.shape:
            raise InputError(
                f"{name} must have one value per strike (got {arr.shape[0]} values for {K.shape[0]} strikes)."
            )
    if not (isinstance(T, (int, float, np.floating)) and math.isfinite(T) and T > 0):
        raise InputError(f"T must be a positive finite year fraction (got {T!r}).")
    if r is not None and not math.isfinite(r):
        raise InputError(f"r must be a finite rate or None (got {r!r}).")
    if n_pairs < 2:
        raise InputError(f"n_pairs must be at least 2 (got {n_pairs}).")
    cb, ca, pb, pa = arrays.values()
    usable = (
        np.isfinite(K)
        & (K > 0)
        & np.isfinite(cb)
        & np.isfinite(ca)
        & np.isfinite(pb)
        & np.isfinite(pa)
        & (cb > 0)
        & (pb > 0)
        & (ca >= cb)
        & (pa >= pb)
    )
    if fresh is not None:
        fm = np.asarray(fresh, dtype=bool).ravel()
        if fm.shape != K.shape:
            raise InputError(
                f"fresh must have one value per strike (got {fm.shape[0]} for {K.shape[0]})."
            )
        usable &= fm
    df0 = math.exp(-r * T) if r is not None else 1.0
    r0 = float(r) if r is not None else math.nan
    n_usable = int(usable.sum())
    if n_usable < (1 if r is not None else 3):
        return _failed(
            df0 if r is not None else math.nan, r0, n_usable, "too few usable call/put pairs"
        )
    Ku = K[usable]
    diff = 0.5 * (cb[usable] + ca[usable]) - 0.5 * (pb[usable] + pa[usable])
    half = 0.5 * ((ca[usable] - cb[usable]) + (pa[usable] - pb[usable]))
    if r is not None:  # steps 1-3, the kernel stage 1 also runs at every path minute
        keep = np.zeros(Ku.shape[0], np.bool_)
        fwd, n_used, stderr = fit_forward(Ku, diff, half, df0, n_pairs, keep)
        return ForwardFit(fwd, df0, r0, int(n_used), n_usable, stderr, np.sort(Ku[keep]))
    # 1. nearest pairs around the first estimate
    j = int(np.argmin(np.abs(diff)))
    f0 = Ku[j] + diff[j] / df0
    m = min(max(n_pairs, 12), n_usable)
    near = np.argsort(np.abs(Ku - f0), kind="stable")[:m]
    Kn, dn, hn = Ku[near], diff[near], half[near]
    # r unknown: weighted least squares of (C - P) on K, with outlier rejection
    keep = np.ones(Kn.shape[0], dtype=bool)
    w = 1.0 / np.maximum(hn, TICK) ** 2
    a = b = math.nan
    for _ in range(3):
        if keep.sum() < 3:
            return _failed(math.nan, math.nan, n_usable, "too few consistent pairs to fit df")
        X = np.column_stack([np.ones(int(keep.sum())), -Kn[keep]])
        sw = np.sqrt(w[keep])
        coef, *_ = np.linalg.lstsq(X * sw[:, None], dn[keep] * sw, rcond=None)
        a, b = float(coef[0]), float(coef[1])
        resid_all = dn - (a - b * Kn)
        mad = float(np.median(np.abs(resid_all[keep])))
        new_keep = np.abs(resid_all) <= np.maximum(
            OUTLIER_MADS * MAD_SCALE * mad, np.maximum(hn, TICK)
        )
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    if not (b > 0 and math.isfinite(a)):
        return _failed(
            math.nan, math.nan, n_usable, f"fitted discount factor is not positive ({b})"
        )
    fwd = a / b
    resid = (dn - (a - b * Kn))[keep]
    n_used = int(keep.sum())
    stderr = float(math.sqrt(np.sum(resid**2) / max(n_used - 2, 1)) / b / math.sqrt(n_used))
    return ForwardFit(fwd, b, -math.log(b) / T, n_used, n_usable, stderr, np.sort(Kn[keep]))
