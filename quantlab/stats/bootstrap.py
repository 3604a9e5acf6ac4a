"""Bootstrap confidence intervals of trade and return statistics, deterministic for a seed.

Percentile intervals from iid resampling (independent trades) or block resampling of serially
dependent daily returns: the stationary bootstrap of Politis & Romano (1994, "The Stationary
Bootstrap", *JASA* 89(428)) with geometric block lengths, or the circular block bootstrap. The
``"sharpe"`` statistic is :func:`quantlab.stats.metrics.sharpe_ratio` of each resample, zero
volatility rule included. Resamples are drawn in chunks of at most ~2 million values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from quantlab._convert import as_float
from quantlab.errors import InputError
from quantlab.stats.metrics import PERIODS_PER_YEAR, check_alpha, sharpe_ratio_columns

StatFn = Callable[[np.ndarray], np.ndarray]


def _sharpe_rows(periods_per_year: float) -> StatFn:
    """Annualized Sharpe ratio of each resample (a row): metrics.sharpe_ratio_columns."""

    def stat(x: np.ndarray) -> np.ndarray:
        return np.asarray(sharpe_ratio_columns(x.T, periods_per_year=periods_per_year))

    return stat


def _mean_rows(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1)


def _stationary_indices(
    rng: np.random.Generator, rows: int, n: int, mean_block: float
) -> np.ndarray:
    """Politis-Romano stationary bootstrap: geometric block lengths, wrapping around."""
    starts = rng.integers(0, n, size=(rows, n))
    new_block = rng.random((rows, n)) < 1.0 / mean_block
    new_block[:, 0] = True
    t = np.arange(n)
    last = np.where(new_block, t, 0)
    np.maximum.accumulate(last, axis=1, out=last)
    return (np.take_along_axis(starts, last, axis=1) + (t - last)) % n


def _circular_indices(rng: np.random.Generator, rows: int, n: int, block: int) -> np.ndarray:
    """Circular block bootstrap: fixed-length blocks at random starts, wrapping around."""
    n_blocks = -(-n // block)
    starts = rng.integers(0, n, size=(rows, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)) % n
    return idx.reshape(rows, n_blocks * block)[:, :n]


def _values(data: Any) -> np.ndarray:
    if hasattr(data, "columns") and hasattr(data, "height"):  # a polars trades frame
        if "pnl" not in data.columns:
            raise InputError(
                f"data lacks column(s) ['pnl'] (has {data.columns}): pass a trades frame or "
                "a 1-D series such as daily returns."
            )
        data = data["pnl"]
    x = as_float("data", data)
    if x.ndim != 1:
        raise InputError(f"bootstrap data must be one-dimensional (got shape {x.shape}).")
    return x[np.isfinite(x)]


def bootstrap_distribution(
    data: Any,
    stat: str | StatFn = "mean",
    *,
    n_boot: int = 2000,
    seed: int = 0,
    method: str | None = None,
    block: float | None = None,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> np.ndarray:
    """Bootstrap replicates of a statistic; see :func:`bootstrap_ci` for the arguments.

    Returns
    -------
    numpy.ndarray
        ``n_boot`` replicates (NaN where a callable leaves the statistic undefined; ``±inf``
        for the Sharpe ratio of a constant nonzero resample); empty when the data has fewer
        than two finite values.
    """
    x = _values(data)
    n = x.size
    if int(n_boot) < 1:
        raise InputError(f"n_boot must be a positive integer (got {n_boot!r}).")
    fn: StatFn
    if callable(stat):
        fn = stat
    elif stat == "mean":
        fn = _mean_rows
    elif stat == "sharpe":
        fn = _sharpe_rows(float(periods_per_year))
    else:
        raise InputError(f"stat must be 'mean', 'sharpe' or a callable (got {stat!r}).")
    if method is None:
        method = "stationary" if stat == "sharpe" else "iid"
    if method not in ("iid", "stationary", "circular"):
        raise InputError(f"method must be 'iid', 'stationary' or 'circular' (got {method!r}).")
    if block is None:
        block = max(1.0, float(round(n ** (1.0 / 3.0))))
    if block < 1:
        raise InputError(f"block (mean block length) must be >= 1 (got {block!r}).")
    if n < 2:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, 2_000_000 // n)
    out = np.empty(int(n_boot))
    for lo in range(0, int(n_boot), rows_per_chunk):
        rows = min(rows_per_chunk, int(n_boot) - lo)
        if method == "iid":
            idx = rng.integers(0, n, size=(rows, n))
        elif method == "stationary":
            idx = _stationary_indices(rng, rows, n, float(block))
        else:
            idx = _circular_indices(rng, rows, n, max(1, round(block)))
        out[lo : lo + rows] = fn(x[idx])
    return out


def bootstrap_ci(
    data: Any,
    stat: str | StatFn = "mean",
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    method: str | None = None,
    block: float | None = None,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval, deterministic for a seed.

    Parameters
    ----------
    data : polars.DataFrame, polars.Series or array-like
        A trades frame (its ``pnl`` is used) or a 1-D series such as daily returns.
        Non-finite values are dropped.
    stat : {"mean", "sharpe"} or callable, default "mean"
        ``"sharpe"``: :func:`quantlab.stats.metrics.sharpe_ratio` annualized with
        ``periods_per_year`` (a resample of no-trade days has Sharpe 0.0). A callable gets a
        ``(rows, n)`` matrix of resamples and returns ``rows`` values.
    n_boot : int, default 2000
        Number of resamples.
    alpha : float, default 0.05
        The interval covers ``1 - alpha``.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``.
    method : {"iid", "stationary", "circular"}, optional
        Resampling scheme; default ``"iid"`` for ``"mean"`` (independent trades) and the
        stationary block bootstrap (Politis & Romano 1994) for ``"sharpe"`` (daily returns are
        serially dependent while trades overlap).
    block : float, optional
        Mean block length (stationary) or block length (circular); default ``n ** (1/3)``
        rounded, at least 1.
    periods_per_year : int, default 252
        Annualization of ``"sharpe"``.

    Returns
    -------
    tuple of float
        ``(lo, hi)``: the ``alpha/2`` and ``1 - alpha/2`` quantiles of the finite replicates
        (an infinite Sharpe ratio of a constant nonzero resample is left out);
        ``(nan, nan)`` with fewer than two values.

    Examples
    --------
    >>> lo, hi = bootstrap_ci(np.arange(100.0), "mean", seed=1)
    >>> bool(lo < 49.5 < hi)
    True
    """
    alpha = check_alpha(alpha)
    dist = bootstrap_distribution(
        data,
        stat,
        n_boot=n_boot,
        seed=seed,
        method=method,
        block=block,
        periods_per_year=periods_per_year,
    )
    dist = dist[np.isfinite(dist)]
    if dist.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(dist, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(lo), float(hi))


__all__ = ["StatFn", "bootstrap_ci", "bootstrap_distribution"]
