"""The Cboe VIX methodology: model-free implied variance of one expiry and the 30-day index.

This follows the Cboe Volatility Index methodology ("VIX white paper") step by step, on
quote *midpoints*, so that a chain replayed from OPRA gives the number Cboe's rules give.

One expiry (:func:`cboe_variance`)
----------------------------------
1. **Forward.** Among strikes where both the call and the put are two-sided (bid > 0, finite
   ask >= bid), take the one with the smallest ``|C - P|`` of the midpoints (ties: the lowest
   strike) and set ``F = K + e^{RT} (C - P)``. A caller-supplied ``forward`` replaces this step.
2. **K0** is the first listed strike at or below ``F``.
3. **Strike selection.** Puts with ``K < K0``, walking down from K0; calls with ``K > K0``,
   walking up. An option with a zero (or missing) bid is excluded; once two options at
   *consecutive* strikes of the walk have zero bids, no further strike in that direction is
   used, even one with a bid. An option with a bid but no usable ask (zero, missing, or below
   the bid) has no midpoint and is excluded too; it is not a zero bid, so it ends a zero-bid run.
   At K0 both the put and the call are used: ``Q(K0)`` is the average of their midpoints.
4. ``ΔK_i = (K_{i+1} - K_{i-1}) / 2`` over the strikes that survived step 3 (not the listed
   ones), one-sided at the ends: ``K_1 - K_0`` at the lowest and ``K_n - K_{n-1}`` at the highest.
5. ``σ² = (2/T) Σ_i ΔK_i / K_i² · e^{RT} Q(K_i) − (1/T) (F/K0 − 1)²``.

``T`` is the time to the expiry's settlement in years, **measured in minutes**: Cboe counts the
minutes from the calculation time to the settlement time (09:30 ET for AM-settled SPX, 16:00 ET
for PM-settled SPXW) and divides by 525,600 (minutes in a 365-day year). The caller computes it.
``R`` is the continuously compounded risk-free rate for that expiry (Cboe interpolates Treasury
constant-maturity yields with a cubic spline); it enters through ``e^{RT}`` only.

The 30-day index (:func:`cboe_index`)
-------------------------------------
``VIX = 100 · sqrt({T1 σ1² w1 + T2 σ2² w2} · N365 / N30)`` with ``w1 = (N_T2 − N30)/(N_T2 − N_T1)``,
``w2 = (N30 − N_T1)/(N_T2 − N_T1)``, ``N30 = 43,200`` and ``N365 = 525,600`` minutes and
``T_i = N_Ti / 525,600``: linear interpolation of total variance in minutes. The same formula
extrapolates when both terms lie on one side of 30 days.

Reference: Cboe, "Volatility Index Methodology: Cboe Volatility Index" (the VIX white paper),
steps 1-3 and its worked example (near term 34,484 minutes, next term 44,954 minutes,
σ1² = 0.019233906, σ2² = 0.019423884, VIX = 13.93), reproduced in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from quantlab._convert import FloatArray, Int8Array, as_float
from quantlab.errors import InputError

if TYPE_CHECKING:
    import polars as pl

MINUTES_PER_YEAR = 525_600.0
"""``N365``: minutes in a 365-day year; ``T = minutes / MINUTES_PER_YEAR``."""
MINUTES_30D = 43_200.0
"""``N30``: minutes in the index's 30-day horizon."""

PUT: int = -1
"""``CboeVariance.kinds`` code of an out-of-the-money put."""
K0_AVERAGE: int = 0
"""``CboeVariance.kinds`` code of the K0 strike (average of the put and call midpoints)."""
CALL: int = 1
"""``CboeVariance.kinds`` code of an out-of-the-money call."""


@dataclass(frozen=True, eq=False)
class CboeVariance:
    """Model-free variance of one expiry by the Cboe VIX rules, with its audit trail.

    Attributes
    ----------
    sigma2 : float
        Annualised variance ``σ²``; NaN when no usable option was found (see ``reason``).
    forward : float
        Forward ``F`` (from put-call parity at ``forward_strike``, or as given).
    k0 : float
        First listed strike at or below ``F``; NaN when there is none.
    T, R : float
        Time to settlement in years and the continuously compounded rate used.
    strikes : numpy.ndarray
        Strikes that entered the sum, ascending.
    prices : numpy.ndarray
        ``Q(K_i)``: the midpoint of the out-of-the-money option (the put/call average at K0).
    kinds : numpy.ndarray of int8
        ``PUT`` (-1), ``K0_AVERAGE`` (0) or ``CALL`` (1) for each strike used.
    delta_k : numpy.ndarray
        ``ΔK_i`` over the surviving strikes.
    contributions : numpy.ndarray
        ``ΔK_i / K_i² · e^{RT} Q(K_i)``, the numbers of the white paper's contribution table.
    n_puts, n_calls : int
        Out-of-the-money puts and calls used (the K0 strike is counted in neither).
    forward_strike : float
        Strike whose call/put midpoints gave the forward; NaN when ``forward`` was supplied.
    put_stop, call_stop : str
        Why each wing ended: ``"zero_bids"`` (two consecutive zero bids) or ``"chain_end"``
        (no more listed strikes; the wing may be cut short by a strike window), ``""`` if the
        selection never ran.
    reason : str
        Empty when ``sigma2`` is finite, else why it is NaN.
    """

    sigma2: float
    forward: float
    k0: float
    T: float
    R: float
    strikes: FloatArray = field(repr=False)
    prices: FloatArray = field(repr=False)
    kinds: Int8Array = field(repr=False)
    delta_k: FloatArray = field(repr=False)
    contributions: FloatArray = field(repr=False)
    n_puts: int = 0
    n_calls: int = 0
    forward_strike: float = math.nan
    put_stop: str = ""
    call_stop: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when ``sigma2`` is a number."""
        return math.isfinite(self.sigma2)

    @property
    def sum_term(self) -> float:
        """``(2/T) Σ contributions``, the first term of ``σ²``."""
        return 2.0 / self.T * float(self.contributions.sum())

    @property
    def forward_term(self) -> float:
        """``(1/T) (F/K0 − 1)²``, the term subtracted from ``sum_term``; NaN without K0."""
        return (self.forward / self.k0 - 1.0) ** 2 / self.T

    @property
    def vol(self) -> float:
        """``sqrt(σ²)``, NaN when ``σ²`` is NaN or negative."""
        return math.sqrt(self.sigma2) if self.sigma2 >= 0.0 else math.nan


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _result(
    T: float,
    R: float,
    *,
    forward: float = math.nan,
    k0: float = math.nan,
    forward_strike: float = math.nan,
    reason: str,
    put_stop: str = "",
    call_stop: str = "",
) -> CboeVariance:
    empty = _frozen(np.empty(0))
    return CboeVariance(
        sigma2=math.nan,
        forward=forward,
        k0=k0,
        T=T,
        R=R,
        strikes=empty,
        prices=empty,
        kinds=_frozen(np.empty(0, dtype=np.int8)),
        delta_k=empty,
        contributions=empty,
        forward_strike=forward_strike,
        put_stop=put_stop,
        call_stop=call_stop,
        reason=reason,
    )


def _check_inputs(
    strikes: Any, call_bid: Any, call_ask: Any, put_bid: Any, put_ask: Any
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    k = np.ravel(as_float("strikes", strikes))
    n = k.size
    out = [k]
    for name, value in (
        ("call_bid", call_bid),
        ("call_ask", call_ask),
        ("put_bid", put_bid),
        ("put_ask", put_ask),
    ):
        a = np.ravel(as_float(name, value))
        if a.size != n:
            raise InputError(
                f"{name} has {a.size} values but strikes has {n}; the five arrays must be "
                "aligned by strike (NaN for a missing quote)."
            )
        neg = np.flatnonzero(a < 0.0)
        if neg.size:
            i = int(neg[0])
            raise InputError(
                f"{name} must be >= 0 or NaN (got {a[i]!r} at index {i}, strike {k[i]!r})."
            )
        out.append(a)
    bad = np.flatnonzero(~np.isfinite(k) | (k <= 0.0))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"strikes must be finite and positive (got {k[i]!r} at index {i}).")
    steps = np.flatnonzero(np.diff(k) <= 0.0)
    if steps.size:
        i = int(steps[0]) + 1
        raise InputError(
            f"strikes must be strictly ascending (got {k[i]!r} after {k[i - 1]!r} at index {i}). "
            "Sort the chain by strike and keep one row per strike."
        )
    return out[0], out[1], out[2], out[3], out[4]


def _two_sided(bid: FloatArray, ask: FloatArray) -> np.ndarray:
    """Quotes with a midpoint: a positive bid and a finite ask at or above it."""
    with np.errstate(invalid="ignore"):
        return (bid > 0.0) & np.isfinite(ask) & (ask >= bid)


def _walk(order: range, bid: FloatArray, usable: np.ndarray) -> tuple[list[int], str]:
    """Indices used along one wing, walking away from K0, and why the wing ended."""
    used: list[int] = []
    zero_run = 0
    for i in order:
        if not bid[i] > 0.0:  # zero or missing bid (NaN compares False)
            zero_run += 1
            if zero_run == 2:
                return used, "zero_bids"
            continue
        zero_run = 0
        if usable[i]:
            used.append(i)
    return used, "chain_end"


def _delta_k(k: FloatArray) -> FloatArray:
    dk = np.empty_like(k)
    dk[1:-1] = 0.5 * (k[2:] - k[:-2])
    dk[0] = k[1] - k[0]
    dk[-1] = k[-1] - k[-2]
    return dk


def cboe_variance(
    strikes: Any,
    call_bid: Any,
    call_ask: Any,
    put_bid: Any,
    put_ask: Any,
    T: float,
    R: float,
    forward: float | None = None,
) -> CboeVariance:
    """Model-free implied variance of one expiry by the Cboe VIX rules.

    Parameters
    ----------
    strikes : array_like
        Listed strikes of ONE expiry (one root: SPX and SPXW are separate expiries), strictly
        ascending, in index points.
    call_bid, call_ask, put_bid, put_ask : array_like
        Quotes aligned with ``strikes``; NaN marks a missing quote (a missing bid counts as a
        zero bid).
    T : float
        Time to settlement in years: minutes from now to the settlement time / 525,600.
    R : float
        Continuously compounded risk-free rate for the expiry (e.g. 0.05).
    forward : float, optional
        Use this forward instead of the Cboe parity forward of step 1.

    Returns
    -------
    CboeVariance
        ``sigma2`` with the forward, K0, strikes, ``Q(K)``, ``ΔK`` and contributions used.
        ``sigma2`` is NaN, with ``reason`` set, when there is no two-sided call/put pair to set
        the forward, no strike at or below it, no two-sided quote on either side of K0, or
        fewer than two strikes survive the selection.

    Raises
    ------
    InputError
        Arrays of different lengths, strikes not strictly ascending or not positive, a
        negative quote, ``T <= 0``, a non-finite ``R`` or a non-positive ``forward``.

    Examples
    --------
    Ten strikes; the 90 put has a lone zero bid (skipped, the wing goes on to 85), the 120 and
    125 calls have zero bids (the call wing stops there: the 130 call is not used).

    >>> import numpy as np
    >>> K = np.array([85.0, 90, 95, 100, 105, 110, 115, 120, 125, 130])
    >>> cb = np.array([15.2, 10.4, 5.9, 2.4, 0.6, 0.15, 0.05, 0.0, 0.0, 0.05])
    >>> ca = np.array([15.6, 10.8, 6.3, 2.6, 0.8, 0.25, 0.10, 0.05, 0.05, 0.10])
    >>> pb = np.array([0.05, 0.0, 0.4, 2.2, 5.5, 10.1, 15.1, 20.0, 25.0, 30.0])
    >>> pa = np.array([0.15, 0.05, 0.6, 2.4, 5.9, 10.5, 15.5, 20.4, 25.4, 30.4])
    >>> v = cboe_variance(K, cb, ca, pb, pa, T=30 / 365, R=0.0)
    >>> float(v.forward), float(v.k0), v.strikes.tolist()
    (100.2, 100.0, [85.0, 95.0, 100.0, 105.0, 110.0, 115.0])
    >>> v.delta_k.tolist()
    [10.0, 7.5, 5.0, 5.0, 5.0, 5.0]
    >>> round(v.sigma2, 6), round(100 * v.vol, 2), v.call_stop
    (0.053056, 23.03, 'zero_bids')
    """
    k, cb, ca, pb, pa = _check_inputs(strikes, call_bid, call_ask, put_bid, put_ask)
    T = float(T)
    R = float(R)
    if not (math.isfinite(T) and T > 0.0):
        raise InputError(
            f"T must be a positive year fraction (got {T!r}). Cboe uses minutes to settlement "
            "/ 525,600; an expiry that has settled has no variance."
        )
    if not math.isfinite(R):
        raise InputError(f"R must be a finite continuously compounded rate (got {R!r}).")
    growth = math.exp(R * T)

    call_ok = _two_sided(cb, ca)
    put_ok = _two_sided(pb, pa)
    with np.errstate(invalid="ignore"):
        call_mid = 0.5 * (cb + ca)
        put_mid = 0.5 * (pb + pa)

    forward_strike = math.nan
    if forward is None:
        pairs = np.flatnonzero(call_ok & put_ok)
        if pairs.size == 0:
            return _result(
                T, R, reason="no strike with a two-sided call and put to set the forward"
            )
        gap = np.abs(call_mid[pairs] - put_mid[pairs])
        j = int(pairs[int(np.argmin(gap))])  # argmin keeps the first (lowest) strike on ties
        forward_strike = float(k[j])
        F = forward_strike + growth * float(call_mid[j] - put_mid[j])
    else:
        F = float(forward)
        if not (math.isfinite(F) and F > 0.0):
            raise InputError(f"forward must be a positive number or None (got {forward!r}).")

    i0 = int(np.searchsorted(k, F, side="right")) - 1
    if i0 < 0:
        return _result(
            T,
            R,
            forward=F,
            forward_strike=forward_strike,
            reason=f"no listed strike at or below the forward {F:.6g} (lowest {k[0]:.6g})"
            if k.size
            else "empty chain",
        )
    k0 = float(k[i0])
    if not (call_ok[i0] and put_ok[i0]):
        side = "call" if not call_ok[i0] else "put"
        return _result(
            T,
            R,
            forward=F,
            k0=k0,
            forward_strike=forward_strike,
            reason=f"the K0={k0:.6g} {side} has no two-sided quote",
        )

    puts, put_stop = _walk(range(i0 - 1, -1, -1), pb, put_ok)
    calls, call_stop = _walk(range(i0 + 1, k.size), cb, call_ok)
    idx = np.array([*puts[::-1], i0, *calls], dtype=np.intp)
    if idx.size < 2:
        return _result(
            T,
            R,
            forward=F,
            k0=k0,
            forward_strike=forward_strike,
            put_stop=put_stop,
            call_stop=call_stop,
            reason="no out-of-the-money option with a two-sided quote besides K0",
        )
    n_puts = len(puts)
    used_k = k[idx]
    kinds = np.zeros(idx.size, dtype=np.int8)
    kinds[:n_puts] = PUT
    kinds[n_puts + 1 :] = CALL
    q = np.where(kinds == PUT, put_mid[idx], call_mid[idx])
    q[n_puts] = 0.5 * (put_mid[i0] + call_mid[i0])
    dk = _delta_k(used_k)
    contrib = dk / (used_k * used_k) * growth * q
    sigma2 = 2.0 / T * float(contrib.sum()) - (F / k0 - 1.0) ** 2 / T
    return CboeVariance(
        sigma2=sigma2,
        forward=F,
        k0=k0,
        T=T,
        R=R,
        strikes=_frozen(used_k),
        prices=_frozen(q),
        kinds=_frozen(kinds),
        delta_k=_frozen(dk),
        contributions=_frozen(contrib),
        n_puts=n_puts,
        n_calls=len(calls),
        forward_strike=forward_strike,
        put_stop=put_stop,
        call_stop=call_stop,
    )


def cboe_weights(minutes_near: float, minutes_next: float) -> tuple[float, float]:
    """Weights of the near and next term in :func:`cboe_index`.

    ``w1 = (N_T2 − N30) / (N_T2 − N_T1)`` and ``w2 = (N30 − N_T1) / (N_T2 − N_T1)``; they sum to
    one, and one of them is negative when 30 days lies outside ``[N_T1, N_T2]`` (extrapolation).

    Parameters
    ----------
    minutes_near, minutes_next : float
        Minutes to each expiry's settlement, ``0 < minutes_near < minutes_next``.

    Returns
    -------
    tuple of float
        ``(w1, w2)``.

    Raises
    ------
    InputError
        Non-positive or non-finite minutes, or ``minutes_near >= minutes_next``.

    Examples
    --------
    >>> cboe_weights(30_000, 50_000)
    (0.34, 0.66)
    """
    n1 = float(minutes_near)
    n2 = float(minutes_next)
    for name, n in (("minutes_near", n1), ("minutes_next", n2)):
        if not (math.isfinite(n) and n > 0.0):
            raise InputError(f"{name} must be a positive number of minutes (got {n!r}).")
    if not n1 < n2:
        raise InputError(
            f"minutes_near must be less than minutes_next (got {n1!r} and {n2!r}); pass the "
            "nearer expiry first."
        )
    return (n2 - MINUTES_30D) / (n2 - n1), (MINUTES_30D - n1) / (n2 - n1)


def cboe_index(
    sigma2_near: float, minutes_near: float, sigma2_next: float, minutes_next: float
) -> float:
    """The 30-day Cboe index (×100) from the variances of two expiries.

    Parameters
    ----------
    sigma2_near, sigma2_next : float
        ``σ²`` of the near and next expiry (e.g. :attr:`CboeVariance.sigma2`).
    minutes_near, minutes_next : float
        Minutes from the calculation time to each expiry's settlement, ``minutes_near <
        minutes_next``. Cboe picks the expiries bracketing 30 days (more than 23 and less than
        37 days); outside the bracket the same formula extrapolates linearly in total variance.

    Returns
    -------
    float
        ``100 · sqrt({T1 σ1² w1 + T2 σ2² w2} · 525,600 / 43,200)``; NaN when a variance is NaN
        or the interpolated variance is negative.

    Raises
    ------
    InputError
        Non-positive or non-finite minutes, or ``minutes_near >= minutes_next``.

    Examples
    --------
    The white paper's worked example:

    >>> round(cboe_index(0.019233906, 34_484, 0.019423884, 44_954), 2)
    13.93

    Equal variances give ``100 σ`` whatever the expiries:

    >>> round(cboe_index(0.04, 10_000, 0.04, 90_000), 12)
    20.0
    """
    w1, w2 = cboe_weights(minutes_near, minutes_next)
    s1 = float(sigma2_near)
    s2 = float(sigma2_next)
    if not (math.isfinite(s1) and math.isfinite(s2)):
        return math.nan
    t1 = float(minutes_near) / MINUTES_PER_YEAR
    t2 = float(minutes_next) / MINUTES_PER_YEAR
    var30 = (t1 * s1 * w1 + t2 * s2 * w2) * MINUTES_PER_YEAR / MINUTES_30D
    return 100.0 * math.sqrt(var30) if var30 >= 0.0 else math.nan


__all__ = [
    "CALL",
    "K0_AVERAGE",
    "MINUTES_30D",
    "MINUTES_PER_YEAR",
    "PUT",
    "CboeVariance",
    "cboe_index",
    "cboe_variance",
    "cboe_weights",
]


def vix_from_chain(
    chain: pl.DataFrame, ts: int, rate: float, *, min_days: float = 23.0, max_days: float = 37.0
) -> float:
    """The 30-day index (x100) from a chain as known at ``ts`` (quotes stamped at or before it).

    ``chain`` has ``root, expiry, strike, right, bid, ask`` (e.g.
    :meth:`quantlab.data.read.DayQuotes.snapshot` output). Terms are the expiries settling in
    Cboe's window (more than ``min_days`` and less than ``max_days`` days, measured in minutes to
    each expiry's settlement): near = the last settling at or before 30 days (else the first),
    next = the one after it; :func:`cboe_index` interpolates (or extrapolates) to 30 days. NaN
    when fewer than two expiries fall in the window.
    """
    import polars as pl

    from quantlab import calendar

    terms = []
    for root, expiry in chain.select("root", "expiry").unique().iter_rows():
        mins = (calendar.settlement_ns(str(root), expiry) - ts) / 60_000_000_000
        if min_days * 1440 < mins < max_days * 1440:
            terms.append((mins, str(root), expiry))
    if len(terms) < 2:
        return math.nan
    terms.sort(key=lambda t: t[0])
    le = [i for i, t in enumerate(terms) if t[0] <= 43_200]
    i = le[-1] if le else 0
    if i + 1 >= len(terms):
        i -= 1
    out = []
    for mins, root, expiry in terms[i : i + 2]:
        g = chain.filter((pl.col("root") == root) & (pl.col("expiry") == expiry))
        calls = g.filter(pl.col("right") == "C").select("strike", "bid", "ask")
        puts = g.filter(pl.col("right") == "P").select("strike", "bid", "ask")
        both = calls.join(puts, on="strike", suffix="_p").sort("strike")
        if both.height < 3:
            return math.nan
        k, cb, ca, pb, pa = (
            both[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
            for c in ("strike", "bid", "ask", "bid_p", "ask_p")
        )
        v = cboe_variance(k, cb, ca, pb, pa, T=mins / MINUTES_PER_YEAR, R=rate)
        out.append((v.sigma2, mins))
    return cboe_index(out[0][0], out[0][1], out[1][0], out[1][1])
