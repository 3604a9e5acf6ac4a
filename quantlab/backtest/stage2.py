"""Stage 2: the portfolio pass of one config over the stage-1 candidates, in time order.

Everything that decides a trade comes from the decision core (:mod:`quantlab.strategy`), the
same code the live runner calls each minute:

- the entry credit through the fill model and the entry filters, for all of the config's
  candidates at once (:func:`quantlab.strategy.rules.entry_filter_codes`);
- the gate (``allowed``: the meta-labeler's choice of candidate ids), the risk rules in their
  order and sizing, candidate by candidate in time order: the book kernels of
  :mod:`quantlab.strategy.book_kernels` (which the live runner's :class:`quantlab.strategy.
  book.DecisionBook` calls) replayed in one compiled loop (:func:`quantlab.backtest.replay.
  replay`), which also prices each trade's legs, fees and P&L;
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
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from quantlab import calendar
from quantlab.backtest import replay as rp
from quantlab.backtest.equity import daily_frame, minute_equity, session_closes
from quantlab.backtest.records import DECISION_SCHEMA, TRADE_SCHEMA
from quantlab.backtest.stage1 import Stage1Result, rules_for
from quantlab.money import (
    CENTS_PER_DOLLAR,
    MILLICENTS_PER_DOLLAR,
    NO_NET,
    NO_PRICE,
    SHARES_PER_CONTRACT,
    to_cents,
)
from quantlab.risk import kernels as rk
from quantlab.risk.scenarios import SPOT_MOVES, VOL_MOVES
from quantlab.strategy import book_kernels as bk
from quantlab.strategy import ids
from quantlab.strategy import kernels as k
from quantlab.strategy.book import book_limits, book_params, decision_reason
from quantlab.strategy.exits import exit_deadline, make_rules
from quantlab.strategy.rules import FILTER_REASONS, decision_kind, entry_filter_codes
from quantlab.strategy.spec import StrategySpec
from quantlab.strategy.structure import strike_cents

#: ``datetime.date.toordinal()`` of 1970-01-01 (day numbers of ``datetime64[D]`` -> ordinals)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAY = dt.timedelta(days=1)


class PortfolioResult:
    """One config's stage 2: ``trades``, ``decisions``, ``equity_daily`` and
    ``equity_minutes``, built on first read from the stage-1 paths (most callers only need the
    daily series).

    Pickling builds the minute equity first, unless the result was :meth:`detached` (a pool
    worker's result travels without it and the stage-1 arrays; the receiver, which has the
    same stage 1, calls :meth:`attach`).
    """

    def __init__(
        self,
        spec: StrategySpec,
        trades: pl.DataFrame,
        decisions: pl.DataFrame,
        equity_minutes: pl.DataFrame | MinuteMarks,
        equity_daily: pl.DataFrame,
        stage1: Stage1Result | None = None,
    ) -> None:
        self.spec, self.trades, self.decisions = spec, trades, decisions
        self.equity_daily = equity_daily
        self._minutes = equity_minutes
        self._marks = equity_minutes if isinstance(equity_minutes, MinuteMarks) else None
        self._s1 = stage1

    @property
    def equity_minutes(self) -> pl.DataFrame:
        if isinstance(self._minutes, MinuteMarks):
            if self._s1 is None:
                raise RuntimeError(
                    "this stage-2 result was detached from its stage 1: attach(stage1) first"
                )
            self._minutes = self._minutes.build(self._s1)
        return self._minutes

    @property
    def capital(self) -> float:
        return self.spec.sizing.capital

    def risk(self, *, minutes: bool = True, cadence: str = "minute") -> Any:
        """The trades' greeks, P&L attribution and entry scenarios
        (:class:`quantlab.risk.greeks.TradeRisk`), computed on first call from the stage-1
        paths (``minutes=False``: without the minute frame, as a grid keeps it; ``cadence``:
        :func:`quantlab.risk.greeks.trade_risk`)."""
        cache = self.__dict__.setdefault("_risks", {})
        hit = cache.get((True, cadence)) or (None if minutes else cache.get((False, cadence)))
        if hit is None:
            if self._marks is None or self._s1 is None:
                raise RuntimeError(
                    "risk() needs the result of run_stage2 with its stage 1 (attach(stage1))"
                )
            from quantlab.risk.greeks import trade_risk

            self._s1.require_forwards()
            hit = trade_risk(
                self._s1, self._marks, self.spec, self.trades, minutes=minutes, cadence=cadence
            )
            cache[(minutes, cadence)] = hit
        return hit

    def equity_greeks(self) -> pl.DataFrame:
        """The minute equity with the book's greeks at each stamp (the sums over the trades
        open then, :meth:`quantlab.risk.greeks.TradeRisk.book_minutes`; zero when flat)."""
        from quantlab.risk.greeks import GREEKS

        book = self.risk().book_minutes()
        out = self.equity_minutes.join(book, on="ts", how="left", maintain_order="left")
        return out.with_columns(pl.col(list(GREEKS)).fill_null(0.0))

    def detached(self) -> PortfolioResult:
        """The same result without its stage-1 reference (cheap to send to another process)."""
        marks = self._marks if self._marks is not None else self._minutes
        return PortfolioResult(self.spec, self.trades, self.decisions, marks, self.equity_daily)

    def attach(self, stage1: Stage1Result) -> PortfolioResult:
        """Give a detached result the stage 1 it came from (to build its minute equity)."""
        self._s1 = stage1
        return self

    def __getstate__(self) -> dict[str, Any]:
        if self._s1 is not None:
            self.equity_minutes  # noqa: B018 (built: the stage-1 arrays do not travel)
        return self.__dict__ | {"_s1": None}


@dataclass
class MinuteMarks:
    """What the minute equity of a config's trades is built from, with the stage-1 paths:
    each trade's first path row and rows held, legs, bounds, credit, money, exit and P&L."""

    path_row: np.ndarray
    upto: np.ndarray
    qty: np.ndarray
    n_legs: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    credit: np.ndarray
    money: np.ndarray
    exit_ts: np.ndarray
    pnl: np.ndarray
    fill: np.ndarray
    capital: float
    rows: np.ndarray  # int64 [n]: each trade's stage-1 candidate row
    settle_ns: np.ndarray  # int64 [n]: when its contract settles
    settle_value: np.ndarray  # float64 [n]: the settlement value it exited at (NaN: none)

    def build(self, s1: Stage1Result) -> pl.DataFrame:
        """:func:`quantlab.backtest.equity.minute_equity` of the trades."""
        starts = np.concatenate([[0], np.cumsum(self.upto)]).astype(np.int64)
        at = np.repeat(self.path_row - starts[:-1], self.upto) + np.arange(int(starts[-1]))
        ts = np.asarray(s1.path_ts)[at].astype(np.int64)
        mtm = np.empty(ts.size)
        rp.path_marks(
            self.path_row, self.upto, s1.path_bid, s1.path_ask, self.qty, self.n_legs,
            self.fill, self.lo, self.hi, self.credit, self.money, mtm,
        )  # fmt: skip
        return minute_equity(ts, mtm, starts, self.exit_ts, self.pnl, self.capital)


#: candidate columns of the decision rows
_DECISION_COLUMNS = ("candidate_id", "entry_ts", "entry_date", "entry_time", "expiry", "dte")
#: candidate columns only trades read (fetched for the trades, after the pass)
_TRADE_COLUMNS = (
    "candidate_id",
    "entry_ts",
    "entry_date",
    "entry_time",
    "root",
    "expiry",
    "dte",
    "short_delta",
    "forward",
    "legs",
    "settlement_source",
    "settlement_std_error",
    "data_checksum",
)


@dataclass
class _Inputs:
    """A config's candidates in decision order, with what the rules read of each, in cents."""

    rows: np.ndarray  # stage-1 row of each
    pick: dict[str, pl.Series]  # their decision columns (and root, close_ts, vix, n_legs)
    ts: np.ndarray
    day: np.ndarray  # ordinals of the ET entry dates
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
    cfg: str  # the config's hash
    keys: list[str]  # its selection rules' keys


def _ordinals(dates: pl.Series) -> np.ndarray:
    return dates.cast(pl.Int32).to_numpy().astype(np.int64) + _EPOCH_ORDINAL


def _inputs(s1: Stage1Result, spec: StrategySpec) -> _Inputs:
    c = s1.candidates
    keys = list(rules_for([spec]))
    rows = s1.rows_for(keys)
    cols = [*_DECISION_COLUMNS, "root", "close_ts", "vix", "n_legs", "forward"]
    ts = c.get_column("entry_ts").to_numpy()[rows].astype(np.int64)
    cid = c.get_column("candidate_id").gather(rows)
    order = np.lexsort((cid.to_numpy(), ts))
    if not np.array_equal(order, np.arange(order.size)):
        rows, ts = rows[order], ts[order]
    df = pl.DataFrame([c.get_column(name) for name in cols])[rows]
    pick = {name: df.get_column(name) for name in cols}
    qty = np.ascontiguousarray(s1.qty[rows], dtype=np.int64)
    n_legs = pick["n_legs"].to_numpy().astype(np.int64)
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
    f = spec.filters
    events = calendar.load_events(f.events_file) if f.skip_event_days else ()
    dates: list[dt.date] = pick["entry_date"].to_list() if events else []
    vix = pick["vix"].to_numpy().astype(np.float64)
    codes = entry_filter_codes(spec, dates, credit, bid, ask, qty, hi, vix, events)
    day = _ordinals(pick["entry_date"])
    return _Inputs(
        rows, pick, ts, day, qty, n_legs, bid, ask, strike, is_call, credit, lo, hi, codes,
        spec.config_hash(), keys,
    )  # fmt: skip


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
    x = _inputs(s1, spec)
    ex = _exits(s1, spec, x)
    r = _replay(s1, spec, x, ex, allowed, probabilities)
    taken = np.flatnonzero(r.code == bk.D_TAKEN)
    trades = _trades(s1, spec, x, ex, r, taken)
    decisions = _decisions(s1, spec, x, r)
    marks, eq_day = _equity(s1, spec, x, ex, r, taken)
    return PortfolioResult(spec, trades, decisions, marks, eq_day, s1)


@dataclass
class _Exits:
    """What the exit scan of each candidate needs (the replay scans those it takes) and, for
    those, its result."""

    rules: np.ndarray  # int64 [n, RULE_SIZE]
    settle_c: np.ndarray  # int64 [n], settlement value in cents (0 = none)
    settle_cost: np.ndarray  # int64 [n], cost to close at it
    can_settle: np.ndarray  # bool [n]
    settle_ns: np.ndarray  # int64 [n], when the contract settles
    path_row: np.ndarray  # int64 [n], first path row
    path_len: np.ndarray  # int64 [n]
    out: np.ndarray  # int64 [n, 5], of a trade: path index, reason, cost, mae2, mfe2
    ts: np.ndarray  # int64 [n], of a trade: exit time


def _exits(s1: Stage1Result, spec: StrategySpec, x: _Inputs) -> _Exits:
    n = x.rows.size
    off = np.asarray(s1.offsets, np.int64)
    a, b = off[x.rows], off[x.rows + 1]
    settle_c = to_cents(np.asarray(s1.settle_value, np.float64)[x.rows]).astype(np.int64)
    have = settle_c != NO_PRICE
    settle_c[~have] = 0
    close = x.pick["close_ts"].to_numpy().astype(np.int64)
    last = np.asarray(s1.path_ts)[np.maximum(b - 1, 0)] if n else np.empty(0, np.int64)
    can_settle = have & (b > a) & (last >= close)
    cost = np.empty(n, np.int64)
    k.settlement_costs(settle_c, x.qty, x.strike, x.is_call, x.n_legs, cost)
    contracts = list(zip(x.pick["root"].to_list(), x.pick["expiry"].to_list(), strict=True))
    per = {
        ce: (exit_deadline(spec.management, *ce), calendar.settlement_ns(*ce))
        for ce in set(contracts)
    }
    both = np.array([per[ce] for ce in contracts], np.int64).reshape(n, 2)
    rules = make_rules(spec, x.credit, x.lo, x.hi, both[:, 0])
    return _Exits(
        rules, settle_c, cost, can_settle, both[:, 1].copy(), a, b - a,
        np.zeros((n, 5), np.int64), np.zeros(n, np.int64),
    )  # fmt: skip


@dataclass
class _Replay:
    code: np.ndarray  # int64 [n], book_kernels.D_* or replay.D_NO_EXIT_QUOTES
    money: np.ndarray  # int64 [n, M_SIZE]
    entry_px: np.ndarray  # int64 [n, L], legs' entry fills (cents)
    exit_px: np.ndarray


def _replay(
    s1: Stage1Result,
    spec: StrategySpec,
    x: _Inputs,
    ex: _Exits,
    allowed: Collection[str] | None,
    probabilities: Mapping[str, float] | None,
) -> _Replay:
    n, width = x.qty.shape if x.qty.ndim == 2 else (0, 1)
    cids = x.pick["candidate_id"]
    gated = np.zeros(n, bool) if allowed is None else ~cids.is_in(list(allowed)).to_numpy()
    prob = np.full(n, np.nan)
    if probabilities is not None:
        prob[:] = [probabilities.get(c, np.nan) for c in cids.to_list()]
    params = book_params(spec)
    st, pend = bk.new_state(min(int(params[bk.P_MAX_OPEN]), n) + 1)
    r = _Replay(
        np.zeros(n, np.int64),
        np.zeros((n, rp.M_SIZE), np.int64),
        np.zeros((n, width), np.int64),
        np.zeros((n, width), np.int64),
    )
    first = s1.days[0] if s1.days else dt.date(1970, 1, 1)
    last = max(ex.settle_ns.max(initial=0), x.ts.max(initial=0))
    midnights, ordinals = calendar.et_midnights(first, calendar.et_date(last) + _DAY)
    risk = _risk_inputs(s1, spec, x, ex)
    fail = rp.replay(
        st, pend, params, x.ts, x.day, x.codes.astype(np.int64), gated, x.hi - x.credit, prob,
        x.credit, x.qty, x.n_legs, x.bid, x.ask, x.strike, x.is_call, ex.settle_c,
        ex.path_row, ex.path_len, s1.path_ts, s1.path_bid, s1.path_ask, spec.fills.params,
        spec.fees.params, ex.rules, ex.settle_cost, ex.can_settle, ex.settle_ns, midnights,
        ordinals, r.code, r.money, r.entry_px, r.exit_px, ex.out, ex.ts, risk,
    )  # fmt: skip
    if fail >= 0:
        decision_reason(int(r.code[fail]))  # raises for a missing probability
        raise RuntimeError(f"stage 2: the book could not decide candidate {cids[int(fail)]}")
    return r


def _risk_inputs(s1: Stage1Result, spec: StrategySpec, x: _Inputs, ex: _Exits) -> tuple:
    """The replay's ``risk`` tuple: the greek limits and, when one is set, what the book's
    greeks are computed from (:func:`quantlab.risk.kernels.entry_risk` of every candidate,
    per contract)."""
    limits = book_limits(spec)
    want = bool(bk.has_greek_limit(limits))
    if want:
        s1.require_forwards()
    n = x.qty.shape[0]
    n_scen = SPOT_MOVES.size * VOL_MOVES.size if np.isfinite(limits[bk.L_SCENARIO]) else 0
    strike = np.ascontiguousarray(np.asarray(s1.strike)[x.rows])
    fwd = x.pick["forward"].to_numpy().astype(np.float64)
    iv = np.ascontiguousarray(s1.entry_ivs()[x.rows])
    cand_k = np.zeros((n, bk.K_SIZE))
    cand_scen = np.zeros((n, n_scen))
    if want:
        rk.entry_risk(
            x.ts, ex.settle_ns, spec.rate, fwd, x.qty, strike, x.is_call, x.n_legs, iv,
            SPOT_MOVES, VOL_MOVES, cand_k, cand_scen,
        )  # fmt: skip
    return (
        limits, want, float(spec.rate), s1.path_fwd, strike, fwd, iv, cand_k, cand_scen,
        SPOT_MOVES, VOL_MOVES,
    )  # fmt: skip


def _decisions(s1: Stage1Result, spec: StrategySpec, x: _Inputs, r: _Replay) -> pl.DataFrame:
    """A decision row per candidate, the config's stage-1 rejections with them."""
    cfg = x.cfg
    # one index per reason: the book's codes, then the filters' (len(D_REASONS) + code)
    n_codes = len(bk.D_REASONS)
    vocab = [
        "" if c in (bk.D_FILTER, bk.D_NEED_PROBABILITY) else decision_reason(c)
        for c in range(n_codes)
    ]
    vocab += [*FILTER_REASONS, "no_exit_quotes"]
    idx = np.where(r.code == bk.D_FILTER, n_codes + x.codes, r.code)
    idx = np.where(r.code == rp.D_NO_EXIT_QUOTES, len(vocab) - 1, idx)
    reason = pl.Series("reason", np.array(vocab, object)[idx].tolist(), pl.Utf8)
    kinds = np.array([decision_kind(v) for v in vocab], object)
    kind = pl.Series("decision", kinds[idx].tolist(), pl.Utf8)
    n = x.rows.size
    credit = np.where(x.credit == NO_NET, np.nan, x.credit / CENTS_PER_DOLLAR)
    cols = {name: x.pick[name] for name in _DECISION_COLUMNS} | {
        "strategy": _repeat(spec.name, n),
        "config_hash": _repeat(cfg, n),
        "credit_per_share": _nullable(x.credit != NO_NET, credit),
        "decision": kind,
        "reason": reason,
    }
    df = _frame(cols, DECISION_SCHEMA)
    rej = s1.rejections_for(x.keys)
    if rej.height:
        rj = rej.select(
            pl.col("candidate_id"),
            pl.lit(spec.name).alias("strategy"),
            pl.lit(cfg).alias("config_hash"),
            "entry_ts",
            "entry_date",
            "entry_time",
            pl.lit(None, pl.Date).alias("expiry"),
            pl.lit(None, pl.Int32).alias("dte"),
            pl.lit(None, pl.Float64).alias("credit_per_share"),
            pl.lit("rejected").alias("decision"),
            "reason",
        )
        df = pl.concat([df, rj.cast(DECISION_SCHEMA)]).sort(  # type: ignore[arg-type]
            ["entry_ts", "candidate_id"]
        )
    return df


def _trades(
    s1: Stage1Result, spec: StrategySpec, x: _Inputs, ex: _Exits, r: _Replay, taken: np.ndarray
) -> pl.DataFrame:
    """The trade records (:data:`~quantlab.backtest.records.TRADE_SCHEMA`) of the candidates
    taken, column by column."""
    if taken.size == 0:
        return pl.DataFrame(schema=TRADE_SCHEMA)
    cfg = x.cfg
    rows = x.rows[taken]
    cand = s1.candidates
    df = pl.DataFrame([cand.get_column(name) for name in _TRADE_COLUMNS])[rows]
    c = {name: df.get_column(name) for name in _TRADE_COLUMNS}
    n = taken.size
    cd = CENTS_PER_DOLLAR
    out = ex.out[taken]
    code = out[:, 1]
    settled = code == k.REASON_SETTLEMENT
    money = r.money[taken]
    contracts = money[:, rp.M_CONTRACTS]
    credit, hi = x.credit[taken], x.hi[taken]
    ml = np.maximum(hi - credit, 0)
    widths = np.empty(n, np.int64)
    k.widths_cents(x.strike[taken], x.is_call[taken], x.n_legs[taken], widths)
    se = c["settlement_std_error"].to_numpy()
    checksum = np.array(c["data_checksum"].to_list(), object)
    checksum[(checksum == "") | (checksum == None)] = s1.data_checksum  # noqa: E711
    exit_ts = ex.ts[taken]
    cols = c | {
        "trade_id": [ids.trade_id(cid, cfg) for cid in c["candidate_id"].to_list()],
        "strategy": _repeat(spec.name, n),
        "config_hash": _repeat(cfg, n),
        "exit_ts": exit_ts,
        "exit_date": calendar.et_dates(exit_ts),
        "structure": _repeat(spec.structure, n),
        "delta_target": np.full(n, spec.short_delta, np.float64),
        "width": widths / cd,
        "legs": _legs(s1, x, ex, r, taken, c["legs"]),
        "contracts": contracts.astype(np.int32),
        "credit_per_share": credit / cd,
        "exit_cost_per_share": out[:, 2] / cd,
        "max_loss_per_share": ml / cd,
        "max_loss": ml * contracts * SHARES_PER_CONTRACT / cd,
        "fees": money[:, rp.M_FEES] / MILLICENTS_PER_DOLLAR,
        "pnl": money[:, rp.M_PNL] / MILLICENTS_PER_DOLLAR,
        "exit_reason": [k.REASONS[v] for v in code],
        "mae_per_share": out[:, 3] / (2 * cd),
        "mfe_per_share": out[:, 4] / (2 * cd),
        "settlement_source": [
            v if f else None for v, f in zip(c["settlement_source"].to_list(), settled, strict=True)
        ],
        "settlement_value": _nullable(settled, np.asarray(s1.settle_value)[rows]),
        "settlement_std_error": _nullable(settled & ~np.isnan(se), se),
        "data_checksum": checksum.tolist(),
    }
    return _frame(cols, TRADE_SCHEMA)


def _frame(cols: dict[str, Any], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """A frame of ``schema`` from Series, NumPy arrays or lists (each made a Series once)."""
    out = []
    for name, dtype in schema.items():
        v = cols[name]
        if isinstance(v, np.ndarray) and v.dtype != object:
            v = pl.Series(name, v)
        elif not isinstance(v, pl.Series):
            v = pl.Series(name, v, dtype=dtype)
        out.append(v.alias(name) if v.dtype == dtype else v.alias(name).cast(dtype))
    return pl.DataFrame(out)


def _repeat(value: Any, n: int) -> pl.Series:
    return pl.Series([value]).new_from_index(0, n)


def _nullable(keep: np.ndarray, values: np.ndarray) -> pl.Series:
    """``values`` where ``keep``, null elsewhere."""
    return pl.Series(values).set(pl.Series(~keep), None)


def _legs(
    s1: Stage1Result, x: _Inputs, ex: _Exits, r: _Replay, taken: np.ndarray, legs: pl.Series
) -> pl.Series:
    """Each trade's legs (:data:`~quantlab.backtest.records.LEG`) with their fills, built as
    Arrow arrays (one list per trade)."""
    n_legs = x.n_legs[taken]
    t = np.repeat(np.arange(taken.size), n_legs)
    m = np.arange(t.size) - np.repeat(np.cumsum(n_legs) - n_legs, n_legs)
    j = taken[t]
    last = np.where(ex.out[taken, 0] >= 0, ex.out[taken, 0], ex.path_len[taken] - 1)
    exit_ids = s1.leg_ids_at_many(x.rows[taken], last)[t, m]
    given = legs.to_arrow().flatten()
    offsets = pa.array(np.concatenate([[0], np.cumsum(n_legs)]).astype(np.int32))
    fields = {
        "occ": given.field("occ"),
        "root": pa.array(x.pick["root"].to_numpy()[taken][t]),
        "expiry": pa.array(x.pick["expiry"].to_numpy()[taken][t]),
        "right": given.field("right"),
        "strike": given.field("strike"),
        "quantity": given.field("quantity"),
        "instrument_id_entry": given.field("instrument_id_entry"),
        "instrument_id_exit": pa.array(exit_ids.astype(np.uint32)),
        "entry_price": pa.array(r.entry_px[j, m] / CENTS_PER_DOLLAR),
        "exit_price": pa.array(r.exit_px[j, m] / CENTS_PER_DOLLAR),
    }
    flat = pa.StructArray.from_arrays(list(fields.values()), names=list(fields))
    out = pl.Series("legs", pa.ListArray.from_arrays(offsets, flat))
    return out.cast(TRADE_SCHEMA["legs"])


def _equity(
    s1: Stage1Result, spec: StrategySpec, x: _Inputs, ex: _Exits, r: _Replay, taken: np.ndarray
) -> tuple[MinuteMarks, pl.DataFrame]:
    """The daily equity (:func:`quantlab.backtest.replay.daily_equity`) and what the minute
    equity is built from (:class:`MinuteMarks`) of the trades taken."""
    idx = ex.out[taken, 0]
    m = MinuteMarks(
        ex.path_row[taken],
        np.where(idx < 0, ex.path_len[taken], idx + 1).astype(np.int64),
        x.qty[taken],
        x.n_legs[taken],
        x.lo[taken],
        x.hi[taken],
        x.credit[taken],
        r.money[taken],
        ex.ts[taken],
        r.money[taken, rp.M_PNL] / MILLICENTS_PER_DOLLAR,
        spec.fills.params,
        float(spec.sizing.capital),
        x.rows[taken],
        ex.settle_ns[taken],
        np.where(
            ex.out[taken, 1] == k.REASON_SETTLEMENT,
            np.asarray(s1.settle_value, np.float64)[x.rows[taken]],
            np.nan,
        ),
    )
    daily = np.empty(len(s1.days))
    rp.daily_equity(
        session_closes(s1.days), m.path_row, m.upto, s1.path_ts, s1.path_bid, s1.path_ask,
        m.qty, m.n_legs, m.fill, m.lo, m.hi, m.credit, m.money, m.exit_ts, m.pnl, m.capital,
        daily,
    )  # fmt: skip
    return m, daily_frame(s1.days, daily, m.capital)


__all__ = ["MinuteMarks", "PortfolioResult", "run_stage2"]
