"""Numba kernels of the decision core: spread prices, the exit rule and the exit scan, marks.

Everything here is integer money (:mod:`quantlab.money`): quotes and fills in cents, the mid
cost to close in half-cents (``mid2`` = 2 x mid, so a mid of 0.825 is exact), levels compared by
cross-multiplication with basis points. The same functions serve the backtester (over a whole
stage-1 path) and the live runner (one minute at a time), so a rule exists once.

The exit rule is an int64 array (``R_*`` indices), built by :class:`quantlab.strategy.exits.
ExitRule`:

- take profit at X % of max profit: close when ``cost <= (1 - X/100) * credit``, i.e.
  ``BP * 2 * cost <= 2 * (BP - X_bp) * credit`` (``R_TP``);
- stop at Y % of max profit: ``cost >= (1 + Y/100) * credit`` (``R_SL``);
- the cost is the mid cost (``mid2``) or, with ``trigger_on: exit_fill``, the fill cost x 2;
- a time exit at the first usable minute at or after ``R_DEADLINE``;
- costs are clamped to the structure's payoff bounds ``[R_LO, R_HI]`` (cents per share): a
  defined-risk package never costs more to close than its worst value at expiry, and never
  pays more than its best (by arbitrage; per-leg fills on wide quotes could say otherwise).
"""

from __future__ import annotations

import numpy as np

from quantlab._numba import jit
from quantlab.execution.fills import fill_cents
from quantlab.money import BP, NO_NET

REASON_NONE = -1
REASON_TAKE_PROFIT = 0
REASON_STOP_LOSS = 1
REASON_TIME_EXIT = 2
REASON_SETTLEMENT = 3
REASON_END_OF_DATA = 4
REASONS = ("take_profit", "stop_loss", "time_exit", "settlement", "end_of_data")

(R_CREDIT, R_TP, R_SL, R_USE_TP, R_USE_SL, R_TRIGGER_FILL, R_DEADLINE, R_LO, R_HI) = range(9)
RULE_SIZE = 9
UNBOUNDED = 2**60


@jit(inline="always")
def close_cost(bid, ask, qty, n_legs, fill_params, lo, hi):
    """``(mid2, fill)``: the cost to close one spread at one minute, per share.

    ``mid2`` is twice the mid cost in cents, ``fill`` the cost through the fill model in cents;
    both clamped to ``[lo, hi]`` and ``NO_NET`` when a leg has no usable quote (no ask).
    Legs sold at entry (qty < 0) are bought back, legs bought are sold.
    """
    mid2 = 0
    fill = 0
    for j in range(n_legs):
        a = np.int64(ask[j])
        if a <= 0:
            return NO_NET, NO_NET
        b = max(np.int64(bid[j]), np.int64(0))
        q = np.int64(qty[j])
        mid2 += int(-q * (a + b))
        fill += -q * fill_cents(b, a, q > 0, fill_params)
    if mid2 < 2 * lo:
        mid2 = 2 * lo
    elif mid2 > 2 * hi:
        mid2 = 2 * hi
    if fill < lo:
        fill = lo
    elif fill > hi:
        fill = hi
    return mid2, fill


@jit
def entry_credit(bid, ask, qty, n_legs, fill_params):
    """Net credit per share in cents of opening one spread through the fill model
    (``NO_NET`` when a leg has no usable quote)."""
    total = 0
    for j in range(n_legs):
        a = np.int64(ask[j])
        if a <= 0:
            return NO_NET
        b = np.int64(bid[j])
        q = np.int64(qty[j])
        total += -q * fill_cents(b if b > 0 else 0, a, q < 0, fill_params)
    return total


@jit
def entry_credits(bid, ask, qty, n_legs, fill_params, out):
    """:func:`entry_credit` for every row of ``[n, L]`` quote arrays."""
    for i in range(out.shape[0]):
        out[i] = entry_credit(bid[i], ask[i], qty[i], n_legs[i], fill_params)


@jit(inline="always")
def exit_check(ts, mid2, fill, rule):
    """The exit reason at one minute with a usable quote (``REASON_NONE`` = stay open).

    Order: the time exit, then the stop, then the take profit.
    """
    if ts >= rule[R_DEADLINE]:
        return REASON_TIME_EXIT
    trig2 = 2 * fill if rule[R_TRIGGER_FILL] else mid2
    if rule[R_USE_SL] and BP * trig2 >= rule[R_SL]:
        return REASON_STOP_LOSS
    if rule[R_USE_TP] and BP * trig2 <= rule[R_TP]:
        return REASON_TAKE_PROFIT
    return REASON_NONE


@jit
def exit_at(ts, bid, ask, qty, n_legs, fill_params, rule):
    """One minute of the exit rule: ``(reason, mid2, fill)`` (reason ``REASON_NONE`` and
    ``mid2 == NO_NET`` when a leg has no usable quote). The live runner calls this."""
    mid2, fill = close_cost(bid, ask, qty, n_legs, fill_params, rule[R_LO], rule[R_HI])
    if mid2 == NO_NET:
        return REASON_NONE, mid2, fill
    return exit_check(ts, mid2, fill, rule), mid2, fill


@jit
def scan_exit(ts, bid, ask, qty, n_legs, fill_params, rule, settle_cost, can_settle):
    """Walk a candidate's path after entry and find its exit.

    ``bid``/``ask`` are the path's int32 cents ``[m, W]``. Returns ``(index, reason, cost,
    mae2, mfe2)``: the path row of the exit (-1 at settlement), the reason code, the cost to
    close per share in cents (the settlement cost at settlement), and the worst / best mid
    P&L per share seen while open, in half-cents. A trade still open when its path ends is
    cash-settled at ``settle_cost`` when ``can_settle`` (the path reached the contract's close
    and the settlement value is known); otherwise it ends at its last usable minute
    (``end_of_data``: the store ends first).
    """
    credit2 = 2 * rule[R_CREDIT]
    lo = rule[R_LO]
    hi = rule[R_HI]
    mae2 = 0
    mfe2 = 0
    last = -1
    last_fill = NO_NET
    for i in range(ts.shape[0]):
        mid2, fill = close_cost(bid[i], ask[i], qty, n_legs, fill_params, lo, hi)
        if mid2 == NO_NET:
            continue
        pnl2 = credit2 - mid2
        if pnl2 < mae2:
            mae2 = pnl2
        if pnl2 > mfe2:
            mfe2 = pnl2
        last = i
        last_fill = fill
        r = exit_check(ts[i], mid2, fill, rule)
        if r != REASON_NONE:
            return i, r, fill, mae2, mfe2
    if can_settle:
        return -1, REASON_SETTLEMENT, settle_cost, mae2, mfe2
    return last, REASON_END_OF_DATA, last_fill, mae2, mfe2


@jit
def scan_exits(
    rows, offsets, ts, bid, ask, qty, n_legs, fill_params, rules, settle_cost, can_settle, todo, out
):
    """:func:`scan_exit` of many candidates in one call: row ``j`` of the ``[n, L]`` leg arrays
    and of ``rules`` is stage-1 candidate ``rows[j]`` (path ``offsets[rows[j]]`` to
    ``offsets[rows[j] + 1]``); only rows with ``todo[j]``. ``out[j]`` = ``(index, reason,
    cost, mae2, mfe2)``."""
    for j in range(rows.shape[0]):
        if not todo[j]:
            continue
        i = rows[j]
        a = offsets[i]
        b = offsets[i + 1]
        r = scan_exit(
            ts[a:b],
            bid[a:b],
            ask[a:b],
            qty[j],
            n_legs[j],
            fill_params,
            rules[j],
            settle_cost[j],
            can_settle[j],
        )
        for m in range(5):
            out[j, m] = r[m]


@jit
def settlement_costs(settle_c, qty, strike_c, is_call, n_legs, out):
    """:func:`settlement_cost` of every row of ``[n, L]`` leg arrays."""
    for j in range(out.shape[0]):
        out[j] = settlement_cost(settle_c[j], qty[j], strike_c[j], is_call[j], n_legs[j])


@jit(inline="always")
def intrinsic(settle_c, strike_c, is_call):
    """A leg's intrinsic value per share in cents at the settlement value ``settle_c``."""
    v = settle_c - strike_c if is_call else strike_c - settle_c
    return max(np.int64(v), np.int64(0))


@jit
def settlement_cost(settle_c, qty, strike_c, is_call, n_legs):
    """Cost to close per share in cents at cash settlement: the legs' intrinsic values at the
    settlement value, summed (so never beyond the payoff bounds)."""
    cost = 0
    for j in range(n_legs):
        cost += -np.int64(qty[j]) * intrinsic(settle_c, strike_c[j], is_call[j])
    return cost


@jit
def widths_cents(strike_c, is_call, n_legs, out):
    """:func:`width_cents` of every row of ``[n, L]`` leg arrays."""
    for i in range(out.shape[0]):
        out[i] = width_cents(strike_c[i], is_call[i], n_legs[i])


@jit
def width_cents(strike_c, is_call, n_legs):
    """Cents between the outermost strikes of the same right, the widest wing (0 for a single
    leg per right)."""
    best = np.int64(0)
    for right in (False, True):
        lo = np.int64(2**62)
        hi = -lo
        m = 0
        for j in range(n_legs):
            if is_call[j] == right:
                lo = min(lo, np.int64(strike_c[j]))
                hi = max(hi, np.int64(strike_c[j]))
                m += 1
        if m > 1 and hi - lo > best:
            best = hi - lo
    return best


@jit
def payoff_bounds(qty, strike_c, is_call, n_legs):
    """``(lo, hi)``: the least and the most the position can cost to close at expiry, per share
    in cents (``-UNBOUNDED`` / ``UNBOUNDED`` when unbounded)."""
    slope = 0
    for j in range(n_legs):
        if is_call[j]:
            slope += qty[j]
    vmin = UNBOUNDED
    vmax = -UNBOUNDED
    for g in range(n_legs + 1):
        s = 0 if g == n_legs else strike_c[g]
        v = 0
        for j in range(n_legs):
            x = s - strike_c[j] if is_call[j] else strike_c[j] - s
            if x > 0:
                v += np.int64(qty[j]) * x
        if v < vmin:
            vmin = v
        if v > vmax:
            vmax = v
    if slope < 0:
        vmin = -UNBOUNDED
    if slope > 0:
        vmax = UNBOUNDED
    return -vmax, -vmin


@jit
def payoff_bounds_rows(qty, strike_c, is_call, n_legs, lo, hi):
    """:func:`payoff_bounds` of every row of ``[n, L]`` leg arrays, into ``lo``/``hi``."""
    for i in range(lo.shape[0]):
        lo[i], hi[i] = payoff_bounds(qty[i], strike_c[i], is_call[i], n_legs[i])


@jit
def mark_path(bid, ask, qty, n_legs, fill_params, lo, hi, upto, out):
    """``out[i]`` = mid cost to close x 2 (half-cents) at path row ``i < upto``, the last
    valid mark carried over minutes where a leg had no quote (``NO_NET`` before the first)."""
    last = NO_NET
    for i in range(upto):
        mid2, _ = close_cost(bid[i], ask[i], qty, n_legs, fill_params, lo, hi)
        if mid2 != NO_NET:
            last = mid2
        out[i] = last


__all__ = [
    "REASONS",
    "RULE_SIZE",
    "UNBOUNDED",
    "close_cost",
    "entry_credit",
    "entry_credits",
    "exit_at",
    "exit_check",
    "intrinsic",
    "mark_path",
    "payoff_bounds",
    "payoff_bounds_rows",
    "scan_exit",
    "scan_exits",
    "settlement_cost",
    "settlement_costs",
    "width_cents",
    "widths_cents",
]
