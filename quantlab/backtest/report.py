"""Self-contained HTML report of a backtest, with PNG figures and a trade inspector.

:func:`write_report` writes ``report.html`` (figures embedded as base64 PNG, tables as HTML,
no external files or scripts) and the figures as separate PNG files next to it:
``equity.png``, ``drawdown.png``, ``pnl_hist.png`` and ``trade_<id>.png`` for the inspected
trades. Figures are drawn with matplotlib's Agg canvas on explicit ``Figure`` objects, so the
report works headless and never switches the backend of the calling process (a Jupyter
session keeps its inline plots). The same inputs give byte-identical files.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab.backtest import analytics as an
from quantlab.backtest.records import EXIT_REASONS
from quantlab.errors import InputError

PathSource = Mapping[str, pl.DataFrame] | Callable[[str], pl.DataFrame | None]

ET = "America/New_York"
_DPI = 110
_COLORS = dict(
    mid="#1f4e79", exit="#e08a1e", credit="#555555", tp="#2e8b57", sl="#c0392b",
    win="#2e8b57", loss="#c0392b", equity="#1f4e79", intraday="#9bb7d4",
)  # fmt: skip
_STYLE: dict[str, Any] = {
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
    "axes.spines.right": False, "axes.titlesize": 12, "axes.titleweight": "bold",
    "axes.labelsize": 10, "legend.fontsize": 9, "legend.frameon": False,
    "figure.dpi": _DPI, "savefig.dpi": _DPI,
}  # fmt: skip
_DASH = "\u2013"

__all__ = ["write_report"]


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


_COLUMN_KINDS = {
    **dict.fromkeys(
        ("n_trades n_wins n_losses n decline_sessions duration_sessions").split(), "int"
    ),
    **dict.fromkeys(("win_rate share depth avg_return_on_risk").split(), "pct"),
    **dict.fromkeys(
        (
            "expectancy median_pnl avg_win avg_loss cvar_5 avg_credit_per_share avg_credit "
            "credit_per_share exit_cost_per_share pnl fees"
        ).split(),
        "usd",
    ),
    **dict.fromkeys(
        (
            "total_pnl largest_win largest_loss avg_max_loss total_fees depth_dollars max_loss"
        ).split(),
        "usd0",
    ),
    "profit_factor": "ratio",
    "avg_holding_minutes": "minutes",
}
_BREAKDOWN_COLUMNS = tuple(
    (
        "n_trades win_rate total_pnl expectancy profit_factor avg_win avg_loss largest_loss cvar_5 "
        "avg_credit avg_return_on_risk avg_holding_minutes total_fees"
    ).split()
)
_LABELS = {
    "n_trades": "trades", "total_pnl": "total P&L", "cvar_5": "CVaR 5%",
    "avg_return_on_risk": "avg P&L / max loss", "avg_holding_minutes": "avg hold",
    "total_fees": "fees", "largest_loss": "worst trade", "peak_date": "peak", "entry_time": "entry time (ET)", "dte": "DTE",
}  # fmt: skip


def _label(column: str) -> str:
    return _LABELS.get(column, column.replace("_", " "))


def _table(df: pl.DataFrame, kinds: Mapping[str, str] | None = None) -> str:
    kinds = {**_COLUMN_KINDS, **(kinds or {})}
    head = "".join(f"<th>{html.escape(_label(c))}</th>" for c in df.columns)
    rows = []
    for row in df.iter_rows():
        cells = []
        for col, value in zip(df.columns, row, strict=True):
            kind = kinds.get(col, "text" if not isinstance(value, float) else "num")
            text = _fmt(value, kind)
            cls = ' class="neg"' if isinstance(value, float) and value < 0 else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _kv_table(items: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in items)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


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


def _et_text(ts_ns: Any) -> str:
    if ts_ns is None:
        return _DASH
    t = _et(np.array([ts_ns]))[0].astype("datetime64[m]")
    return str(t).replace("T", " ")


# --------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


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


# --------------------------------------------------------------------------- trade selection


def _path_getter(paths: PathSource | None) -> Callable[[str], pl.DataFrame | None]:
    if paths is None:
        return lambda _tid: None
    if isinstance(paths, Mapping):
        return lambda tid: paths.get(tid)
    if callable(paths):

        def get(tid: str) -> pl.DataFrame | None:
            try:
                return paths(tid)
            except KeyError:
                return None

        return get
    raise InputError(
        f"paths must be a mapping or a callable trade_id -> DataFrame (got {type(paths).__name__})."
    )


def _inspection_order(trades: pl.DataFrame) -> list[str]:
    """Worst, best, then a median trade of each exit reason, then the rest worst-first."""
    if trades.height == 0:
        return []
    by_pnl = trades.sort("pnl", "trade_id")
    order = [by_pnl["trade_id"][0], by_pnl["trade_id"][-1]]
    reasons = list(EXIT_REASONS) + sorted(
        {str(r) for r in trades["exit_reason"].unique().to_list()} - set(EXIT_REASONS)
    )
    for reason in reasons:
        sub = by_pnl.filter(pl.col("exit_reason") == reason)
        if sub.height:
            order.append(sub["trade_id"][sub.height // 2])
    order.extend(by_pnl["trade_id"].to_list())
    return list(dict.fromkeys(order))  # first occurrence of each, in order


def _levels(
    trade: Mapping[str, Any], tp_pct: float | None, sl_pct: float | None
) -> tuple[float | None, float | None]:
    credit = float(trade["credit_per_share"])
    tp = trade.get("tp_level")
    sl = trade.get("sl_level")
    if tp is None and tp_pct is not None:
        tp = (1.0 - tp_pct / 100.0) * credit
    if sl is None and sl_pct is not None:
        sl = (1.0 + sl_pct / 100.0) * credit
    return (None if tp is None else float(tp), None if sl is None else float(sl))


def _safe_name(trade_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(trade_id))[:80]


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1180px;color:#222;padding:0 16px}
h1{margin-bottom:0}h2{border-bottom:2px solid #1f4e79;padding-bottom:4px;margin-top:36px}
h3{margin-bottom:6px}.sub{color:#666;margin-top:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 16px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f3f6f9;text-align:center}td:first-child{text-align:left}
table.kv th{text-align:left;background:#f7f7f7}.neg{color:#c0392b}
.grid{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
img{max-width:100%;border:1px solid #eee}.note{color:#666;font-size:12px}
td.cell{min-width:52px}
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _headline(summary: Mapping[str, Any]) -> str:
    p, t, b = summary["performance"], summary["trades"], summary["bootstrap"]
    level = f"{(1 - b['alpha']) * 100:.0f}%"
    account = [
        ("starting capital", _fmt(p["start_equity"], "usd0")),
        ("ending equity", _fmt(p["end_equity"], "usd0")),
        ("total P&L", _fmt(p["total_pnl"], "usd0")),
        ("total return", _fmt(p["total_return"], "pct")),
        ("annualized return (CAGR)", _fmt(p["annualized_return"], "pct")),
        ("annualized volatility", _fmt(p["annualized_volatility"], "pct")),
        ("Sharpe ratio", _fmt(p["sharpe_ratio"], "ratio")),
        (f"Sharpe {level} CI", "[{}, {}]".format(*(_fmt(v, "ratio") for v in b["sharpe_ci"]))),
        ("Sortino ratio", _fmt(p["sortino_ratio"], "ratio")),
        ("Calmar ratio", _fmt(p["calmar_ratio"], "ratio")),
        ("max drawdown (end of day)", _fmt(p["max_drawdown"], "pct")),
    ]
    if "max_drawdown_intraday" in p:
        account.append(("max drawdown (intraday)", _fmt(p["max_drawdown_intraday"], "pct")))
    account += [
        ("largest $ drawdown", _fmt(p["max_drawdown_dollars"], "usd0")),
        ("longest drawdown (sessions)", _fmt(p["max_drawdown_duration"], "int")),
        ("sessions", _fmt(p["n_days"], "int")),
        ("positive sessions", _fmt(p["positive_days"], "pct")),
    ]
    trades = [
        ("trades", _fmt(t["n_trades"], "int")),
        ("win rate", _fmt(t["win_rate"], "pct")),
        ("profit factor", _fmt(t["profit_factor"], "ratio")),
        ("expectancy (mean P&L)", _fmt(t["expectancy"], "usd")),
        (
            f"expectancy {level} CI",
            "[{}, {}]".format(*(_fmt(v, "usd") for v in b["expectancy_ci"])),
        ),
        ("average win", _fmt(t["avg_win"], "usd")),
        ("average loss", _fmt(t["avg_loss"], "usd")),
        ("worst trade", _fmt(t["largest_loss"], "usd")),
        ("best trade", _fmt(t["largest_win"], "usd")),
        ("CVaR 5% (mean of worst 5%)", _fmt(t["cvar_5"], "usd")),
        ("average credit (per share)", _fmt(t["avg_credit_per_share"], "usd")),
        ("average credit (per trade)", _fmt(t["avg_credit"], "usd")),
        (
            "max loss at risk (mean / max)",
            f"{_fmt(t['avg_max_loss'], 'usd0')} / {_fmt(t['max_max_loss'], 'usd0')}",
        ),
        ("avg P&L / max loss", _fmt(t["avg_return_on_risk"], "pct")),
        ("average holding time", _fmt(t["avg_holding_minutes"], "minutes")),
        ("fees (total)", _fmt(t["total_fees"], "usd0")),
    ]
    exits = [(r.replace("_", " "), _fmt(n, "int")) for r, n in t["exit_reasons"].items()]
    return (
        '<div class="grid">'
        f"<div><h3>Account</h3>{_kv_table(account)}</div>"
        f"<div><h3>Trades</h3>{_kv_table(trades)}</div>"
        f"<div><h3>Exit reasons</h3>{_kv_table(exits)}</div>"
        "</div>"
    )


def _drawdowns_html(df: pl.DataFrame) -> str:
    if df.height == 0:
        return "<p>no drawdown</p>"
    start = pl.col("peak_date").cast(pl.Utf8).fill_null("start (capital)")
    return _table(df.with_columns(start, pl.col("recovery_date").cast(pl.Utf8)))


def _monthly_html(monthly: pl.DataFrame) -> str:
    if monthly.height == 0:
        return "<p>no sessions</p>"
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    head = "<th>year</th>" + "".join(f"<th>{m}</th>" for m in months) + "<th>total</th>"
    rows = []
    for (year,), grp in monthly.group_by("year", maintain_order=True):
        rets = dict(zip(grp["month"].to_list(), grp["ret"].to_list(), strict=True))
        cells = []
        for m in range(1, 13):
            r = rets.get(m)
            if r is None:
                cells.append('<td class="cell"></td>')
                continue
            shade = min(abs(r) / 0.05, 1.0) * 0.55
            rgb = "46,139,87" if r >= 0 else "192,57,43"
            cells.append(
                f'<td class="cell" style="background:rgba({rgb},{shade:.2f})">{_fmt(r, "pct")}</td>'
            )
        total = float(np.prod(1.0 + np.asarray(grp["ret"].to_list())) - 1.0)
        rows.append(f"<tr><td>{year}</td>{''.join(cells)}<td>{_fmt(total, 'pct')}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _breakdown_html(name: str, df: pl.DataFrame) -> str:
    keep = [name] + [c for c in _BREAKDOWN_COLUMNS if c in df.columns]
    kinds = {name: "num"} if name in ("delta_target", "width", "dte") else {name: "text"}
    body = _table(df.select(keep), kinds) if df.height else "<p>no trades</p>"
    return f"<h3>by {html.escape(_label(name))}</h3>{body}"


def _trade_details(trade: Mapping[str, Any]) -> str:
    items = [
        ("entry (ET)", _et_text(trade.get("entry_ts"))),
        ("exit (ET)", _et_text(trade.get("exit_ts"))),
        ("exit reason", str(trade.get("exit_reason"))),
        ("legs", _legs_text(trade.get("legs")) or _DASH),
        ("short delta", _fmt(trade.get("short_delta"), "ratio")),
        ("credit / share", _fmt(trade.get("credit_per_share"), "usd")),
        ("exit cost / share", _fmt(trade.get("exit_cost_per_share"), "usd")),
        ("contracts", _fmt(trade.get("contracts"), "int")),
        ("fees", _fmt(trade.get("fees"), "usd")),
        ("P&L", _fmt(trade.get("pnl"), "usd")),
        ("max loss", _fmt(trade.get("max_loss"), "usd0")),
        (
            "MAE / MFE per share",
            f"{_fmt(trade.get('mae_per_share'), 'usd')} / {_fmt(trade.get('mfe_per_share'), 'usd')}",
        ),
    ]
    return _kv_table(items)


def _worst_trades(trades: pl.DataFrame, k: int = 10) -> str:
    if trades.height == 0:
        return "<p>no trades</p>"
    cols = (
        "trade_id entry_date entry_time exit_date structure dte short_delta credit_per_share "
        "exit_cost_per_share contracts pnl exit_reason"
    ).split()
    df = trades.sort("pnl", "trade_id").head(k).select([c for c in cols if c in trades.columns])
    return _table(df, {"dte": "int", "short_delta": "ratio", "contracts": "int"})


def _check_out_dir(out_dir: Any) -> Path:
    try:
        path = Path(out_dir)
    except TypeError:
        raise InputError(f"out_dir must be a path (got {out_dir!r}).") from None
    if path.exists() and not path.is_dir():
        raise InputError(f"out_dir {str(path)!r} exists and is not a directory.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_report(
    out_dir: str | Path,
    trades: pl.DataFrame,
    equity_daily: pl.DataFrame,
    capital: float,
    *,
    equity_minutes: pl.DataFrame | None = None,
    decisions: pl.DataFrame | None = None,
    paths: PathSource | None = None,
    tp_pct: float | None = None,
    sl_pct: float | None = None,
    title: str = "quantlab backtest",
    inspect: int = 5,
    summary: Mapping[str, Any] | None = None,
    periods_per_year: int = 252,
    n_boot: int = 2000,
    seed: int = 0,
) -> Path:
    """Write ``report.html`` and its PNG figures into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Folder for ``report.html``, ``equity.png``, ``drawdown.png``, ``pnl_hist.png`` and
        ``trade_<id>.png``; created if missing.
    trades, equity_daily, capital
        The backtest's trade records, end-of-day equity and starting equity
        (see :mod:`quantlab.backtest.analytics`).
    equity_minutes : polars.DataFrame, optional
        ``ts`` (UTC ns) and ``equity``: minute marks while trades are open; drawn under the
        daily curve and used for the intraday max drawdown.
    decisions : polars.DataFrame, optional
        Candidate decisions (``DECISION_SCHEMA``); counted by decision and reason.
    paths : mapping or callable, optional
        ``trade_id -> DataFrame(ts, mid_cost, exit_cost)``: the cost to close per share at the
        mid and at the exit fill, each minute from entry to exit. A callable may return None
        or raise KeyError for trades without a path. Without paths there is no inspector.
    tp_pct, sl_pct : float, optional
        Take-profit and stop in percent of the credit, drawn as
        ``(1 - tp_pct/100) * credit`` and ``(1 + sl_pct/100) * credit``. Columns
        ``tp_level`` / ``sl_level`` (per share) in ``trades`` take precedence.
    title : str
        Page title.
    inspect : int, default 5
        How many trades the inspector draws, among the trades with a path: the worst, the
        best, then a median trade of each exit reason, then the next worst.
    summary : mapping, optional
        A precomputed :func:`quantlab.backtest.analytics.summarize` result.
    periods_per_year, n_boot, seed
        Passed to :func:`~quantlab.backtest.analytics.summarize` when ``summary`` is None.

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.
    """
    out = _check_out_dir(out_dir)
    if int(inspect) < 0:
        raise InputError(f"inspect must be >= 0 (got {inspect!r}).")
    cap = an._check_capital(capital)
    df = an._as_trades(trades)
    get = _path_getter(paths)
    if summary is None:
        summary = an.summarize(
            df,
            equity_daily,
            cap,
            decisions,
            equity_minutes=equity_minutes,
            periods_per_year=periods_per_year,
            n_boot=n_boot,
            seed=seed,
        )
    dates, equity = an._equity_path(equity_daily, cap)
    if equity_minutes is not None:
        an._require(equity_minutes, ("ts", "equity"), "equity_minutes")

    import matplotlib

    figures: dict[str, bytes] = {}
    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]
        figures["equity.png"] = _png(_fig_equity(dates, equity, cap, equity_minutes))
        figures["drawdown.png"] = _png(_fig_drawdown(dates, equity, cap, equity_minutes))
        pnl = df["pnl"].cast(pl.Float64).drop_nulls().to_numpy()
        figures["pnl_hist.png"] = _png(_fig_pnl_hist(pnl, summary["trades"]))
        inspected: list[tuple[dict[str, Any], str]] = []
        rows = {r["trade_id"]: r for r in df.iter_rows(named=True)} if paths is not None else {}
        pool = (
            df.filter(pl.col("trade_id").is_in(list(paths))) if isinstance(paths, Mapping) else df
        )
        for tid in _inspection_order(pool) if paths is not None else []:
            if len(inspected) >= int(inspect):
                break
            path = get(tid)
            if path is None or path.height == 0:
                continue
            an._require(path, ("ts", "mid_cost"), f"paths[{tid!r}]")
            trade = rows[tid]
            name = f"trade_{_safe_name(tid)}.png"
            tp, sl = _levels(trade, tp_pct, sl_pct)
            figures[name] = _png(_fig_trade(trade, path, tp, sl))
            inspected.append((trade, name))
    for name, png in figures.items():
        (out / name).write_bytes(png)

    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(_subtitle(df, dates))}</p>',
        "<h2>Headline metrics</h2>",
        _headline(summary),
        "<h2>Equity curve</h2>",
        _img(figures["equity.png"], "equity curve"),
        "<h2>Drawdown</h2>",
        _img(figures["drawdown.png"], "drawdown"),
        "<h3>Deepest drawdowns</h3>",
        _drawdowns_html(summary["drawdowns"]),
        "<h2>Monthly returns</h2>",
        _monthly_html(summary["monthly"]),
        "<h2>Trade P&amp;L distribution</h2>",
        _img(figures["pnl_hist.png"], "trade P&L histogram"),
        "<h2>Breakdowns</h2>",
        *(_breakdown_html(k, v) for k, v in summary["breakdowns"].items()),
    ]
    if summary.get("decisions") is not None:
        parts += ["<h2>Decisions</h2>", _table(summary["decisions"])]
    parts.append("<h2>Trade inspector</h2>")
    if not inspected:
        why = "no per-trade paths were given" if paths is None else "no trade has a path"
        parts.append(f"<p>{why}.</p>")
    for trade, name in inspected:
        parts += [
            f"<h3>{html.escape(str(trade['trade_id']))} — {html.escape(str(trade['exit_reason']))}"
            f", P&amp;L {html.escape(_fmt(trade['pnl'], 'usd'))}</h3>",
            f'<div class="grid"><div>{_img(figures[name], name)}</div>'
            f"<div>{_trade_details(trade)}</div></div>",
        ]
    parts += ["<h2>Worst trades</h2>", _worst_trades(df), _notes(summary)]
    parts.append("</body></html>")
    report = out / "report.html"
    report.write_text("\n".join(parts), encoding="utf-8")
    return report


def _subtitle(trades: pl.DataFrame, dates: np.ndarray) -> str:
    bits = []
    if dates.size:
        bits.append(f"{dates[0]} to {dates[-1]} ({dates.size} sessions)")
    for col, label in (("strategy", "strategy"), ("config_hash", "config")):
        if col in trades.columns and trades.height:
            vals = sorted({str(v) for v in trades[col].drop_nulls().to_list()})
            if vals:
                bits.append(f"{label}: {', '.join(vals[:3])}{' …' if len(vals) > 3 else ''}")
    return " · ".join(bits)


def _notes(summary: Mapping[str, Any]) -> str:
    b = summary["bootstrap"]
    ppy = summary.get("periods_per_year", 252)
    return (
        '<h2>Notes</h2><p class="note">Daily returns are end-of-day equity over the previous '
        "end-of-day equity, the first day measured from the starting capital. Sharpe = mean / "
        "standard deviation (ddof = 1) of daily returns &times; √"
        f"{ppy}, zero risk-free rate (vectorbt). "
        "Drawdowns are measured from the starting capital on end-of-day equity; durations count "
        "sessions under water. CVaR 5% is the mean P&amp;L of the worst ceil(5% &times; n) trades. "
        f"Confidence intervals: percentile bootstrap, {b['n_boot']} resamples, seed {b['seed']}; "
        "iid over trades for the expectancy, stationary block bootstrap over daily returns for "
        "the Sharpe ratio. Times are US/Eastern.</p>"
    )
