"""Stage 2: the portfolio pass of one config over the stage-1 candidates, in time order.

For each candidate the config proposes (in entry order): the entry filters (credit through the
config's fill model, relative spread and minimum bid of every leg), then the risk rules (max open
trades, max new trades per day, no new trade after a stop the same day, daily loss limit), then
sizing (fixed contracts, or a percent of equity at risk on the max loss, compounding), then the
exit read off the candidate's path. Every candidate gets a decision row with its reason.

Filtering candidates (the meta-labeler) re-runs this pass with ``allowed``; it never just drops
trade rows, because the risk rules depend on which trades were open.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.backtest import _exit_kernels as ek
from quantlab.backtest.records import DECISION_SCHEMA, TRADE_SCHEMA
from quantlab.backtest.stage1 import Stage1Result, rules_for
from quantlab.strategy.spec import StrategySpec

NS_PER_MIN = 60_000_000_000


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


def max_loss_per_share(
    qty: np.ndarray, strike: np.ndarray, is_call: np.ndarray, n: int, credit: float
) -> float:
    """Worst payoff at expiry net of the credit (inf for undefined risk)."""
    ks = strike[:n]
    grid = np.concatenate([[0.0], np.sort(ks), [ks.max() * 10.0 + 1.0]])
    payoff = np.zeros(grid.size)
    slope_up = 0.0
    for j in range(n):
        v = np.maximum(grid - ks[j], 0.0) if is_call[j] else np.maximum(ks[j] - grid, 0.0)
        payoff += qty[j] * v
        if is_call[j]:
            slope_up += qty[j]
    if slope_up < 0:
        return math.inf
    return float(max(-(payoff.min() + credit), 0.0))


def _deadline(spec: StrategySpec, expiry: dt.date, root: str, close_ns: int) -> int:
    m = spec.management
    if m.exit_days_before_expiry is not None:
        day = expiry
        for _ in range(m.exit_days_before_expiry):
            day = calendar.previous_session(day)
        t = m.exit_time or dt.time(15, 45)
        return min(calendar.to_ns(dt.datetime.combine(day, t, tzinfo=calendar.ET)), close_ns)
    if m.exit_time is not None:
        last = calendar.last_trade_day(root, expiry)
        return min(
            calendar.to_ns(dt.datetime.combine(last, m.exit_time, tzinfo=calendar.ET)), close_ns
        )
    if m.hold_to_settlement:
        return np.iinfo(np.int64).max
    return close_ns


def _et_date(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=calendar.ET).date()


def entry_filter_reason(
    spec: StrategySpec,
    day: dt.date,
    credit: float,
    bid: np.ndarray,
    ask: np.ndarray,
    qty: np.ndarray,
    vix: float | None,
    events: set[dt.date],
) -> str:
    """The entry filters of a candidate, in order; "" when it passes (shared with live).

    ``bid``/``ask``/``qty`` are the legs' entry quotes and signed quantities, ``credit`` the
    net credit through the fill model, ``vix`` the 30-day index at the decision time.
    """
    f = spec.filters
    mids = 0.5 * (bid + ask)
    rel = (ask - bid) / np.where(mids > 0, mids, np.nan)
    sold = qty < 0
    if f.skip_event_days and day in events:
        return "event_day"
    if (f.vix_min is not None or f.vix_max is not None) and (vix is None or vix != vix):
        return "vix_unavailable"
    if (f.vix_min is not None and vix < f.vix_min) or (f.vix_max is not None and vix > f.vix_max):  # type: ignore[operator]
        return "vix_out_of_range"
    if not np.isfinite(credit) or credit <= 0:
        return "no_credit"
    if np.any(bid[sold] < f.min_bid):
        return "min_bid"
    if np.any(~np.isfinite(rel[sold])) or np.any(rel[sold] > f.max_rel_spread):
        return "max_rel_spread"
    if credit < f.min_credit:
        return "min_credit"
    return ""


def run_stage2(
    s1: Stage1Result, spec: StrategySpec, *, allowed: set[str] | None = None
) -> PortfolioResult:
    """Apply one config's filters, risk rules, sizing and exits to the stage-1 candidates."""
    keys = set(rules_for([spec]))
    cands = s1.candidates.with_row_index("row").filter(pl.col("select_key").is_in(list(keys)))
    rej = s1.rejections.filter(pl.col("select_key").is_in(list(keys)))
    f, fm, m, risk, sz = spec.filters, spec.fills, spec.management, spec.risk, spec.sizing
    kind, k, small, large, thr = fm.kind_code, fm.k, fm.tick_small, fm.tick_large, fm.tick_threshold
    cfg_hash = spec.config_hash()
    decisions: list[dict] = [
        {"candidate_id": hashlib.sha1(f"{r['select_key']}|{r['entry_ts']}".encode()).hexdigest()[:16],
         "strategy": spec.name, "config_hash": cfg_hash, "entry_ts": r["entry_ts"], "entry_date": r["entry_date"],
         "entry_time": r["entry_time"], "expiry": None, "dte": None, "credit_per_share": None,
         "decision": "rejected", "reason": r["reason"]}
        for r in rej.iter_rows(named=True)
    ]  # fmt: skip
    trades: list[dict] = []
    pending: list[tuple[int, float]] = []  # heap of (exit ts, pnl) of trades still open
    realized_total = 0.0
    realized_by_day: dict[dt.date, float] = {}
    day_state: dict[dt.date, dict] = {}
    equity_paths: list[tuple[np.ndarray, np.ndarray, int, float]] = []
    first_valid = spec.entry.mode == "first_valid"
    events = set(calendar.load_events(f.events_file)) if f.skip_event_days else set()
    rows = cands.sort(["entry_ts", "candidate_id"]).iter_rows(named=True)
    for c in rows:
        i = int(c["row"])
        n = int(c["n_legs"])
        qty, strike, is_call = s1.qty[i], s1.strike[i], s1.is_call[i]
        eb, ea = s1.entry_bid[i], s1.entry_ask[i]
        entry_ts, day = int(c["entry_ts"]), c["entry_date"]
        ds = day_state.setdefault(day, {"new": 0, "stopped_at": None, "window_used": False})
        credit = float(ek.entry_credit(eb, ea, qty, n, kind, k, small, large, thr))
        base = {"candidate_id": c["candidate_id"], "strategy": spec.name, "config_hash": cfg_hash,
                "entry_ts": entry_ts, "entry_date": day, "entry_time": c["entry_time"], "expiry": c["expiry"],
                "dte": c["dte"], "credit_per_share": credit}  # fmt: skip

        def reject(reason: str, decision: str = "rejected", _base: dict = base) -> None:
            decisions.append(_base | {"decision": decision, "reason": reason})

        if first_valid and ds["window_used"]:
            reject("later_window", "skipped")
            continue
        if allowed is not None and c["candidate_id"] not in allowed:
            reason = "filtered_by_model"
        else:
            reason = entry_filter_reason(
                spec, day, credit, eb[:n], ea[:n], qty[:n], c["vix"], events
            )
        if reason:
            reject(reason)
            continue
        if first_valid:
            ds["window_used"] = True
        # risk rules, in time order
        while pending and pending[0][0] <= entry_ts:  # trades closed by now are realized
            t_exit, p_exit = heapq.heappop(pending)
            realized_total += p_exit
            d_exit = _et_date(t_exit)
            realized_by_day[d_exit] = realized_by_day.get(d_exit, 0.0) + p_exit
        n_open = len(pending)
        realized_today = realized_by_day.get(day, 0.0)
        equity = sz.capital + realized_total
        if n_open >= risk.max_open_trades:
            reject("max_open_trades", "skipped")
            continue
        if ds["new"] >= risk.max_new_trades_per_day:
            reject("max_new_trades_per_day", "skipped")
            continue
        if risk.no_new_after_stop and ds["stopped_at"] is not None and ds["stopped_at"] <= entry_ts:
            reject("stopped_today", "skipped")
            continue
        if risk.daily_loss_limit is not None and realized_today <= -risk.daily_loss_limit:
            reject("daily_loss_limit", "skipped")
            continue
        ml = max_loss_per_share(qty, strike, is_call, n, credit)
        if not math.isfinite(ml):
            reject("undefined_risk")
            continue
        if sz.mode == "fixed":
            contracts = sz.contracts
        else:
            contracts = int(equity * sz.risk_pct / 100.0 // max(ml * 100.0, 1e-9))
        if contracts < 1:
            reject("size_zero", "skipped")
            continue
        # exit, read off the path
        lo, hi = int(s1.offsets[i]), int(s1.offsets[i + 1])
        ts, pb, pa = s1.quotes(i)
        tp = (
            (1.0 - m.take_profit_pct / 100.0) * credit if m.take_profit_pct is not None else -np.inf
        )
        sl = (1.0 + m.stop_loss_pct / 100.0) * credit if m.stop_loss_pct is not None else np.inf
        close_ns = int(c["close_ts"])
        deadline = _deadline(spec, c["expiry"], c["root"], close_ns)
        reached = ts.size > 0 and int(ts[-1]) >= close_ns
        idx, rcode, exit_cost, mae, mfe = ek.scan_exit(
            ts, pb, pa, qty, strike, is_call, n, credit, tp, sl, m.take_profit_pct is not None,
            m.stop_loss_pct is not None, m.trigger_on == "exit_fill", deadline, float(s1.settle_value[i]),
            bool(reached and m.hold_to_settlement), kind, k, small, large, thr,
        )  # fmt: skip
        reason_name = ek.REASONS[rcode]
        if rcode == ek.REASON_END_OF_DATA and idx < 0:
            reject("no_exit_quotes")
            continue
        if rcode == ek.REASON_SETTLEMENT:
            exit_ts = int(calendar.settlement_ns(c["root"], c["expiry"]))
            exit_px = np.array([
                max((s1.settle_value[i] - strike[j]) if is_call[j] else (strike[j] - s1.settle_value[i]), 0.0)
                for j in range(n)
            ])  # fmt: skip
            exit_fees = 0.0
        else:
            exit_ts = int(ts[idx])
            exit_px = fm.leg_prices(pb[idx, :n], pa[idx, :n], qty[:n] > 0)
            exit_fees = spec.fees.order_fees(exit_px, -qty[:n] * contracts)
        entry_px = fm.leg_prices(eb[:n], ea[:n], qty[:n] < 0)
        entry_fees = spec.fees.order_fees(entry_px, qty[:n] * contracts)
        fees = entry_fees + exit_fees
        pnl = (credit - float(exit_cost)) * 100.0 * contracts - fees
        ds["new"] += 1
        heapq.heappush(pending, (exit_ts, pnl))
        if reason_name == "stop_loss":
            ds_exit = day_state.setdefault(
                _et_date(exit_ts), {"new": 0, "stopped_at": None, "window_used": False}
            )
            if ds_exit["stopped_at"] is None or exit_ts < ds_exit["stopped_at"]:
                ds_exit["stopped_at"] = exit_ts
        decisions.append(base | {"decision": "taken", "reason": ""})
        legs = c["legs"]
        exit_ids = s1.leg_ids_at(i, idx if idx >= 0 else hi - lo - 1)
        trades.append({
            "trade_id": f"{c['candidate_id']}-{cfg_hash[:6]}", "candidate_id": c["candidate_id"],
            "strategy": spec.name, "config_hash": cfg_hash, "entry_ts": entry_ts, "exit_ts": exit_ts,
            "entry_date": day, "exit_date": _et_date(exit_ts), "entry_time": c["entry_time"], "root": c["root"],
            "expiry": c["expiry"], "dte": c["dte"], "structure": spec.structure, "delta_target": spec.short_delta,
            "short_delta": c["short_delta"], "width": float(_width(legs)), "forward": c["forward"],
            "legs": [{"occ": lg["occ"], "root": c["root"], "expiry": c["expiry"], "right": lg["right"],
                      "strike": lg["strike"], "quantity": lg["quantity"], "instrument_id_entry": lg["instrument_id_entry"],
                      "instrument_id_exit": int(exit_ids[j]), "entry_price": float(entry_px[j]),
                      "exit_price": float(exit_px[j])} for j, lg in enumerate(legs)],
            "contracts": contracts, "credit_per_share": credit, "exit_cost_per_share": float(exit_cost),
            "max_loss_per_share": ml, "max_loss": ml * 100.0 * contracts, "fees": fees, "pnl": pnl,
            "exit_reason": reason_name, "mae_per_share": float(mae), "mfe_per_share": float(mfe),
            "data_checksum": s1.data_checksum,
        })  # fmt: skip
        # mark-to-market path of this trade (mid), for the equity curve
        upto = hi - lo if idx < 0 else idx + 1
        mids = _mid_costs(pb[:upto], pa[:upto], qty, n)
        mtm = (credit - mids) * 100.0 * contracts - entry_fees
        equity_paths.append((ts[:upto], mtm, exit_ts, pnl))
    trades_df = (
        pl.DataFrame(trades, schema=TRADE_SCHEMA) if trades else pl.DataFrame(schema=TRADE_SCHEMA)
    )
    dec_df = (
        pl.DataFrame(decisions, schema=DECISION_SCHEMA).sort(["entry_ts", "candidate_id"])
        if decisions
        else pl.DataFrame(schema=DECISION_SCHEMA)
    )
    eq_min, eq_day = _equity(equity_paths, sz.capital, s1)
    return PortfolioResult(spec, trades_df, dec_df, eq_min, eq_day)


def _width(legs: list[dict]) -> float:
    best = 0.0
    for right in ("P", "C"):
        ks = [lg["strike"] for lg in legs if lg["right"] == right]
        if len(ks) > 1:
            best = max(best, max(ks) - min(ks))
    return best


def _mid_costs(bid: np.ndarray, ask: np.ndarray, qty: np.ndarray, n: int) -> np.ndarray:
    b = np.where(np.isfinite(bid[:, :n]), np.maximum(bid[:, :n], 0.0), 0.0)
    mid = 0.5 * (b + ask[:, :n])
    cost = (-qty[:n][None, :] * mid).sum(axis=1)
    # carry the last valid mark over minutes where a leg had no quote
    ok = np.isfinite(cost)
    if not ok.all() and ok.any():
        idx = np.where(ok, np.arange(cost.size), 0)
        np.maximum.accumulate(idx, out=idx)
        cost = cost[idx]
    return cost


def _equity(paths: list, capital: float, s1: Stage1Result) -> tuple[pl.DataFrame, pl.DataFrame]:
    days = s1.days
    if not paths:
        eq_min = pl.DataFrame(
            {"ts": [], "equity": []}, schema={"ts": pl.Int64, "equity": pl.Float64}
        )
    else:
        grid = np.unique(
            np.concatenate([p[0] for p in paths] + [np.array([p[2] for p in paths], np.int64)])
        )
        eq = np.full(grid.size, capital)
        for ts, mtm, exit_ts, pnl in paths:
            if ts.size:
                a = np.searchsorted(grid, ts[0])
                b = np.searchsorted(grid, exit_ts)  # before the exit minute: mark to market
                pos = np.searchsorted(ts, grid[a:b], side="right") - 1
                eq[a:b] += mtm[np.maximum(pos, 0)]
            eq[np.searchsorted(grid, exit_ts) :] += pnl
        eq_min = pl.DataFrame({"ts": grid.astype(np.int64), "equity": eq})
    # end of day equity for every session read
    closes = np.array([calendar.option_close_ns(d) for d in days], dtype=np.int64)
    daily = np.full(closes.size, capital)
    if paths:
        g = eq_min["ts"].to_numpy()
        e = eq_min["equity"].to_numpy()
        pos = np.searchsorted(g, closes, side="right") - 1
        daily = np.where(pos >= 0, e[np.maximum(pos, 0)], capital)
    pnl = np.diff(np.concatenate([[capital], daily]))
    eq_day = pl.DataFrame(
        {"date": days, "equity": daily, "pnl": pnl},
        schema={"date": pl.Date, "equity": pl.Float64, "pnl": pl.Float64},
    )
    return eq_min, eq_day
