"""The settlement value record and its put-call-parity estimate from one day's quotes.

Public through :mod:`quantlab.data.settlements` (:class:`Settlement`, :func:`parity_estimate`).

Algorithm (:func:`parity_estimate`)
-----------------------------------
1. The series: PM (SPXW) the expiring series itself, on the minutes up to its close on the
   expiry day (:func:`quantlab.calendar.contract_close_ns`); AM (SPX monthly) the SPXW expiring
   the same day, from 09:31 ET on (the SOQ is not observable from option quotes).
2. Each minute's forward-filled chain is paired by strike; a minute *qualifies* when at least
   ``min_pairs`` strikes have both the call and the put two-sided (bid > 0, ask >= bid). When
   no minute of the day has that many (an end-of-day snapshot of an expiring series often has
   a single such strike left), the minutes with the most pairs qualify; the fit's own error
   then says how little one pair pins the value.
3. PM: the latest qualifying minute within ``lookback_minutes`` of the close (when none, the
   latest of the day); AM: the first qualifying minute of the day. Every qualifying minute
   within ``lookback_minutes`` before it (PM) or after it (AM) gets a parity forward
   (:func:`quantlab.pricing.implied_forward`, rate :data:`RATE`, T to the series' settlement,
   at least one minute). Runs of identical estimates (a frozen feed) count once, at their
   first minute.
4. ``value`` = the forward at the chosen minute; ``asof_ts`` = that minute; ``n_pairs`` = the
   pairs the fit used.
5. ``std_error`` = sqrt(fit standard error**2 + drift**2 * gap + basis**2) where ``gap`` is
   the minutes between ``asof_ts`` and the settlement time (PM: to the close; AM: from the
   09:30 open) and ``drift`` is the per-sqrt-minute move of the estimates: the root mean square
   of their increments over sqrt(minutes) in the window, shrunk toward
   :data:`DEFAULT_MINUTE_VOL` x value with a weight of :data:`PRIOR_INCREMENTS` increments (so
   a single snapshot, such as an end-of-day file, uses the default). ``basis``, PM:
   :data:`CLOSE_REL_ERROR` x value, as the official close comes from the closing auction, not
   from the last minute the options trade (the LEAN SPX files close their 16:00 ET bar 0.5-0.8
   points away from the official close on all five days they hold); AM:
   :data:`SOQ_REL_ERROR` x value, as the SOQ is built from each stock's opening trade and is
   not the index level the options price at 09:31.

The rate hardly matters: at minutes to expiry ``df = exp(-r T)`` differs from 1 by about
1e-6 and the parity forward ``K + (C - P) / df`` by far less than a tick; even at 09:31 for the
AM estimate (6.5 hours to the SPXW close) the effect is below 0.01 points.

Measured on the synthetic market (``tests/data/test_settlements.py``): see that module.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from quantlab import calendar
from quantlab.errors import InputError

if TYPE_CHECKING:
    from quantlab.data.read import DayQuotes

RATE: Final = 0.045
"""Fixed rate of the parity fits (see the module notes: at minutes to expiry it does not matter)."""
LOOKBACK_MINUTES: Final = 30
MIN_PAIRS: Final = 3
DEFAULT_MINUTE_VOL: Final = 0.0005
"""Default move of the index per sqrt(minute), relative: about 16% a year over 252 x 390 minutes."""
PRIOR_INCREMENTS: Final = 2.0
CLOSE_REL_ERROR: Final = 0.0002
"""Allowance for the official close minus the last-minute index level, relative (PM only)."""
SOQ_REL_ERROR: Final = 0.001
"""Allowance for SOQ minus the index level priced at the open, relative (AM estimates only)."""
_NS_MIN: Final = calendar.NS_PER_MINUTE
_YEAR_NS: Final = calendar.NS_PER_MINUTE * calendar.MINUTES_PER_YEAR


@dataclass(frozen=True)
class Settlement:
    """One settlement value and where it came from.

    Attributes
    ----------
    root : str
        ``"SPX"`` or ``"SPXW"``.
    expiry : datetime.date
    style : str
        ``"AM"`` (special opening quotation) or ``"PM"`` (closing value).
    value : float
        Index points.
    source : str
        One of :data:`quantlab.data.settlements.SOURCES`.
    std_error : float
        Standard error of an estimate (NaN for observed values).
    n_pairs : int
        Call/put pairs behind an estimate (0 otherwise).
    asof_ts : int or None
        UTC nanoseconds of the observation used.
    """

    root: str
    expiry: dt.date
    style: str
    value: float
    source: str
    std_error: float = math.nan
    n_pairs: int = 0
    asof_ts: int | None = None


@dataclass(frozen=True)
class _Pairs:
    """Forward-filled call/put quotes of one series, paired by strike: ``[n_minutes, n_strikes]``."""

    minutes: np.ndarray
    strikes: np.ndarray
    cb: np.ndarray
    ca: np.ndarray
    pb: np.ndarray
    pa: np.ndarray

    def usable(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (
                np.isfinite(self.cb)
                & np.isfinite(self.ca)
                & np.isfinite(self.pb)
                & np.isfinite(self.pa)
                & (self.cb > 0)
                & (self.pb > 0)
                & (self.ca >= self.cb)
                & (self.pa >= self.pb)
            )


def _pairs(dq: DayQuotes, series: str, expiry: dt.date, minutes: np.ndarray) -> _Pairs | None:
    sel = dq.select([expiry], [series])
    if sel.size == 0 or minutes.size == 0:
        return None
    strike, call = dq.strike[sel], dq.is_call[sel]
    calls, puts = np.flatnonzero(call), np.flatnonzero(~call)
    calls = calls[np.argsort(strike[calls], kind="stable")]
    puts = puts[np.argsort(strike[puts], kind="stable")]
    ks = np.intersect1d(strike[calls], strike[puts])
    if ks.size == 0:
        return None
    ci = calls[np.searchsorted(strike[calls], ks)]
    pi = puts[np.searchsorted(strike[puts], ks)]
    idx = dq.grid_index(minutes, sel[np.concatenate([ci, pi])])  # [n_min, 2 n_k]
    has = idx >= 0
    bid = np.full(idx.shape, np.nan)
    ask = np.full(idx.shape, np.nan)
    if dq.n_rows and has.any():
        _, b, a = dq.rows(idx[has])
        bid[has], ask[has] = b, a
    n = ks.size
    return _Pairs(minutes, ks, bid[:, :n], ask[:, :n], bid[:, n:], ask[:, n:])


def _fits(p: _Pairs, rows: np.ndarray, settle_series: int) -> list[tuple[int, float, float, int]]:
    """``(minute, forward, stderr, n_used)`` of each row of ``rows`` whose fit succeeds."""
    from quantlab.pricing import implied_forward

    out = []
    for i in rows:
        m = int(p.minutes[i])
        T = max(settle_series - m, _NS_MIN) / _YEAR_NS
        fit = implied_forward(p.strikes, p.cb[i], p.ca[i], p.pb[i], p.pa[i], T, r=RATE)
        if fit.ok and fit.forward > 0:
            out.append((m, float(fit.forward), float(fit.stderr), int(fit.n_used)))
    return out


def _distinct(fits: list[tuple[int, float, float, int]]) -> list[tuple[int, float, float, int]]:
    """Runs of identical consecutive estimates collapsed to their first minute."""
    out: list[tuple[int, float, float, int]] = []
    for f in fits:
        if not out or f[1] != out[-1][1]:
            out.append(f)
    return out


def _drift(fits: list[tuple[int, float, float, int]], level: float) -> float:
    """Per-sqrt-minute move of the estimates, shrunk toward the default (module notes)."""
    t = np.array([f[0] for f in fits], dtype=np.float64) / _NS_MIN
    v = np.array([f[1] for f in fits])
    d = np.diff(v) / np.sqrt(np.diff(t)) if v.size > 1 else np.empty(0)
    prior = DEFAULT_MINUTE_VOL * level
    return math.sqrt(
        (float(np.sum(d * d)) + PRIOR_INCREMENTS * prior * prior) / (d.size + PRIOR_INCREMENTS)
    )


def parity_estimate(
    dq: DayQuotes,
    root: str,
    expiry: Any,
    *,
    lookback_minutes: int = LOOKBACK_MINUTES,
    min_pairs: int = MIN_PAIRS,
) -> Settlement | None:
    """Put-call-parity estimate of the settlement value of ``(root, expiry)``, with its error.

    PM (SPXW): the parity forward of the expiring series at the latest minute before its close
    with at least ``min_pairs`` two-sided call/put pairs. AM (SPX monthly): the forward of the
    SPXW expiring the same day at the first such minute from 09:31 ET; this approximates the
    special opening quotation, which option quotes cannot observe. ``std_error`` combines the
    fit's own error with the drift of the estimates over the gap to the settlement time (and,
    AM, an SOQ allowance); see the module notes of :mod:`quantlab.data._settle_parity`.

    Parameters
    ----------
    dq : quantlab.data.read.DayQuotes
        The expiry day's quotes (``dq.day == expiry``).
    root : str
        ``"SPXW"`` or ``"SPX"``.
    expiry : date or 'YYYY-MM-DD'
    lookback_minutes : int
        Window of minutes whose estimates measure the drift (default 30).
    min_pairs : int
        Two-sided pairs a minute needs to qualify (default 3).

    Returns
    -------
    Settlement or None
        Source ``parity_estimate``; None when no minute qualifies.
    """
    from quantlab.data import layout

    r = str(root).strip().upper()
    if r not in ("SPX", "SPXW"):
        raise InputError(f"root must be SPX or SPXW (got {root!r}).")
    e = layout.as_date(expiry)
    if dq.day != e:
        raise InputError(
            f"the parity estimate of {r} {e} needs the quotes of {e} (got the day {dq.day}); "
            f"load {e}."
        )
    if lookback_minutes < 1 or min_pairs < 1:
        raise InputError(
            f"lookback_minutes and min_pairs must be >= 1 (got {lookback_minutes}, {min_pairs})."
        )
    am = r in calendar.AM_ROOTS
    settle = calendar.settlement_ns(r, e)
    series = "SPXW" if am else r
    close = calendar.contract_close_ns(series, e, e)
    minutes = calendar.quote_minutes_ns(e)
    p = _pairs(dq, series, e, minutes[minutes <= close])
    if p is None:
        return None
    counts = p.usable().sum(axis=1)
    need = min(min_pairs, int(counts.max()))
    if need < 1:
        return None
    ok = np.flatnonzero(counts >= need)
    span = lookback_minutes * _NS_MIN
    if am:
        pick = p.minutes[ok[0]]
        window = ok[p.minutes[ok] <= pick + span]
    else:
        pick = p.minutes[ok[-1]]
        window = ok[p.minutes[ok] >= pick - span]
    fits = _distinct(_fits(p, window, calendar.settlement_ns(series, e)))
    if not fits:
        return None
    m, value, se, n_used = fits[0] if am else fits[-1]
    gap = abs(settle - m) / _NS_MIN
    var = se * se + _drift(fits, value) ** 2 * gap
    var += ((SOQ_REL_ERROR if am else CLOSE_REL_ERROR) * value) ** 2
    style = "AM" if am else "PM"
    return Settlement(r, e, style, value, "parity_estimate", math.sqrt(var), n_used, m)
