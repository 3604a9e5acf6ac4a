"""Backtest analytics: account performance, trade statistics, bootstrap intervals, breakdowns.

Inputs are the backtester's outputs (see :mod:`quantlab.backtest.records`):

- ``trades``: one row per trade, :data:`~quantlab.backtest.records.TRADE_SCHEMA`;
- ``equity_daily``: ``date`` (Date) and ``equity`` (Float64, dollars) at the end of every
  session of the backtest, days without a trade included;
- ``capital``: the starting equity, the base of the first day's return.

Every metric (Sharpe, Sortino, Calmar, annualized return and volatility, drawdowns, win rate,
profit factor, expectancy, CVaR, holding time, ...) is computed by :mod:`quantlab.stats.metrics`,
whose docstring writes the conventions down: daily returns ``equity[t] / equity[t-1] - 1`` with
``equity[-1] = capital``, 252 sessions a year, ``ddof=1``, zero risk-free rate, Sortino's
downside deviation over all sessions, drawdowns on the path that starts at ``capital`` (a loss
on day one counts), Calmar = annualized return / |max drawdown|, and one zero-volatility rule:
a ratio over a zero volatility or drawdown is 0.0 for an all-zero series (a backtest that never
traded) and ±inf with the sign of its numerator otherwise. This module turns polars frames into
those numbers and tables; it imports nothing heavy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from quantlab.backtest.records import EXIT_REASONS, empty_trades
from quantlab.errors import InputError
from quantlab.stats import metrics as mt
from quantlab.stats.bootstrap import bootstrap_ci, bootstrap_distribution

SHARES_PER_CONTRACT = 100
NS_PER_MINUTE = mt.NS_PER_MINUTE
CVAR_ALPHA = 0.05
BREAKDOWN_KEYS = ("exit_reason", "weekday", "dte", "delta_target", "width", "entry_time")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_TRADE_COLUMNS = (
    "pnl",
    "credit_per_share",
    "contracts",
    "fees",
    "entry_ts",
    "exit_ts",
    "exit_reason",
    "max_loss",
)

__all__ = [
    "BREAKDOWN_KEYS",
    "bootstrap_ci",
    "bootstrap_distribution",
    "breakdown",
    "breakdowns",
    "config_metrics",
    "daily_returns",
    "decision_counts",
    "drawdown_table",
    "intraday_max_drawdown",
    "monthly_returns",
    "performance",
    "realized_stats",
    "settlement_stats",
    "summarize",
    "trade_stats",
]


# --------------------------------------------------------------------------- validation

_check_capital = mt.check_capital
_check_alpha = mt.check_alpha


def _require(df: Any, columns: Sequence[str], name: str) -> pl.DataFrame:
    if not isinstance(df, pl.DataFrame):
        raise InputError(f"{name} must be a polars DataFrame (got {type(df).__name__}).")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"{name} lacks column(s) {missing} (has {df.columns}). "
            "See quantlab.backtest.records for the schemas."
        )
    return df


def _as_trades(trades: Any) -> pl.DataFrame:
    """Validate a trades frame; an empty frame without the columns becomes the empty schema."""
    if isinstance(trades, pl.DataFrame) and trades.height == 0:
        if any(c not in trades.columns for c in _TRADE_COLUMNS):
            return empty_trades()
    return _require(trades, _TRADE_COLUMNS, "trades")


def _equity_path(equity_daily: Any, capital: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted session dates (datetime64[D]) and end-of-day equity; validated."""
    df = _require(equity_daily, ("date", "equity"), "equity_daily").sort("date")
    dates = df["date"].to_numpy().astype("datetime64[D]")
    equity = df["equity"].cast(pl.Float64).to_numpy().astype(np.float64)
    if dates.size and np.any(dates[1:] == dates[:-1]):
        dup = dates[1:][dates[1:] == dates[:-1]][0]
        raise InputError(f"equity_daily has date {dup} more than once; expected one row a session.")
    bad = ~np.isfinite(equity) | (equity <= 0.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"equity_daily.equity must be positive and finite (got {equity[i]!r} on {dates[i]})."
        )
    return dates, equity


def daily_returns(equity_daily: pl.DataFrame, capital: float) -> np.ndarray:
    """Daily simple returns of the account, the first one measured from ``capital``.

    Parameters
    ----------
    equity_daily : polars.DataFrame
        ``date`` and ``equity`` (end-of-session dollars), one row per session.
    capital : float
        Starting equity in dollars.

    Returns
    -------
    numpy.ndarray
        ``equity[t] / equity[t-1] - 1`` in date order, with ``equity[-1] = capital``
        (:func:`quantlab.stats.metrics.returns_from_equity`).

    Examples
    --------
    >>> import datetime as dt
    >>> df = pl.DataFrame({"date": [dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
    ...                    "equity": [101.0, 99.99]})
    >>> daily_returns(df, 100.0).round(4).tolist()
    [0.01, -0.01]
    """
    cap = _check_capital(capital)
    _, equity = _equity_path(equity_daily, cap)
    return mt.returns_from_equity(equity, cap)


# --------------------------------------------------------------------------- performance


def performance(
    equity_daily: pl.DataFrame, capital: float, *, periods_per_year: int = mt.PERIODS_PER_YEAR
) -> dict[str, float]:
    """Account-level performance of a backtest from its end-of-day equity.

    Parameters
    ----------
    equity_daily : polars.DataFrame
        ``date`` and ``equity`` at the end of every session (no-trade days included).
    capital : float
        Starting equity in dollars; the first day's return is measured from it.
    periods_per_year : int, default 252
        Sessions per year for annualization.

    Returns
    -------
    dict[str, float]
        ``n_days``, ``start_equity``, ``end_equity``, ``total_pnl``, ``total_return``,
        ``annualized_return`` (CAGR), ``annualized_volatility``, ``sharpe_ratio`` (mean/std of
        daily returns, ``ddof=1``, times ``sqrt(periods_per_year)``, zero risk-free rate),
        ``sortino_ratio``, ``calmar_ratio``, ``max_drawdown`` (fraction, <= 0),
        ``max_drawdown_dollars`` (largest dollar decline from a running peak),
        ``max_drawdown_duration`` and ``avg_drawdown_duration``
        (sessions under water, active drawdown included), ``n_drawdowns``,
        ``current_drawdown``, ``best_day``, ``worst_day``, ``positive_days`` (fraction).
        Definitions in :mod:`quantlab.stats.metrics`. Flat equity (no trades) has Sharpe,
        Sortino and Calmar 0.0 (the zero-volatility rule); figures that need more sessions
        than there are (volatility, Sharpe and Sortino need 2) are NaN.

    Examples
    --------
    >>> import datetime as dt
    >>> df = pl.DataFrame({"date": [dt.date(2024, 1, d) for d in (2, 3, 4)],
    ...                    "equity": [95.0, 110.0, 99.0]})
    >>> p = performance(df, 100.0)
    >>> round(p["total_return"], 4), round(p["max_drawdown"], 4)
    (-0.01, -0.1)
    """
    cap = _check_capital(capital)
    if periods_per_year <= 0:
        raise InputError(f"periods_per_year must be positive (got {periods_per_year}).")
    _, equity = _equity_path(equity_daily, cap)
    n = int(equity.size)
    nan = float("nan")
    out: dict[str, float] = {
        "n_days": float(n),
        "start_equity": cap,
        "end_equity": float(equity[-1]) if n else cap,
        "total_pnl": float(equity[-1] - cap) if n else 0.0,
        "total_return": 0.0,
        "annualized_return": nan,
        "annualized_volatility": nan,
        "sharpe_ratio": nan,
        "sortino_ratio": nan,
        "calmar_ratio": nan,
    }
    out |= _drawdown_figures(equity, cap)
    out |= {"best_day": nan, "worst_day": nan, "positive_days": nan}
    if n == 0:
        return out
    rets = mt.returns_from_equity(equity, cap)
    ppy = float(periods_per_year)
    out["total_return"] = mt.total_return(rets)
    out["annualized_return"] = mt.annualized_return(rets, ppy)
    out["calmar_ratio"] = mt.calmar_ratio(rets, periods_per_year=ppy)
    if n >= 2:
        out["annualized_volatility"] = mt.annualized_volatility(rets, ppy)
        out["sharpe_ratio"] = mt.sharpe_ratio(rets, periods_per_year=ppy)
        out["sortino_ratio"] = mt.sortino_ratio(rets, periods_per_year=ppy)
    out["best_day"] = float(rets.max())
    out["worst_day"] = float(rets.min())
    out["positive_days"] = float(np.mean(rets > 0.0))
    return out


def _drawdown_figures(equity: np.ndarray, cap: float) -> dict[str, float]:
    """The drawdown entries of :func:`performance` (all 0.0 without a drawdown)."""
    periods = mt.drawdown_periods(equity, cap)
    out = dict.fromkeys(
        (
            "max_drawdown",
            "max_drawdown_dollars",
            "max_drawdown_duration",
            "avg_drawdown_duration",
            "n_drawdowns",
            "current_drawdown",
        ),
        0.0,
    )
    if periods.count:
        duration = periods.duration.astype(np.float64)
        out["max_drawdown"] = mt.max_drawdown(equity, cap)
        out["max_drawdown_dollars"] = mt.max_drawdown_dollars(equity, cap)
        out["max_drawdown_duration"] = float(duration.max())
        out["avg_drawdown_duration"] = float(duration.mean())
        out["n_drawdowns"] = float(periods.count)
        out["current_drawdown"] = float(mt.drawdown(equity, cap)[-1])
    return out


def drawdown_table(equity_daily: pl.DataFrame, capital: float, *, top: int = 5) -> pl.DataFrame:
    """The ``top`` deepest drawdowns of the end-of-day equity path.

    Drawdown periods of :func:`quantlab.stats.metrics.drawdown_periods` on the path that
    starts at ``capital``.

    Returns
    -------
    polars.DataFrame
        ``peak_date`` (null when the peak is the starting capital), ``valley_date``,
        ``recovery_date`` (null while active), ``depth`` (fraction, <= 0), ``depth_dollars``,
        ``decline_sessions``, ``duration_sessions`` (sessions under water) and ``status``
        (``recovered`` | ``active``), deepest first.
    """
    cap = _check_capital(capital)
    dates, equity = _equity_path(equity_daily, cap)
    schema = {
        "peak_date": pl.Date,
        "valley_date": pl.Date,
        "recovery_date": pl.Date,
        "depth": pl.Float64,
        "depth_dollars": pl.Float64,
        "decline_sessions": pl.Int64,
        "duration_sessions": pl.Int64,
        "status": pl.Utf8,
    }
    periods = mt.drawdown_periods(equity, cap)
    if periods.count == 0:
        return pl.DataFrame(schema=schema)
    # index i of the path is session i - 1 (index 0 is the capital before the first session)
    day = np.concatenate(([np.datetime64("NaT", "D")], dates))
    recovery = day[periods.end_index].copy()
    recovery[~periods.recovered] = np.datetime64("NaT", "D")
    df = pl.DataFrame(
        {
            "peak_date": day[periods.peak_index],
            "valley_date": day[periods.valley_index],
            "recovery_date": recovery,
            "depth": periods.depth,
            "depth_dollars": periods.depth_dollars,
            "decline_sessions": periods.decline,
            "duration_sessions": periods.duration,
            "status": np.where(periods.recovered, "recovered", "active"),
        }
    ).cast(schema)  # type: ignore[arg-type]
    return df.sort("depth", maintain_order=True).head(top)


def intraday_max_drawdown(equity_minutes: pl.DataFrame, capital: float) -> float:
    """Deepest drawdown of the minute-marked equity (fraction, <= 0), peak from ``capital`` on.

    The engine marks equity every minute a trade is open and at each exit; between trades the
    equity is flat at the last exit's value, so this path holds every intraday trough that the
    end-of-day series hides.
    """
    cap = _check_capital(capital)
    df = _require(equity_minutes, ("ts", "equity"), "equity_minutes").sort("ts")
    eq = df["equity"].cast(pl.Float64).drop_nulls().to_numpy()
    return mt.max_drawdown(eq, cap)


def monthly_returns(equity_daily: pl.DataFrame, capital: float) -> pl.DataFrame:
    """Return and P&L of each calendar month: ``year``, ``month``, ``ret``, ``pnl``.

    ``ret`` is the compounded daily return of the month's sessions
    (:func:`quantlab.stats.metrics.total_return`), the first measured from the previous
    month's last equity (or ``capital``).
    """
    cap = _check_capital(capital)
    dates, equity = _equity_path(equity_daily, cap)
    rets = mt.returns_from_equity(equity, cap)
    month = dates.astype("datetime64[M]")
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]][: dates.size])
    bounds = np.r_[starts, dates.size].astype(np.int64)
    prev = np.concatenate(([cap], equity[:-1]))
    first = month[starts]
    return pl.DataFrame(
        {
            "year": (first.astype("datetime64[Y]").astype(np.int64) + 1970).astype(np.int32),
            "month": (first.astype(np.int64) % 12 + 1).astype(np.int8),
            "ret": np.array(
                [mt.total_return(rets[a:b]) for a, b in itertools.pairwise(bounds)], np.float64
            ),
            "pnl": equity[bounds[1:] - 1] - prev[starts],
        }
    )


# --------------------------------------------------------------------------- trade statistics

_STAT_DTYPES: dict[str, Any] = {
    **dict.fromkeys(("n_trades", "n_wins", "n_losses"), pl.Int64),
    **dict.fromkeys(
        (
            "win_rate total_pnl expectancy median_pnl std_pnl gross_win gross_loss avg_win "
            "avg_loss largest_win largest_loss cvar_5 avg_credit_per_share avg_credit "
            "avg_max_loss max_max_loss avg_return_on_risk avg_holding_minutes total_fees "
            "avg_fees profit_factor"
        ).split(),
        pl.Float64,
    ),
}


def _column(df: pl.DataFrame, name: str) -> np.ndarray:
    return df[name].cast(pl.Float64).to_numpy()


def _trade_numbers(df: pl.DataFrame, alpha: float) -> dict[str, Any]:
    """The numeric trade statistics of a validated trades frame, keys as in :data:`_STAT_DTYPES`."""
    pnl = _column(df, "pnl")
    n = int(pnl.size)
    nan = math.nan
    credit, fees, risk = (
        _column(df, "credit_per_share"),
        _column(df, "fees"),
        _column(df, "max_loss"),
    )
    dollars = credit * SHARES_PER_CONTRACT * _column(df, "contracts")
    entry, exit_ = df["entry_ts"].to_numpy(), df["exit_ts"].to_numpy()
    return {
        "n_trades": n,
        "n_wins": int(np.count_nonzero(pnl > 0.0)),
        "n_losses": int(np.count_nonzero(pnl < 0.0)),
        "win_rate": mt.win_rate(pnl),
        "total_pnl": float(np.sum(pnl)),
        "expectancy": mt.expectancy(pnl),
        "median_pnl": float(np.median(pnl)) if n else nan,
        "std_pnl": float(np.std(pnl, ddof=1)) if n >= 2 else nan,
        "gross_win": mt.gross_profit(pnl),
        "gross_loss": mt.gross_loss(pnl),
        "avg_win": mt.average_win(pnl),
        "avg_loss": mt.average_loss(pnl),
        "largest_win": float(pnl.max()) if n else nan,
        "largest_loss": float(pnl.min()) if n else nan,
        "cvar_5": mt.cvar(pnl, alpha),
        "avg_credit_per_share": float(np.mean(credit)) if n else nan,
        "avg_credit": float(np.mean(dollars)) if n else nan,
        "avg_max_loss": float(np.mean(risk)) if n else nan,
        "max_max_loss": float(np.max(risk)) if n else nan,
        "avg_return_on_risk": mt.average_return_on_risk(pnl, risk),
        "avg_holding_minutes": mt.average_holding_minutes(entry, exit_),
        "total_fees": float(np.sum(fees)),
        "avg_fees": float(np.mean(fees)) if n else nan,
        "profit_factor": mt.profit_factor(pnl),
    }


def trade_stats(trades: pl.DataFrame, *, alpha: float = CVAR_ALPHA) -> dict[str, Any]:
    """Per-trade statistics of a backtest (definitions in :mod:`quantlab.stats.metrics`).

    Parameters
    ----------
    trades : polars.DataFrame
        Trade records (``TRADE_SCHEMA``); needs ``pnl``, ``credit_per_share``, ``contracts``,
        ``fees``, ``entry_ts``, ``exit_ts``, ``exit_reason`` and ``max_loss``.
    alpha : float, default 0.05
        Tail level of ``cvar_5``: the mean P&L of the worst ``ceil(alpha * n)`` trades.

    Returns
    -------
    dict
        ``n_trades``, ``n_wins``, ``n_losses``, ``win_rate``, ``total_pnl``, ``expectancy``
        (mean P&L, dollars), ``median_pnl``, ``std_pnl``, ``gross_win``, ``gross_loss``,
        ``avg_win``, ``avg_loss``, ``largest_win``, ``largest_loss``, ``cvar_5``,
        ``avg_credit_per_share``, ``avg_credit`` (dollars per trade), ``avg_max_loss`` and
        ``max_max_loss`` (dollars at risk), ``avg_return_on_risk`` (mean of pnl / max_loss),
        ``avg_holding_minutes``, ``total_fees``, ``avg_fees``, ``profit_factor`` (gross wins /
        gross losses; inf without losses) and ``exit_reasons`` (reason -> count, every reason
        of :data:`~quantlab.backtest.records.EXIT_REASONS` present). Undefined values are NaN.

    Examples
    --------
    >>> from quantlab.backtest.records import empty_trades
    >>> trade_stats(empty_trades())["n_trades"]
    0
    """
    alpha = _check_alpha(alpha)
    df = _as_trades(trades)
    out = _trade_numbers(df, alpha)
    counts = dict.fromkeys(EXIT_REASONS, 0)
    for reason, n in df.group_by("exit_reason").len().iter_rows():
        counts[str(reason)] = int(n)
    out["exit_reasons"] = counts
    return out


def _weekday_frame(df: pl.DataFrame) -> pl.DataFrame:
    if "weekday" in df.columns:
        return df
    _require(df, ("entry_date",), "trades")
    day = pl.col("entry_date").dt.weekday()  # 1 = Monday
    label = pl.lit(None, pl.Utf8)
    for i, name in enumerate(WEEKDAYS, start=1):
        label = pl.when(day == i).then(pl.lit(name)).otherwise(label)
    return df.with_columns(label.alias("weekday"), day.alias("_weekday_no"))


def breakdown(
    trades: pl.DataFrame, by: str | Sequence[str], *, alpha: float = CVAR_ALPHA
) -> pl.DataFrame:
    """Trade statistics grouped by one or more columns.

    Parameters
    ----------
    trades : polars.DataFrame
        Trade records.
    by : str or sequence of str
        Column(s) of ``trades``; ``"weekday"`` is derived from ``entry_date`` (Mon..Sun) when
        the frame has no such column.
    alpha : float, default 0.05
        Tail level of the per-group ``cvar_5``.

    Returns
    -------
    polars.DataFrame
        The key column(s), then the numeric statistics of :func:`trade_stats` per group
        (everything except ``exit_reasons``), sorted by key (weekdays in week order).
    """
    alpha = _check_alpha(alpha)
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise InputError("by must name at least one column (got an empty sequence).")
    df = _as_trades(trades)
    sort_keys = list(keys)
    if "weekday" in keys:
        df = _weekday_frame(df)
        if "_weekday_no" in df.columns:
            sort_keys = ["_weekday_no" if k == "weekday" else k for k in keys]
    _require(df, keys, "trades")
    group = keys + [k for k in sort_keys if k not in keys]
    rows = [
        dict(zip(group, key, strict=True)) | _trade_numbers(part, alpha)
        for key, part in df.group_by(group, maintain_order=True)
    ]
    schema = {k: df.schema[k] for k in group} | _STAT_DTYPES
    return (
        pl.DataFrame(rows, schema=schema)
        .sort(sort_keys, nulls_last=True, maintain_order=True)
        .drop([k for k in group if k not in keys])
    )


def breakdowns(trades: pl.DataFrame, *, alpha: float = CVAR_ALPHA) -> dict[str, pl.DataFrame]:
    """:func:`breakdown` by each of exit_reason, weekday, dte, delta_target, width, entry_time."""
    return {key: breakdown(trades, key, alpha=alpha) for key in BREAKDOWN_KEYS}


def decision_counts(decisions: pl.DataFrame) -> pl.DataFrame:
    """Candidates counted by ``decision`` and ``reason`` (``n`` and ``share``), most first."""
    df = _require(decisions, ("decision", "reason"), "decisions")
    total = max(df.height, 1)
    return (
        df.group_by("decision", "reason")
        .len("n")
        .with_columns((pl.col("n") / total).alias("share"))
        .sort(["n", "decision", "reason"], descending=[True, False, False])
    )


# --------------------------------------------------------------------------- summary


def summarize(
    trades: pl.DataFrame,
    equity_daily: pl.DataFrame,
    capital: float,
    decisions: pl.DataFrame | None = None,
    *,
    equity_minutes: pl.DataFrame | None = None,
    periods_per_year: int = 252,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything the report shows, in one dict.

    Returns
    -------
    dict
        ``performance`` (:func:`performance`, plus ``max_drawdown_intraday`` when
        ``equity_minutes`` is given), ``trades`` (:func:`trade_stats`), ``bootstrap``
        (``expectancy_ci`` of mean trade P&L, iid; ``sharpe_ci`` of daily returns, stationary
        block bootstrap; ``n_boot``, ``alpha``, ``seed``), ``breakdowns``
        (:func:`breakdowns`), ``monthly`` (:func:`monthly_returns`), ``drawdowns``
        (:func:`drawdown_table`), ``decisions`` (:func:`decision_counts`, or None) and
        ``periods_per_year``.
    """
    df = _as_trades(trades)
    perf = performance(equity_daily, capital, periods_per_year=periods_per_year)
    if equity_minutes is not None:
        perf["max_drawdown_intraday"] = intraday_max_drawdown(equity_minutes, capital)
    rets = daily_returns(equity_daily, capital)
    boot = {
        "expectancy_ci": bootstrap_ci(df, "mean", n_boot=n_boot, alpha=alpha, seed=seed),
        "sharpe_ci": bootstrap_ci(
            rets,
            "sharpe",
            n_boot=n_boot,
            alpha=alpha,
            seed=seed,
            periods_per_year=periods_per_year,
        ),
        "n_boot": n_boot,
        "alpha": alpha,
        "seed": seed,
    }
    return {
        "performance": perf,
        "trades": trade_stats(df),
        "bootstrap": boot,
        "breakdowns": breakdowns(df),
        "monthly": monthly_returns(equity_daily, capital),
        "drawdowns": drawdown_table(equity_daily, capital),
        "decisions": None if decisions is None else decision_counts(decisions),
        "settlements": settlement_stats(df),
        "periods_per_year": periods_per_year,
    }


def settlement_stats(trades: pl.DataFrame) -> dict[str, Any]:
    """How the trades held to expiry were settled: ``n_settled``, ``by_source`` (count per
    :data:`quantlab.data.settlements.SOURCES` name), ``n_estimated`` (settled on a
    ``parity_estimate``), ``max_std_error`` (points, NaN when none) and ``n_end_of_data``
    (trades still open when the store ends)."""
    df = _as_trades(trades)
    if "settlement_source" not in df.columns:
        df = df.with_columns(
            pl.lit(None, pl.Utf8).alias("settlement_source"),
            pl.lit(None, pl.Float64).alias("settlement_std_error"),
        )
    settled = df.filter(pl.col("exit_reason") == "settlement")
    by = settled.group_by("settlement_source").len().sort("settlement_source")
    est = settled.filter(pl.col("settlement_source") == "parity_estimate")
    se = est["settlement_std_error"].drop_nulls().drop_nans()
    return {
        "n_settled": settled.height,
        "by_source": {str(r): int(n) for r, n in by.iter_rows()},
        "n_estimated": est.height,
        "max_std_error": float(np.max(se.to_numpy())) if se.len() else float("nan"),
        "n_end_of_data": int((df["exit_reason"] == "end_of_data").sum()),
    }


def config_metrics(
    trades: pl.DataFrame, equity_daily: pl.DataFrame, capital: float
) -> dict[str, float]:
    """The scalar metrics of one config: :func:`performance` and :func:`trade_stats`, as floats.

    What a sweep stores per configuration (``metrics.json``, the sweep table, MLflow) and what
    ``quantlab backtest`` logs. Where both define a key (``total_pnl``) the trade statistic,
    the sum of the trades' P&L, is kept; ``exit_reasons`` (a dict) is left out.

    Examples
    --------
    >>> import datetime as dt
    >>> from quantlab.backtest.records import empty_trades
    >>> eq = pl.DataFrame({"date": [dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
    ...                    "equity": [1000.0, 1000.0]})
    >>> m = config_metrics(empty_trades(), eq, 1000.0)
    >>> m["n_trades"], m["sharpe_ratio"], m["max_drawdown"]
    (0.0, 0.0, 0.0)
    """
    out: dict[str, float] = {}
    for src in (performance(equity_daily, capital), trade_stats(trades)):
        for k, v in src.items():
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                out[k] = float(v)
    return out


def realized_stats(trades: pl.DataFrame, capital: float) -> dict[str, float]:
    """Realized figures of a book of closed trades (the live journal's ``trades`` table).

    The realized equity path is ``capital`` plus the cumulative P&L of the trades in exit order
    (``exit_ts``, then ``trade_id``); its drawdowns are measured as everywhere else, from the
    capital on (:func:`quantlab.stats.metrics.max_drawdown`).

    Parameters
    ----------
    trades : polars.DataFrame
        Closed trades with ``pnl`` and ``exit_ts``.
    capital : float
        The book's starting equity.

    Returns
    -------
    dict[str, float]
        ``n_trades``, ``total_pnl``, ``equity`` (capital + total P&L), ``win_rate``,
        ``profit_factor``, ``expectancy``, ``max_drawdown`` (fraction, <= 0) and
        ``max_drawdown_dollars`` of the realized equity path. Without trades: P&L and
        drawdowns 0.0, the ratios NaN.

    Examples
    --------
    >>> book = pl.DataFrame({"trade_id": ["a", "b", "c"], "exit_ts": [3, 1, 2],
    ...                      "pnl": [50.0, 100.0, -200.0]})
    >>> s = realized_stats(book, 1000.0)  # equity 1100, 900, 950
    >>> s["total_pnl"], s["win_rate"], round(s["max_drawdown"], 4), s["max_drawdown_dollars"]
    (-50.0, 0.6666666666666666, -0.1818, -200.0)
    """
    cap = _check_capital(capital)
    df = _require(trades, ("pnl", "exit_ts"), "trades")
    order = ["exit_ts", "trade_id"] if "trade_id" in df.columns else ["exit_ts"]
    pnl = _column(df.sort(order, nulls_last=True), "pnl")
    total = float(np.sum(pnl))
    equity = cap + np.cumsum(pnl)
    return {
        "n_trades": float(pnl.size),
        "total_pnl": total,
        "equity": cap + total,
        "win_rate": mt.win_rate(pnl),
        "profit_factor": mt.profit_factor(pnl),
        "expectancy": mt.expectancy(pnl),
        "max_drawdown": mt.max_drawdown(equity, cap),
        "max_drawdown_dollars": mt.max_drawdown_dollars(equity, cap),
    }
