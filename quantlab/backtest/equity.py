"""Mark-to-market equity, minute by minute and at each session's close: built here only.

A trade contributes its mark (the mid P&L of its path minutes, net of entry fees) from its entry
until its exit, and its realized P&L from the exit on. The minute grid is the union of the
trades' path minutes and exit times; the daily series is the equity at each session's option
close (16:15 ET, 13:15 on half days) for every session given: the minute curve's last value at
or before the close (:func:`daily_from_minutes`), which stage 2 computes at the closes alone
(:func:`quantlab.backtest.replay.daily_equity`, equal to the last bit) and builds the minute
curve only when it is read. The backtester, ML evaluation and the report all read these two
frames, so their curves and their metrics agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.backtest.replay import equity_curve

MINUTE_SCHEMA = {"ts": pl.Int64, "equity": pl.Float64}
DAILY_SCHEMA = {"date": pl.Date, "equity": pl.Float64, "pnl": pl.Float64}


def minute_equity(
    ts: np.ndarray,
    mtm: np.ndarray,
    starts: np.ndarray,
    exit_ts: np.ndarray,
    pnl: np.ndarray,
    capital: float,
) -> pl.DataFrame:
    """The minute equity (``ts``, ``equity``) of a set of trades on an account of ``capital``.

    Trade ``t`` has its marks (dollars, net of entry fees) at path stamps ``ts[starts[t]:
    starts[t + 1]]`` (``mtm`` alike, entry to exit), its exit time ``exit_ts[t]`` and its
    realized P&L ``pnl[t]`` in dollars; the grid is the union of the stamps and exit times.
    """
    if exit_ts.size == 0:
        return pl.DataFrame({"ts": [], "equity": []}, schema=MINUTE_SCHEMA)
    g = _sorted_unique(np.concatenate([ts, exit_ts]))
    e = np.empty(g.size)
    equity_curve(
        g,
        np.ascontiguousarray(starts, np.int64),
        np.ascontiguousarray(ts, np.int64),
        np.ascontiguousarray(mtm, np.float64),
        np.ascontiguousarray(exit_ts, np.int64),
        np.ascontiguousarray(pnl, np.float64),
        float(capital),
        e,
    )
    return pl.DataFrame({"ts": g, "equity": e}, schema=MINUTE_SCHEMA)


def session_closes(days: Sequence[dt.date]) -> np.ndarray:
    """UTC ns of each session's option close (where the daily equity is read)."""
    return np.array([calendar.option_close_ns(d) for d in days], dtype=np.int64)


def daily_frame(days: Sequence[dt.date], equity: np.ndarray, capital: float) -> pl.DataFrame:
    """``equity_daily``: ``date``, ``equity`` at the session's option close and ``pnl`` (the
    change from the previous close, from ``capital`` on the first)."""
    pnl = np.diff(np.concatenate([[capital], equity]))
    return pl.DataFrame({"date": list(days), "equity": equity, "pnl": pnl}, schema=DAILY_SCHEMA)


def daily_from_minutes(
    minutes: pl.DataFrame, capital: float, days: Sequence[dt.date]
) -> pl.DataFrame:
    """``equity_daily`` read off a minute equity: the last stamp at or before each close
    (``capital`` before the first)."""
    g = minutes["ts"].to_numpy()
    e = minutes["equity"].to_numpy()
    closes = session_closes(days)
    daily = np.full(closes.size, float(capital))
    if g.size:
        pos = np.searchsorted(g, closes, side="right") - 1
        daily = np.where(pos >= 0, e[np.maximum(pos, 0)], capital)
    return daily_frame(days, daily, capital)


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 stamps by a sort and a neighbour mask (several times faster)."""
    a = np.sort(a.astype(np.int64, copy=False), kind="stable")
    if a.size == 0:
        return a
    keep = np.empty(a.size, bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


__all__ = [
    "DAILY_SCHEMA",
    "MINUTE_SCHEMA",
    "daily_frame",
    "daily_from_minutes",
    "minute_equity",
    "session_closes",
]
