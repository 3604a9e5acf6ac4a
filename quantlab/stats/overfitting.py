"""Overfitting statistics for parameter sweeps: deflated Sharpe ratio and PBO.

A sweep tries many configurations on the same history and keeps the best; the best one's
backtest Sharpe ratio is then biased upwards. Two published corrections live here:

* the **Deflated Sharpe Ratio** (Bailey & López de Prado, 2014, "The Deflated Sharpe Ratio:
  Correcting for Selection Bias, Backtest Overfitting and Non-Normality", *Journal of Portfolio
  Management* 40(5)): the Probabilistic Sharpe Ratio (Bailey & López de Prado, 2012, "The Sharpe
  Ratio Efficient Frontier", *Journal of Risk* 15(2)) of the chosen configuration against the
  Sharpe ratio that the best of ``N`` skill-less trials would show by luck;
* the **Probability of Backtest Overfitting** by combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado & Zhu, 2017, "The Probability of Backtest Overfitting",
  *Journal of Computational Finance* 20(4)): how often the in-sample winner ranks in the bottom
  half out of sample.

Conventions
-----------
* Sharpe ratios are :func:`quantlab.stats.metrics.sharpe_ratio` and its column-wise and
  from-sums twins: **per period** (mean / standard deviation with ``ddof=1`` of the period
  returns, zero risk-free rate) unless ``periods_per_year`` annualises them explicitly.
* Skewness and kurtosis are the plain moment estimates of the returns (``m3 / m2**1.5`` and
  ``m4 / m2**2``, the ``bias=True`` estimates of ``scipy.stats``); kurtosis is the **raw**
  kurtosis (3 for a normal distribution), not the excess kurtosis.
* Zero volatility follows :mod:`quantlab.stats.metrics`: a series with no dispersion has
  Sharpe 0 when it is all zeros (a configuration that never traded: still a trial, counted in
  the trials' variance and ranked by PBO) and ``±inf`` when it is a nonzero constant (which
  the deflated Sharpe ratio refuses, its PSR being undefined).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from quantlab._convert import as_float
from quantlab.errors import InputError
from quantlab.stats.metrics import sharpe_from_sums, sharpe_ratio, sharpe_ratio_columns

EULER_GAMMA = 0.5772156649015329  # the Euler-Mascheroni constant

MAX_COMBINATIONS = 2_000_000  # most CSCV combinations pbo_cscv evaluates (n_splits <= 22)

_NORMAL = NormalDist()
_CHUNK = 8192  # combinations per vectorised chunk in pbo_cscv (bounds the memory used)
_METRICS = ("sharpe", "mean", "sum")

Metric = str | Callable[[np.ndarray], Any]


# --------------------------------------------------------------------------- helpers


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _finite_scalar(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a real number (got {value!r}).") from exc
    if not math.isfinite(x):
        raise InputError(f"{name} must be finite (got {x}).")
    return x


def _count(name: str, value: Any, minimum: int = 2) -> int:
    ok = isinstance(value, int | np.integer | float | np.floating) and not isinstance(value, bool)
    if not ok or not float(value).is_integer() or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum} (got {value!r}).")
    return int(value)


def _returns_1d(name: str, returns: Any) -> np.ndarray:
    x = as_float(name, returns)
    if x.ndim != 1:
        raise InputError(
            f"{name} must be a 1-D series of period returns (got shape {x.shape}). "
            "For a T x N matrix of configurations use deflated_sharpe_from_matrix or pbo_cscv."
        )
    if x.size < 2:
        raise InputError(f"{name} needs at least 2 observations (got {x.size}).")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise InputError(
            f"{name} must be finite (got {x[bad[0]]} at index {bad[0]}). "
            "Fill no-trade periods with 0.0 rather than NaN."
        )
    return x


def _returns_matrix(returns_matrix: Any) -> np.ndarray:
    x = as_float("returns_matrix", returns_matrix)
    if x.ndim != 2:
        raise InputError(
            f"returns_matrix must be 2-D, T periods x N configurations (got shape {x.shape}). "
            "Stack each configuration's period returns as a column, e.g. np.column_stack(...)."
        )
    if x.shape[1] < 2:
        raise InputError(
            f"returns_matrix needs at least 2 configurations (columns), got {x.shape[1]}: "
            "overfitting statistics compare the chosen configuration with the others tried."
        )
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        r, c = (int(v) for v in bad[0])
        raise InputError(
            f"returns_matrix must be finite (got {x[r, c]} at row {r}, column {c}). "
            "Fill no-trade periods with 0.0 rather than NaN."
        )
    return x


def _moments(x: np.ndarray) -> tuple[float, float]:
    """Skewness and raw kurtosis (biased moment estimates); (0, 3) for a flat series."""
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    if m2 == 0.0:
        return 0.0, 3.0
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2


# --------------------------------------------------------------------------- Sharpe family


def probabilistic_sharpe_ratio(
    sr: float,
    sr_benchmark: float,
    n: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Probabilistic Sharpe Ratio, PSR (Bailey & López de Prado, 2012).

    The probability that the true Sharpe ratio exceeds ``sr_benchmark`` given the observed
    per-period ``sr`` over ``n`` returns with the given skewness and raw kurtosis::

        PSR = Φ( (SR − SR*) √(n − 1) / √(1 − γ3·SR + (γ4 − 1)/4 · SR²) )

    Parameters
    ----------
    sr : float
        Observed **per-period** Sharpe ratio (divide an annual one by ``sqrt(periods)``).
    sr_benchmark : float
        Benchmark per-period Sharpe ratio SR*.
    n : int
        Number of return observations (at least 2).
    skew : float, default 0.0
        Skewness γ3 of the returns.
    kurtosis : float, default 3.0
        **Raw** kurtosis γ4 of the returns (3 for normal returns; excess kurtosis + 3). Must be
        at least ``1 + skew**2``, which every distribution satisfies.

    Returns
    -------
    float
        PSR in [0, 1].

    Examples
    --------
    >>> round(probabilistic_sharpe_ratio(0.1, 0.0, 252), 3)
    0.943
    >>> round(probabilistic_sharpe_ratio(0.1, 0.05, 252, skew=-0.5, kurtosis=4.0), 4)
    0.7794
    """
    sr_f = _finite_scalar("sr", sr)
    bench = _finite_scalar("sr_benchmark", sr_benchmark)
    g3 = _finite_scalar("skew", skew)
    g4 = _finite_scalar("kurtosis", kurtosis)
    n_obs = _count("n", n)
    if g4 < 1.0 + g3 * g3 - 1e-12:
        raise InputError(
            f"kurtosis must be the raw (non-excess) kurtosis, at least 1 + skew**2 = "
            f"{1.0 + g3 * g3:.4g} (got {g4}). For normal returns it is 3: if you have the "
            "excess kurtosis, add 3."
        )
    var = 1.0 - g3 * sr_f + (g4 - 1.0) / 4.0 * sr_f * sr_f
    if var <= 0.0:  # only on the boundary kurtosis == 1 + skew**2 with sr == 2 / skew
        return 1.0 if sr_f > bench else (0.0 if sr_f < bench else 0.5)
    z = (sr_f - bench) * math.sqrt(n_obs - 1.0) / math.sqrt(var)
    return _norm_cdf(z)


def expected_max_sharpe(n_trials: float, var_sharpe: float) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` independent skill-less trials.

    Under the null hypothesis the trials' Sharpe estimates are normal with mean 0 and variance
    ``var_sharpe``; the expected maximum is approximated (Bailey & López de Prado, 2014) by::

        E[max SR] ≈ √V · ((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))

    with γ the Euler–Mascheroni constant.

    Parameters
    ----------
    n_trials : float
        Number of independent trials N (>= 1; a non-integer "effective number of trials" is
        accepted). One trial involves no selection and gives 0.0.
    var_sharpe : float
        Variance V of the trials' Sharpe ratios, in the units of the returned value (use the
        variance of per-period Sharpe ratios to get a per-period answer).

    Returns
    -------
    float
        The expected maximum Sharpe ratio SR* (>= 0 for N >= 2).

    Examples
    --------
    >>> round(expected_max_sharpe(100, 1.0), 4)
    2.5306
    >>> expected_max_sharpe(1, 1.0)
    0.0
    """
    n = _finite_scalar("n_trials", n_trials)
    v = _finite_scalar("var_sharpe", var_sharpe)
    if n < 1.0:
        raise InputError(f"n_trials must be at least 1 (got {n_trials!r}).")
    if v < 0.0:
        raise InputError(f"var_sharpe must be non-negative (got {v}); it is a variance.")
    if n == 1.0 or v == 0.0:
        return 0.0
    z = (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + EULER_GAMMA * _NORMAL.inv_cdf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(v) * z


@dataclass(frozen=True)
class DeflatedSharpe:
    """Result of :func:`deflated_sharpe_ratio` (all Sharpe ratios per period).

    Attributes
    ----------
    dsr : float
        Deflated Sharpe Ratio: PSR of ``sr`` against ``sr_star``; >= 0.95 is the paper's
        5 % significance bar.
    sr : float
        Sharpe ratio of the chosen configuration's returns.
    sr_star : float
        Expected maximum Sharpe ratio of ``n_trials`` skill-less trials.
    n_trials : float
        Number of (independent) trials used for the deflation.
    var_sharpe : float
        Variance of the trials' Sharpe ratios.
    skew, kurtosis : float
        Skewness and raw kurtosis of the chosen returns.
    n_obs : int
        Number of return observations of the chosen configuration.
    best_index : int or None
        Column of the chosen configuration (set by :func:`deflated_sharpe_from_matrix`).
    """

    dsr: float
    sr: float
    sr_star: float
    n_trials: float
    var_sharpe: float
    skew: float
    kurtosis: float
    n_obs: int
    best_index: int | None = None


def deflated_sharpe_ratio(
    returns: Any,
    trial_sharpes: Any = None,
    *,
    n_trials: float | None = None,
    var_sharpe: float | None = None,
) -> DeflatedSharpe:
    """Deflated Sharpe Ratio of a configuration chosen as the best of several trials.

    ``DSR = PSR(SR*)`` with ``SR* = expected_max_sharpe(N, Var[SR_trials])``, evaluated with
    the chosen configuration's per-period Sharpe ratio, the skewness and raw kurtosis of its
    returns and ``n`` = the number of its return observations.

    Parameters
    ----------
    returns : array-like, shape (T,)
        Period returns of the chosen configuration.
    trial_sharpes : array-like, shape (N,), optional
        Per-period Sharpe ratios of **all** configurations tried (the chosen one included).
        Gives ``n_trials = N`` and ``var_sharpe = var(trial_sharpes, ddof=1)`` unless those are
        passed explicitly.
    n_trials : float, optional
        Number of independent trials; overrides ``len(trial_sharpes)`` (e.g. an effective
        number of trials after clustering correlated configurations).
    var_sharpe : float, optional
        Variance of the trials' per-period Sharpe ratios; overrides the sample variance of
        ``trial_sharpes``. Convert annual figures: ``var_annual / periods_per_year``.

    Returns
    -------
    DeflatedSharpe

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = rng.normal(0.001, 0.01, 500)
    >>> res = deflated_sharpe_ratio(r, n_trials=20, var_sharpe=0.002)
    >>> 0.0 <= res.dsr <= 1.0, res.n_obs
    (True, 500)
    """
    x = _returns_1d("returns", returns)
    n_tr: float | None = None
    var: float | None = None
    if trial_sharpes is not None:
        t = as_float("trial_sharpes", trial_sharpes)
        if t.ndim != 1 or t.size < 2:
            raise InputError(
                "trial_sharpes must be a 1-D array of the Sharpe ratios of all configurations "
                f"tried, at least 2 (got shape {t.shape})."
            )
        if not np.all(np.isfinite(t)):
            raise InputError(
                "trial_sharpes must be finite (a configuration with constant nonzero returns "
                "has an infinite Sharpe ratio; drop or fix it)."
            )
        n_tr, var = float(t.size), float(np.var(t, ddof=1))
    if n_trials is not None:
        n_tr = _finite_scalar("n_trials", n_trials)
    if var_sharpe is not None:
        var = _finite_scalar("var_sharpe", var_sharpe)
    if n_tr is None or var is None:
        raise InputError(
            "deflated_sharpe_ratio needs the trials: pass trial_sharpes (Sharpe ratios of all "
            "configurations tried) or both n_trials and var_sharpe."
        )
    sr_star = expected_max_sharpe(n_tr, var)
    sr = sharpe_ratio(x)
    if not math.isfinite(sr):
        raise InputError(
            "returns has no dispersion (a nonzero constant), so its Sharpe ratio is infinite."
        )
    skew, kurt = _moments(x)
    dsr = probabilistic_sharpe_ratio(sr, sr_star, int(x.size), skew, kurt)
    return DeflatedSharpe(dsr, sr, sr_star, n_tr, var, skew, kurt, int(x.size))


def deflated_sharpe_from_matrix(
    returns_matrix: Any, *, n_trials: float | None = None
) -> DeflatedSharpe:
    """Deflated Sharpe Ratio of the best column of a sweep's return matrix.

    Parameters
    ----------
    returns_matrix : array-like, shape (T, N)
        Period returns of N configurations over the same T periods (no-trade periods as 0.0).
        The column with the highest per-period Sharpe ratio is the chosen configuration; the
        Sharpe ratios of all N columns give the trial variance.
    n_trials : float, optional
        Effective number of independent trials (default N).

    Returns
    -------
    DeflatedSharpe
        With ``best_index`` set to the chosen column.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> m = rng.normal(0.0, 0.01, size=(250, 30))
    >>> res = deflated_sharpe_from_matrix(m)
    >>> res.n_trials, res.dsr < 0.95
    (30.0, True)
    """
    x = _returns_matrix(returns_matrix)
    if x.shape[0] < 2:
        raise InputError(f"returns_matrix needs at least 2 rows (periods), got {x.shape[0]}.")
    srs = sharpe_ratio_columns(x)
    bad = np.flatnonzero(~np.isfinite(srs))
    if bad.size:
        raise InputError(
            f"returns_matrix column {bad[0]} is a nonzero constant, so its Sharpe ratio is "
            "infinite; drop it or check how its returns were built."
        )
    best = int(np.argmax(srs))
    res = deflated_sharpe_ratio(x[:, best], srs, n_trials=n_trials)
    return dataclasses.replace(res, best_index=best)


# --------------------------------------------------------------------------- PBO by CSCV


@dataclass(frozen=True)
class PBOResult:
    """Result of :func:`pbo_cscv`.

    Attributes
    ----------
    pbo : float
        Probability of backtest overfitting: share of combinations whose logit is <= 0 (the
        in-sample winner ranks at or below the out-of-sample median).
    logits : numpy.ndarray, shape (n_combinations,)
        λ = ln(ω̄ / (1 − ω̄)) per combination, ω̄ = OOS rank / (N + 1) of the IS winner (rank 1
        = worst); combinations in :func:`itertools.combinations` order of the IS blocks.
    n_combinations : int
        C(S, S/2).
    n_splits : int
        S, the number of blocks.
    degradation_slope, degradation_intercept : float
        OLS fit ``oos_metric ≈ intercept + slope · is_metric`` over the combinations (finite
        pairs only; NaN when fewer than 2 or no IS spread). A negative slope is the paper's
        sign of overfitting.
    prob_oos_loss : float
        Share of combinations where the IS winner's OOS metric is < 0.
    is_metric, oos_metric : numpy.ndarray, shape (n_combinations,)
        IS and OOS metric of the IS winner per combination.
    chosen : numpy.ndarray of int, shape (n_combinations,)
        Column chosen in-sample per combination.
    n_configs : int
        N, the number of configurations (columns).
    n_rows_used : int
        Rows used, ``S * (T // S)``; the last ``T % S`` rows are dropped.
    """

    pbo: float
    logits: np.ndarray
    n_combinations: int
    n_splits: int
    degradation_slope: float
    degradation_intercept: float
    prob_oos_loss: float
    is_metric: np.ndarray
    oos_metric: np.ndarray
    chosen: np.ndarray
    n_configs: int
    n_rows_used: int


def _metric_from_sums(kind: str, s: np.ndarray, q: np.ndarray, n: float) -> np.ndarray:
    """Metric of every (combination, config) from summed returns s and squares q over n rows."""
    if kind == "sum":
        return s
    if kind == "mean":
        return s / n
    return np.asarray(sharpe_from_sums(s, q, n))


def _resolve_metric(metric: Metric) -> str | Callable[[np.ndarray], Any]:
    if metric is sharpe_ratio:
        return "sharpe"
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise InputError(f"metric must be one of {_METRICS} or a callable (got {metric!r}).")
        return metric
    if callable(metric):
        return metric
    raise InputError(f"metric must be one of {_METRICS} or a callable (got {metric!r}).")


def _callable_metric(fn: Callable[[np.ndarray], Any], x: np.ndarray, n_cfg: int) -> np.ndarray:
    out = np.asarray(fn(x), dtype=np.float64)
    if out.shape != (n_cfg,):
        raise InputError(
            f"metric callable must map a (rows, {n_cfg}) array to shape ({n_cfg},) "
            f"(got shape {out.shape})."
        )
    if np.isnan(out).any():
        raise InputError("metric callable returned NaN; rank ties need comparable values.")
    return out


def pbo_cscv(returns_matrix: Any, n_splits: int = 16, metric: Metric = "sharpe") -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    Bailey, Borwein, López de Prado & Zhu (2017). The T rows are cut into ``S = n_splits``
    equal contiguous blocks of ``T // S`` rows; the last ``T % S`` rows are **dropped**. For
    each of the C(S, S/2) ways to pick S/2 blocks as in-sample (IS; the other S/2 are
    out-of-sample, OOS), the configuration with the best IS metric is chosen and its OOS
    relative rank ω̄ = rank / (N + 1) (rank 1 = worst of N, **average ranks for ties**) gives
    the logit λ = ln(ω̄ / (1 − ω̄)). PBO is the share of combinations with λ <= 0.

    The metric of every combination comes from per-block sums and sums of squares (no
    re-slicing), so C(16, 8) = 12,870 combinations of a few hundred rows and ~50
    configurations take milliseconds. IS ties (equal best metric) pick the lowest column.

    Parameters
    ----------
    returns_matrix : array-like, shape (T, N)
        Period returns of N >= 2 configurations over the same T periods (no NaN; fill
        no-trade periods with 0.0).
    n_splits : int, default 16
        S, even, 2 <= S <= T, with C(S, S/2) <= ``MAX_COMBINATIONS``; each half must hold
        at least 2 rows for the Sharpe metric.
    metric : {"sharpe", "mean", "sum"} or callable, default "sharpe"
        Per-period Sharpe ratio (``ddof=1``; :func:`sharpe_ratio` itself is accepted), mean
        or total return of the rows. A callable gets the (rows, N) sub-matrix of a half and
        returns N values; it is evaluated by slicing, about 2 × C(S, S/2) calls (slow).

    Returns
    -------
    PBOResult

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> noise = rng.normal(0.0, 0.01, size=(240, 20))
    >>> res = pbo_cscv(noise, n_splits=8)
    >>> res.n_combinations, 0.2 < res.pbo < 0.8
    (70, True)
    >>> edge = noise.copy()
    >>> edge[:, 3] += 0.01
    >>> pbo_cscv(edge, n_splits=8).pbo
    0.0
    """
    x = _returns_matrix(returns_matrix)
    t_rows, n_cfg = x.shape
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise InputError(f"n_splits must be an even integer (got {n_splits!r}).")
    s_blocks = int(n_splits)
    if s_blocks < 2 or s_blocks % 2:
        raise InputError(
            f"n_splits must be an even integer >= 2 (got {s_blocks}); IS and OOS take half "
            "the blocks each. Typical: 16."
        )
    if s_blocks > t_rows:
        raise InputError(
            f"n_splits must not exceed the number of rows T = {t_rows} (got {s_blocks}); "
            "each block needs at least one row."
        )
    kind = _resolve_metric(metric)
    half = s_blocks // 2
    block_len = t_rows // s_blocks
    if kind == "sharpe" and half * block_len < 2:
        raise InputError(
            f"n_splits = {s_blocks} leaves {half * block_len} row(s) per half of T = {t_rows}; "
            "a Sharpe ratio needs at least 2. Use fewer splits."
        )
    n_comb = math.comb(s_blocks, half)
    if n_comb > MAX_COMBINATIONS:
        raise InputError(
            f"n_splits = {s_blocks} gives {n_comb:,} combinations, more than {MAX_COMBINATIONS:,}."
            " Use n_splits <= 22 (16 is the usual choice)."
        )
    used = s_blocks * block_len
    blocks = x[:used].reshape(s_blocks, block_len, n_cfg)
    combos = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(s_blocks), half)),
        dtype=np.intp,
        count=n_comb * half,
    ).reshape(n_comb, half)

    is_val = np.empty(n_comb)
    oos_val = np.empty(n_comb)
    chosen = np.empty(n_comb, dtype=np.intp)
    rank = np.empty(n_comb)
    n_half = float(half * block_len)

    if isinstance(kind, str):
        bsum = blocks.sum(axis=1)  # (S, N)
        bsq = np.einsum("sbn,sbn->sn", blocks, blocks)
        tsum, tsq = bsum.sum(axis=0), bsq.sum(axis=0)
        for lo in range(0, n_comb, _CHUNK):
            hi = min(lo + _CHUNK, n_comb)
            member = np.zeros((hi - lo, s_blocks))
            np.put_along_axis(member, combos[lo:hi], 1.0, axis=1)
            s_is, q_is = member @ bsum, member @ bsq
            m_is = _metric_from_sums(kind, s_is, q_is, n_half)
            m_oos = _metric_from_sums(kind, tsum - s_is, tsq - q_is, n_half)
            _select_and_rank(m_is, m_oos, lo, is_val, oos_val, chosen, rank)
    else:
        all_blocks = np.arange(s_blocks)
        for c in range(n_comb):
            is_idx = combos[c]
            oos_idx = np.setdiff1d(all_blocks, is_idx, assume_unique=True)
            m_is = _callable_metric(kind, blocks[is_idx].reshape(-1, n_cfg), n_cfg)
            m_oos = _callable_metric(kind, blocks[oos_idx].reshape(-1, n_cfg), n_cfg)
            _select_and_rank(m_is[None], m_oos[None], c, is_val, oos_val, chosen, rank)

    omega = rank / (n_cfg + 1.0)
    logits = np.log(omega / (1.0 - omega))
    slope, intercept = _ols(is_val, oos_val)
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        n_combinations=n_comb,
        n_splits=s_blocks,
        degradation_slope=slope,
        degradation_intercept=intercept,
        prob_oos_loss=float(np.mean(oos_val < 0.0)),
        is_metric=is_val,
        oos_metric=oos_val,
        chosen=chosen,
        n_configs=n_cfg,
        n_rows_used=used,
    )


def _select_and_rank(
    m_is: np.ndarray,
    m_oos: np.ndarray,
    lo: int,
    is_val: np.ndarray,
    oos_val: np.ndarray,
    chosen: np.ndarray,
    rank: np.ndarray,
) -> None:
    """IS winner per row, its IS/OOS metric and its average OOS rank (1 = worst)."""
    rows = np.arange(m_is.shape[0])
    best = np.argmax(m_is, axis=1)
    v = m_oos[rows, best]
    less = np.count_nonzero(m_oos < v[:, None], axis=1)
    equal = np.count_nonzero(m_oos == v[:, None], axis=1)  # includes the winner itself
    hi = lo + rows.size
    chosen[lo:hi] = best
    is_val[lo:hi] = m_is[rows, best]
    oos_val[lo:hi] = v
    rank[lo:hi] = less + (equal + 1) / 2.0


def _ols(xv: np.ndarray, yv: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(xv) & np.isfinite(yv)
    if np.count_nonzero(ok) < 2:
        return math.nan, math.nan
    xs, ys = xv[ok], yv[ok]
    dx = xs - xs.mean()
    sxx = float(dx @ dx)
    if sxx == 0.0:
        return math.nan, math.nan
    slope = float(dx @ (ys - ys.mean())) / sxx
    return slope, float(ys.mean() - slope * xs.mean())


__all__ = [
    "EULER_GAMMA",
    "MAX_COMBINATIONS",
    "DeflatedSharpe",
    "PBOResult",
    "deflated_sharpe_from_matrix",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "pbo_cscv",
    "probabilistic_sharpe_ratio",
    "sharpe_ratio",
]
