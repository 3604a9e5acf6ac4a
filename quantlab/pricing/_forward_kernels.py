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
    j = np.argmin(np.abs(diff))
    f0 = k[j] + diff[j] / df
    m = min(n_pairs, n)
    near = np.argsort(np.abs(k - f0), kind="mergesort")[:m]
    est = np.empty(m)
    w = np.empty(m)
    u = np.empty(m)
    for i in range(m):
        q = near[i]
        u[i] = max(half[q], TICK) / df
        est[i] = k[q] + diff[q] / df
        w[i] = 1.0 / (u[i] * u[i])
    order = np.argsort(est, kind="mergesort")
    cw = np.cumsum(w[order])
    idx = np.searchsorted(cw, 0.5 * cw[-1])
    med = est[order[min(idx, m - 1)]]
    mad = np.median(np.abs(est - med))
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
