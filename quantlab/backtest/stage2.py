"""Stage 2: the portfolio pass of one config over the stage-1 candidates, in time order.

Everything that decides a trade comes from the decision core (:mod:`quantlab.strategy`), the
same code the live runner calls each minute:

- the entry credit through the fill model and the entry filters, for all of the config's
  candidates at once (:func:`quantlab.strategy.rules.entry_filter_codes`);
- the gate (``allowed``: the meta-labeler's choice of candidate ids), the risk rules in their
  order and sizing, candidate by candidate in time order (:class:`quantlab.strategy.book.
  DecisionBook`);
- the exit, read off the candidate's path (:func:`quantlab.strategy.exits.scan_exit`): take
  profit, stop, time exit, or cash settlement at intrinsic value (no exit fees) when the trade
  is still open at its contract's close and the store has the expiry's settlement value.

Money is exact: quotes, fills, credits, costs and levels are integer cents per share, fees and
P&L integer millicents (:mod:`quantlab.money`); the trade log's dollar columns are those
integers divided once. Every candidate gets a decision row with its reason.

Filtering candidates (the meta-labeler) re-runs this pass with ``allowed``; it never just drops
trade rows, because the risk rules depend on which trades were open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.backtest.equity import TradeMarks, build_equity
from quantlab.backtest.records import DECISION_SCHEMA, TRADE_SCHEMA
from quantlab.backtest.stage1 import Stage1Result, rules_for
from quantlab.execution.fees import order_fees_mc
from quantlab.money import (
    CENTS_PER_DOLLAR,
    MILLICENTS_PER_CENT,
    MILLICENTS_PER_DOLLAR,
    NO_NET,
    NO_PRICE,
    SHARES_PER_CONTRACT,
    to_cents,
)
from quantlab.strategy import ids
from quantlab.strategy import kernels as k
from quantlab.strategy.book import DecisionBook
from quantlab.strategy.exits import exit_deadline, make_rules
from quantlab.strategy.rules import FILTER_REASONS, decision_kind, entry_filter_codes
from quantlab.strategy.spec import StrategySpec
from quantlab.strategy.structure import intrinsic_cents, strike_cents
from quantlab.strategy.structure import width as structure_width

#: cents per share x contracts -> millicents
_MC_PER_CENT_SHARE = SHARES_PER_CONTRACT * MILLICENTS_PER_CENT


@dataclass
class PortfolioResult:
    spec: StrategySpec
    trades: pl.DataFrame
    decisions: pl.DataFrame
    equity_minutes: pl.DataFrame
    equity_daily: pl.DataFrame

    @property
    def capital(self) -> float:
        return self.spec.sizing.capital


#: candidate columns the pass reads, as lists in decision order
_COLUMNS = (
    "candidate_id",
    "entry_ts",
    "entry_date",
    "entry_time",
    "expiry",
    "dte",
    "root",
    "close_ts",
)
#: candidate columns only trades read (fetched for the trades, after the pass)
_TRADE_COLUMNS = (
    "legs",
    "short_delta",
    "forward",
    "settlement_source",
    "settlement_std_error",
    "data_checksum",
)


@dataclass
class _Inputs:
    """A config's candidates in decision order, with what the rules read of each, in cents."""

    rows: np.ndarray  # stage-1 row of each
    qty: np.ndarray
    n_legs: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    credit: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    codes: np.ndarray
    cols: dict[str, list] = field(default_factory=dict)


def _inputs(s1: Stage1Result, spec: StrategySpec, keys: Collection[str]) -> _Inputs:
    c = s1.candidates
    mask = np.isin(c["select_key"].to_numpy(), list(keys))
    rows = np.flatnonzero(mask)
    ts = c["entry_ts"].to_numpy()[rows]
    cid = c["candidate_id"].to_numpy()[rows]
    rows = rows[np.lexsort((cid, ts))]
    qty = np.ascontiguousarray(s1.qty[rows], dtype=np.int64)
    n_legs = c["n_legs"].to_numpy()[rows].astype(np.int64)
    bid = np.ascontiguousarray(to_cents(s1.entry_bid[rows]), dtype=np.int64)
    ask = np.ascontiguousarray(to_cents(s1.entry_ask[rows]), dtype=np.int64)
    strike = np.ascontiguousarray(strike_cents(np.nan_to_num(s1.strike[rows])))
    is_call = np.ascontiguousarray(s1.is_call[rows])
    n = rows.size
    credit = np.empty(n, np.int64)
    k.entry_credits(bid, ask, qty, n_legs, spec.fills.params, credit)
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    k.payoff_bounds_rows(qty, strike, is_call, n_legs, lo, hi)
    pick = c[rows.tolist()] if n else c.clear()
    cols = {name: pick[name].to_list() for name in _COLUMNS if name in pick.columns}
    events = calendar.load_events(spec.filters.events_file) if spec.filters.skip_event_days else ()
    vix = pick["vix"].to_numpy() if n else np.empty(0)
    codes = entry_filter_codes(spec, cols["entry_date"], credit, bid, ask, qty, hi, vix, events)
    return _Inputs(rows, qty, n_legs, bid, ask, strike, is_call, credit, lo, hi, codes, cols)


def run_stage2(
    s1: Stage1Result,
    spec: StrategySpec,
    *,
    allowed: Collection[str] | None = None,
    probabilities: Mapping[str, float] | None = None,
) -> PortfolioResult:
    """Apply one config's filters, risk rules, sizing and exits to the stage-1 candidates.

    Parameters
    ----------
    allowed : collection of candidate ids, optional
        The gate: other candidates are ``rejected`` with reason ``filtered_by_model``.
    probabilities : mapping candidate id -> probability, optional
        Meta-label probabilities, for ``sizing.mode: probability``.
    """
    keys = set(rules_for([spec]))
    x = _inputs(s1, spec, keys)
    book = DecisionBook(spec)
    ctx = _Context(spec)
    exits = _exits(s1, ctx, x)
    allow = None if allowed is None else set(allowed)
    dec = _Decisions(spec)
    trades: list[dict] = []
    marks: list[TradeMarks] = []
    cols = x.cols
    for j in range(x.rows.size):
        cid, ts, day = cols["candidate_id"][j], cols["entry_ts"][j], cols["entry_date"][j]
        credit = int(x.credit[j])
        gate = "filtered_by_model" if allow is not None and cid not in allow else ""
        p = None if probabilities is None else probabilities.get(cid)
        d = book.decide(
            ts,
            day,
            filter_reason=FILTER_REASONS[x.codes[j]],
            gate_reason=gate,
            max_loss_c=int(x.hi[j]) - credit,
            probability=p,
        )
        reason = d.reason
        if d.taken:
            t = _trade(s1, ctx, x, j, d.contracts, exits)
            if t is None:
                reason = "no_exit_quotes"
            else:
                row, mk = t
                book.open_trade(row["trade_id"], day)
                book.close_trade(
                    row["trade_id"], row["exit_ts"], row.pop("_pnl_mc"), row["exit_reason"]
                )
                trades.append(row)
                marks.append(mk)
        dec.add(cols, j, credit, reason)
    rej = s1.rejections
    rej = rej.filter(np.isin(rej["select_key"].to_numpy(), list(keys))) if rej.height else rej
    decisions = dec.frame(rej)
    _complete(s1, trades)
    trades_df = (
        pl.DataFrame(trades, schema=TRADE_SCHEMA) if trades else pl.DataFrame(schema=TRADE_SCHEMA)
    )
    eq_min, eq_day = build_equity(marks, spec.sizing.capital, s1.days)
    return PortfolioResult(spec, trades_df, decisions, eq_min, eq_day)


class _Decisions:
    """Decision rows, collected as columns."""

    def __init__(self, spec: StrategySpec) -> None:
        self.spec, self.cfg = spec, spec.config_hash()
        self.c: dict[str, list] = {
            n: [] for n in DECISION_SCHEMA if n not in ("strategy", "config_hash")
        }

    def add(self, cols: dict[str, list], j: int, credit_c: int, reason: str) -> None:
        c = self.c
        for name in ("candidate_id", "entry_ts", "entry_date", "entry_time", "expiry", "dte"):
            c[name].append(cols[name][j])
        c["credit_per_share"].append(None if credit_c == NO_NET else credit_c / CENTS_PER_DOLLAR)
        c["decision"].append(decision_kind(reason))
        c["reason"].append(reason)

    def frame(self, rej: pl.DataFrame) -> pl.DataFrame:
        n = len(self.c["reason"])
        df = pl.DataFrame(
            self.c | {"strategy": [self.spec.name] * n, "config_hash": [self.cfg] * n},
            schema=DECISION_SCHEMA,
        )
        if rej.height:
            r = rej.select(
                pl.col("candidate_id"),
                pl.lit(self.spec.name).alias("strategy"),
                pl.lit(self.cfg).alias("config_hash"),
                "entry_ts",
                "entry_date",
                "entry_time",
                pl.lit(None, pl.Date).alias("expiry"),
                pl.lit(None, pl.Int32).alias("dte"),
                pl.lit(None, pl.Float64).alias("credit_per_share"),
                pl.lit("rejected").alias("decision"),
                "reason",
            )
            df = pl.concat([df, r.cast(DECISION_SCHEMA)])  # type: ignore[arg-type]
        return df.sort(["entry_ts", "candidate_id"])


class _Context:
    """What every trade of one pass shares: the spec, its hash, the fill and fee parameters,
    deadlines per contract."""

    def __init__(self, spec: StrategySpec) -> None:
        self.spec = spec
        self.cfg = spec.config_hash()
        self.fills = spec.fills.params
        self.fees = spec.fees.params
        self._deadlines: dict[tuple[str, dt.date], int] = {}

    def deadline(self, root: str, expiry: dt.date) -> int:
        key = (root, expiry)
        d = self._deadlines.get(key)
        if d is None:
            d = self._deadlines[key] = exit_deadline(self.spec.management, root, expiry)
        return d


@dataclass
class _Exits:
    """Each candidate's exit under the config's rules (filled for those that pass the
    filters): per share, independent of the size, so computed in one kernel call."""

    out: np.ndarray  # int64 [n, 5]: path index, reason, cost, mae2, mfe2
    settle_c: np.ndarray  # int64 [n], settlement value in cents (0 = none)


def _exits(s1: Stage1Result, ctx: _Context, x: _Inputs) -> _Exits:
    n = x.rows.size
    rows = x.rows.astype(np.int64)
    off = np.asarray(s1.offsets, np.int64)
    a, b = off[rows], off[rows + 1]
    settle_c = to_cents(np.asarray(s1.settle_value, np.float64)[rows]).astype(np.int64)
    have = settle_c != NO_PRICE
    settle_c[~have] = 0
    close = np.asarray(x.cols["close_ts"], np.int64) if n else np.empty(0, np.int64)
    last = np.asarray(s1.path_ts)[np.maximum(b - 1, 0)] if n else np.empty(0, np.int64)
    can_settle = have & (b > a) & (last >= close)
    cost = np.empty(n, np.int64)
    k.settlement_costs(settle_c, x.qty, x.strike, x.is_call, x.n_legs, cost)
    deadlines = [ctx.deadline(r, e) for r, e in zip(x.cols["root"], x.cols["expiry"], strict=True)]
    rules = make_rules(ctx.spec, x.credit, x.lo, x.hi, deadlines)
    out = np.zeros((n, 5), np.int64)
    k.scan_exits(
        rows,
        off,
        s1.path_ts,
        s1.path_bid,
        s1.path_ask,
        x.qty,
        x.n_legs,
        ctx.fills,
        rules,
        cost,
        can_settle,
        x.codes == 0,
        out,
    )
    return _Exits(out, settle_c)


def _trade(
    s1: Stage1Result, ctx: _Context, x: _Inputs, j: int, contracts: int, exits: _Exits
) -> tuple[dict, TradeMarks] | None:
    """A taken candidate's exit, fees, P&L and trade record (None: no usable exit quote)."""
    i = int(x.rows[j])
    cols = x.cols
    n = int(x.n_legs[j])
    credit, lo, hi = int(x.credit[j]), int(x.lo[j]), int(x.hi[j])
    root, expiry = cols["root"][j], cols["expiry"][j]
    a, b = int(s1.offsets[i]), int(s1.offsets[i + 1])
    ts, pb, pa = s1.path_ts[a:b], s1.path_bid[a:b], s1.path_ask[a:b]
    qty = x.qty[j]
    settle_c = int(exits.settle_c[j])
    idx, code, cost, mae2, mfe2 = (int(v) for v in exits.out[j])
    if code == k.REASON_END_OF_DATA and idx < 0:
        return None
    fee_params = ctx.fees
    entry_px = ctx.spec.fills.leg_cents(x.bid[j, :n], x.ask[j, :n], qty[:n] < 0)
    entry_fees = int(order_fees_mc(entry_px, qty, n, contracts, fee_params))
    if code == k.REASON_SETTLEMENT:
        exit_ts = int(calendar.settlement_ns(root, expiry))
        exit_px = intrinsic_cents(settle_c, x.strike[j, :n], x.is_call[j, :n])
        exit_fees = 0
    else:
        exit_ts = int(ts[idx])
        exit_px = ctx.spec.fills.leg_cents(pb[idx, :n], pa[idx, :n], qty[:n] > 0)
        exit_fees = int(order_fees_mc(exit_px, -qty, n, contracts, fee_params))
    fees = entry_fees + exit_fees
    pnl_mc = (credit - int(cost)) * contracts * _MC_PER_CENT_SHARE - fees
    # mark-to-market path (mid, net of entry fees) until the exit
    upto = b - a if idx < 0 else idx + 1
    mid2 = np.empty(upto, np.int64)
    k.mark_path(pb, pa, qty, n, ctx.fills, lo, hi, upto, mid2)
    ok = mid2 != NO_NET
    mtm = (
        np.where(ok, (2 * credit - mid2) * contracts / 2.0, 0.0)
        - entry_fees / MILLICENTS_PER_DOLLAR
    )
    marks = TradeMarks(ts[:upto], mtm, exit_ts, pnl_mc / MILLICENTS_PER_DOLLAR)
    row = _record(
        s1,
        ctx,
        x,
        j,
        contracts,
        idx,
        code,
        cost,
        entry_px,
        exit_px,
        fees,
        pnl_mc,
        mae2,
        mfe2,
        exit_ts,
    )
    row["_pnl_mc"] = pnl_mc
    return row, marks


def _record(
    s1: Stage1Result,
    ctx: _Context,
    x: _Inputs,
    j: int,
    contracts: int,
    idx: int,
    code: int,
    cost: int,
    entry_px: np.ndarray,
    exit_px: np.ndarray,
    fees: int,
    pnl_mc: int,
    mae2: int,
    mfe2: int,
    exit_ts: int,
) -> dict:
    """The trade record (:data:`~quantlab.backtest.records.TRADE_SCHEMA`)."""
    spec = ctx.spec
    i = int(x.rows[j])
    c = {name: col[j] for name, col in x.cols.items()}
    cfg = ctx.cfg
    credit, hi = int(x.credit[j]), int(x.hi[j])
    a, b = int(s1.offsets[i]), int(s1.offsets[i + 1])
    exit_ids = s1.leg_ids_at(i, idx if idx >= 0 else b - a - 1)
    cd = CENTS_PER_DOLLAR
    ml = max(hi - credit, 0)
    settled = code == k.REASON_SETTLEMENT
    return {
        "trade_id": ids.trade_id(c["candidate_id"], cfg),
        "candidate_id": c["candidate_id"],
        "strategy": spec.name,
        "config_hash": cfg,
        "entry_ts": c["entry_ts"],
        "exit_ts": exit_ts,
        "entry_date": c["entry_date"],
        "exit_date": calendar.et_date(exit_ts),
        "entry_time": c["entry_time"],
        "root": c["root"],
        "expiry": c["expiry"],
        "dte": c["dte"],
        "structure": spec.structure,
        "delta_target": spec.short_delta,
        "_legs": (i, settled, exit_ids, entry_px, exit_px),
        "contracts": contracts,
        "credit_per_share": credit / cd,
        "exit_cost_per_share": cost / cd,
        "max_loss_per_share": ml / cd,
        "max_loss": ml * contracts * SHARES_PER_CONTRACT / cd,
        "fees": fees / MILLICENTS_PER_DOLLAR,
        "pnl": pnl_mc / MILLICENTS_PER_DOLLAR,
        "exit_reason": k.REASONS[code],
        "mae_per_share": mae2 / (2 * cd),
        "mfe_per_share": mfe2 / (2 * cd),
        "settlement_value": float(s1.settle_value[i]) if settled else None,
    }


def _complete(s1: Stage1Result, trades: list[dict]) -> None:
    """Add what only trades need (legs with their fills, width, settlement source, checksum),
    read from stage 1 for the trades' candidates at once."""
    if not trades:
        return
    rows = [t["_legs"][0] for t in trades]
    extra = s1.candidates[rows].select(_TRADE_COLUMNS).to_dict(as_series=False)
    cd = CENTS_PER_DOLLAR
    for n, t in enumerate(trades):
        _, settled, exit_ids, entry_px, exit_px = t.pop("_legs")
        legs = extra["legs"][n]
        se = extra["settlement_std_error"][n]
        t["legs"] = [
            {
                "occ": lg["occ"],
                "root": t["root"],
                "expiry": t["expiry"],
                "right": lg["right"],
                "strike": lg["strike"],
                "quantity": lg["quantity"],
                "instrument_id_entry": lg["instrument_id_entry"],
                "instrument_id_exit": int(exit_ids[m]),
                "entry_price": int(entry_px[m]) / cd,
                "exit_price": int(exit_px[m]) / cd,
            }
            for m, lg in enumerate(legs)
        ]
        t["width"] = structure_width([lg["strike"] for lg in legs], [lg["right"] for lg in legs])
        t["short_delta"] = extra["short_delta"][n]
        t["forward"] = extra["forward"][n]
        t["settlement_source"] = extra["settlement_source"][n] if settled else None
        t["settlement_std_error"] = se if settled and se is not None and se == se else None
        t["data_checksum"] = extra["data_checksum"][n] or s1.data_checksum


__all__ = ["PortfolioResult", "run_stage2"]
