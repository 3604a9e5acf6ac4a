"""Numba kernels of stage 1: extend every open candidate's quote path by one session at once.

Each open candidate owns a reserved block of rows in the stage-1 path arrays (its whole path
length is known when it is proposed); one call per session walks each leg's quote rows
(sorted by time within the instrument) along the session's minute grid and writes the
forward-filled quote of every minute straight into that block, as int32 cents.
"""

from __future__ import annotations

import numpy as np

from quantlab._numba import jit
from quantlab.pricing.kernels import fit_forward

NO_PRICE = -1  # int32 cents sentinel for a missing quote (= stage1.NO_PRICE)
#: :func:`minute_forwards` reads the strikes within this fraction of the last minute's forward
#: (all of them when fewer than ``n_pairs`` pairs there are usable). By parity a pair outside
#: it has ``|call - put| >= df x BAND x F``, about 150 points at SPX 5,000, while the pairs at
#: the money are within a strike step: the fit's first estimate, the pair with the smallest
#: ``|call - put|``, lies inside unless the quotes break parity by more than that, and then
#: the band's fit is the sounder one.
BAND = 0.03


@jit(inline="always")
def _cents(p):
    """One price as int32 cents (``NO_PRICE`` when NaN, infinite or negative), as
    :func:`quantlab.money.to_cents`."""
    if p == p and p >= 0.0 and p != np.inf:
        return np.int32(np.rint(p * 100.0))
    return np.int32(NO_PRICE)


@jit
def extend_paths(
    minutes,
    minute_keys,
    q_t,
    q_lo,
    q_hi,
    q_bid,
    q_ask,
    cents,
    missing,
    leg_pos,
    n_legs,
    start_ns,
    close_ns,
    last_bid,
    last_ask,
    cursor,
    out_ts,
    out_bid,
    out_ask,
    appended,
):
    """Append this session's minutes in ``(start_ns[c], close_ns[c]]`` to each open candidate.

    Parameters
    ----------
    minutes : int64[m]
        The session's quote minutes (ascending minute-end stamps).
    minute_keys : int64[m]
        ``minutes // scale`` for quote stamps stored as ``q_t * scale`` (a row is known at a
        minute when ``q_t <= key``); ``minutes`` itself for int64 ns stamps.
    q_t, q_bid, q_ask : the day's quote rows, sorted by (instrument, ts)
        As :meth:`quantlab.data.read.DayQuotes.kernel_arrays` gives them: with ``cents``, the
        prices are int32 cents and ``missing`` marks none.
    q_lo, q_hi : int64[n_instruments]
        Row range of each instrument.
    leg_pos : int64[n, L]
        Instrument position of each candidate leg today (-1: not listed today, or no leg).
    n_legs : int64[n]
    start_ns, close_ns : int64[n]
        The path so far ends at ``start_ns`` (updated); the contract stops trading at ``close_ns``.
    last_bid, last_ask : float64[n, L]
        Each leg's last quote (carried into the minutes before its first quote of the day;
        updated to the quote of the last minute written).
    cursor : int64[n]
        Next row of each candidate's block in ``out_*`` (advanced).
    out_ts : int64[rows]; out_bid, out_ask : int32[rows, W]
    appended : bool[n]
        Set where the session added minutes to the path.
    """
    for c in range(leg_pos.shape[0]):
        lo = np.searchsorted(minutes, start_ns[c], side="right")
        hi = np.searchsorted(minutes, close_ns[c], side="right")
        if hi <= lo:
            appended[c] = False
            continue
        appended[c] = True
        base = cursor[c]
        n = hi - lo
        for i in range(n):
            out_ts[base + i] = minutes[lo + i]
        for j in range(n_legs[c]):
            k = leg_pos[c, j]
            if k < 0:  # not listed today: no quote
                for i in range(n):
                    out_bid[base + i, j] = NO_PRICE
                    out_ask[base + i, j] = NO_PRICE
                last_bid[c, j] = np.nan
                last_ask[c, j] = np.nan
                continue
            first = q_lo[k]
            end = q_hi[k]
            r = first
            b = last_bid[c, j]
            a = last_ask[c, j]
            for i in range(n):
                m = minute_keys[lo + i]
                while r < end and q_t[r] <= m:
                    r += 1
                if r > first:
                    if cents:
                        cb = q_bid[r - 1]
                        ca = q_ask[r - 1]
                        b = np.nan if cb == missing else cb / 100.0
                        a = np.nan if ca == missing else ca / 100.0
                    else:
                        b = q_bid[r - 1]
                        a = q_ask[r - 1]
                out_bid[base + i, j] = _cents(b)
                out_ask[base + i, j] = _cents(a)
            last_bid[c, j] = b
            last_ask[c, j] = a
        for j in range(n_legs[c], out_bid.shape[1]):  # columns beyond the candidate's legs
            for i in range(n):
                out_bid[base + i, j] = NO_PRICE
                out_ask[base + i, j] = NO_PRICE
        cursor[c] = base + n
        start_ns[c] = minutes[hi - 1]


@jit(inline="always")
def _quote_at(r, first, end, key, q_t, q_bid, q_ask, cents, missing):
    """``(row, bid, ask)``: the last quote row of an instrument at or before ``key`` (from row
    ``r`` on) and its prices (NaN when none)."""
    while r < end and q_t[r] <= key:
        r += 1
    if r == first:
        return r, np.nan, np.nan
    if cents:
        cb = q_bid[r - 1]
        ca = q_ask[r - 1]
        return (
            r,
            (np.nan if cb == missing else cb / 100.0),
            (np.nan if ca == missing else ca / 100.0),
        )
    return r, q_bid[r - 1], q_ask[r - 1]


@jit(inline="always")
def _fresh(r, first, b, a, minute, scale, q_t, max_age):
    """Whether the quote of row ``r - 1`` (``b``/``a``) is one the parity fit may use at
    ``minute`` (the snapshot's ``OK`` flag): quoted, two-sided, 0 < bid < ask, not older than
    ``max_age`` ns."""
    if r == first or not (b == b and a == a and 0.0 < b < a):
        return False
    return minute - np.int64(q_t[r - 1]) * scale <= max_age


@jit
def minute_forwards(
    minutes, minute_keys, scale, q_t, q_lo, q_hi, q_bid, q_ask, cents, missing, call_pos,
    put_pos, strikes, df, max_age_ns, n_pairs, out,
):  # fmt: skip
    """The parity forward of one expiry at each of the session's ``minutes``: the snapshot's
    fit (:func:`quantlab.pricing.kernels.fit_forward` over the strikes whose call and put
    quotes at or before the minute are fresh, within :data:`BAND` of the last minute's
    forward, ``df[i]`` at minute ``i``) into ``out`` (NaN where no pair is usable). ``call_pos``/``put_pos``: instrument positions of each strike of
    ``strikes`` (ascending)."""
    n = strikes.shape[0]
    rc = np.empty(n, np.int64)
    rp = np.empty(n, np.int64)
    for p in range(n):
        rc[p] = q_lo[call_pos[p]]
        rp[p] = q_lo[put_pos[p]]
    kk = np.empty(n)
    dd = np.empty(n)
    hh = np.empty(n)
    keep = np.zeros(n, np.bool_)
    prev = np.nan
    for i in range(minutes.shape[0]):
        a, b = 0, n
        if prev == prev:  # the band around the last forward (see BAND)
            a = int(np.searchsorted(strikes, prev * (1.0 - BAND)))
            b = int(np.searchsorted(strikes, prev * (1.0 + BAND), "right"))
        cnt = _usable_pairs(
            a, b, minutes[i], minute_keys[i], scale, q_t, q_lo, q_hi, q_bid, q_ask, cents,
            missing, call_pos, put_pos, strikes, max_age_ns, rc, rp, kk, dd, hh,
        )  # fmt: skip
        if cnt < n_pairs and (a > 0 or b < n):  # too few in the band: every strike
            cnt = _usable_pairs(
                0, n, minutes[i], minute_keys[i], scale, q_t, q_lo, q_hi, q_bid, q_ask,
                cents, missing, call_pos, put_pos, strikes, max_age_ns, rc, rp, kk, dd, hh,
            )  # fmt: skip
        if cnt == 0:
            out[i] = np.nan
        else:
            out[i] = fit_forward(kk[:cnt], dd[:cnt], hh[:cnt], df[i], n_pairs, keep[:cnt])[0]
        if out[i] == out[i]:
            prev = out[i]


@jit(inline="always")
def _usable_pairs(
    a, b, t, key, scale, q_t, q_lo, q_hi, q_bid, q_ask, cents, missing, call_pos, put_pos,
    strikes, max_age_ns, rc, rp, kk, dd, hh,
):  # fmt: skip
    """The usable call/put pairs among strikes ``a .. b - 1`` at minute ``t`` into ``kk``
    (strike), ``dd`` (call mid - put mid) and ``hh`` (mean half-width); returns how many.
    The quote pointers ``rc``/``rp`` only move forward, so a pair skipped at one minute
    catches up when it is read again."""
    cnt = 0
    for p in range(a, b):
        c, p_ = call_pos[p], put_pos[p]
        rc[p], cb, ca = _quote_at(rc[p], q_lo[c], q_hi[c], key, q_t, q_bid, q_ask, cents, missing)
        rp[p], pb, pa = _quote_at(rp[p], q_lo[p_], q_hi[p_], key, q_t, q_bid, q_ask, cents, missing)
        if not (
            _fresh(rc[p], q_lo[c], cb, ca, t, scale, q_t, max_age_ns)
            and _fresh(rp[p], q_lo[p_], pb, pa, t, scale, q_t, max_age_ns)
        ):
            continue
        kk[cnt] = strikes[p]
        dd[cnt] = 0.5 * (cb + ca) - 0.5 * (pb + pa)
        hh[cnt] = 0.5 * ((ca - cb) + (pa - pb))
        cnt += 1
    return cnt


@jit
def from_cents_2d(cents, out):
    """``out = cents / 100`` where ``cents >= 0``, NaN elsewhere (2-D, C order)."""
    for i in range(cents.shape[0]):
        for j in range(cents.shape[1]):
            c = cents[i, j]
            out[i, j] = c / 100.0 if c >= 0 else np.nan


__all__ = ["NO_PRICE", "extend_paths", "from_cents_2d", "minute_forwards"]
