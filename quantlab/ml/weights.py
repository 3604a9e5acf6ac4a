"""Sample weights for overlapping labels: average uniqueness (López de Prado, AFML ch. 4).

When labels overlap in time, a stretch of market history covered by ``c`` concurrent labels is
counted ``c`` times in training. Each sample's *average uniqueness* is the mean over its label's
lifespan of ``1 / c_t``: 1 for a label that overlaps nothing, ``1/2`` for two identical labels.
Using it as ``sample_weight`` keeps heavily overlapped periods from dominating the fit.

Two time models are offered:

* **bars** (``bar_times`` given, as in AFML): concurrency is counted at each bar time ``b``
  as the number of samples with ``t0 <= b <= t1`` (closed), and a sample's uniqueness is the
  plain mean of ``1 / c_b`` over the bars inside its closed interval ``[t0, t1]``;
* **continuous time** (``bar_times=None``): the time-weighted mean of ``1 / c(t)`` over the
  half-open interval ``[t0, t1)``, where ``c(t)`` counts samples with ``t0 <= t < t1``. A
  zero-length label (``t0 == t1``) gets ``1 / c`` at its instant, ``c`` counting the closed
  intervals that contain it.

Both are computed by a sweep over the sorted end points (searchsorted + cumulative sums),
``O((n + m) log(n + m))``, never an ``n x n`` overlap matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantlab.errors import InputError
from quantlab.ml.cv import as_times, validate_intervals


def _closed_count(t0s: np.ndarray, t1s: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Number of closed intervals ``[t0, t1]`` containing each point (t0s, t1s sorted)."""
    return np.searchsorted(t0s, points, side="right") - np.searchsorted(t1s, points, side="left")


def label_uniqueness(t0: Any, t1: Any, bar_times: Any = None) -> np.ndarray:
    """Average uniqueness of each sample's label, in ``(0, 1]``.

    Parameters
    ----------
    t0, t1 : array-like
        Label start and end times (same length, ``t1 >= t0``; need not be sorted).
        datetime64, int64 nanoseconds, integers or floats.
    bar_times : array-like, optional
        Sorted bar time stamps (same units as ``t0``). If given, concurrency is counted per bar
        (AFML); every label must contain at least one bar. If omitted, continuous time.

    Returns
    -------
    numpy.ndarray
        float64 weights, one per sample, in the input order.

    Examples
    --------
    >>> label_uniqueness([0, 2, 4], [4, 6, 8]).tolist()           # continuous time
    [0.75, 0.5, 0.75]
    >>> w = label_uniqueness([0, 2, 4], [4, 6, 8], bar_times=range(9))  # AFML bars
    >>> np.round(w * 15, 6).tolist()                               # = 10/15, 7/15, 10/15
    [10.0, 7.0, 10.0]
    """
    a, b = validate_intervals(t0, t1, require_sorted=False)
    n = a.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.float64)
    t0s, t1s = np.sort(a), np.sort(b)
    if bar_times is not None:
        return _bar_uniqueness(a, b, t0s, t1s, as_times("bar_times", bar_times))
    # continuous time: sweep over the distinct end points
    pts = np.unique(np.concatenate([a, b]))
    # half-open concurrency on the segment [pts[k], pts[k+1])
    conc = np.searchsorted(t0s, pts[:-1], side="right") - np.searchsorted(
        t1s, pts[:-1], side="right"
    )
    length = np.diff(pts - pts[0]).astype(np.float64)
    inv = np.divide(length, conc, out=np.zeros_like(length), where=conc > 0)
    cum = np.concatenate([[0.0], np.cumsum(inv)])
    ia = np.searchsorted(pts, a)
    ib = np.searchsorted(pts, b)
    span = (b - a).astype(np.float64)
    out = np.empty(n, dtype=np.float64)
    pos = span > 0
    out[pos] = (cum[ib[pos]] - cum[ia[pos]]) / span[pos]
    if (~pos).any():
        out[~pos] = 1.0 / _closed_count(t0s, t1s, a[~pos])
    return out


def _bar_uniqueness(
    a: np.ndarray, b: np.ndarray, t0s: np.ndarray, t1s: np.ndarray, bars: np.ndarray
) -> np.ndarray:
    if bars.shape[0] > 1 and (np.diff(bars) <= 0).any():
        idx = int(np.flatnonzero(np.diff(bars) <= 0)[0]) + 1
        raise InputError(
            f"bar_times must be strictly increasing (got bar_times[{idx}]={bars[idx]!r} after "
            f"{bars[idx - 1]!r})."
        )
    conc = _closed_count(t0s, t1s, bars)
    inv = np.divide(1.0, conc, out=np.zeros(conc.shape, dtype=np.float64), where=conc > 0)
    cum = np.concatenate([[0.0], np.cumsum(inv)])
    lo = np.searchsorted(bars, a, side="left")
    hi = np.searchsorted(bars, b, side="right")
    nb = hi - lo
    if (nb == 0).any():
        idx = int(np.flatnonzero(nb == 0)[0])
        raise InputError(
            f"sample {idx} (t0={a[idx]!r}, t1={b[idx]!r}) contains no bar of bar_times. "
            "Pass the bar grid the labels were built on, or bar_times=None for continuous time."
        )
    return (cum[hi] - cum[lo]) / nb


__all__ = ["label_uniqueness"]
