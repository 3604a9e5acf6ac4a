"""Numba kernels of stage 2: spread prices per minute and the exit scan."""

from __future__ import annotations

import numpy as np

from quantlab._numba import jit
from quantlab.execution.fills import fill_price_scalar

REASON_TAKE_PROFIT = 0
REASON_STOP_LOSS = 1
REASON_TIME_EXIT = 2
REASON_SETTLEMENT = 3
REASON_END_OF_DATA = 4
REASONS = ("take_profit", "stop_loss", "time_exit", "settlement", "end_of_data")


@jit
def close_costs(bid, ask, qty, n_legs, kind, k, small, large, threshold):
    """Cost to close one spread (per share) at mid and through the fill model, one minute.

    Legs sold at entry (qty < 0) are bought back, legs bought are sold. NaN when any leg has no
    usable quote (ask missing or <= 0).
    """
    mid = 0.0
    fill = 0.0
    for j in range(n_legs):
        b = bid[j]
        a = ask[j]
        if not (a == a) or a <= 0.0:
            return np.nan, np.nan
        if not (b == b) or b < 0.0:
            b = 0.0
        q = qty[j]
        m = 0.5 * (b + a)
        buy_back = q < 0
        px = fill_price_scalar(b, a, not buy_back, kind, k, small, large, threshold)
        mid += -q * m
        fill += -q * px
    return mid, fill


@jit
def entry_credit(bid, ask, qty, n_legs, kind, k, small, large, threshold):
    """Net credit per share of opening one spread through the fill model (NaN if unusable)."""
    total = 0.0
    for j in range(n_legs):
        b = bid[j]
        a = ask[j]
        if not (a == a) or a <= 0.0:
            return np.nan
        if not (b == b) or b < 0.0:
            b = 0.0
        q = qty[j]
        px = fill_price_scalar(b, a, q < 0, kind, k, small, large, threshold)
        total += -q * px
    return total


@jit
def settlement_cost(settle, qty, strike, is_call, n_legs):
    """Cost to close at cash settlement: the legs' intrinsic values at the settlement price."""
    cost = 0.0
    for j in range(n_legs):
        if is_call[j]:
            v = settle - strike[j]
        else:
            v = strike[j] - settle
        if v < 0.0:
            v = 0.0
        cost += -qty[j] * v
    return cost


@jit
def scan_exit(ts, bid, ask, qty, strike, is_call, n_legs, credit, tp_level, sl_level, use_tp, use_sl,
              trigger_fill, deadline, settle, reach_settlement, kind, k, small, large, threshold):  # fmt: skip
    """Walk a candidate's minutes after entry and find its exit.

    Returns ``(index, reason, exit_cost, mae, mfe)``: ``index`` into ``ts`` of the exit minute
    (-1 for settlement or no usable minute), the reason code, the cost to close per share that was
    paid, and the worst / best mid P&L per share seen while open. Triggers are checked on the
    mid (or on the exit-fill cost with ``trigger_fill``); the exit fills at the same minute's
    fill-model price, so a gap through a level fills at the price seen, not at the level.
    """
    mae = 0.0
    mfe = 0.0
    last = -1
    last_fill = np.nan
    for i in range(ts.shape[0]):
        mid, fill = close_costs(bid[i], ask[i], qty, n_legs, kind, k, small, large, threshold)
        if not (mid == mid):
            continue
        pnl = credit - mid
        if pnl < mae:
            mae = pnl
        if pnl > mfe:
            mfe = pnl
        last = i
        last_fill = fill
        if ts[i] >= deadline:
            return i, REASON_TIME_EXIT, fill, mae, mfe
        trig = fill if trigger_fill else mid
        if use_sl and trig >= sl_level:
            return i, REASON_STOP_LOSS, fill, mae, mfe
        if use_tp and trig <= tp_level:
            return i, REASON_TAKE_PROFIT, fill, mae, mfe
    if reach_settlement and settle == settle:
        return (
            -1,
            REASON_SETTLEMENT,
            settlement_cost(settle, qty, strike, is_call, n_legs),
            mae,
            mfe,
        )
    return last, REASON_END_OF_DATA, last_fill, mae, mfe
