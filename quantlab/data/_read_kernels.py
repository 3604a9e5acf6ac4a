"""Numba kernels of the reading API: per-instrument searches in (instrument_id, ts)-sorted arrays.

Quote rows of one day are sorted by instrument, then time; instrument ``k`` owns rows
``lo[k]:hi[k]``. Every kernel writes row indices (``-1`` = no quote yet) into a preallocated
output, so the callers gather prices with plain numpy fancy indexing.
"""

from __future__ import annotations

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


last_at_or_before_nb = jit(last_at_or_before_python)
grid_indices_nb = jit(grid_indices_python)

__all__ = [
    "grid_indices_nb",
    "grid_indices_python",
    "last_at_or_before_nb",
    "last_at_or_before_python",
]
