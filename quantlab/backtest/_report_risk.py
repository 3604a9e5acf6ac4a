"""Risk panels of the backtest report (:mod:`quantlab.backtest.report`), from a
:class:`quantlab.risk.greeks.TradeRisk`: the book's greeks over time, the P&L attribution by
exit month and per inspected trade, and the entry scenario grid of the trade with the largest
worst-case scenario loss.

Figures are drawn like the rest of the report (:mod:`quantlab.backtest._report_plots`):
explicit Agg ``Figure`` objects, PNG without software metadata, so the same inputs give
byte-identical files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantlab.backtest._report_plots import (
    _COLORS,
    _date_axis,
    _et,
    _fmt,
    _new_figure,
    _png,
    _safe_name,
    _ticks,
)

if TYPE_CHECKING:
    from quantlab.risk.greeks import TradeRisk

#: the book's greeks drawn, with their axis labels (dollars for the book's contracts)
BOOK_GREEKS = (
    ("delta_pct", "delta\n($ per 1 % move)"),
    ("gamma_pct", "gamma\n($ per 1 %²)"),
    ("vega_pt", "vega\n($ per vol point)"),
    ("theta_day", "theta\n($ per day)"),
)
#: attribution terms, in the order they are stacked; they sum to the trade's P&L
TERMS = ("delta", "gamma", "vega", "theta", "residual", "costs")
TERM_COLORS = {
    "delta": "#1f4e79",
    "gamma": "#7b3294",
    "vega": "#e08a1e",
    "theta": "#2e8b57",
    "residual": "#9e9e9e",
    "costs": "#c0392b",
}
#: the book's greeks are sampled every this many minutes (ET, from 10:00 to 16:00) ...
FINE_STEP_MINUTES = 30
#: ... on backtests of at most this many sessions, hourly beyond
FINE_MAX_SESSIONS = 130
_NS_PER_MIN = 60_000_000_000


@dataclass
class RiskPanels:
    """What the report's risk section shows: its figures by file name and their numbers."""

    figures: dict[str, bytes] = field(default_factory=dict)
    monthly: pl.DataFrame | None = None
    worst: dict[str, Any] | None = None
    step_minutes: int = FINE_STEP_MINUTES
    explained_share: float = float("nan")
    n_trades: int = 0
    trade_figures: dict[str, str] = field(default_factory=dict)  # trade_id -> file name


# --------------------------------------------------------------------------- data


def book_grid(risk: TradeRisk, dates: np.ndarray, step_minutes: int) -> pl.DataFrame:
    """The book's greeks every ``step_minutes`` from 10:00 to 16:00 ET of each session in
    ``dates``: at each time, the sum over the trades open then (entry at or before it, exit
    after it) of each trade's greeks at its last path minute at or before it; zero when flat."""
    grid = _session_grid(dates, step_minutes)
    out = {name: np.zeros(grid.size) for name, _ in BOOK_GREEKS}
    m = risk.minutes.filter(pl.col("ts") < pl.col("exit_ts")).sort("trade_id", "ts")
    if m.height == 0 or grid.size == 0:
        return pl.DataFrame({"ts": grid} | out)
    ts = m["ts"].to_numpy()
    exit_ts = m["exit_ts"].to_numpy()
    values = {name: m[name].to_numpy() for name in out}
    ids = m["trade_id"].to_numpy()
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    for a, b in zip(starts, [*starts[1:], ids.size], strict=True):
        lo = int(np.searchsorted(grid, ts[a], "left"))
        hi = int(np.searchsorted(grid, exit_ts[a], "left"))
        if hi <= lo:
            continue
        at = a + np.searchsorted(ts[a:b], grid[lo:hi], "right") - 1
        for name, v in values.items():
            out[name][lo:hi] += np.nan_to_num(v[at])
    return pl.DataFrame({"ts": grid} | out)


def _session_grid(dates: np.ndarray, step_minutes: int) -> np.ndarray:
    """UTC ns of 10:00, 10:00 + step, ... up to 16:00 ET on each date."""
    from quantlab import calendar

    first = dt.time(10, 0)
    n = (16 * 60 - (first.hour * 60 + first.minute)) // step_minutes + 1
    ticks = []
    for d in dates.astype("datetime64[D]").tolist():
        base = calendar.to_ns(dt.datetime.combine(d, first, tzinfo=calendar.ET))
        ticks.append(base + np.arange(n, dtype=np.int64) * step_minutes * _NS_PER_MIN)
    return np.unique(np.concatenate(ticks)) if ticks else np.empty(0, np.int64)


def monthly_attribution(risk: TradeRisk, trades: pl.DataFrame) -> pl.DataFrame:
    """The attribution terms, costs and P&L summed per month of the trades' ET exit dates."""
    exits = trades.select("trade_id", pl.col("exit_date").dt.strftime("%Y-%m").alias("month"))
    t = risk.trades.join(exits, on="trade_id", how="left")
    t = t.with_columns(
        pl.col("month").fill_null("open"), *(pl.col(c).fill_null(0.0) for c in TERMS)
    )
    return (
        t.group_by("month")
        .agg(pl.len().alias("n_trades"), *(pl.col(c).sum() for c in (*TERMS, "pnl")))
        .sort("month")
    )


def worst_trade(risk: TradeRisk) -> dict[str, Any] | None:
    """The row of ``risk.trades`` with the largest worst-case entry scenario loss (ties: the
    lower P&L, then the trade id), with its index into ``risk.scenarios`` as ``index``."""
    if risk.trades.height == 0:
        return None
    t = risk.trades.with_row_index("index").sort(
        ["worst_scenario_loss", "pnl", "trade_id"], descending=[True, False, False]
    )
    return t.row(0, named=True)


def trade_terms(risk: TradeRisk, trade_id: str) -> dict[str, float] | None:
    """One trade's attribution terms, costs and P&L (None when ``risk`` lacks the trade)."""
    row = risk.trades.filter(pl.col("trade_id") == trade_id)
    if row.height == 0:
        return None
    r = row.row(0, named=True)
    return {c: float(r[c] or 0.0) for c in (*TERMS, "pnl")}


# --------------------------------------------------------------------------- figures


def fig_book_greeks(grid: pl.DataFrame, step_minutes: int) -> Any:
    """The book's delta, gamma, vega and theta over time, one panel each (steps: a value holds
    until the next sample, overnight included)."""
    fig = _new_figure(10, 6.2)
    axes = fig.subplots(len(BOOK_GREEKS), 1, sharex=True)
    x = _et(grid["ts"].to_numpy())
    for ax, (name, label) in zip(axes, BOOK_GREEKS, strict=True):
        y = grid[name].to_numpy()
        ax.fill_between(x, y, 0.0, step="post", color=_COLORS["mid"], alpha=0.18, lw=0)
        ax.plot(x, y, drawstyle="steps-post", color=_COLORS["mid"], lw=1.0)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_ylabel(label, fontsize=9)
        ax.yaxis.set_major_formatter(_ticks("usd0"))
    every = f"every {step_minutes} min" if step_minutes < 60 else "hourly"
    axes[0].set_title(f"Book greeks: sum over open trades, sampled {every} 10:00-16:00 ET")
    axes[-1].set_xlabel("time (ET)")
    _date_axis(axes[-1])
    fig.align_ylabels(axes)
    return fig


def _stacked(ax: Any, x: np.ndarray, parts: dict[str, np.ndarray], width: float) -> None:
    """Bars of signed parts stacked away from zero (gains up, losses down)."""
    up = np.zeros(x.size)
    down = np.zeros(x.size)
    for name, v in parts.items():
        pos, neg = np.clip(v, 0.0, None), np.clip(v, None, 0.0)
        ax.bar(x, pos, width, bottom=up, color=TERM_COLORS[name], label=name)
        ax.bar(x, neg, width, bottom=down, color=TERM_COLORS[name])
        up += pos
        down += neg


def fig_monthly_attribution(monthly: pl.DataFrame) -> Any:
    """Stacked attribution bars per exit month, with the month's P&L as a marker."""
    fig = _new_figure(10, 4.0)
    ax = fig.subplots()
    x = np.arange(monthly.height, dtype=np.float64)
    _stacked(ax, x, {c: monthly[c].to_numpy() for c in TERMS}, 0.6)
    ax.plot(x, monthly["pnl"].to_numpy(), "D", color="black", ms=6, ls="none", label="P&L (net)")
    ax.axhline(0.0, color="black", lw=0.8)
    months = monthly["month"].to_list()
    rotate = 45 if len(months) > 12 else 0
    ax.set_xticks(x, months, rotation=rotate, ha="right" if rotate else "center")
    ax.set_xlim(-0.7, max(len(months) - 0.3, 2.3))
    ax.set_ylabel("P&L ($)")
    ax.yaxis.set_major_formatter(_ticks("usd0"))
    ax.set_xlabel("month of the trades' exit (ET)")
    ax.set_title("P&L attribution by exit month")
    fig.legend(loc="outside right upper")
    return fig


def fig_trade_attribution(terms: dict[str, float]) -> Any:
    """One trade's P&L as a waterfall: each term from the running total, then the P&L."""
    fig = _new_figure(5.0, 2.9)
    ax = fig.subplots()
    run = 0.0
    for i, name in enumerate(TERMS):
        v = terms[name]
        ax.bar(i, v, 0.7, bottom=run, color=TERM_COLORS[name])
        _bar_label(ax, i, run + v, v)
        run += v
    total = terms["pnl"]
    color = _COLORS["win"] if total >= 0 else _COLORS["loss"]
    ax.bar(len(TERMS), total, 0.7, color=color, edgecolor="black", lw=0.8)
    _bar_label(ax, len(TERMS), total, total)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xticks(range(len(TERMS) + 1), [*TERMS, "P&L"], fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.yaxis.set_major_formatter(_ticks("usd0"))
    ends = np.cumsum([0.0, *(terms[c] for c in TERMS)])
    lo, hi = min(float(ends.min()), total, 0.0), max(float(ends.max()), total, 0.0)
    pad = 0.16 * (hi - lo or 1.0)
    ax.set_ylim(lo - (pad if lo < 0 else 0.0), hi + (pad if hi > 0 else 0.0))
    ax.set_title("P&L attribution ($, terms from the running total)", fontsize=9)
    return fig


def _bar_label(ax: Any, x: float, y_end: float, value: float) -> None:
    va, dy = ("bottom", 2) if value >= 0 else ("top", -2)
    ax.annotate(
        _fmt(value, "usd0"),
        xy=(x, y_end),
        xytext=(0, dy),
        textcoords="offset points",
        ha="center",
        va=va,
        fontsize=7,
    )


def fig_scenarios(grid: np.ndarray, trade_id: str) -> Any:
    """Heatmap of one trade's entry scenario P&L ``[spot, vol]`` (forward move % across,
    vol shift in points down), each cell labelled in dollars, the worst cell boxed."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    from quantlab.risk.scenarios import SPOT_MOVES, VOL_MOVES

    v = np.asarray(grid, np.float64).T  # rows: vol shifts, columns: forward moves
    fig = _new_figure(10, 4.4)
    ax = fig.subplots()
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=min(lo, -1.0), vmax=max(hi, 1.0))
    im = ax.imshow(v, cmap="RdYlGn", norm=norm, aspect="auto", origin="lower")
    for (r, c), val in np.ndenumerate(v):
        text = f"{val / 1000:.1f}k" if abs(val) >= 1000 else f"{val:.0f}"
        shade = norm(val)
        ink = "white" if shade < 0.15 or shade > 0.9 else "black"
        ax.text(c, r, text, ha="center", va="center", fontsize=6.5, color=ink)
    r, c = np.unravel_index(int(np.nanargmin(v)), v.shape)
    ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="black", lw=1.8))
    ax.set_xticks(range(SPOT_MOVES.size), [f"{m * 100:+.0f}%" for m in SPOT_MOVES], fontsize=8)
    ax.set_yticks(range(VOL_MOVES.size), [f"{m * 100:+.0f}" for m in VOL_MOVES], fontsize=8)
    ax.grid(False)
    ax.set_xlabel("forward move at entry (%)")
    ax.set_ylabel("implied vol shift (vol points)")
    ax.set_title(f"Entry scenarios of trade {trade_id}: P&L ($), sticky strike, no time passes")
    fig.colorbar(im, ax=ax, label="scenario P&L ($)", format=_ticks("usd0"), pad=0.01)
    return fig


# --------------------------------------------------------------------------- assembly


def risk_panels(
    risk: TradeRisk, trades: pl.DataFrame, dates: np.ndarray, inspected: Iterable[str]
) -> RiskPanels:
    """Figures and numbers of the report's risk section (file names: ``greeks.png``,
    ``attribution_monthly.png``, ``scenarios_worst.png``, ``attribution_<id>.png``; the last
    keyed by trade id in ``trade_figures``, drawn for the ``inspected`` trades)."""
    out = RiskPanels(n_trades=risk.trades.height)
    out.step_minutes = FINE_STEP_MINUTES if dates.size <= FINE_MAX_SESSIONS else 60
    if out.n_trades == 0:
        return out
    grid = book_grid(risk, dates, out.step_minutes)
    out.figures["greeks.png"] = _png(fig_book_greeks(grid, out.step_minutes), palette=True)
    out.monthly = monthly_attribution(risk, trades)
    out.figures["attribution_monthly.png"] = _png(
        fig_monthly_attribution(out.monthly), palette=True
    )
    out.worst = worst_trade(risk)
    if out.worst is not None:
        fig = fig_scenarios(risk.scenarios[out.worst["index"]], str(out.worst["trade_id"]))
        out.figures["scenarios_worst.png"] = _png(fig, palette=True)
    if risk.daily.height >= 2:
        out.explained_share = risk.explained_share()
    for tid in inspected:
        terms = trade_terms(risk, tid)
        if terms is None:
            continue
        name = f"attribution_{_safe_name(tid)}.png"
        out.figures[name] = _png(fig_trade_attribution(terms), palette=True)
        out.trade_figures[tid] = name
    return out
