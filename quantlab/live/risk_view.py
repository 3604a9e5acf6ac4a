"""``quantlab live status``'s view of the book's risk: the last ``book_risk`` record the runner
journaled (:func:`quantlab.risk.book.risk_record`) as a greeks line and a scenario heatmap."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from quantlab import calendar
from quantlab.risk.scenarios import SMILE


def last_record(events: pl.DataFrame) -> tuple[int, dict[str, Any]] | None:
    """``(ts, record)`` of the latest ``book_risk`` event in a journal's events (None: none)."""
    risk = events.filter(pl.col("kind") == "book_risk")
    if risk.height == 0:
        return None
    row = risk.sort("ts").row(-1, named=True)
    return int(row["ts"]), json.loads(row["data"])


def _cell(pnl: float, scale: float) -> str:
    """One heatmap cell: the P&L, red for a loss, green for a gain, bolder for larger ones."""
    strength = min(abs(pnl) / scale, 1.0) if scale > 0 else 0.0
    colour = "red" if pnl < 0 else "green"
    style = f"bold {colour}" if strength > 0.5 else colour if strength > 0.1 else "dim"
    return f"[{style}]{pnl:,.0f}[/{style}]"


def print_risk(con: Console, ts: int, rec: dict[str, Any]) -> None:
    """The greeks and the scenario grid of one record."""
    when = dt.datetime.fromtimestamp(ts / 1e9, tz=calendar.ET)
    g, w = rec["greeks"], rec["worst"]
    con.print(
        f"[bold]Book risk[/bold] at {when:%Y-%m-%d %H:%M} ET ({rec['n_open']} open): delta "
        f"{g['delta_pt']:,.1f} $/pt = {g['delta_pct']:,.0f} $/1%, gamma {g['gamma_pct']:,.0f} "
        f"$/1%^2, vega {g['vega_pt']:,.0f} $/vol pt, theta {g['theta_day']:,.0f} $/day; worst "
        f"scenario {w['loss']:,.0f} $ at {w['spot_pct']:+g}% / {w['vol_pts']:+g} vol pts",
        highlight=False,
    )
    pnl = rec["pnl"]
    scale = max((abs(v) for row in pnl for v in row), default=0.0)
    t = Table(
        title=f"Scenario P&L ($, forward move x vol shift, {SMILE.replace('_', ' ')}, at once)",
        header_style="bold",
    )
    t.add_column("spot \\ vol", justify="right")
    for v in rec["vol"]:
        t.add_column(f"{v * 100:+g}", justify="right")
    for s, row in zip(rec["spot"], pnl, strict=True):
        t.add_row(f"{s * 100:+g}%", *(_cell(x, scale) for x in row))
    con.print(t)


__all__ = ["last_record", "print_risk"]
