"""The parity forward fit of :func:`quantlab.pricing.implied_forward` (rate known) as a numba
kernel: the decision snapshot calls it through ``implied_forward``, and stage 1 calls it at
every path minute (:func:`quantlab.backtest._path_kernels.minute_forwards`), so the method
exists once. The method is described in :mod:`quantlab.pricing.forward`.
"""

from __future__ import annotations

import math

import numpy as np

from quantlab._numba import jit

MAD_SCALE = 1.4826
OUTLIER_MADS = 4.0
TICK = 0.01  # floor for locked quotes: a zero-width pair is not infinitely precise


@jit(inline="always")
def _stable_order(x, m):
    """The stable ascending order of ``x[:m]`` (insertion sort: ``m`` is a handful)."""
    order = np.empty(m, np.int64)
    for i in range(m):
        j = i
        while j > 0 and x[order[j - 1]] > x[i]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = i
    return order


@jit(inline="always")
def _nearest_sorted(k, f0, m):
    """The ``m`` indices of strictly ascending ``k`` nearest to ``f0``, nearest first, a tie to the
    lower index: what a stable argsort of ``|k - f0|`` starts with, in O(m)."""
    hi = np.searchsorted(k, f0)
    lo = hi - 1
    near = np.empty(m, np.int64)
    for i in range(m):
        if lo < 0:
            near[i] = hi
            hi += 1
        elif hi >= k.shape[0]:
            near[i] = lo
            lo -= 1
        else:
            dl = abs(k[lo] - f0)
            dh = abs(k[hi] - f0)
            if dh < dl:
                near[i] = hi
                hi += 1
            elif dl < dh:
                near[i] = lo
                lo -= 1
            else:  # a tie: the stable sort takes the lower index first
                near[i] = lo
                lo -= 1
    return near


@jit
def fit_forward(k, diff, half, df, n_pairs, keep):
    """``(forward, n_used, stderr)`` from usable pairs: strikes ``k``, ``diff`` = call mid -
    put mid, ``half`` = the mean half-width of the pair; ``keep[i]`` is set for the pairs used
    (NaN forward when there is none). Steps 1-3 of :mod:`quantlab.pricing.forward`."""
    n = k.shape[0]
    for i in range(n):
        keep[i] = False
    if n < 1:
        return math.nan, 0, math.nan
    j = 0
    ascending = True
    for i in range(1, n):
        if abs(diff[i]) < abs(diff[j]):
            j = i
        if k[i] <= k[i - 1]:  # strictly ascending (unique strikes) takes the O(m) path
            ascending = False
    f0 = k[j] + diff[j] / df
    m = min(n_pairs, n)
    if ascending:
        near = _nearest_sorted(k, f0, m)
    else:
        near = np.argsort(np.abs(k - f0), kind="mergesort")[:m]
    est = np.empty(m)
    w = np.empty(m)
    u = np.empty(m)
    for i in range(m):
        q = near[i]
        u[i] = max(half[q], TICK) / df
        est[i] = k[q] + diff[q] / df
        w[i] = 1.0 / (u[i] * u[i])
    order = _stable_order(est, m)
    half_w = 0.0
    for i in range(m):
        half_w += w[order[i]]
    half_w *= 0.5
    cw = 0.0
    idx = m - 1
    for i in range(m):  # the first index whose cumulative weight reaches half of the total
        cw += w[order[i]]
        if cw >= half_w:
            idx = i
            break
    med = est[order[idx]]
    dev = np.empty(m)
    for i in range(m):
        dev[i] = abs(est[i] - med)
    dev_order = _stable_order(dev, m)
    if m % 2:
        mad = dev[dev_order[m // 2]]
    else:
        mad = (dev[dev_order[m // 2 - 1]] + dev[dev_order[m // 2]]) / 2.0
    sw = 0.0
    swe = 0.0
    n_used = 0
    first_u = math.nan
    for i in range(m):
        if abs(est[i] - med) <= max(OUTLIER_MADS * MAD_SCALE * mad, u[i]):
            keep[near[i]] = True
            sw += w[i]
            swe += w[i] * est[i]
            if n_used == 0:
                first_u = u[i]
            n_used += 1
    fwd = swe / sw
    if n_used == 1:
        return fwd, 1, first_u
    ss = 0.0
    for i in range(m):
        if keep[near[i]]:
            ss += w[i] * (est[i] - fwd) ** 2
    return fwd, n_used, math.sqrt(ss / sw / (n_used - 1))


__all__ = ["MAD_SCALE", "OUTLIER_MADS", "TICK", "fit_forward"]
