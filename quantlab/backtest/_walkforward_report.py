"""The walk-forward page: ``walkforward.html`` with ``equity.png`` (stitched out-of-sample vs
look-ahead equity) and ``configs.png`` (the config chosen per window), in the backtest report's
style (:mod:`quantlab.backtest.report`, :mod:`quantlab.backtest._report_plots`)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab.backtest._report_plots import (
    _COLORS,
    _STYLE,
    _date_axis,
    _fmt,
    _new_figure,
    _png,
    _ticks,
)
from quantlab.backtest.report import _CSS, _img, _kv_table, _table
from quantlab.backtest.walkforward import WalkForwardResult


def _fig_equity(eq: pl.DataFrame, windows: pl.DataFrame, capital: float) -> Any:
    fig = _new_figure(10, 4.6)
    ax = fig.subplots()
    x = eq["date"].to_numpy()
    ax.plot(x, eq["equity"].to_numpy(), color=_COLORS["equity"], lw=1.6, label="walk-forward (OOS)")
    ax.plot(
        x,
        eq["lookahead_equity"].to_numpy(),
        color=_COLORS["exit"],
        lw=1.2,
        ls="--",
        label="full-period best config (look-ahead)",
    )
    ax.axhline(capital, color=_COLORS["credit"], ls=":", lw=1, label=f"capital ${capital:,.0f}")
    for d in windows["test_start"].to_list()[1:]:
        ax.axvline(np.datetime64(d), color="#bbbbbb", lw=0.6)
    ax.set_ylabel("equity ($)")
    ax.set_title("Stitched out-of-sample equity vs the look-ahead config")
    ax.yaxis.set_major_formatter(_ticks("usd0"))
    ax.legend(loc="upper left")
    _date_axis(ax)
    return fig


def short_name(config: str) -> str:
    """A sweep config's grid values (``base[dte.target=7,...]`` -> ``dte.target=7, ...``)."""
    if "[" not in config:
        return config
    return config.split("[", 1)[1].rstrip("]").replace(",", ", ")


def _fig_configs(windows: pl.DataFrame) -> Any:
    windows = windows.with_columns(pl.col("config").map_elements(short_name, pl.Utf8))
    names = sorted(set(windows["config"].to_list()))
    fig = _new_figure(10, 1.2 + 0.35 * len(names))
    ax = fig.subplots()
    for w in windows.to_dicts():
        y = names.index(w["config"])
        a, b = np.datetime64(w["test_start"]), np.datetime64(w["test_end"]) + 1
        color = _COLORS["win"] if w["pnl"] >= 0 else _COLORS["loss"]
        ax.barh(y, b - a, left=a, height=0.6, color=color, alpha=0.85)
    ax.set_yticks(range(len(names)), names)
    ax.set_title("Config per test window (green: made money)")
    _date_axis(ax)
    return fig


def _figures(res: WalkForwardResult, capital: float) -> dict[str, bytes]:
    import matplotlib

    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]
        return {
            "equity.png": _png(_fig_equity(res.equity_daily, res.windows, capital)),
            "configs.png": _png(_fig_configs(res.windows)),
        }


def _headline(s: dict[str, Any]) -> str:
    d = s.get("deflated_sharpe", {})
    return _kv_table(
        [
            ("criterion", str(s["criterion"])),
            ("windows", f"{s['n_windows']} ({_window_text(s['windows'])})"),
            ("configs tried / chosen", f"{s['n_configs']} / {s['n_configs_chosen']}"),
            ("OOS sessions", str(s["oos_sessions"])),
            ("OOS total P&L", _with_ci(s["oos_total_pnl"], s.get("oos_total_pnl_ci"), "usd0")),
            ("OOS Sharpe (annualised)", _with_ci(s["oos_sharpe"], s.get("oos_sharpe_ci"), "ratio")),
            ("OOS trades", str(s["oos_n_trades"])),
            (
                "OOS deflated Sharpe ratio",
                f"{_sig(d.get('dsr'))} (per-session SR {_fmt(d.get('sr'), 'ratio')} vs "
                f"expected max {_fmt(d.get('sr_star'), 'ratio')} of {d.get('n_trials', 0):.0f} "
                "configs)",
            ),
            ("look-ahead config", short_name(str(s["lookahead_config"]))),
            ("look-ahead total P&L", _fmt(s["lookahead_total_pnl"], "usd0")),
            ("look-ahead Sharpe", _fmt(s["lookahead_sharpe"], "ratio")),
            ("look-ahead trades", str(s["lookahead_n_trades"])),
        ]
    )


def _with_ci(v: Any, ci: Any, kind: str) -> str:
    text = _fmt(v, kind)
    if ci is None:
        return text
    return f"{text} (95% block bootstrap {_fmt(ci[0], kind)} to {_fmt(ci[1], kind)})"


def _sig(v: Any) -> str:
    """3 significant digits (a deflated Sharpe ratio of 0.00038 is not 0.00)."""
    return _fmt(None, "num") if v is None or v != v else f"{float(v):.3g}"


def _window_text(w: dict[str, Any]) -> str:
    emb = f", embargo {w['embargo']} sessions" if w["embargo"] else ""
    return f"{w['mode']}, train {w['train']} / test {w['test']} / step {w['step']} {w['unit']}{emb}"


_RULE = (
    "Each window's config enters only on its test sessions; its trades run to their own exit "
    "and are booked to that window in full. The next window enters only once every trade of "
    "the previous one has closed, so the book is flat at each hand-over and the risk rules "
    "hold for the stitched book. The look-ahead line trades the config that is best over the "
    "whole range (by the same criterion) over the same sessions: it is not a result one could "
    "have had."
)


_KINDS = {"P&L": "usd0", "score": "ratio", "IS Sharpe": "ratio", "OOS Sharpe": "ratio"}


def write_page(out_dir: Path, res: WalkForwardResult, title: str) -> Path:
    """``walkforward.html`` (figures embedded) and its PNGs in ``out_dir``."""
    eq = res.equity_daily
    capital = float(eq["equity"][0] - eq["pnl"][0]) if eq.height else 0.0
    figs = _figures(res, capital)
    for name, png in figs.items():
        (out_dir / name).write_bytes(png)
    table = res.windows.drop("config_id").with_columns(
        pl.col("config").map_elements(short_name, pl.Utf8)
    )
    table = table.rename({"is_sharpe": "IS Sharpe", "oos_sharpe": "OOS Sharpe", "pnl": "P&L"})
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}: walk-forward</h1>",
        f'<p class="sub">{html.escape(_RULE)}</p>',
        "<h2>Headline</h2>",
        _headline(res.summary),
        "<h2>Equity</h2>",
        _img(figs["equity.png"], "stitched equity vs look-ahead"),
        "<h2>Config per window</h2>",
        _img(figs["configs.png"], "config per window"),
        "<h2>Windows</h2>",
        _table(table, _KINDS),
        "</body></html>",
    ]
    page = out_dir / "walkforward.html"
    page.write_text("\n".join(parts))
    return page
