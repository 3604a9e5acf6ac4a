"""Self-contained HTML report of a backtest, with PNG figures and a trade inspector.

:func:`write_report` writes ``report.html`` (figures embedded as base64 PNG, tables as HTML,
no external files or scripts) and the figures as separate PNG files next to it:
``equity.png``, ``drawdown.png``, ``pnl_hist.png``, ``cost_curve.png`` (when a cost curve is
given) and ``trade_<id>.png`` for the inspected trades; given the trades' risk
(:class:`quantlab.risk.greeks.TradeRisk`), also ``greeks.png`` (the book's greeks over time),
``attribution_monthly.png``, ``scenarios_worst.png`` and ``attribution_<id>.png`` per inspected
trade (drawn in :mod:`quantlab.backtest._report_risk`). Figures (drawn in
:mod:`quantlab.backtest._report_plots`) use matplotlib's Agg canvas
on explicit ``Figure`` objects, so the report works headless and never switches the backend
of the calling process (a Jupyter session keeps its inline plots). The same inputs give
byte-identical files.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantlab.backtest import analytics as an
from quantlab.backtest._report_plots import (
    _DASH,
    _STYLE,
    _et,
    _fig_cost_curve,
    _fig_drawdown,
    _fig_equity,
    _fig_pnl_hist,
    _fig_trade,
    _fmt,
    _legs_text,
    _png,
    _safe_name,
)
from quantlab.backtest.records import EXIT_REASONS
from quantlab.errors import InputError

if TYPE_CHECKING:
    from quantlab.backtest._report_risk import RiskPanels
    from quantlab.risk.greeks import TradeRisk

PathSource = Mapping[str, pl.DataFrame] | Callable[[str], pl.DataFrame | None]

__all__ = ["write_report"]


# --------------------------------------------------------------------------- formatting


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
    "n_trades": "trades",
    "total_pnl": "total P&L",
    "cvar_5": "CVaR 5%",
    "avg_return_on_risk": "avg P&L / max loss",
    "avg_holding_minutes": "avg hold",
    "total_fees": "fees",
    "largest_loss": "worst trade",
    "peak_date": "peak",
    "entry_time": "entry time (ET)",
    "dte": "DTE",
}


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


def _et_text(ts_ns: Any) -> str:
    if ts_ns is None:
        return _DASH
    t = _et(np.array([ts_ns]))[0].astype("datetime64[m]")
    return str(t).replace("T", " ")


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
    cost_curve: pl.DataFrame | None = None,
    risk: TradeRisk | None = None,
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
    cost_curve : polars.DataFrame, optional
        :func:`quantlab.backtest.costs.cost_curve` of the config: a "Cost curve" section with
        its break-even sentence, ``cost_curve.png`` and its table.
    risk : quantlab.risk.greeks.TradeRisk, optional
        The trades' greeks, attribution and entry scenarios (``PortfolioResult.risk()``): a
        "Greeks and P&L attribution" section (the book's greeks over time, the attribution by
        exit month, the entry scenario grid of the trade with the largest worst-case loss) and
        each inspected trade's attribution.

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

    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]
        figures = _summary_figures(df, summary, dates, equity, cap, equity_minutes)
        trade_figures, inspected = _inspector_figures(df, paths, get, int(inspect), tp_pct, sl_pct)
        if cost_curve is not None:
            from quantlab.backtest.costs import break_even_k

            be = break_even_k(cost_curve)
            figures["cost_curve.png"] = _png(_fig_cost_curve(cost_curve, be))
        panels = None
        if risk is not None:
            from quantlab.backtest._report_risk import risk_panels

            ids = [str(trade["trade_id"]) for trade, _ in inspected]
            panels = risk_panels(risk, df, dates, ids)
            figures.update(panels.figures)
    figures.update(trade_figures)
    for name, png in figures.items():
        (out / name).write_bytes(png)

    report = out / "report.html"
    page = _page_html(
        title, df, dates, summary, figures, inspected, paths is None, cost_curve, panels
    )
    report.write_text(page, encoding="utf-8")
    return report


def _summary_figures(
    df: pl.DataFrame,
    summary: Mapping[str, Any],
    dates: np.ndarray,
    equity: np.ndarray,
    cap: float,
    equity_minutes: pl.DataFrame | None,
) -> dict[str, bytes]:
    """``equity.png``, ``drawdown.png`` and ``pnl_hist.png``, by file name."""
    pnl = df["pnl"].cast(pl.Float64).drop_nulls().to_numpy()
    return {
        "equity.png": _png(_fig_equity(dates, equity, cap, equity_minutes)),
        "drawdown.png": _png(_fig_drawdown(dates, equity, cap, equity_minutes)),
        "pnl_hist.png": _png(_fig_pnl_hist(pnl, summary["trades"])),
    }


def _inspector_figures(
    df: pl.DataFrame,
    paths: PathSource | None,
    get: Callable[[str], pl.DataFrame | None],
    inspect: int,
    tp_pct: float | None,
    sl_pct: float | None,
) -> tuple[dict[str, bytes], list[tuple[dict[str, Any], str]]]:
    """The ``trade_<id>.png`` figures of up to ``inspect`` trades with a path, in inspection
    order, by file name, and the inspected ``(trade row, file name)`` pairs."""
    figures: dict[str, bytes] = {}
    inspected: list[tuple[dict[str, Any], str]] = []
    if paths is None:
        return figures, inspected
    rows = {r["trade_id"]: r for r in df.iter_rows(named=True)}
    pool = df.filter(pl.col("trade_id").is_in(list(paths))) if isinstance(paths, Mapping) else df
    for tid in _inspection_order(pool):
        if len(inspected) >= inspect:
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
    return figures, inspected


def _page_html(
    title: str,
    df: pl.DataFrame,
    dates: np.ndarray,
    summary: Mapping[str, Any],
    figures: Mapping[str, bytes],
    inspected: list[tuple[dict[str, Any], str]],
    no_paths: bool,
    cost_curve: pl.DataFrame | None = None,
    risk: RiskPanels | None = None,
) -> str:
    """The whole ``report.html`` page; ``no_paths`` tells why an empty inspector is empty."""
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
        *_cost_curve_html(cost_curve, figures),
        *_risk_html(risk, figures),
        "<h2>Breakdowns</h2>",
        *(_breakdown_html(k, v) for k, v in summary["breakdowns"].items()),
    ]
    if summary.get("decisions") is not None:
        parts += ["<h2>Decisions</h2>", _table(summary["decisions"])]
    parts += _settlement_html(summary.get("settlements"))
    parts += _inspector_html(figures, inspected, no_paths, risk)
    parts += ["<h2>Worst trades</h2>", _worst_trades(df), _notes(summary)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _cost_curve_html(curve: pl.DataFrame | None, figures: Mapping[str, bytes]) -> list[str]:
    """The cost curve section: the break-even sentence, the figure and the table."""
    if curve is None:
        return []
    from quantlab.backtest.costs import break_even_sentence

    slips = sorted(set(curve["slippage"].to_list()))
    said = "".join(
        f"<li><b>{html.escape(break_even_sentence(curve, s, 'This strategy'))}</b></li>"
        for s in slips
    )
    shown = curve.select(
        pl.col("k"),
        pl.col("slippage"),
        pl.col("trades").alias("n_trades"),
        "total_pnl",
        pl.col("sharpe").alias("Sharpe"),
        "win_rate",
        "avg_credit_per_share",
        "max_drawdown",
        pl.when(pl.col("is_spec")).then(pl.lit("backtest")).otherwise(pl.lit("")).alias("run"),
    )
    kinds = {
        "k": "num",
        "slippage": "usd",
        "Sharpe": "ratio",
        "max_drawdown": "pct",
        "run": "text",
    }
    note = (
        "Each point re-runs stage 2 on the same stage-1 candidates with the fill model "
        "<code>mid_k</code> at that k (sell at mid &minus; k &times; spread, buy at mid + k "
        "&times; spread, rounded to the tick against you) plus the slippage per share per leg: "
        "entry credits, credit filters, sizing, take-profit and stop levels and exit fills are "
        "all evaluated again, not scaled."
    )
    return [
        "<h2>Cost curve</h2>",
        f"<ul>{said}</ul>",
        _img(figures["cost_curve.png"], "cost curve"),
        _table(shown, kinds),
        f'<p class="note">{note}</p>',
    ]


_ATTRIBUTION_NOTE = (
    "P&amp;L attribution: each minute's change of the trade's mid value is split, from the "
    "greeks at the start of the minute, into delta (&Delta; &times; dF of the forward), gamma "
    "(&Gamma; &times; dF&sup2; / 2), vega (the legs' vega &times; d&sigma;) and theta (the "
    "minute's time decay, revalued at the start's forward and vols); the residual is the rest of the mid change (cross terms, higher "
    "orders, quote noise) and costs what separates the P&amp;L from the mid change (the spread "
    "paid at entry and exit, and fees). The terms sum to the trade's P&amp;L net of fees."
)


def _risk_html(risk: RiskPanels | None, figures: Mapping[str, bytes]) -> list[str]:
    """The greeks and attribution section: the book's greeks over time, the attribution by
    exit month and the worst trade's entry scenario grid."""
    if risk is None:
        return []
    parts = ['<h2 id="risk">Greeks and P&amp;L attribution</h2>']
    if risk.n_trades == 0 or risk.monthly is None:
        return [*parts, "<p>no trades</p>"]
    every = f"every {risk.step_minutes} minutes" if risk.step_minutes < 60 else "hourly"
    parts += [
        '<h3 id="book-greeks">Book greeks over time</h3>',
        _img(figures["greeks.png"], "book greeks over time"),
        f'<p class="note">Sums over the trades open at each sample ({every} from 10:00 to '
        "16:00 ET; a value holds until the next sample, overnight included) of each trade's "
        "greeks at its last path minute, in dollars for its contracts: delta per 1 % move of "
        "the forward, gamma per (1 %)&sup2; (a move of m % earns gamma &times; m&sup2; / 2), "
        "vega per vol point, theta per calendar day. Zero while the book is flat.</p>",
        '<h3 id="attribution-monthly">P&amp;L attribution by month</h3>',
    ]
    if risk.explained_share == risk.explained_share:  # not NaN
        parts.append(
            f"<p>The delta, gamma, vega and theta terms explain "
            f"<b>{_fmt(risk.explained_share, 'pct')}</b> of the variance of the trades' daily mid "
            "P&amp;L (1 &minus; var(residual) / var(actual) over trade-days).</p>"
        )
    terms = ("delta", "gamma", "vega", "theta", "residual", "costs", "pnl")
    m = risk.monthly
    total = m.select(pl.lit("total").alias("month"), pl.col("n_trades", *terms).sum())
    table = pl.concat([m, total.cast(m.schema)])
    parts += [
        _img(figures["attribution_monthly.png"], "P&L attribution by month"),
        _table(table, dict.fromkeys(terms, "usd") | {"month": "text"}),
        '<p class="note">Summed from the per-trade totals (<code>TradeRisk.trades</code>) by the '
        "ET month of each trade's exit, so a month holds whole trades and their costs; the "
        f"diamond is the month's P&amp;L. {_ATTRIBUTION_NOTE}</p>",
    ]
    w = risk.worst
    if w is not None and "scenarios_worst.png" in figures:
        parts += [
            '<h3 id="scenario-worst">Entry scenarios of the trade with the largest worst-case loss'
            "</h3>",
            _img(figures["scenarios_worst.png"], "entry scenario grid of the worst trade"),
            f'<p class="note">Trade {html.escape(str(w["trade_id"]))}: the trade with the largest '
            f"worst-case entry scenario loss ({_fmt(w['worst_scenario_loss'], 'usd0')} at "
            f"{w['worst_spot_move_pct']:+g} % and {w['worst_vol_move_pts']:+g} vol points, the "
            f"boxed cell; its P&amp;L {_fmt(w['pnl'], 'usd')}). Each cell reprices every leg in "
            "full at entry with the forward moved by the column's % and every leg's implied vol "
            "shifted by the row's vol points, at once, with no time passing, for the trade's "
            "contracts. <b>Sticky strike</b>: each strike keeps its own entry vol plus the shift "
            "(floored at 1 vol point), so the skew between the legs stays as quoted.</p>",
        ]
    return parts


def _settlement_html(st: Mapping[str, Any] | None) -> list[str]:
    """How the trades held to expiry were settled (sources, estimates, their largest error)."""
    if not st or not (st["n_settled"] or st["n_end_of_data"]):
        return []
    bits = [f"{n} on {html.escape(src)}" for src, n in st["by_source"].items()]
    text = f"{st['n_settled']} trades settled at expiry ({', '.join(bits) or 'none'})."
    if st["n_estimated"]:
        text += (
            f" {st['n_estimated']} settled on put-call parity estimates; the largest "
            f"standard error is {st['max_std_error']:.2f} index points. Import official "
            "values with <code>quantlab data import-settlements</code>."
        )
    if st["n_end_of_data"]:
        text += f" {st['n_end_of_data']} were still open when the data ends (end_of_data)."
    return ["<h2>Settlement</h2>", f"<p>{text}</p>"]


def _inspector_html(
    figures: Mapping[str, bytes],
    inspected: list[tuple[dict[str, Any], str]],
    no_paths: bool,
    risk: RiskPanels | None = None,
) -> list[str]:
    """The trade inspector section: each inspected trade's figure next to its details (and,
    with the trades' risk, its P&L attribution next to the details)."""
    parts = ["<h2>Trade inspector</h2>"]
    if not inspected:
        why = "no per-trade paths were given" if no_paths else "no trade has a path"
        parts.append(f"<p>{why}.</p>")
    attribution = risk.trade_figures if risk is not None else {}
    for trade, name in inspected:
        attr = attribution.get(str(trade["trade_id"]), "")
        if attr:  # next to the details, under the path figure
            anchor = html.escape(_safe_name(trade["trade_id"]))
            attr = f'<div id="attribution-{anchor}">{_img(figures[attr], "P&L attribution")}</div>'
        parts += [
            f"<h3>{html.escape(str(trade['trade_id']))} — {html.escape(str(trade['exit_reason']))}"
            f", P&amp;L {html.escape(_fmt(trade['pnl'], 'usd'))}</h3>",
            f'<div class="grid"><div>{_img(figures[name], name)}</div>'
            f"<div>{_trade_details(trade)}</div>{attr}</div>",
        ]
    if attribution:
        parts.append(f'<p class="note">{_ATTRIBUTION_NOTE}</p>')
    return parts


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
