"""Walk-forward optimisation: re-choose a sweep's config on each train window, trade it next.

A walk-forward run takes a sweep's configs (:func:`quantlab.sweep.config.expand`), stage 1 of
all of them over the whole range, computed once, and a :class:`WindowSpec` (rolling or
anchored; train, test and step lengths in months or sessions; an embargo in sessions):

1. stage 2 of every config over the whole range (:func:`~quantlab.backtest.stage2.run_stage2`),
   once; its daily P&L (a sessions x configs matrix) and its trades are what the train windows
   are scored on;
2. in each train window the config with the best ``criterion`` is chosen
   (:func:`train_scores`, :func:`choose`): ``sharpe`` (the annualised Sharpe ratio of
   :mod:`quantlab.stats.metrics`), ``deflated_sharpe`` (each config's deflated Sharpe ratio
   against all configs' Sharpe ratios in the window, :mod:`quantlab.stats.overfitting`), or
   any metric :func:`~quantlab.backtest.analytics.config_metrics` reports (``-name`` to
   minimise one). A window's scores are those of each config's book re-based to the capital at
   the window's first session: its marks at the closes of the window's sessions and the trades
   it entered and closed inside the window, so nothing after the window's last session enters
   a choice. The highest score wins; ties (and NaN scores, which lose to any number) go to the
   smallest config id;
3. the chosen config trades the test window through the portfolio pass: stage 2 again, with the
   gate (``allowed``) open only for its candidates entered on the test window's sessions.

**Positions at a window's end.** A window's trades run to their own exit, even past the
window's last session, and their P&L is booked in full to that window. The next window's
config enters only once every trade of the previous window has closed (candidates entered
before the last of those exits are not allowed): the book is flat at each hand-over, so at no
time are two windows' trades open together and ``max_open_trades`` (and every other risk rule,
which each window's pass applies to its own trades) holds for the stitched book. This is more
conservative than carrying the open trades into the next config's book when
``max_open_trades > 1``; with the seed grid's one open trade it is the same rule.

The stitched out-of-sample account is the sum of the windows' daily P&L from the first test
session on, with 95% block-bootstrap intervals of its Sharpe ratio and total P&L. Its deflated
Sharpe ratio is taken against the Sharpe ratios of all configs over
the same sessions, with the number of configs tried as the number of trials. The look-ahead
comparison fixes the config that is best by the same criterion over the whole range and trades
it over the same out-of-sample sessions.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from quantlab.backtest.analytics import config_metrics
from quantlab.backtest.equity import daily_frame
from quantlab.config import StrictModel
from quantlab.errors import InputError
from quantlab.stats import metrics as mt

#: criteria computed from the daily returns matrix alone (the others from config_metrics)
RETURN_CRITERIA = ("sharpe", "sharpe_ratio", "deflated_sharpe")


class WindowSpec(StrictModel):
    """How the range is cut into train and test windows.

    ``rolling``: every train window has ``train`` units; ``anchored``: every train window
    starts at the first session. Window ``k``'s test starts ``train + k * step`` units after
    the first session and lasts ``test`` units (the last one may be shorter); the train window
    ends where the test starts, less ``embargo`` sessions. A unit of months is a calendar
    month counted from the first session's month.
    """

    mode: Literal["rolling", "anchored"] = "rolling"
    unit: Literal["months", "sessions"] = "months"
    train: int = Field(6, ge=1)
    test: int = Field(1, ge=1)
    step: int = Field(1, ge=1)
    embargo: int = Field(0, ge=0, description="sessions dropped from the end of each train window")

    @model_validator(mode="after")
    def _no_overlap(self) -> WindowSpec:
        if self.step < self.test:
            raise ValueError(
                f"step ({self.step}) must be at least test ({self.test}): overlapping test "
                "windows would trade the same sessions twice. Use step = test to tile them."
            )
        return self


@dataclass(frozen=True)
class Window:
    """One train/test split, as session indices (``[lo, hi)``) and dates (inclusive)."""

    index: int
    train_lo: int
    train_hi: int
    test_lo: int
    test_hi: int
    days: tuple[dt.date, ...] = field(repr=False, compare=False, default=())

    @property
    def train_rows(self) -> np.ndarray:
        return np.arange(self.train_lo, self.train_hi)

    @property
    def test_rows(self) -> np.ndarray:
        return np.arange(self.test_lo, self.test_hi)

    def dates(self) -> dict[str, dt.date]:
        d = self.days
        return {
            "train_start": d[self.train_lo],
            "train_end": d[self.train_hi - 1],
            "test_start": d[self.test_lo],
            "test_end": d[self.test_hi - 1],
        }


def _add_months(d: dt.date, n: int) -> dt.date:
    m = d.year * 12 + d.month - 1 + n
    return dt.date(m // 12, m % 12 + 1, 1)


def plan_windows(days: Sequence[dt.date], spec: WindowSpec) -> list[Window]:
    """The train/test windows of ``spec`` over the sessions ``days`` (sorted).

    Examples
    --------
    >>> days = [dt.date(2024, 1, 1) + dt.timedelta(i) for i in range(10)]
    >>> ws = plan_windows(days, WindowSpec(unit="sessions", train=4, test=2, step=2, embargo=1))
    >>> [(w.train_lo, w.train_hi, w.test_lo, w.test_hi) for w in ws]
    [(0, 3, 4, 6), (2, 5, 6, 8), (4, 7, 8, 10)]
    """
    days = list(days)
    n = len(days)
    if spec.unit == "sessions":

        def at(units: int) -> int:
            return min(units, n)
    else:
        first = _add_months(days[0], 0)
        arr = np.array(days, dtype="datetime64[D]")

        def at(units: int) -> int:
            return int(np.searchsorted(arr, np.datetime64(_add_months(first, units)), "left"))

    out: list[Window] = []
    k = 0
    while True:
        start = k * spec.step
        test_lo, test_hi = at(start + spec.train), at(start + spec.train + spec.test)
        if test_lo >= n:
            break
        train_lo = 0 if spec.mode == "anchored" else at(start)
        train_hi = test_lo - spec.embargo
        if train_hi - train_lo < 2:
            raise InputError(
                f"walk-forward window {k} has {max(train_hi - train_lo, 0)} train sessions "
                f"({spec}); a train window needs at least 2. Lengthen train or shorten embargo."
            )
        if test_hi > test_lo:
            out.append(Window(len(out), train_lo, train_hi, test_lo, test_hi, tuple(days)))
        k += 1
    if not out:
        raise InputError(
            f"no walk-forward window fits {n} sessions ({days[0]}..{days[-1]}) with {spec}: "
            "the range must be longer than one train window."
        )
    return out


# --------------------------------------------------------------------------- the choice


def _rebased_returns(pnl: np.ndarray, capital: float) -> np.ndarray:
    """Daily returns (T x N) of each column's P&L re-based to ``capital`` at its first row."""
    eq = capital + np.cumsum(pnl, axis=0)
    cols = [mt.returns_from_equity(eq[:, j], capital) for j in range(pnl.shape[1])]
    return np.column_stack(cols) if cols else np.empty((pnl.shape[0], 0))


def _deflated_scores(r: np.ndarray) -> np.ndarray:
    from quantlab.stats.overfitting import deflated_sharpe_ratio

    srs = mt.sharpe_ratio_columns(r)
    finite = srs[np.isfinite(srs)]
    out = np.full(r.shape[1], np.nan)
    if finite.size < 2:
        return out
    n, var = float(r.shape[1]), float(np.var(finite, ddof=1))
    for j in range(r.shape[1]):
        if np.isfinite(srs[j]) and np.std(r[:, j]) > 0:
            out[j] = deflated_sharpe_ratio(r[:, j], n_trials=n, var_sharpe=var).dsr
    return out


def train_scores(
    criterion: str,
    pnl: np.ndarray,
    rows: np.ndarray,
    capital: float,
    trades: Sequence[pl.DataFrame] | None = None,
    days: Sequence[dt.date] | None = None,
) -> np.ndarray:
    """Each config's score on the sessions ``rows`` (higher is better).

    Parameters
    ----------
    criterion : str
        ``sharpe`` (or ``sharpe_ratio``), ``deflated_sharpe``, or a key of
        :func:`~quantlab.backtest.analytics.config_metrics`; ``-key`` minimises it.
    pnl : numpy.ndarray, shape (T, N)
        Daily P&L in dollars of N configs over the same T sessions.
    rows : numpy.ndarray
        The window's sessions (consecutive row indices).
    capital : float
        The capital the window's equity is re-based to.
    trades, days : optional
        Each config's trade log and the T session dates: needed by trade metrics (only the
        trades entered and exited on the window's sessions count).
    """
    sign, name = (-1.0, criterion[1:]) if criterion.startswith("-") else (1.0, criterion)
    window = pnl[rows]
    if name in RETURN_CRITERIA:
        r = _rebased_returns(window, capital)
        if name == "deflated_sharpe":
            return sign * _deflated_scores(r)
        return sign * np.asarray(mt.sharpe_ratio_columns(r, periods_per_year=mt.PERIODS_PER_YEAR))
    if trades is None or days is None:
        raise InputError(
            f"criterion {criterion!r} needs each config's trades and the session dates"
        )
    lo, hi = days[int(rows[0])], days[int(rows[-1])]
    out = np.full(pnl.shape[1], np.nan)
    for j, tr in enumerate(trades):
        eq = daily_frame([days[int(i)] for i in rows], capital + np.cumsum(window[:, j]), capital)
        inside = tr.filter(pl.col("entry_date").is_between(lo, hi) & (pl.col("exit_date") <= hi))
        m = config_metrics(inside, eq, capital)
        if name not in m:
            raise InputError(
                f"walk-forward criterion {criterion!r} is not a metric; use sharpe, "
                f"deflated_sharpe or one of {sorted(m)} (prefix - to minimise)."
            )
        out[j] = sign * m[name]
    return out


def choose(scores: np.ndarray, ids: Sequence[str]) -> int:
    """The index of the best score; ties and all-NaN go to the smallest id (NaN loses).

    Examples
    --------
    >>> choose(np.array([1.0, 2.0, 2.0, np.nan]), ["d", "c", "b", "a"])
    2
    """
    s = np.where(np.isnan(scores), -np.inf, scores)
    best = np.flatnonzero(s == s.max())
    return int(min(best.tolist(), key=lambda j: ids[j]))


# --------------------------------------------------------------------------- the run


@dataclass
class WalkForwardResult:
    """A walk-forward run.

    ``windows``: a row per window (dates, chosen config, its train score, in-sample and
    out-of-sample Sharpe, trades, P&L); ``trades``: the out-of-sample trades with their
    ``window``; ``equity_daily``: ``date``, the stitched out-of-sample ``equity`` and ``pnl``
    and the look-ahead ``lookahead_equity`` over the out-of-sample sessions; ``summary``: the
    figures of both and the deflated Sharpe ratio of the stitched series.
    """

    windows: pl.DataFrame
    trades: pl.DataFrame
    equity_daily: pl.DataFrame
    summary: dict[str, Any]
    lookahead_trades: pl.DataFrame


def _window_run(
    s1: Any, spec: Any, decisions: pl.DataFrame, lo: dt.date, hi: dt.date, after_ns: int
) -> Any:
    """Stage 2 of ``spec`` with entries only on ``lo..hi`` at or after ``after_ns``."""
    from quantlab.backtest.stage2 import run_stage2

    keep = decisions.filter(
        pl.col("entry_date").is_between(lo, hi) & (pl.col("entry_ts") >= after_ns)
    )
    return run_stage2(s1, spec, allowed=set(keep.get_column("candidate_id").to_list()))


def _sharpe(pnl: np.ndarray, capital: float) -> float:
    if pnl.size < 2:
        return math.nan
    r = mt.returns_from_equity(capital + np.cumsum(pnl), capital)
    return mt.sharpe_ratio(r, periods_per_year=mt.PERIODS_PER_YEAR)


def _common_capital(specs: Sequence[Any]) -> float:
    caps = sorted({float(s.sizing.capital) for s in specs})
    if len(caps) != 1:
        raise InputError(
            f"walk-forward needs one capital for every config (got {caps}); "
            "do not sweep sizing.capital."
        )
    return caps[0]


def _trade_pnl(res: Any) -> np.ndarray:
    return np.asarray(res.equity_daily.get_column("pnl").to_numpy(), float)


def run_walkforward(
    s1: Any,
    specs: Sequence[Any],
    windows: WindowSpec,
    criterion: str = "sharpe",
    *,
    ids: Sequence[str] | None = None,
    full: Sequence[Any] | None = None,
) -> WalkForwardResult:
    """Walk forward over the stage-1 result ``s1`` with the configs ``specs``.

    Parameters
    ----------
    s1 : Stage1Result
        Stage 1 of all ``specs`` over the whole range (computed once, shared by every window).
    specs : sequence of StrategySpec
        The configs tried (one capital for all).
    windows : WindowSpec
    criterion : str
        See :func:`train_scores`.
    ids : sequence of str, optional
        Config ids (default: each spec's ``config_hash()``); ties go to the smallest.
    full : sequence of PortfolioResult, optional
        Each spec's stage 2 over the whole range, when already computed.

    Returns
    -------
    WalkForwardResult
        See the module docstring for the rule at window ends.
    """
    from quantlab.backtest.stage2 import run_stage2

    capital = _common_capital(specs)
    names = list(ids) if ids is not None else [s.config_hash() for s in specs]
    full = list(full) if full is not None else [run_stage2(s1, s) for s in specs]
    days = list(s1.days)
    pnl = np.column_stack([_trade_pnl(r) for r in full])
    trades = [r.trades for r in full]
    plan = plan_windows(days, windows)
    rows, parts, pnl_oos, after = [], [], np.zeros(len(days)), 0
    for w in plan:
        scores = train_scores(criterion, pnl, w.train_rows, capital, trades, days)
        j = choose(scores, names)
        d = w.dates()
        res = _window_run(s1, specs[j], full[j].decisions, d["test_start"], d["test_end"], after)
        wp = _trade_pnl(res)
        pnl_oos += wp
        tr = res.trades.with_columns(pl.lit(w.index, pl.Int32).alias("window"))
        parts.append(tr)
        if tr.height:
            after = max(after, int(tr.get_column("exit_ts").max()))
        rows.append(
            {"window": w.index, **d, "config_id": names[j], "config": specs[j].name}
            | {"score": float(scores[j]), "is_sharpe": _sharpe(pnl[w.train_rows, j], capital)}
            | {"oos_sharpe": _sharpe(wp[w.test_rows], capital), "n_trades": tr.height}
            | {"pnl": float(tr.get_column("pnl").sum()) if tr.height else 0.0}
        )
    oos = slice(plan[0].test_lo, len(days))
    la = _lookahead(s1, specs, names, full, pnl, criterion, capital, days, plan)
    eq = pl.DataFrame(
        {"date": days[oos], "pnl": pnl_oos[oos], "lookahead_pnl": la["pnl"][oos]}
    ).with_columns(
        (capital + pl.col("pnl").cum_sum()).alias("equity"),
        (capital + pl.col("lookahead_pnl").cum_sum()).alias("lookahead_equity"),
    )
    table = pl.DataFrame(rows)
    summary = _summary(pnl, pnl_oos, oos, capital, names, la, table, criterion, windows)
    trades_oos = pl.concat(parts) if parts else pl.DataFrame()
    return WalkForwardResult(table, trades_oos, eq, summary, la["trades"])


def _lookahead(
    s1: Any,
    specs: Sequence[Any],
    ids: Sequence[str],
    full: Sequence[Any],
    pnl: np.ndarray,
    criterion: str,
    capital: float,
    days: list[dt.date],
    plan: list[Window],
) -> dict[str, Any]:
    """The config best by ``criterion`` over the whole range, traded over the same
    out-of-sample sessions (entries from the first to the last test session)."""
    trades = [r.trades for r in full]
    j = choose(train_scores(criterion, pnl, np.arange(len(days)), capital, trades, days), ids)
    lo, hi = days[plan[0].test_lo], days[plan[-1].test_hi - 1]
    res = _window_run(s1, specs[j], full[j].decisions, lo, hi, 0)
    return {"index": j, "config_id": ids[j], "config": specs[j].name} | {
        "pnl": _trade_pnl(res),
        "trades": res.trades,
    }


def _summary(
    pnl: np.ndarray,
    pnl_oos: np.ndarray,
    oos: slice,
    capital: float,
    ids: Sequence[str],
    la: dict[str, Any],
    table: pl.DataFrame,
    criterion: str,
    windows: WindowSpec,
) -> dict[str, Any]:
    """The out-of-sample and look-ahead figures and the stitched series' deflated Sharpe."""
    out: dict[str, Any] = {
        "criterion": criterion,
        "windows": windows.model_dump(),
        "n_windows": table.height,
        "n_configs": len(ids),
        "n_configs_chosen": table.get_column("config_id").n_unique(),
        "oos_sessions": int(pnl_oos[oos].size),
        "oos_total_pnl": float(pnl_oos[oos].sum()),
        "oos_sharpe": _sharpe(pnl_oos[oos], capital),
        "oos_n_trades": int(table.get_column("n_trades").sum()),
        "lookahead_config_id": la["config_id"],
        "lookahead_config": la["config"],
        "lookahead_total_pnl": float(la["pnl"][oos].sum()),
        "lookahead_sharpe": _sharpe(la["pnl"][oos], capital),
        "lookahead_n_trades": la["trades"].height,
    }
    out["deflated_sharpe"] = _oos_dsr(pnl[oos], pnl_oos[oos], capital)
    return out | _oos_intervals(pnl_oos[oos], capital)


def _oos_intervals(pnl: np.ndarray, capital: float, n_boot: int = 2000) -> dict[str, Any]:
    """95% stationary block-bootstrap intervals (:func:`quantlab.stats.bootstrap.bootstrap_ci`,
    seed 0) of the stitched series' annualised Sharpe ratio and total P&L (sessions x the
    resampled mean daily P&L)."""
    from quantlab.stats.bootstrap import bootstrap_ci

    if pnl.size < 2:
        nan = (math.nan, math.nan)
        return {"oos_sharpe_ci": nan, "oos_total_pnl_ci": nan}
    r = mt.returns_from_equity(capital + np.cumsum(pnl), capital)
    lo, hi = bootstrap_ci(pnl, "mean", n_boot=n_boot, method="stationary")
    return {
        "oos_sharpe_ci": bootstrap_ci(r, "sharpe", n_boot=n_boot),
        "oos_total_pnl_ci": (lo * pnl.size, hi * pnl.size),
    }


def _oos_dsr(trials: np.ndarray, stitched: np.ndarray, capital: float) -> dict[str, float]:
    """The deflated Sharpe ratio of the stitched series, the trials being every config's
    returns over the same sessions (their number and the variance of their Sharpe ratios)."""
    from quantlab.stats.overfitting import deflated_sharpe_ratio

    r = _rebased_returns(trials, capital)
    srs = np.asarray(mt.sharpe_ratio_columns(r))
    x = mt.returns_from_equity(capital + np.cumsum(stitched), capital)
    finite = srs[np.isfinite(srs)]
    if x.size < 4 or finite.size < 2 or np.std(x) == 0:
        return {"dsr": math.nan, "n_trials": float(trials.shape[1])}
    d = deflated_sharpe_ratio(x, n_trials=trials.shape[1], var_sharpe=np.var(finite, ddof=1))
    return {k: float(v) for k, v in d.__dict__.items() if isinstance(v, (int, float))}
