"""Figures of the backtest report (:mod:`quantlab.backtest.report`) and the value formatting
they share with its HTML page.

Every figure is drawn on an explicit ``Figure`` with matplotlib's Agg canvas, so drawing works
headless and never switches the backend of the calling process; :func:`_png` writes no software
metadata, so the same inputs give byte-identical PNGs.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from quantlab.errors import InputError

ET = "America/New_York"
_DPI = 110
_COLORS = dict(
    mid="#1f4e79",
    exit="#e08a1e",
    credit="#555555",
    tp="#2e8b57",
    sl="#c0392b",
    win="#2e8b57",
    loss="#c0392b",
    equity="#1f4e79",
    intraday="#9bb7d4",
)
_STYLE: dict[str, Any] = {
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "figure.dpi": _DPI,
    "savefig.dpi": _DPI,
}
_DASH = "\u2013"


# --------------------------------------------------------------------------- formatting


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return _DASH
    if kind in ("text", "date"):
        return str(value)
    v = float(value)
    if math.isnan(v):
        return _DASH
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if kind == "pct":
        return f"{v * 100:.2f}%"
    if kind == "usd":
        return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"
    if kind == "usd0":
        return f"-${-v:,.0f}" if v < 0 else f"${v:,.0f}"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "ratio":
        return f"{v:.2f}"
    if kind == "num":
        return f"{v:g}"
    if kind == "minutes":
        days, rem = divmod(round(v), 1440)
        hours, mins = divmod(rem, 60)
        return f"{days}d {hours:02d}:{mins:02d}" if days else f"{hours}h {mins:02d}m"
    raise InputError(f"unknown format kind {kind!r}")


def _safe_name(trade_id: str) -> str:
    """A trade id as a file name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(trade_id))[:80]


def _et(ts_ns: np.ndarray) -> np.ndarray:
    """UTC nanoseconds -> naive ET datetime64[ns] (what matplotlib and labels need)."""
    s = pl.Series("ts", np.asarray(ts_ns, dtype=np.int64))
    out = (
        pl.from_epoch(s, time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(ET)
        .dt.replace_time_zone(None)
    )
    return out.to_numpy()


# --------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, palette: bool = False) -> bytes:
    """The figure as PNG bytes; ``palette``: 256 colours (median cut, no dithering), about a
    third of the bytes of a chart's full-colour PNG and no visible difference."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    if not palette:
        return buf.getvalue()
    from PIL import Image

    buf.seek(0)
    with Image.open(buf) as im:
        q = im.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    out = io.BytesIO()
    q.save(out, format="png", optimize=True)
    return out.getvalue()


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _eod_times(dates: np.ndarray) -> np.ndarray:
    """Session dates placed at 16:00 ET so that they line up with minute marks."""
    return dates.astype("datetime64[m]") + np.timedelta64(16 * 60, "m")


def _fig_equity(
    dates: np.ndarray, equity: np.ndarray, capital: float, minutes: pl.DataFrame | None
) -> Any:
    fig = _new_figure(10, 5.2)
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    x = _eod_times(dates)
    if minutes is not None and minutes.height:
        mx, my = _minute_xy(minutes, capital, drawdown=False)
        ax.plot(mx, my, color=_COLORS["intraday"], lw=0.8, label="minute marks (open trades)")
    marker = "o" if len(x) < 60 else None
    ax.plot(x, equity, color=_COLORS["equity"], lw=1.6, marker=marker, ms=3, label="end of day")
    ax.axhline(capital, color=_COLORS["credit"], ls="--", lw=1, label=f"capital ${capital:,.0f}")
    ax.set_ylabel("equity ($)")
    ax.set_title("Equity curve")
    ax.yaxis.set_major_formatter(_ticks("usd0"))
    ax.legend(loc="upper left")
    pnl = np.diff(np.concatenate(([capital], equity)))
    ax2.bar(x, pnl, width=0.8, color=np.where(pnl >= 0, _COLORS["win"], _COLORS["loss"]))
    ax2.axhline(0, color="black", lw=0.6)
    ax2.set_ylabel("daily P&L ($)")
    ax2.yaxis.set_major_formatter(_ticks("usd0"))
    ax2.set_xlabel("session date")
    _date_axis(ax2)
    return fig


def _ticks(kind: str) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: _fmt(v, kind))


def _minute_xy(minutes: pl.DataFrame, capital: float, drawdown: bool) -> tuple[Any, Any]:
    """ET times and equity (or drawdown from ``capital`` on) of the minute marks."""
    m = minutes.sort("ts")
    eq = m["equity"].cast(pl.Float64).to_numpy()
    if drawdown:
        path = np.concatenate(([capital], eq))
        eq = (path / np.maximum.accumulate(path) - 1.0)[1:]
    return _et(m["ts"].to_numpy()), eq


def _fig_drawdown(
    dates: np.ndarray, equity: np.ndarray, capital: float, minutes: pl.DataFrame | None
) -> Any:
    fig = _new_figure(10, 3.6)
    ax = fig.subplots()
    path = np.concatenate(([capital], equity))
    dd = (path / np.maximum.accumulate(path) - 1.0)[1:]
    x = _eod_times(dates)
    if minutes is not None and minutes.height:
        mx, my = _minute_xy(minutes, capital, drawdown=True)
        ax.plot(mx, my, color=_COLORS["intraday"], lw=0.8, label="intraday (minute marks)")
    ax.fill_between(x, dd, 0.0, color=_COLORS["loss"], alpha=0.35, step=None, label="end of day")
    ax.plot(x, dd, color=_COLORS["loss"], lw=1.0)
    if dd.size and dd.min() < 0:
        i = int(np.argmin(dd))
        kw = {"textcoords": "offset points", "fontsize": 9, "color": _COLORS["loss"]}
        ax.annotate(f"max {dd[i] * 100:.2f}%", xy=(x[i], dd[i]), xytext=(10, -4), **kw)
    ax.set_ylim(top=0.0)
    ax.set_ylabel("drawdown from peak (%)")
    ax.yaxis.set_major_formatter(_ticks("pct"))
    ax.set_xlabel("session date")
    ax.set_title("Drawdown (underwater equity)")
    ax.legend(loc="lower left")
    _date_axis(ax)
    return fig


def _fig_pnl_hist(pnl: np.ndarray, stats: Mapping[str, Any]) -> Any:
    fig = _new_figure(10, 4.0)
    ax = fig.subplots()
    if pnl.size == 0:
        ax.text(0.5, 0.5, "no trades", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        n_bins = int(np.clip(2 * np.sqrt(pnl.size), 10, 60))
        lo, hi = float(pnl.min()), float(pnl.max())
        if lo == hi:
            lo, hi = lo - 1.0, hi + 1.0
        width = (hi - lo) / n_bins
        bins = np.arange(np.floor(lo / width), np.ceil(hi / width) + 1) * width  # 0 on an edge
        ax.hist(pnl[pnl > 0], bins=bins, color=_COLORS["win"], alpha=0.8, label="wins")
        ax.hist(pnl[pnl <= 0], bins=bins, color=_COLORS["loss"], alpha=0.8, label="losses")
        ax.axvline(0.0, color="black", lw=0.8)
        for key, name, color, ls in (
            ("expectancy", "mean", "mid", "--"),
            ("cvar_5", "CVaR 5%", "sl", ":"),
        ):
            label = f"{name} {_fmt(stats[key], 'usd')}"
            ax.axvline(stats[key], color=_COLORS[color], ls=ls, lw=1.3, label=label)
        ax.set_xlabel("trade P&L, net of fees ($)")
        ax.set_ylabel("trades")
        ax.xaxis.set_major_formatter(_ticks("usd0"))
        ax.legend(loc="upper left")
    ax.set_title(f"Trade P&L distribution (n = {pnl.size})")
    return fig


def _time_ticks(t_et: np.ndarray, max_ticks: int = 9) -> tuple[list[int], list[str], list[int]]:
    """Tick positions and labels for a minute path plotted against its sample index."""
    day = t_et.astype("datetime64[D]")
    day_starts = [0] + [int(i) for i in np.flatnonzero(day[1:] != day[:-1]) + 1]
    minute = (t_et.astype("datetime64[m]") - day.astype("datetime64[m]")).astype(np.int64)
    span = max(1, t_et.size // max(1, max_ticks - len(day_starts)))
    step = next((s for s in (15, 30, 60, 120, 240, 390) if s >= span), 390)
    marks = set(day_starts)
    if len(day_starts) < max_ticks:
        for hit in np.flatnonzero(minute % step == 0).tolist():
            if len(marks) >= max_ticks:
                break
            if all(abs(hit - j) > 0.8 * span for j in marks):
                marks.add(hit)
    pos = sorted(marks)
    labels = []
    for i in pos:
        t = t_et[i].astype("datetime64[m]").item()
        labels.append(t.strftime("%a %m-%d\n%H:%M") if i in day_starts else t.strftime("%H:%M"))
    return pos, labels, day_starts[1:]


def _legs_text(legs: Any) -> str:
    if not legs:
        return ""
    parts = []
    for leg in legs:
        q = int(leg.get("quantity") or 0)
        parts.append(f"{q:+d} {leg.get('right', '?')} {float(leg.get('strike') or 0):g}")
    return " / ".join(parts)


def _fig_trade(
    trade: Mapping[str, Any], path: pl.DataFrame, tp_level: float | None, sl_level: float | None
) -> Any:
    fig = _new_figure(10, 4.8)
    ax = fig.subplots()
    p = path.sort("ts")
    ts = p["ts"].to_numpy()
    t_et = _et(ts)
    x = np.arange(ts.size, dtype=np.float64)
    credit = float(trade["credit_per_share"])

    def where(t: Any) -> float:
        return float(np.interp(t, ts, x)) if ts.size else 0.0

    ax.plot(x, p["mid_cost"].to_numpy(), color=_COLORS["mid"], lw=1.5, label="mid cost to close")
    if "exit_cost" in p.columns:
        ax.plot(x, p["exit_cost"].to_numpy(), color=_COLORS["exit"], lw=1.0, label="exit-fill cost")
    ax.axhline(credit, color=_COLORS["credit"], ls="--", lw=1, label=f"credit ${credit:.2f}")
    if tp_level is not None and math.isfinite(tp_level):
        ax.axhline(
            tp_level, color=_COLORS["tp"], ls="--", lw=1.2, label=f"take profit ≤ ${tp_level:.2f}"
        )
    if sl_level is not None and math.isfinite(sl_level):
        ax.axhline(sl_level, color=_COLORS["sl"], ls="--", lw=1.2, label=f"stop ≥ ${sl_level:.2f}")
    xe = where(trade["entry_ts"])
    ax.plot([xe], [credit], marker="^", ms=10, color="black", ls="none", label="entry")
    exit_cost = trade.get("exit_cost_per_share")
    if trade.get("exit_ts") is not None and exit_cost is not None and math.isfinite(exit_cost):
        xx = where(trade["exit_ts"])
        reason = str(trade.get("exit_reason") or "exit")
        color = {"take_profit": _COLORS["tp"], "stop_loss": _COLORS["sl"]}.get(reason, "black")
        label = f"exit: {reason} @ ${exit_cost:.2f}"
        ax.plot([xx], [exit_cost], marker="X", ms=10, color=color, ls="none", label=label)
        text = reason.replace("_", " ")
        box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85}
        kw = {
            "textcoords": "offset points",
            "ha": "right",
            "fontsize": 9,
            "color": color,
            "bbox": box,
        }
        ax.annotate(text, xy=(xx, exit_cost), xytext=(-8, 10), **kw)
    if ts.size:
        pos, labels, day_breaks = _time_ticks(t_et)
        ax.set_xticks(pos, labels)
        for b in day_breaks:
            ax.axvline(b - 0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlim(-0.5, max(ts.size - 0.5, xe + 0.5) + 0.015 * ts.size)
    ax.set_xlabel("time (ET; overnight gaps removed)")
    ax.set_ylabel("cost to close ($ per share)")
    ax.secondary_yaxis(
        "right",
        functions=(lambda c: (credit - c) * 100.0, lambda v: credit - v / 100.0),
    ).set_ylabel("open P&L per contract ($, before fees)")
    expiry = trade.get("expiry")
    head = (
        f"Trade {trade['trade_id']}: {trade.get('structure') or ''} {trade.get('root') or ''} "
        f"exp {expiry} ({trade.get('dte')} DTE), entered {trade.get('entry_date')} "
        f"{trade.get('entry_time') or ''} ET"
    )
    sub = (
        f"{_legs_text(trade.get('legs'))}   ·   P&L {_fmt(trade.get('pnl'), 'usd')} "
        f"({int(trade.get('contracts') or 0)} contract(s), net of fees)"
    )
    ax.set_title(head + "\n" + sub, fontsize=10)
    fig.legend(loc="outside lower center", ncols=4)
    return fig


def _fig_cost_curve(curve: pl.DataFrame, break_even: float | None) -> Any:
    """Total P&L against the fill model's ``k``, one line per slippage; the backtest's own
    assumption starred, the break-even ``k`` of the smallest slippage marked."""
    fig = _new_figure(10, 4.2)
    ax = fig.subplots()
    slips = sorted(set(curve["slippage"].to_list()))
    shades = ["#1f4e79", "#e08a1e", "#7b3294", "#2e8b57", "#c0392b", "#555555"]
    for i, s in enumerate(slips):
        line = curve.filter(pl.col("slippage") == s).sort("k")
        label = "no slippage" if s == 0 else f"slippage {_fmt(s, 'usd')} per share per leg"
        color = shades[i % len(shades)]
        ax.plot(line["k"], line["total_pnl"], marker="o", ms=4, lw=1.6, color=color, label=label)
    own = curve.filter(pl.col("is_spec"))
    if own.height:
        label = f"backtest (k = {own['k'][0]:g})"
        ax.plot(
            own["k"], own["total_pnl"], marker="*", ms=15, color="black", ls="none", label=label
        )
    ax.axhline(0.0, color="black", lw=0.8)
    if break_even is not None:
        ax.axvline(break_even, color=_COLORS["sl"], ls=":", lw=1.3)
        kw = {"textcoords": "offset points", "fontsize": 9, "color": _COLORS["sl"]}
        ax.annotate(f"break-even k = {break_even:.2f}", xy=(break_even, 0.0), xytext=(6, 8), **kw)
    ax.set_xlabel("fill model k (0 = mid, 0.5 = natural: the share of the bid/ask spread given up)")
    ax.set_ylabel("total P&L, net of fees ($)")
    ax.yaxis.set_major_formatter(_ticks("usd0"))
    ax.set_title("Cost curve: total P&L by fill assumption (stage 2 re-run at each k)")
    ax.legend(loc="best")
    return fig
