"""Greeks, P&L attribution and entry scenarios of a backtest's trades and book.

:func:`trade_risk` (``PortfolioResult.risk()``) runs :func:`quantlab.risk.kernels.path_risk`
over each trade's stage-1 path from its entry to its exit: every minute's forward, legs'
implied vols and position greeks, and the attribution of each step between observations to
delta (``D dF``), gamma (``G dF^2 / 2``) and vega (``sum vega_m dsigma_m``) from the greeks at
the start of the step (a second-order expansion, summed minute by minute), and theta, the
step's time decay revalued at the start's forward and vols (so a weekend decays three days as
the model says, not at Friday's theta). The **residual** is the mid value's actual change minus those terms
(cross terms, higher orders, quote noise); **costs** are what separates the trade's P&L from
its mid value's change: the spread paid at entry and exit, and fees. So per trade
``delta + gamma + vega + theta + residual + costs == pnl`` exactly (to float rounding).

Units: dollars for the trade's contracts. Greeks columns: ``delta_pt`` (per SPX point of the
forward), ``delta_pct`` (per 1 % move), ``vega_pt`` (per vol point), ``gamma_pct`` (per 1 %
squared: ``gamma_pct x m^2 / 2`` is the gamma P&L of a move of ``m`` %), ``theta_day`` (per
calendar day), ``gamma_pt`` (the dollar delta's change per SPX point).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.money import SHARES_PER_CONTRACT, to_cents
from quantlab.risk import kernels as rk
from quantlab.risk.scenarios import SPOT_MOVES, VOL_MOVES, scenario_frame, worst

GREEKS = ("delta_pt", "delta_pct", "vega_pt", "gamma_pct", "theta_day", "gamma_pt")
TERMS = ("delta", "gamma", "vega", "theta")
CADENCES = ("minute", "close")


@dataclass
class TradeRisk:
    """What :func:`trade_risk` returns (frames in dollars; see the module docstring).

    Attributes
    ----------
    minutes : polars.DataFrame
        Per trade and path minute to its exit (and its settlement): ``trade_id, ts, forward``,
        the greeks, the legs' vols (``iv``, a list) and the step's attribution (``pnl_*``,
        ``pnl_actual``; zero on minutes that are not observations).
    daily : polars.DataFrame
        Per trade and ET date: the attribution terms, ``residual`` and ``actual``.
    trades : polars.DataFrame
        Per trade: greeks at entry, the worst entry scenario (loss, spot %, vol points), the
        attribution totals, ``costs`` and ``pnl``.
    scenarios : numpy.ndarray
        ``[trade, spot, vol]``: each trade's scenario P&L at entry.
    """

    minutes: pl.DataFrame
    daily: pl.DataFrame
    trades: pl.DataFrame
    scenarios: np.ndarray

    def book_minutes(self) -> pl.DataFrame:
        """The book's greeks at each minute: the sums over the trades open then."""
        m = self.minutes.filter(pl.col("ts") < pl.col("exit_ts"))
        return m.group_by("ts").agg([pl.col(c).sum() for c in GREEKS]).sort("ts")

    def book_daily(self) -> pl.DataFrame:
        """The book's attribution per ET date (the trades' sums)."""
        cols = [*TERMS, "residual", "actual"]
        return self.daily.group_by("date").agg([pl.col(c).sum() for c in cols]).sort("date")

    def explained_share(self) -> float:
        """Share of the variance of the trades' daily mid P&L the terms explain:
        ``1 - var(residual) / var(actual)`` over trade-days."""
        a = self.daily["actual"].to_numpy()
        r = self.daily["residual"].to_numpy()
        if a.size < 2:
            return float("nan")
        va = float(np.var(a))
        return float("nan") if va == 0 else 1.0 - float(np.var(r)) / va

    def scenario_grid(self, trade_id: str) -> pl.DataFrame:
        """One trade's entry scenarios as a long frame (:func:`~quantlab.risk.scenarios.
        scenario_frame`)."""
        ids = self.trades["trade_id"].to_list()
        if trade_id not in ids:
            raise KeyError(f"no trade {trade_id!r} in this result")
        return scenario_frame(self.scenarios[ids.index(trade_id)])


def trade_risk(
    s1: Any,
    marks: Any,
    spec: Any,
    trades: pl.DataFrame,
    *,
    minutes: bool = True,
    cadence: str = "minute",
) -> TradeRisk:
    """The :class:`TradeRisk` of a config's trades (``marks``: the
    :class:`quantlab.backtest.stage2.MinuteMarks` of its stage 2; ``trades`` its trade log).
    With ``minutes=False`` its ``minutes`` frame is left empty (a grid keeps the per-trade and
    daily tables only). ``cadence``: ``"minute"`` reads every path minute (the attribution
    summed minute by minute); ``"close"`` only each session's last minute and the exit (one
    step per day: a daily expansion, much cheaper, with larger cross terms in the residual)."""
    if cadence not in CADENCES:
        raise ValueError(f"cadence must be one of {CADENCES} (got {cadence!r})")
    p = _paths(s1, marks, spec, cadence == "close")
    n = marks.rows.size
    t = np.repeat(np.arange(n), p["lens"])
    shares = (p["contracts"] * SHARES_PER_CONTRACT).astype(np.float64)[t]
    cols: dict[str, Any] = {"trade_id": trades["trade_id"].gather(t), "ts": p["ts"]}
    if minutes:
        dollars = np.empty((t.size, len(GREEKS)))
        fwd = p["fwd"]
        rk.dollar_rows(p["greeks"], np.where(np.isnan(fwd), 0.0, fwd), p["contracts"][t], dollars)
        cols |= {"exit_ts": marks.exit_ts[t], "forward": fwd}
        cols |= {name: dollars[:, i] for i, name in enumerate(GREEKS)}
        cols |= {f"iv_{m + 1}": p["ivs"][:, m] for m in range(p["ivs"].shape[1])}
    terms = p["terms"]
    cols |= {f"pnl_{name}": terms[:, i] * shares for i, name in enumerate(TERMS)}
    cols |= {"pnl_actual": terms[:, rk.A_ACTUAL] * shares}
    if minutes:
        cols["observed"] = p["valid"]
    frame = pl.DataFrame(cols).filter(pl.Series(p["keep"]))
    entry = np.empty((n, len(GREEKS)))
    rk.dollar_rows(p["g0"], p["entry_fwd"], p["contracts"], entry)
    scen = np.zeros((n, SPOT_MOVES.size * VOL_MOVES.size))
    rk.entry_risk(
        p["entry_ts"], marks.settle_ns, float(spec.rate), p["entry_fwd"], marks.qty,
        p["strike"], p["is_call"], marks.n_legs, p["entry_iv"], SPOT_MOVES, VOL_MOVES,
        np.zeros((n, 4)), scen,
    )  # fmt: skip
    scen *= p["contracts"][:, None]
    daily = _daily(frame)
    table = _trade_table(trades, daily, entry, scen)
    kept = frame if minutes else frame.clear()
    return TradeRisk(kept, daily, table, scen.reshape(n, SPOT_MOVES.size, VOL_MOVES.size))


def _paths(s1: Any, marks: Any, spec: Any, closes_only: bool) -> dict[str, np.ndarray]:
    """:func:`quantlab.risk.kernels.paths_risk` over the trades' paths (each trade's block:
    its path rows to its exit, then its settlement row), with the stamps and forwards."""
    n = marks.rows.size
    rows = marks.rows
    lens = marks.upto + 1
    starts = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    total = int(starts[-1])
    width = marks.qty.shape[1] if n else 1
    cand = s1.candidates
    out = {
        "lens": lens,
        "contracts": marks.money[:, 0].astype(np.int64),
        "greeks": np.zeros((total, rk.G_SIZE)),
        "ivs": np.full((total, width), np.nan),
        "terms": np.zeros((total, rk.A_SIZE)),
        "valid": np.zeros(total, np.bool_),
        "g0": np.zeros((n, rk.G_SIZE)),
        "entry_ts": cand["entry_ts"].to_numpy()[rows].astype(np.int64),
        "entry_fwd": cand["forward"].to_numpy()[rows].astype(np.float64),
        "strike": np.ascontiguousarray(np.asarray(s1.strike)[rows]),
        "is_call": np.ascontiguousarray(np.asarray(s1.is_call)[rows]),
        "entry_iv": np.ascontiguousarray(s1.entry_ivs()[rows]),
    }
    ebid = to_cents(np.asarray(s1.entry_bid)[rows]).astype(np.int64)
    eask = to_cents(np.asarray(s1.entry_ask)[rows]).astype(np.int64)
    rk.paths_risk(
        starts, marks.path_row, marks.upto, s1.path_ts, s1.path_bid, s1.path_ask, s1.path_fwd,
        out["entry_ts"], out["entry_fwd"], ebid, eask, out["entry_iv"], marks.qty,
        out["strike"], out["is_call"], marks.n_legs, marks.settle_ns, marks.settle_value,
        float(spec.rate), out["greeks"], out["ivs"], out["terms"], out["valid"], out["g0"],
        closes_only,
    )  # fmt: skip
    at = np.repeat(marks.path_row - starts[:-1], lens) + np.arange(total)
    last = starts[1:] - 1
    path_ts = np.asarray(s1.path_ts)
    at = np.minimum(at, max(path_ts.size - 1, 0))
    ts = path_ts[at].astype(np.int64) if total else np.empty(0, np.int64)
    ts[last] = marks.settle_ns
    fwd = np.asarray(s1.path_fwd)[at].astype(np.float64) if total else np.empty(0)
    fwd[last] = marks.settle_value
    keep = np.ones(total, bool)
    keep[last] = ~np.isnan(marks.settle_value)  # the settlement row only when it settled
    return out | {"ts": ts, "fwd": fwd, "keep": keep}


def _daily(minutes: pl.DataFrame) -> pl.DataFrame:
    """Per trade and ET date: the attribution terms, ``residual`` and ``actual``."""
    m = minutes.with_columns(pl.Series("date", calendar.et_dates(minutes["ts"].to_numpy())))
    d = m.group_by(["trade_id", "date"], maintain_order=True).agg(
        [pl.col(f"pnl_{c}").sum().alias(c) for c in TERMS]
        + [pl.col("pnl_actual").sum().alias("actual")]
    )
    return d.with_columns(
        (pl.col("actual") - pl.sum_horizontal([pl.col(c) for c in TERMS])).alias("residual")
    )


def _trade_table(
    trades: pl.DataFrame, daily: pl.DataFrame, entry: np.ndarray, scen: np.ndarray
) -> pl.DataFrame:
    """Per trade: greeks at entry, worst entry scenario, attribution totals, costs and P&L."""
    tot = daily.group_by("trade_id", maintain_order=True).agg(
        [pl.col(c).sum() for c in (*TERMS, "residual", "actual")]
    )
    w = [worst(v) for v in scen] if scen.shape[0] else []
    base = pl.DataFrame(
        {"trade_id": trades["trade_id"], "pnl": trades["pnl"]}
        | {f"entry_{g}": entry[:, i] for i, g in enumerate(GREEKS)}
        | {
            "worst_scenario_loss": [x[0] for x in w],
            "worst_spot_move_pct": [x[1] for x in w],
            "worst_vol_move_pts": [x[2] for x in w],
        },
        schema_overrides={
            "worst_scenario_loss": pl.Float64,
            "worst_spot_move_pct": pl.Float64,
            "worst_vol_move_pts": pl.Float64,
        },
    )
    out = base.join(tot, on="trade_id", how="left", maintain_order="left")
    return out.with_columns((pl.col("pnl") - pl.col("actual")).alias("costs")).drop("actual")


__all__ = ["CADENCES", "GREEKS", "TERMS", "TradeRisk", "trade_risk"]
