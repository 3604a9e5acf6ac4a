"""Numba kernels of the reading API: per-instrument searches in (instrument_id, ts)-sorted arrays.

Quote rows of one day are sorted by instrument, then time; instrument ``k`` owns rows
``lo[k]:hi[k]``. Every kernel writes row indices (``-1`` = no quote yet) into a preallocated
output, so the callers gather prices with plain numpy fancy indexing.
"""

from __future__ import annotations

import math

import numpy as np

from quantlab._numba import jit


def last_at_or_before_python(
    ts: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    sel: np.ndarray,
    t: np.int64,
    out: np.ndarray,
) -> None:
    """For each selected instrument ``sel[j]``, the row of its last quote with ``ts <= t``.

    Parameters
    ----------
    ts : int64[n_rows]
        Quote stamps, ascending within each instrument's slice.
    lo, hi : int64[n_instruments]
        Row range of each instrument.
    sel : int64[m]
        Instrument positions to search.
    t : int64
        Cut-off (UTC ns), inclusive.
    out : int64[m]
        Row index, or -1 when the instrument has no quote at or before ``t``.
    """
    for j in range(sel.shape[0]):
        k = sel[j]
        a = lo[k]
        b = hi[k]
        # first row in [a, b) with ts > t (binary search, "right" side)
        while a < b:
            m = (a + b) >> 1
            if ts[m] <= t:
                a = m + 1
            else:
                b = m
        out[j] = a - 1 if a > lo[k] else -1


def grid_indices_python(
    ts: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    sel: np.ndarray,
    grid: np.ndarray,
    out: np.ndarray,
) -> None:
    """Forward-fill rows on a time grid: ``out[i, j]`` = last row of ``sel[j]`` with
    ``ts <= grid[i]`` (``grid`` ascending), or -1. One merge walk per instrument."""
    n = grid.shape[0]
    for j in range(sel.shape[0]):
        k = sel[j]
        r = lo[k]
        end = hi[k]
        for i in range(n):
            g = grid[i]
            while r < end and ts[r] <= g:
                r += 1
            out[i, j] = r - 1 if r > lo[k] else -1


def decode_quotes_python(
    minutes: np.ndarray,
    bid_cents: np.ndarray,
    ask_cents: np.ndarray,
    missing: np.int32,
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
) -> None:
    """Quote rows of the day cache back to arrays: int32 minutes to int64 UTC ns, int32 cents
    to float64 prices (``missing`` cents to NaN), exactly as :mod:`quantlab.data.daycache`
    checked when it encoded them."""
    for i in range(minutes.shape[0]):
        ts[i] = np.int64(minutes[i]) * np.int64(60_000_000_000)
        c = bid_cents[i]
        bid[i] = np.nan if c == missing else c / 100.0
        c = ask_cents[i]
        ask[i] = np.nan if c == missing else c / 100.0


def encode_quotes_python(
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    missing: np.int32,
    minutes: np.ndarray,
    bid_cents: np.ndarray,
    ask_cents: np.ndarray,
) -> tuple[bool, bool]:
    """Inverse of :func:`decode_quotes_python`: returns ``(ts_exact, prices_exact)``, whether
    every stamp is a whole minute (within int32) and every price a whole number of cents that
    decodes back to the same float64 bits (NaN to ``missing``)."""
    ts_ok = True
    px_ok = True
    ns = np.int64(60_000_000_000)
    for i in range(ts.shape[0]):
        t = ts[i]
        m = t // ns
        if ts_ok and (t - m * ns != 0 or m <= -2147483648 or m > 2147483647):
            ts_ok = False
        if ts_ok:
            minutes[i] = m
        if px_ok:
            for side in range(2):
                p = bid[i] if side == 0 else ask[i]
                if p != p:
                    c = missing
                else:
                    r = np.rint(p * 100.0)
                    if not (abs(r) < 2147483647.0):
                        px_ok = False
                        break
                    c = np.int32(r)
                    back = c / 100.0
                    if back != p or (p == 0.0 and math.copysign(1.0, p) < 0.0):
                        px_ok = False
                        break
                if side == 0:
                    bid_cents[i] = c
                else:
                    ask_cents[i] = c
        if not ts_ok and not px_ok:
            break
    return ts_ok, px_ok


last_at_or_before_nb = jit(last_at_or_before_python)
grid_indices_nb = jit(grid_indices_python)
decode_quotes_nb = jit(decode_quotes_python)
encode_quotes_nb = jit(encode_quotes_python)

__all__ = [
    "decode_quotes_nb",
    "decode_quotes_python",
    "encode_quotes_nb",
    "encode_quotes_python",
    "grid_indices_nb",
    "grid_indices_python",
    "last_at_or_before_nb",
    "last_at_or_before_python",
]
