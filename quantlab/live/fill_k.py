"""The fill model checked against fills: the ``k`` each filled order of a live journal achieved.

Each filled order (entries and exits alike) is measured per spread, on the combo's net price,
against the store's quotes at the fill minute (:func:`quantlab.live.reconcile.quotes_at`: the
last quote at or before it, carried from the previous session as the simulated broker does)::

    mid   = sum over legs of -ratio x (bid + ask) / 2    (net per share: + credit, - debit)
    width = sum over legs of |ratio| x (ask - bid)       (mid minus the natural net price)
    k     = (mid - fill) / width

This is the ``mid_k`` model of :class:`quantlab.execution.FillModel` solved for ``k``: it sells a
leg at ``mid - k x spread`` and buys one at ``mid + k x spread``, so its net price is
``mid - k x width``. As in its kernel, a missing bid counts as 0 and a crossed quote has no
spread. ``k = 0`` is a fill at mid, ``0.5`` at the natural price (the bid of what you sell, the
ask of what you buy); above 0.5 is worse than natural, below 0 better than mid. A fill at a
zero-width quote has no ``k`` and is left out; so is a fill whose legs have no quote.

**Tick rounding.** The fill model rounds each leg to its tick against the trader, so a model
with ``k*`` produces fills whose ``k`` lies in ``[k*, k* + ticks / width)``, ``ticks`` being
``sum |ratio| x tick`` of the legs (each leg's tick taken at its ask: at least the tick
of any price up to natural). A fill therefore bounds the ``k`` of a model that
reproduces it to ``(k_lo, k]`` with ``k_lo = k - ticks / width``: ``k`` is what the fill cost,
rounding included; ``k_lo`` the least a rounding model could have had. Single fills are coarse
(a 5-cent tick on a 25-cent spread is 0.2 of k), so :func:`estimate_k` reports the
distribution of ``k`` (median, quartiles, n), the point estimate ``mean((k + k_lo) / 2)`` and a
95% interval: the lower bootstrap percentile of ``mean(k_lo)`` to the upper one of ``mean(k)``
(the same iid resamples), which covers both the sampling error and the rounding. The
``slippage`` of a fill model is not separated out: it shows as extra ``k``.

**The suggestion** for the strategy's ``fills.k`` is the interval's upper end rounded UP to a
multiple of 0.05: a backtest should not assume fills better than the fills observed support
(its own tick rounding then adds a little more cost, on the safe side), and 0.05 is both the
cost curve's grid and about what tick-rounded fills can resolve.

:func:`fill_k_report` measures a journal's fills from a date on and breaks ``k`` down by day,
entry/exit, DTE at the fill (calendar days to the expiry), the trade's ``|short delta|`` at entry
and the hour of the fill (ET); ``quantlab live reconcile --since DATE`` prints it and writes
the histogram (:meth:`FillKReport.plot`) and the per-fill table next to the reconcile reports.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import InputError
from quantlab.execution.fills import FillModel, tick_size
from quantlab.live.journal import Journal
from quantlab.live.reconcile import quotes_at
from quantlab.money import CENTS_PER_DOLLAR, NO_PRICE, to_cents
from quantlab.strategy.occ import parse_occ

#: one row per filled order measured (:func:`fill_ks`)
FILL_K_SCHEMA: dict[str, Any] = {
    "order_ref": pl.Utf8,
    "trade_id": pl.Utf8,
    "purpose": pl.Utf8,  # entry | exit
    "ts": pl.Int64,
    "day": pl.Date,
    "hour": pl.Utf8,  # ET hour of the fill, "10:00"
    "dte": pl.Int32,  # calendar days from the fill's session to the expiry
    "short_delta": pl.Float64,  # |delta| of the trade's short leg at entry
    "delta_bucket": pl.Utf8,
    "quantity": pl.Int32,
    "fill_price": pl.Float64,  # net per share, + credit / - debit
    "mid": pl.Float64,
    "width": pl.Float64,
    "k": pl.Float64,
    "k_lo": pl.Float64,
}
#: edges of the ``|short delta|`` buckets of the breakdown
DELTA_EDGES = (0.0, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50, 1.0)
#: the grid of the suggested ``fills.k``
K_STEP = 0.05
BREAKDOWNS = {
    "day": "day",
    "entry / exit": "purpose",
    "DTE at the fill": "dte",
    "|short delta| at entry": "delta_bucket",
    "hour of the fill (ET)": "hour",
}


def achieved_k(
    bid: Any, ask: Any, ratio: Any, fill: float, fills: FillModel | None = None
) -> tuple[float, float, float, float]:
    """``(k, k_lo, mid, width)`` of one combo fill (see the module docstring).

    ``bid``/``ask`` per leg (dollars per share), ``ratio`` per leg signed (-1 = sold),
    ``fill`` the net price per share (+ credit / - debit). Computed on integer cents, so a
    fill exactly at a model price gives exactly its ``k``. ``fills`` supplies the tick grid
    (default: SPX's). NaNs when a leg has no usable quote or the width is zero.

    Examples
    --------
    A put spread sold: short leg 1.00/1.20, long leg 0.40/0.50 (mid 0.65, width 0.30), filled
    for 0.55 credit: ``k = 0.10 / 0.30``; two 5-cent ticks allow down to ``k_lo = 0``.

    >>> k, k_lo, mid, width = achieved_k([1.00, 0.40], [1.20, 0.50], [-1, 1], 0.55)
    >>> round(k, 6), round(k_lo, 6), mid, width
    (0.333333, 0.0, 0.65, 0.3)
    """
    fm = fills or FillModel()
    r = np.asarray(ratio, dtype=np.int64).ravel()
    b = to_cents(np.asarray(bid, dtype=np.float64).ravel()).astype(np.int64)
    a = to_cents(np.asarray(ask, dtype=np.float64).ravel()).astype(np.int64)
    if r.size == 0 or np.any(a <= 0) or not math.isfinite(fill):
        return (math.nan,) * 4
    b = np.where(b == NO_PRICE, 0, b)  # a missing bid counts as zero (fill_cents)
    spread = np.maximum(a - b, 0)
    mid2 = int(np.sum(-r * (a + b)))  # half cents
    width = int(np.sum(np.abs(r) * spread))
    if width == 0:
        return (math.nan,) * 4
    fill_c = round(fill * CENTS_PER_DOLLAR)
    # each leg's tick at its ask, the most it can be for a fill up to natural (an upper bound)
    ticks = to_cents(
        tick_size(a / CENTS_PER_DOLLAR, fm.tick_small, fm.tick_large, fm.tick_threshold)
    )
    allow = int(np.sum(np.abs(r) * ticks.astype(np.int64)))
    k = (mid2 - 2 * fill_c) / (2 * width)
    return k, k - allow / width, mid2 / (2 * CENTS_PER_DOLLAR), width / CENTS_PER_DOLLAR


def delta_bucket(delta: float | None) -> str:
    """The ``|short delta|`` bucket of :data:`DELTA_EDGES` as ``"0.10-0.15"`` ("?" if unknown)."""
    if delta is None or not math.isfinite(delta):
        return "?"
    d = abs(delta)
    for lo, hi in itertools.pairwise(DELTA_EDGES):
        if d < hi:
            return f"{lo:.2f}-{hi:.2f}"
    return f">={DELTA_EDGES[-1]:.2f}"


def _trade_deltas(journal: Journal, mode: str) -> dict[str, float]:
    """``|short delta|`` at entry of each journaled trade, closed or still open."""
    out = {
        r["trade_id"]: r["short_delta"]
        for r in journal.table("trades", mode)
        .select("trade_id", "short_delta")
        .iter_rows(named=True)
    }
    for tid, s in journal.open_states(mode).items():
        v = s.get("short_delta")
        out.setdefault(tid, math.nan if v is None else float(v))
    return out


def fill_ks(
    journal: Journal,
    store: st.StoreLike,
    mode: str,
    since: dt.date,
    until: dt.date | None = None,
    *,
    underlying: str = "SPX",
    fills: FillModel | None = None,
) -> pl.DataFrame:
    """The ``k`` achieved by every filled order of ``journal`` (``mode``) in sessions
    ``since``..``until`` (default: all after ``since``), one row per fill
    (:data:`FILL_K_SCHEMA`); fills without a usable quote or width are left out. ``fills``:
    the strategy's fill model, for its tick grid."""
    orders = {r["order_ref"]: r for r in journal.table("orders", mode).iter_rows(named=True)}
    deltas = _trade_deltas(journal, mode)
    rows = []
    for f in journal.table("fills", mode).sort("ts").iter_rows(named=True):
        day = read.session_date(f["ts"])
        o = orders.get(f["order_ref"])
        if day < since or (until is not None and day > until) or o is None:
            continue
        legs = json.loads(o["legs"])
        if not legs:
            continue
        occs = [occ for occ, _ in legs]
        bid, ask = quotes_at(store, underlying, occs, f["ts"])
        k, k_lo, mid, width = achieved_k(bid, ask, [q for _, q in legs], f["price"], fills)
        if not math.isfinite(k):
            continue
        expiry = parse_occ(occs[0])[1]
        when = dt.datetime.fromtimestamp(f["ts"] / 1e9, tz=calendar.ET)
        d = deltas.get(o["trade_id"], math.nan)
        rows.append(
            {
                "order_ref": f["order_ref"],
                "trade_id": o["trade_id"],
                "purpose": "entry" if o["purpose"] == "opening" else "exit",
                "ts": f["ts"],
                "day": day,
                "hour": f"{when:%H}:00",
                "dte": (expiry - day).days,
                "short_delta": d,
                "delta_bucket": delta_bucket(d),
                "quantity": f["quantity"],
                "fill_price": f["price"],
                "mid": mid,
                "width": width,
                "k": k,
                "k_lo": k_lo,
            }
        )
    return pl.DataFrame(rows, schema=FILL_K_SCHEMA)


@dataclass(frozen=True)
class KEstimate:
    """The distribution of ``k`` over ``n`` fills and what it says about ``fills.k``."""

    n: int
    median: float
    q1: float
    q3: float
    mean: float  # mean of k (what the fills cost, rounding included)
    estimate: float  # mean of (k + k_lo) / 2: the k of a rounding fill model
    lo: float  # the interval (module docstring); NaN with fewer than 2 fills
    hi: float
    one_k: tuple[float, float] | None  # (max k_lo, min k] when one k explains every fill
    suggested_k: float | None  # hi rounded up to K_STEP, within [0, 1]

    def sentence(self) -> str:
        if self.n == 0:
            return "no filled order with quotes to measure."
        text = (
            f"{self.n} fills: k median {self.median:.3f} (quartiles {self.q1:.3f}-{self.q3:.3f}),"
            f" mean {self.mean:.3f}; allowing for tick rounding the fill model's k is "
            f"{self.estimate:.3f}"
        )
        if math.isfinite(self.lo):
            text += f", 95% interval {self.lo:.3f}-{self.hi:.3f}"
        if self.one_k is not None:
            text += f"; one k in ({self.one_k[0]:.3f}, {self.one_k[1]:.3f}] explains every fill"
        if self.suggested_k is not None:
            text += f". Suggested fills.k: {self.suggested_k:.2f} (the interval's top, rounded up)"
        return text + "."


def estimate_k(ks: pl.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> KEstimate:
    """:class:`KEstimate` of the fills in ``ks`` (:func:`fill_ks`); see the module docstring.
    The interval is deterministic for ``seed``."""
    from quantlab.stats.bootstrap import bootstrap_ci

    k = ks["k"].to_numpy().astype(np.float64)
    k_lo = ks["k_lo"].to_numpy().astype(np.float64)
    n = int(k.size)
    if n == 0:
        nan = math.nan
        return KEstimate(0, nan, nan, nan, nan, nan, nan, nan, None, None)
    q1, med, q3 = (float(v) for v in np.quantile(k, [0.25, 0.5, 0.75]))
    lo = bootstrap_ci(k_lo, n_boot=n_boot, seed=seed)[0]
    hi = bootstrap_ci(k, n_boot=n_boot, seed=seed)[1]  # the same resamples (same seed and n)
    a, b = float(k_lo.max()), float(k.min())
    suggested = None
    if math.isfinite(hi):
        steps = math.ceil(round(hi / K_STEP, 9))
        suggested = min(max(steps, 0), round(1 / K_STEP)) * K_STEP
        suggested = round(suggested, 2)
    return KEstimate(
        n,
        med,
        q1,
        q3,
        float(k.mean()),
        float(((k + k_lo) / 2).mean()),
        float(lo),
        float(hi),
        (a, b) if a < b else None,
        suggested,
    )


def breakdown(ks: pl.DataFrame, by: str) -> pl.DataFrame:
    """``k`` by the values of column ``by``: n, median, quartiles, mean, and the rounding-
    allowing estimate (mean of ``(k + k_lo) / 2``)."""
    if by not in ks.columns:
        raise InputError(f"no column {by!r} to break k down by (have {ks.columns}).")
    k = pl.col("k")
    return (
        ks.group_by(by)
        .agg(
            pl.len().alias("n"),
            k.median().alias("median"),
            k.quantile(0.25, "linear").alias("q1"),
            k.quantile(0.75, "linear").alias("q3"),
            k.mean().alias("mean"),
            ((k + pl.col("k_lo")) / 2).mean().alias("estimate"),
        )
        .sort(by)
    )


@dataclass
class FillKReport:
    """The fills of a journal since a date measured against the fill model."""

    since: dt.date
    mode: str
    fills: pl.DataFrame
    estimate: KEstimate
    configured_k: float | None = None
    breakdowns: dict[str, pl.DataFrame] = field(default_factory=dict)

    def summary(self) -> str:
        cfg = (
            ""
            if self.configured_k is None
            else f" (the strategy has fills.k {self.configured_k:g})"
        )
        return f"fill k since {self.since} [{self.mode}]{cfg}: {self.estimate.sentence()}"

    def tables(self) -> list[Any]:
        """The breakdowns as rich tables."""
        from rich.table import Table

        out = []
        for title, df in self.breakdowns.items():
            t = Table(title=f"k by {title}", header_style="bold")
            col = df.columns[0]
            for h in (title, "n", "median", "q1", "q3", "mean", "estimate"):
                t.add_column(h, justify="left" if h == title else "right")
            for r in df.iter_rows(named=True):
                t.add_row(
                    str(r[col]),
                    str(r["n"]),
                    *(f"{r[c]:.3f}" for c in ("median", "q1", "q3", "mean", "estimate")),
                )
            out.append(t)
        return out

    def print(self, console: Any = None) -> None:
        from rich.console import Console

        con = console or Console()
        con.print(self.summary(), style="bold", markup=False, highlight=False)
        for t in self.tables():
            con.print(t)

    def plot(self, path: str | Path) -> Path:
        """A histogram of ``k`` per fill (entries and exits stacked) with the configured ``k``,
        the estimate and its interval, as a PNG at ``path``."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        f, e = self.fills, self.estimate
        if f.height:
            lo, hi = min(0.0, float(f["k"].min())), max(0.6, float(f["k"].max()))  # type: ignore[arg-type]
            bins = np.linspace(lo, hi, 31).tolist()
            data = [f.filter(pl.col("purpose") == p)["k"].to_numpy() for p in ("entry", "exit")]
            ax.hist(data, bins=bins, stacked=True, label=["entries", "exits"], color=["C0", "C1"])
        if math.isfinite(e.lo):
            ax.axvspan(e.lo, e.hi, color="0.85", zorder=0, label="95% interval")
        if math.isfinite(e.estimate):
            ax.axvline(e.estimate, color="k", label=f"estimate {e.estimate:.3f}")
        if self.configured_k is not None:
            ax.axvline(
                self.configured_k, color="C3", ls="--", label=f"fills.k {self.configured_k:g}"
            )
        ax.set_xlabel("k achieved = (mid - fill) / (natural width)   (0 = mid, 0.5 = natural)")
        ax.set_ylabel("fills")
        ax.set_title(f"Fill k since {self.since} ({self.mode}, n = {e.n})")
        ax.legend(loc="best", fontsize=8)
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", metadata={"Software": None})
        return out


def fill_k_path(journal: str | Path, mode: str, since: dt.date | str) -> Path:
    """Where the histogram goes: ``fill-k-<journal>-<mode>-since-<date>.png`` beside the
    journal (and the reconcile reports); the per-fill table is the same name in Parquet."""
    jp = Path(journal)
    return jp.parent / f"fill-k-{jp.stem}-{mode}-since-{since}.png"


def fill_k_report(
    journal: Journal,
    store: st.StoreLike,
    mode: str,
    since: dt.date,
    until: dt.date | None = None,
    *,
    underlying: str = "SPX",
    fills: FillModel | None = None,
    seed: int = 0,
) -> FillKReport:
    """Measure the fills of ``journal`` since ``since`` (:func:`fill_ks`), estimate ``k``
    (:func:`estimate_k`) and break it down (:data:`BREAKDOWNS`); ``fills`` is the strategy's
    fill model (its tick grid, and its ``k`` shown for comparison)."""
    ks = fill_ks(journal, store, mode, since, until, underlying=underlying, fills=fills)
    return FillKReport(
        since,
        mode,
        ks,
        estimate_k(ks, seed=seed),
        None if fills is None or fills.kind != "mid_k" else fills.k,
        {title: breakdown(ks, col) for title, col in BREAKDOWNS.items()} if ks.height else {},
    )


__all__ = [
    "BREAKDOWNS",
    "DELTA_EDGES",
    "FILL_K_SCHEMA",
    "FillKReport",
    "KEstimate",
    "achieved_k",
    "breakdown",
    "delta_bucket",
    "estimate_k",
    "fill_k_path",
    "fill_k_report",
    "fill_ks",
]
