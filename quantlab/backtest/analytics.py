"""Backtest analytics: account performance, trade statistics, bootstrap intervals, breakdowns.

Inputs are the backtester's outputs (see :mod:`quantlab.backtest.records`):

- ``trades``: one row per trade, :data:`~quantlab.backtest.records.TRADE_SCHEMA`;
- ``equity_daily``: ``date`` (Date) and ``equity`` (Float64, dollars) at the end of every
  session of the backtest, days without a trade included;
- ``capital``: the starting equity, the base of the first day's return.

Return-based metrics (total and annualized return, volatility, Sharpe, Sortino) come from
vectorbt's returns accessor and drawdowns from :class:`vectorbt.Drawdowns`; vectorbt is imported
inside the functions that need it because it takes seconds to import. Daily returns are
``equity[t] / equity[t-1] - 1`` with ``equity[-1] = capital``. Drawdowns are measured on the
path that starts at ``capital`` (vectorbt's own ``max_drawdown`` of the returns starts the
path after the first day and would miss a loss on day one), and Calmar is the annualized
return over that drawdown. Drawdown durations count sessions under water.

Conventions: drawdowns are negative fractions (-0.12 = 12 % below the peak); win rate counts
``pnl > 0`` as a win; CVaR at level ``alpha`` is the mean P&L of the worst ``ceil(alpha * n)``
trades; holding time is calendar time from entry to exit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from quantlab.backtest.records import EXIT_REASONS, empty_trades
from quantlab.errors import InputError

SHARES_PER_CONTRACT = 100
NS_PER_MINUTE = 60_000_000_000
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
_EPS = 1e-9

__all__ = [
    "BREAKDOWN_KEYS",
    "bootstrap_ci",
    "bootstrap_distribution",
    "breakdown",
    "breakdowns",
    "daily_returns",
    "decision_counts",
    "drawdown_table",
    "intraday_max_drawdown",
    "monthly_returns",
    "performance",
    "summarize",
    "trade_stats",
]


# --------------------------------------------------------------------------- validation


def _check_capital(capital: float) -> float:
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
        ``equity[t] / equity[t-1] - 1`` in date order, with ``equity[-1] = capital``.

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
    prev = np.concatenate(([cap], equity[:-1]))
    return equity / prev - 1.0


# --------------------------------------------------------------------------- performance


def _drawdowns(path: np.ndarray) -> Any:
    """vectorbt drawdown records of an equity path (index 0 is the starting capital)."""
    import pandas as pd
    import vectorbt as vbt

    return vbt.Drawdowns.from_ts(pd.Series(path), wrapper_kwargs={"freq": "1D"})


def performance(
    equity_daily: pl.DataFrame, capital: float, *, periods_per_year: int = 252
) -> dict[str, float]:
    """Account-level performance of a backtest from its end-of-day equity.

    Parameters
    ----------
    equity_daily : polars.DataFrame
        ``date`` and ``equity`` at the end of every session (no-trade days included).
    capital : float
        Starting equity in dollars; the first day's return is measured from it.
    periods_per_year : int, default 252
        Sessions per year for annualization (vectorbt ``year_freq = f"{periods_per_year}D"``
        over a ``freq="1D"`` index, so ``ann_factor = periods_per_year``).

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
        Ratios without variation (no trades: flat equity) are NaN.

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
        "max_drawdown": 0.0,
        "max_drawdown_dollars": 0.0,
        "max_drawdown_duration": 0.0,
        "avg_drawdown_duration": 0.0,
        "n_drawdowns": 0.0,
        "current_drawdown": 0.0,
        "best_day": nan,
        "worst_day": nan,
        "positive_days": nan,
    }
    if n == 0:
        return out

    import pandas as pd
    import vectorbt  # noqa: F401  (registers the .vbt accessor)

    rets = equity / np.concatenate(([cap], equity[:-1])) - 1.0
    acc = pd.Series(rets).vbt.returns(freq="1D", year_freq=f"{int(periods_per_year)}D")
    out["total_return"] = float(acc.total())
    out["annualized_return"] = float(acc.annualized())
    flat = n < 2 or float(np.std(rets)) == 0.0
    mean = float(np.mean(rets))
    if n >= 2:
        out["annualized_volatility"] = float(acc.annualized_volatility())
        if flat:
            out["sharpe_ratio"] = nan if mean == 0.0 else math.copysign(math.inf, mean)
        else:
            out["sharpe_ratio"] = float(acc.sharpe_ratio())
        sortino = float(acc.sortino_ratio())
        out["sortino_ratio"] = nan if (math.isinf(sortino) and mean <= 0.0) else sortino

    path = np.concatenate(([cap], equity))
    peak = np.maximum.accumulate(path)
    dd = _drawdowns(path)
    if dd.count() > 0:
        mdd = float(dd.max_drawdown())
        out["max_drawdown"] = mdd
        out["max_drawdown_dollars"] = float(np.min(path - peak))
        durations = dd.duration.values.astype(np.float64)
        out["max_drawdown_duration"] = float(durations.max())
        out["avg_drawdown_duration"] = float(durations.mean())
        out["n_drawdowns"] = float(dd.count())
        out["current_drawdown"] = float(path[-1] / peak[-1] - 1.0)
        if mdd < 0.0:
            out["calmar_ratio"] = out["annualized_return"] / abs(mdd)
    out["best_day"] = float(rets.max())
    out["worst_day"] = float(rets.min())
    out["positive_days"] = float(np.mean(rets > 0.0))
    return out


def drawdown_table(equity_daily: pl.DataFrame, capital: float, *, top: int = 5) -> pl.DataFrame:
    """The ``top`` deepest drawdowns of the end-of-day equity path (vectorbt drawdown records).

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
    if equity.size == 0:
        return pl.DataFrame(schema=schema)
    path = np.concatenate(([cap], equity))
    dd = _drawdowns(path)
    rec = dd.records
    if len(rec) == 0:
        return pl.DataFrame(schema=schema)
    # index i of the path is session i - 1 (index 0 is the capital before the first session)
    day = np.concatenate(([np.datetime64("NaT", "D")], dates))
    peak_idx = rec["peak_idx"].to_numpy()
    valley_idx = rec["valley_idx"].to_numpy()
    end_idx = rec["end_idx"].to_numpy()
    active = rec["status"].to_numpy() == 0
    peak_val = rec["peak_val"].to_numpy()
    valley_val = rec["valley_val"].to_numpy()
    recovery = day[end_idx].copy()
    recovery[active] = np.datetime64("NaT", "D")
    duration = dd.duration.values  # sessions under water, same order as the records
    df = pl.DataFrame(
        {
            "peak_date": day[peak_idx],
            "valley_date": day[valley_idx],
            "recovery_date": recovery,
            "depth": valley_val / peak_val - 1.0,
            "depth_dollars": valley_val - peak_val,
            "decline_sessions": (valley_idx - peak_idx).astype(np.int64),
            "duration_sessions": duration.astype(np.int64),
            "status": np.where(active, "active", "recovered"),
        }
    ).cast(schema)  # type: ignore[arg-type]
    return df.sort("depth").head(top)


def intraday_max_drawdown(equity_minutes: pl.DataFrame, capital: float) -> float:
    """Deepest drawdown of the minute-marked equity (fraction, <= 0), peak from ``capital`` on.

    The engine marks equity every minute a trade is open and at each exit; between trades the
    equity is flat at the last exit's value, so this path holds every intraday trough that the
    end-of-day series hides.
    """
    cap = _check_capital(capital)
    df = _require(equity_minutes, ("ts", "equity"), "equity_minutes").sort("ts")
    eq = df["equity"].cast(pl.Float64).drop_nulls().to_numpy()
    if eq.size == 0:
        return 0.0
    path = np.concatenate(([cap], eq))
    return float(np.min(path / np.maximum.accumulate(path) - 1.0))


def monthly_returns(equity_daily: pl.DataFrame, capital: float) -> pl.DataFrame:
    """Return and P&L of each calendar month: ``year``, ``month``, ``ret``, ``pnl``."""
    cap = _check_capital(capital)
    dates, equity = _equity_path(equity_daily, cap)
    prev = np.concatenate(([cap], equity[:-1]))
    df = pl.DataFrame({"date": dates, "equity": equity, "prev": prev})
    return (
        df.with_columns(
            pl.col("date").dt.year().alias("year"), pl.col("date").dt.month().alias("month")
        )
        .group_by("year", "month", maintain_order=True)
        .agg(
            (pl.col("equity").last() / pl.col("prev").first() - 1.0).alias("ret"),
            (pl.col("equity").last() - pl.col("prev").first()).alias("pnl"),
        )
        .sort("year", "month")
    )


# --------------------------------------------------------------------------- trade statistics


def _stat_exprs(alpha: float) -> list[pl.Expr]:
    pnl = pl.col("pnl")
    win, loss = pnl.filter(pnl > 0), pnl.filter(pnl < 0)
    k = (pl.len().cast(pl.Float64) * alpha - _EPS).ceil()
    dollars = pl.col("credit_per_share") * SHARES_PER_CONTRACT * pl.col("contracts")
    hold = (pl.col("exit_ts") - pl.col("entry_ts")).cast(pl.Float64) / NS_PER_MINUTE
    risk = pl.col("max_loss")
    return [
        pl.len().cast(pl.Int64).alias("n_trades"),
        (pnl > 0).sum().cast(pl.Int64).alias("n_wins"),
        (pnl < 0).sum().cast(pl.Int64).alias("n_losses"),
        (pnl > 0).mean().alias("win_rate"),
        pnl.sum().alias("total_pnl"),
        pnl.mean().alias("expectancy"),
        pnl.median().alias("median_pnl"),
        pnl.std().alias("std_pnl"),
        win.sum().alias("gross_win"),
        (-loss.sum()).alias("gross_loss"),
        win.mean().alias("avg_win"),
        loss.mean().alias("avg_loss"),
        pnl.max().alias("largest_win"),
        pnl.min().alias("largest_loss"),
        pnl.filter(pnl.rank("ordinal") <= k).mean().alias("cvar_5"),
        pl.col("credit_per_share").mean().alias("avg_credit_per_share"),
        dollars.mean().alias("avg_credit"),
        risk.mean().alias("avg_max_loss"),
        risk.max().alias("max_max_loss"),
        (pnl / risk).filter(risk > 0).mean().alias("avg_return_on_risk"),
        hold.mean().alias("avg_holding_minutes"),
        pl.col("fees").sum().alias("total_fees"),
        pl.col("fees").mean().alias("avg_fees"),
    ]


def _profit_factor() -> pl.Expr:
    gw, gl = pl.col("gross_win"), pl.col("gross_loss")
    return (
        pl.when(gl > 0)
        .then(gw / gl)
        .when(gw > 0)
        .then(pl.lit(math.inf))
        .otherwise(pl.lit(None, pl.Float64))
        .alias("profit_factor")
    )


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    if not (0.0 < float(alpha) < 1.0):
        raise InputError(f"{name} must lie strictly between 0 and 1 (got {alpha!r}).")
    return float(alpha)


def trade_stats(trades: pl.DataFrame, *, alpha: float = CVAR_ALPHA) -> dict[str, Any]:
    """Per-trade statistics of a backtest.

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
        ``profit_factor`` (gross wins / gross losses; inf without losses), ``avg_win``,
        ``avg_loss``, ``largest_win``, ``largest_loss``, ``cvar_5``, ``avg_credit_per_share``,
        ``avg_credit`` (dollars per trade), ``avg_max_loss`` and ``max_max_loss`` (dollars at
        risk), ``avg_return_on_risk`` (mean of pnl / max_loss), ``avg_holding_minutes``,
        ``total_fees``, ``avg_fees`` and ``exit_reasons`` (reason -> count, every reason of
        :data:`~quantlab.backtest.records.EXIT_REASONS` present). Undefined values are NaN.

    Examples
    --------
    >>> from quantlab.backtest.records import empty_trades
    >>> trade_stats(empty_trades())["n_trades"]
    0
    """
    alpha = _check_alpha(alpha)
    df = _as_trades(trades)
    row = df.select(_stat_exprs(alpha)).with_columns(_profit_factor()).row(0, named=True)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.startswith("n_"):
            out[key] = int(value or 0)
        else:
            out[key] = float("nan") if value is None else float(value)
    if out["n_trades"] == 0:
        out.update(total_pnl=0.0, total_fees=0.0, gross_win=0.0, gross_loss=0.0)
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
    extra = [k for k in sort_keys if k not in keys]
    aggs = _stat_exprs(alpha) + [pl.col(k).first() for k in extra]
    out = (
        df.group_by(keys)
        .agg(aggs)
        .with_columns(_profit_factor())
        .sort(sort_keys, nulls_last=True)
        .drop(extra)
    )
    return out


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


# --------------------------------------------------------------------------- bootstrap

StatFn = Callable[[np.ndarray], np.ndarray]


def _sharpe_rows(periods_per_year: float) -> StatFn:
    def stat(x: np.ndarray) -> np.ndarray:
        sd = x.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sr = x.mean(axis=1) / sd * np.sqrt(periods_per_year)
        return np.where(sd > 0, sr, np.nan)

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
    if isinstance(data, pl.DataFrame):
        _require(data, ("pnl",), "data")
        data = data["pnl"]
    if isinstance(data, pl.Series):
        data = data.cast(pl.Float64).to_numpy()
    x = np.asarray(data, dtype=np.float64)
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
    periods_per_year: int = 252,
) -> np.ndarray:
    """Bootstrap replicates of a statistic; see :func:`bootstrap_ci` for the arguments.

    Returns
    -------
    numpy.ndarray
        ``n_boot`` replicates (NaN where the statistic is undefined); empty when the data has
        fewer than two finite values.
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
    periods_per_year: int = 252,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval, deterministic for a seed.

    Parameters
    ----------
    data : polars.DataFrame, polars.Series or array-like
        A trades frame (its ``pnl`` is used) or a 1-D series such as daily returns.
        Non-finite values are dropped.
    stat : {"mean", "sharpe"} or callable, default "mean"
        ``"sharpe"``: mean / std (``ddof=1``) times ``sqrt(periods_per_year)``. A callable
        gets a ``(rows, n)`` matrix of resamples and returns ``rows`` values.
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
        ``(lo, hi)``: the ``alpha/2`` and ``1 - alpha/2`` quantiles of the replicates;
        ``(nan, nan)`` with fewer than two values.

    Examples
    --------
    >>> lo, hi = bootstrap_ci(np.arange(100.0), "mean", seed=1)
    >>> bool(lo < 49.5 < hi)
    True
    """
    alpha = _check_alpha(alpha)
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
        "periods_per_year": periods_per_year,
    }
