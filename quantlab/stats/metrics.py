"""Performance metrics, each defined once: return ratios, drawdowns and trade statistics.

Every number that quantlab reports about a backtest, a sweep configuration or the live book
(:mod:`quantlab.backtest.analytics`, the HTML report, the sweep's metrics and its deflated
Sharpe ratio and PBO in :mod:`quantlab.stats.overfitting`, ``quantlab live status``) is computed
by the small numpy functions of this module. numpy in, floats or arrays out; nothing heavier is
imported (vectorbt, whose returns accessor the tests compare against, takes seconds to import).

Conventions
-----------
Returns
    Daily simple returns are built from end-of-session equity as
    ``r[t] = equity[t] / equity[t-1] - 1`` with ``equity[-1] = capital``, the starting equity:
    the first session's return is measured from the capital (:func:`returns_from_equity`).
Periods per year
    252 sessions (:data:`PERIODS_PER_YEAR`). Ratios are per period unless a function is told
    ``periods_per_year``; annualised figures say so in their names.
Risk-free rate
    Zero throughout (the ratios are of the returns themselves, not of excess returns).
Standard deviation
    The sample standard deviation, ``ddof=1``; a volatility, Sharpe or Sortino ratio needs at
    least 2 observations (fewer raise :class:`~quantlab.errors.InputError`).
Annualised return and volatility
    ``(prod(1 + r)) ** (periods_per_year / T) - 1`` (the compound annual growth rate) and
    ``std(r, ddof=1) * sqrt(periods_per_year)``.
Sharpe ratio
    ``mean(r) / std(r, ddof=1)``, times ``sqrt(periods_per_year)`` when annualised.
Sortino ratio
    ``mean(r) / DD`` with the downside deviation ``DD = sqrt(mean(min(r, 0) ** 2))``: target
    return 0, the root mean square of the shortfall over **all** T periods (periods above the
    target count as zero shortfall; divided by T, not by the number of losing periods, and not
    by T - 1); times ``sqrt(periods_per_year)`` when annualised. This is Sortino & Price (1994)
    with a zero target, and what vectorbt's and empyrical's ``sortino_ratio`` compute.
Drawdown
    Measured on the path that **starts at capital**, ``[capital, equity[0], ..., equity[T-1]]``:
    ``path / running_max(path) - 1``, a fraction <= 0 (-0.12 = 12 % below the peak). A loss on
    the first session is a drawdown from the capital. Max drawdown is its minimum (0.0 without
    any). A drawdown period runs from the last peak before the path falls below it to the first
    point back at or above that peak (recovered) or to the end of the path (active); its
    duration counts the sessions under water.
Calmar ratio
    ``annualised return / |max drawdown|`` of the same series (over the whole period, not the
    trailing 36 months of the original definition).
Zero volatility (one rule for every ratio whose denominator is a volatility or a drawdown)
    **When the denominator is zero, the ratio is 0.0 if its numerator is 0 and ±inf with the
    numerator's sign otherwise; never NaN.** An all-zero series (a configuration that never
    traded) therefore has Sharpe, Sortino and Calmar 0.0, and a nonzero constant series has
    Sharpe ±inf. NaN is kept for "not enough data" only. Why: a configuration that never traded
    is a genuine trial without skill, so the deflated Sharpe ratio must count it in the variance
    of the trials and PBO must rank it; both need a comparable number, and 0 is the neutral
    value of all three ratios (NaN would also sort above every number in a polars table and
    make a no-trade configuration the "best"). A gain taken without any measured risk is
    better than any risky one, so ``+inf`` ranks it first; the deflated Sharpe ratio refuses
    it with an error (its PSR is undefined) and reports print it as ∞. The standard deviation
    is zero when all values are equal (tested on the values, so the rounding of a constant
    series' mean cannot make a huge finite ratio); the downside deviation is zero when no
    value is negative; |max drawdown| is zero when the path never falls below a running peak.
    :func:`sharpe_from_sums`, which only sees sums, counts a sum of squared deviations up to
    1e-12 of the sum of squares as zero: the rounding a constant series leaves there.
Trades
    A win is ``pnl > 0`` and a loss ``pnl < 0`` (a breakeven trade is neither but counts in
    the number of trades). Profit factor = gross profit / gross loss; without losses it is
    ``+inf`` when there is a win, and NaN when there is neither (its neutral value is 1, so 0
    would misread as "all losses"; it is not a volatility ratio). CVaR at level ``alpha`` is
    the mean P&L of the worst ``ceil(alpha * n)`` trades. Holding time is calendar time from
    entry to exit. Statistics of no trades are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantlab import calendar
from quantlab._convert import as_float
from quantlab.errors import InputError

PERIODS_PER_YEAR = 252  # sessions per year
NS_PER_MINUTE = calendar.NS_PER_MINUTE
_FLAT_SS = 1e-12  # relative sum of squared deviations that sharpe_from_sums counts as zero
_CEIL_SLACK = 1e-9  # ceil(alpha * n) without float slop: 0.05 * 60 = 3.0000000000000004


# --------------------------------------------------------------------------- validation


def _series(name: str, values: Any, minimum: int = 0) -> np.ndarray:
    """A finite 1-D float64 array with at least ``minimum`` elements."""
    x = as_float(name, values)
    if x.ndim != 1:
        raise InputError(
            f"{name} must be a 1-D series (got shape {x.shape}). For a T x N matrix of "
            "configurations use sharpe_ratio_columns."
        )
    if x.size < minimum:
        why = "a standard deviation (ddof=1) needs two" if minimum == 2 else "none is undefined"
        raise InputError(f"{name} needs at least {minimum} observation(s) (got {x.size}): {why}.")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise InputError(
            f"{name} must be finite (got {x[bad[0]]} at index {bad[0]}). "
            "Fill no-trade periods with 0.0 rather than NaN."
        )
    return x


def _matrix(name: str, values: Any) -> np.ndarray:
    x = as_float(name, values)
    if x.ndim != 2:
        raise InputError(
            f"{name} must be 2-D, T periods x N configurations (got shape {x.shape}). "
            "Stack each configuration's returns as a column, e.g. np.column_stack(...)."
        )
    if x.shape[0] < 2:
        raise InputError(
            f"{name} needs at least 2 rows (periods) for a standard deviation (got {x.shape[0]})."
        )
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        r, c = (int(v) for v in bad[0])
        raise InputError(
            f"{name} must be finite (got {x[r, c]} at row {r}, column {c}). "
            "Fill no-trade periods with 0.0 rather than NaN."
        )
    return x


def _periods(periods_per_year: Any) -> float:
    try:
        ppy = float(periods_per_year)
    except (TypeError, ValueError):
        raise InputError(
            f"periods_per_year must be a number (got {periods_per_year!r}). Daily sessions: 252."
        ) from None
    if not math.isfinite(ppy) or ppy <= 0.0:
        raise InputError(
            f"periods_per_year must be positive (got {periods_per_year!r}). "
            "Daily sessions: 252; monthly: 12."
        )
    return ppy


def _scale(periods_per_year: Any) -> float:
    return 1.0 if periods_per_year is None else math.sqrt(_periods(periods_per_year))


def check_capital(capital: Any) -> float:
    """``capital`` as a positive finite float, or an :class:`~quantlab.errors.InputError`.

    Examples
    --------
    >>> check_capital(100_000)
    100000.0
    """
    try:
        value = float(capital)
    except (TypeError, ValueError):
        raise InputError(f"capital must be a number (got {capital!r}).") from None
    if not math.isfinite(value) or value <= 0.0:
        raise InputError(
            f"capital must be a positive finite number of dollars (got {capital!r}). "
            "It is the starting equity, the base of the first day's return."
        )
    return value


# --------------------------------------------------------------------------- the zero rule


def risk_ratio(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator`` under the module's zero-volatility rule.

    A positive denominator divides; a zero denominator gives 0.0 for a zero numerator and
    ``±inf`` with the numerator's sign otherwise. Scalars give a float, arrays an array.

    Examples
    --------
    >>> risk_ratio(0.5, 0.25), risk_ratio(0.0, 0.0), risk_ratio(-0.1, 0.0)
    (2.0, 0.0, -inf)
    >>> risk_ratio(np.array([1.0, 0.0, 2.0]), np.array([2.0, 0.0, 0.0])).tolist()
    [0.5, 0.0, inf]
    """
    if np.ndim(numerator) == 0 and np.ndim(denominator) == 0:
        num, den = float(numerator), float(denominator)
        if den > 0.0:
            return num / den
        return 0.0 if num == 0.0 else math.copysign(math.inf, num)
    num_a, den_a = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    zero = np.where(num_a == 0.0, 0.0, np.copysign(np.inf, num_a))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den_a > 0.0, num_a / np.where(den_a > 0.0, den_a, 1.0), zero)


# --------------------------------------------------------------------------- returns


def returns_from_equity(equity: Any, capital: float) -> np.ndarray:
    """Period simple returns of an equity path, the first one measured from ``capital``.

    Parameters
    ----------
    equity : array-like, shape (T,)
        End-of-period equity in dollars, positive and finite.
    capital : float
        Starting equity, the equity before the first period.

    Returns
    -------
    numpy.ndarray, shape (T,)
        ``equity[t] / equity[t-1] - 1`` with ``equity[-1] = capital``.

    Examples
    --------
    >>> returns_from_equity([101.0, 99.99], 100.0).round(4).tolist()
    [0.01, -0.01]
    """
    cap = check_capital(capital)
    eq = _series("equity", equity)
    if eq.size and np.any(eq <= 0.0):
        i = int(np.flatnonzero(eq <= 0.0)[0])
        raise InputError(
            f"equity must be positive to define returns (got {eq[i]} at index {i}): "
            "the account is wiped out there."
        )
    prev = np.concatenate(([cap], eq[:-1]))
    return eq / prev - 1.0


def total_return(returns: Any) -> float:
    """Compounded return of a series: ``prod(1 + r) - 1`` (0.0 for no periods).

    Examples
    --------
    >>> round(total_return([0.10, -0.10]), 4)
    -0.01
    """
    r = _series("returns", returns)
    return float(np.prod(1.0 + r) - 1.0)


def annualized_return(returns: Any, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Compound annual growth rate: ``prod(1 + r) ** (periods_per_year / T) - 1``.

    A series that loses everything (``prod(1 + r) <= 0``) gives -1.0.

    Examples
    --------
    >>> round(annualized_return([0.10, 0.10], periods_per_year=1), 12)  # two years of +10 %
    0.1
    >>> r = np.full(126, 1.1 ** (1 / 126) - 1)  # +10 % over half a year of sessions
    >>> round(annualized_return(r), 12)
    0.21
    """
    r = _series("returns", returns, 1)
    ppy = _periods(periods_per_year)
    growth = float(np.prod(1.0 + r))
    if growth <= 0.0:
        return -1.0
    return growth ** (ppy / r.size) - 1.0


def annualized_volatility(returns: Any, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """``std(r, ddof=1) * sqrt(periods_per_year)``; 0.0 for a constant series.

    Examples
    --------
    >>> round(annualized_volatility([0.01, -0.01, 0.02, 0.0]), 4)
    0.2049
    """
    r = _series("returns", returns, 2)
    return _std(r) * math.sqrt(_periods(periods_per_year))


def _std(r: np.ndarray) -> float:
    """Sample standard deviation (ddof=1), exactly 0.0 when all values are equal."""
    return 0.0 if bool(np.all(r == r[0])) else float(np.std(r, ddof=1))


def sharpe_ratio(returns: Any, *, periods_per_year: float | None = None) -> float:
    """Sharpe ratio of a series of period returns (zero risk-free rate).

    Parameters
    ----------
    returns : array-like, shape (T,)
        Period returns (or P&L per unit of capital), finite, at least 2 of them.
    periods_per_year : float, optional
        Periods in a year (252 for daily sessions). When given the per-period ratio is
        multiplied by ``sqrt(periods_per_year)``; otherwise the per-period ratio is returned.

    Returns
    -------
    float
        ``mean(returns) / std(returns, ddof=1)`` (times ``sqrt(periods_per_year)``). Without
        dispersion: 0.0 for an all-zero series, ``±inf`` for a nonzero constant one.

    Examples
    --------
    >>> sharpe_ratio([0.01, -0.01, 0.02, 0.0])
    0.3872983346207417
    >>> round(sharpe_ratio([0.01, -0.01, 0.02, 0.0], periods_per_year=252), 4)
    6.1482
    >>> sharpe_ratio([0.0, 0.0, 0.0]), sharpe_ratio([-0.01, -0.01])
    (0.0, -inf)
    """
    r = _series("returns", returns, 2)
    scale = _scale(periods_per_year)
    return float(risk_ratio(float(np.mean(r)), _std(r))) * scale


def sharpe_ratio_columns(returns_matrix: Any, *, periods_per_year: float | None = None) -> Any:
    """:func:`sharpe_ratio` of every column of a T x N matrix (same definition and zero rule).

    Parameters
    ----------
    returns_matrix : array-like, shape (T, N)
        Period returns of N series over the same T >= 2 periods, finite.
    periods_per_year : float, optional
        Annualises as in :func:`sharpe_ratio`.

    Returns
    -------
    numpy.ndarray, shape (N,)

    Examples
    --------
    >>> m = np.array([[0.01, 0.0, 0.02], [-0.01, 0.0, 0.02], [0.02, 0.0, 0.02], [0.0, 0.0, 0.02]])
    >>> sharpe_ratio_columns(m).round(4).tolist()
    [0.3873, 0.0, inf]
    """
    x = _matrix("returns_matrix", returns_matrix)
    scale = _scale(periods_per_year)
    std = x.std(axis=0, ddof=1)
    std[np.all(x == x[:1], axis=0)] = 0.0
    return risk_ratio(x.mean(axis=0), std) * scale


def sharpe_from_sums(
    sums: Any, sums_of_squares: Any, n: float, *, periods_per_year: float | None = None
) -> Any:
    """:func:`sharpe_ratio` from ``sum(r)`` and ``sum(r**2)`` over ``n`` periods, elementwise.

    For many overlapping sub-samples at once (the combinations of
    :func:`~quantlab.stats.overfitting.pbo_cscv`): ``mean = s / n`` and
    ``std = sqrt((q - s * mean) / (n - 1))``. A sum of squared deviations up to 1e-12 of the
    sum of squares is rounding of a constant series and counts as zero dispersion.

    Parameters
    ----------
    sums, sums_of_squares : array-like
        ``sum(r)`` and ``sum(r**2)`` of each sub-sample (broadcast together).
    n : float
        Number of periods in every sub-sample, at least 2.
    periods_per_year : float, optional
        Annualises as in :func:`sharpe_ratio`.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> r = np.array([0.01, -0.01, 0.02, 0.0])
    >>> float(sharpe_from_sums(r.sum(), (r * r).sum(), 4))
    0.3872983346207417
    >>> sharpe_from_sums([0.0, 0.03, -0.03], [0.0, 0.0003, 0.0003], 3).tolist()  # constants
    [0.0, inf, -inf]
    """
    if not n >= 2:
        raise InputError(f"n must be at least 2 periods for a standard deviation (got {n!r}).")
    s = np.asarray(sums, dtype=np.float64)
    q = np.asarray(sums_of_squares, dtype=np.float64)
    scale = _scale(periods_per_year)
    mean = s / n
    ss = q - s * mean  # sum of squared deviations
    flat = ss <= _FLAT_SS * q
    std = np.sqrt(np.where(flat, 0.0, ss) / (n - 1.0))
    return risk_ratio(mean, std) * scale


def downside_deviation(returns: Any, *, periods_per_year: float | None = None) -> float:
    """Root mean square of ``min(r, 0)`` over all periods (target 0), optionally annualised.

    Examples
    --------
    >>> round(downside_deviation([0.02, -0.01, 0.0, -0.03]), 6)  # sqrt((0.0001 + 0.0009) / 4)
    0.015811
    """
    r = _series("returns", returns, 1)
    short = np.minimum(r, 0.0)
    return math.sqrt(float(np.mean(short * short))) * _scale(periods_per_year)


def sortino_ratio(returns: Any, *, periods_per_year: float | None = None) -> float:
    """Sortino ratio: ``mean(r) / downside_deviation(r)`` (target 0, zero risk-free rate).

    Parameters
    ----------
    returns : array-like, shape (T,)
        Period returns, finite, at least 2 of them.
    periods_per_year : float, optional
        When given the ratio is multiplied by ``sqrt(periods_per_year)`` (equivalently: the
        annualised mean ``mean * ppy`` over the annualised downside deviation).

    Returns
    -------
    float
        Without a losing period: 0.0 for an all-zero series, ``+inf`` otherwise.

    Examples
    --------
    >>> r = [0.02, -0.01, 0.0, -0.03]
    >>> round(sortino_ratio(r), 4)  # -0.005 / sqrt((0.0001 + 0.0009) / 4)
    -0.3162
    >>> sortino_ratio([0.0, 0.0]), sortino_ratio([0.01, 0.0])
    (0.0, inf)
    """
    r = _series("returns", returns, 2)
    scale = _scale(periods_per_year)
    return float(risk_ratio(float(np.mean(r)), downside_deviation(r))) * scale


def calmar_ratio(returns: Any, *, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """``annualized_return(r) / |max drawdown|`` of the wealth path ``[1, cumprod(1 + r)]``.

    The path starts at 1 (the capital), so a first-period loss is a drawdown. Without a
    drawdown: 0.0 for an all-zero series, ``+inf`` for a gain.

    Examples
    --------
    >>> r = [0.10, -0.10, 0.05]
    >>> mdd = max_drawdown(np.cumprod(np.add(1.0, r)), 1.0)
    >>> calmar_ratio(r) == annualized_return(r) / abs(mdd)
    True
    >>> calmar_ratio([0.0, 0.0]), calmar_ratio([0.01, 0.02])
    (0.0, inf)
    """
    r = _series("returns", returns, 1)
    ann = annualized_return(r, periods_per_year)
    mdd = max_drawdown(np.cumprod(1.0 + r), 1.0)
    return float(risk_ratio(ann, abs(mdd)))


# --------------------------------------------------------------------------- drawdowns


def _path(equity: Any, capital: float) -> np.ndarray:
    return np.concatenate(([check_capital(capital)], _series("equity", equity)))


def drawdown(equity: Any, capital: float) -> np.ndarray:
    """Drawdown of each period from the running peak of the path that starts at ``capital``.

    Parameters
    ----------
    equity : array-like, shape (T,)
        End-of-period equity, finite.
    capital : float
        Starting equity: the first peak.

    Returns
    -------
    numpy.ndarray, shape (T,)
        ``path[t] / max(path[:t+1]) - 1`` for the periods (the capital's own 0 left out), <= 0.

    Examples
    --------
    >>> drawdown([95.0, 110.0, 99.0], 100.0).round(4).tolist()
    [-0.05, 0.0, -0.1]
    """
    path = _path(equity, capital)
    return (path / np.maximum.accumulate(path) - 1.0)[1:]


def max_drawdown(equity: Any, capital: float) -> float:
    """Deepest drawdown (fraction, <= 0) of the path that starts at ``capital``; 0.0 if none.

    Examples
    --------
    >>> round(max_drawdown([95.0, 110.0, 99.0], 100.0), 4)
    -0.1
    >>> max_drawdown([], 100.0)
    0.0
    """
    path = _path(equity, capital)
    return float(np.min(path / np.maximum.accumulate(path) - 1.0))


def max_drawdown_dollars(equity: Any, capital: float) -> float:
    """Largest dollar decline from a running peak (<= 0); the path starts at ``capital``.

    Examples
    --------
    >>> max_drawdown_dollars([95.0, 110.0, 99.0], 100.0)
    -11.0
    """
    path = _path(equity, capital)
    return float(np.min(path - np.maximum.accumulate(path)))


@dataclass(frozen=True)
class DrawdownPeriods:
    """Drawdown periods of an equity path, in time order (see :func:`drawdown_periods`).

    Indices are positions on the path ``[capital, equity[0], ..., equity[T-1]]``: 0 is the
    capital, ``i`` is period ``i - 1``.

    Attributes
    ----------
    peak_index : numpy.ndarray of int
        Last point at the running peak before the path falls below it.
    valley_index : numpy.ndarray of int
        First point at the period's lowest value.
    end_index : numpy.ndarray of int
        First point back at or above the peak (recovered), or the path's last point (active).
    recovered : numpy.ndarray of bool
    peak_value, valley_value : numpy.ndarray of float
    """

    peak_index: np.ndarray
    valley_index: np.ndarray
    end_index: np.ndarray
    recovered: np.ndarray
    peak_value: np.ndarray
    valley_value: np.ndarray

    @property
    def count(self) -> int:
        """Number of drawdown periods."""
        return int(self.peak_index.size)

    @property
    def depth(self) -> np.ndarray:
        """``valley / peak - 1`` of each period (fraction, < 0)."""
        return self.valley_value / self.peak_value - 1.0

    @property
    def depth_dollars(self) -> np.ndarray:
        """``valley - peak`` of each period (dollars, < 0)."""
        return self.valley_value - self.peak_value

    @property
    def duration(self) -> np.ndarray:
        """Periods under water: strictly between peak and recovery, or after the peak if active."""
        return self.end_index - self.peak_index - self.recovered.astype(np.int64)

    @property
    def decline(self) -> np.ndarray:
        """Periods from the peak to the valley."""
        return self.valley_index - self.peak_index


def drawdown_periods(equity: Any, capital: float) -> DrawdownPeriods:
    """Every drawdown period of the path that starts at ``capital``, in time order.

    A period starts when the path falls below its running peak and ends at the first point
    back at or above that peak (recovered) or at the end of the path (active). These are the
    records of :class:`vectorbt.Drawdowns` on the same path.

    Examples
    --------
    >>> dd = drawdown_periods([95.0, 97.0, 110.0, 104.0, 99.0, 105.0, 112.0, 111.0], 100.0)
    >>> dd.count, dd.depth.round(4).tolist(), dd.duration.tolist(), dd.recovered.tolist()
    (3, [-0.05, -0.1, -0.0089], [2, 3, 1], [True, True, False])
    """
    path = _path(equity, capital)
    under = path < np.maximum.accumulate(path)  # path[0] is never under water
    edges = np.diff(under.astype(np.int8))
    starts = np.flatnonzero(edges == 1) + 1
    last = np.flatnonzero(edges == -1)  # last point under water of each recovered period
    if under[-1]:
        last = np.append(last, path.size - 1)
    recovered = last < path.size - 1
    valley = np.array(
        [a + int(np.argmin(path[a : b + 1])) for a, b in zip(starts, last, strict=True)],
        dtype=np.int64,
    )
    peak = (starts - 1).astype(np.int64)
    return DrawdownPeriods(
        peak_index=peak,
        valley_index=valley,
        end_index=np.where(recovered, last + 1, last).astype(np.int64),
        recovered=recovered,
        peak_value=path[peak],
        valley_value=path[valley],
    )


# --------------------------------------------------------------------------- trades


def win_rate(pnl: Any) -> float:
    """Share of trades with ``pnl > 0``; NaN without trades.

    Examples
    --------
    >>> win_rate([100.0, -200.0, 0.0, 50.0])
    0.5
    """
    x = _series("pnl", pnl)
    return float(np.mean(x > 0.0)) if x.size else math.nan


def gross_profit(pnl: Any) -> float:
    """Sum of the winning trades' P&L (>= 0).

    Examples
    --------
    >>> gross_profit([100.0, -200.0, 50.0])
    150.0
    """
    x = _series("pnl", pnl)
    return float(np.sum(x[x > 0.0]))


def gross_loss(pnl: Any) -> float:
    """Sum of the losing trades' losses, as a positive number (>= 0).

    Examples
    --------
    >>> gross_loss([100.0, -200.0, -50.0])
    250.0
    """
    x = _series("pnl", pnl)
    return float(-np.sum(x[x < 0.0]))


def profit_factor(pnl: Any) -> float:
    """Gross profit / gross loss; ``+inf`` with wins but no loss, NaN with neither.

    Examples
    --------
    >>> profit_factor([100.0, -200.0, 50.0, 150.0, -50.0])
    1.2
    >>> profit_factor([10.0]), profit_factor([0.0])
    (inf, nan)
    """
    x = _series("pnl", pnl)
    win, loss = gross_profit(x), gross_loss(x)
    if loss > 0.0:
        return win / loss
    return math.inf if win > 0.0 else math.nan


def expectancy(pnl: Any) -> float:
    """Mean P&L per trade; NaN without trades.

    Examples
    --------
    >>> expectancy([100.0, -200.0, 50.0, 150.0, -50.0])
    10.0
    """
    x = _series("pnl", pnl)
    return float(np.mean(x)) if x.size else math.nan


def average_win(pnl: Any) -> float:
    """Mean P&L of the winning trades; NaN without a win.

    Examples
    --------
    >>> average_win([100.0, -200.0, 50.0])
    75.0
    """
    x = _series("pnl", pnl)
    wins = x[x > 0.0]
    return float(np.mean(wins)) if wins.size else math.nan


def average_loss(pnl: Any) -> float:
    """Mean P&L of the losing trades (negative); NaN without a loss.

    Examples
    --------
    >>> average_loss([100.0, -200.0, -50.0])
    -125.0
    """
    x = _series("pnl", pnl)
    losses = x[x < 0.0]
    return float(np.mean(losses)) if losses.size else math.nan


def cvar(pnl: Any, alpha: float = 0.05) -> float:
    """Conditional value at risk of trades: mean P&L of the worst ``ceil(alpha * n)`` trades.

    Parameters
    ----------
    pnl : array-like, shape (n,)
        Trade P&L.
    alpha : float, default 0.05
        Tail level, strictly between 0 and 1.

    Returns
    -------
    float
        In dollars (negative for a loss tail); NaN without trades.

    Examples
    --------
    >>> pnl = [100.0, -200.0, 50.0, 150.0, -50.0]
    >>> cvar(pnl), cvar(pnl, alpha=0.4)
    (-200.0, -125.0)
    """
    x = _series("pnl", pnl)
    a = check_alpha(alpha)
    if x.size == 0:
        return math.nan
    k = max(1, math.ceil(x.size * a - _CEIL_SLACK))
    return float(np.mean(np.sort(x)[:k]))


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """A tail or significance level strictly between 0 and 1, or an InputError.

    Examples
    --------
    >>> check_alpha(0.05)
    0.05
    """
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number between 0 and 1 (got {alpha!r}).") from None
    if not (0.0 < a < 1.0):
        raise InputError(
            f"{name} must lie strictly between 0 and 1 (got {alpha!r}). Typical: 0.05."
        )
    return a


def average_holding_minutes(entry_ts: Any, exit_ts: Any) -> float:
    """Mean calendar time from entry to exit, in minutes; NaN without trades.

    Parameters
    ----------
    entry_ts, exit_ts : array-like of int, shape (n,)
        UTC nanoseconds of each trade's entry and exit.

    Examples
    --------
    >>> average_holding_minutes([0, 0], [30 * 60_000_000_000, 90 * 60_000_000_000])
    60.0
    """
    a, b = _stamps("entry_ts", entry_ts), _stamps("exit_ts", exit_ts)
    if a.shape != b.shape:
        raise InputError(
            f"entry_ts and exit_ts must have the same length (got {a.size} and {b.size})."
        )
    return float(np.mean((b - a) / NS_PER_MINUTE)) if a.size else math.nan


def _stamps(name: str, values: Any) -> np.ndarray:
    """Integer nanoseconds stay integers (float64 would round them to 256 ns)."""
    x = np.asarray(values)
    if x.dtype.kind in "iu" and x.ndim == 1:
        return x.astype(np.int64)
    return _series(name, x)


def average_return_on_risk(pnl: Any, max_loss: Any) -> float:
    """Mean of ``pnl / max_loss`` over the trades with a positive ``max_loss``; NaN if none.

    Trades whose ``max_loss`` is missing (NaN) or not positive carry no defined risk and are
    left out.

    Examples
    --------
    >>> average_return_on_risk([100.0, -200.0, 5.0], [1000.0, 2000.0, 0.0])
    0.0
    """
    x = _series("pnl", pnl)
    risk = as_float("max_loss", max_loss)
    if risk.shape != x.shape:
        raise InputError(
            f"max_loss must have one value per trade (got shape {risk.shape}, pnl {x.shape})."
        )
    ok = risk > 0.0  # NaN compares False
    return float(np.mean(x[ok] / risk[ok])) if ok.any() else math.nan


__all__ = [
    "NS_PER_MINUTE",
    "PERIODS_PER_YEAR",
    "DrawdownPeriods",
    "annualized_return",
    "annualized_volatility",
    "average_holding_minutes",
    "average_loss",
    "average_return_on_risk",
    "average_win",
    "calmar_ratio",
    "check_alpha",
    "check_capital",
    "cvar",
    "downside_deviation",
    "drawdown",
    "drawdown_periods",
    "expectancy",
    "gross_loss",
    "gross_profit",
    "max_drawdown",
    "max_drawdown_dollars",
    "profit_factor",
    "returns_from_equity",
    "risk_ratio",
    "sharpe_from_sums",
    "sharpe_ratio",
    "sharpe_ratio_columns",
    "sortino_ratio",
    "total_return",
    "win_rate",
]
