"""Compiled loops of stage 2: the decision book replayed over a config's candidates, and the
mark-to-market equity of the trades it took.

:func:`replay` decides every candidate in time order with the book kernels the live runner's
:class:`~quantlab.strategy.book.DecisionBook` calls (:mod:`quantlab.strategy.book_kernels`),
and for each one taken prices its entry and exit legs through the fill model, its fees and its
P&L (integer cents and millicents, :mod:`quantlab.money`), then tells the book about its exit.
:func:`equity_curve` turns the taken trades' paths into the minute equity
(:mod:`quantlab.backtest.equity` frames it).
"""

from __future__ import annotations

import numpy as np

from quantlab._numba import jit
from quantlab.execution.fees import order_fees_mc
from quantlab.execution.fills import fill_cents
from quantlab.money import MILLICENTS_PER_CENT, MILLICENTS_PER_DOLLAR, NO_NET, SHARES_PER_CONTRACT
from quantlab.risk import kernels as rk
from quantlab.strategy import book_kernels as bk
from quantlab.strategy import kernels as k

#: a replay's own decision code: taken by the book, but the path has no usable exit quote
D_NO_EXIT_QUOTES = 100
#: columns of ``money`` (int64 per candidate): contracts, entry fees, all fees, P&L (mc)
M_CONTRACTS, M_ENTRY_FEES, M_FEES, M_PNL = range(4)
M_SIZE = 4
_MC_PER_CENT_SHARE = SHARES_PER_CONTRACT * MILLICENTS_PER_CENT


@jit
def replay(
    st, pend, params, ts, day, filter_code, gated, max_loss_c, prob,
    credit, qty, n_legs, bid, ask, strike, is_call, settle_c,
    path_row, path_len, path_ts, path_bid, path_ask, fill_params, fee_params,
    rules, settle_cost, can_settle, settle_ns, midnights, ordinals,
    code, money, entry_px, exit_px, exits, exit_ts, risk,
):  # fmt: skip
    """Decide candidates ``0..n-1`` in order (``ts``/``day``/``filter_code``/``gated``/
    ``max_loss_c``/``prob`` per candidate) and settle the money of those taken.

    A candidate taken has its path (rows ``path_row[j] .. + path_len[j]``) scanned for its exit
    under ``rules[j]`` (:func:`quantlab.strategy.kernels.scan_exit`, into ``exits[j]``:
    path index, reason, cost, mae2, mfe2); its exit time is that row's stamp or ``settle_ns[j]``
    at cash settlement, its exit day the ordinal of the last ET midnight (``midnights``,
    ascending UTC ns, with their ``ordinals``) at or before it. Writes ``code[j]`` (a ``D_*``
    code of the book, or :data:`D_NO_EXIT_QUOTES`), ``money[j]`` (``M_*``) and the legs' entry
    and exit fills in cents. Returns -1, or the first candidate the book could not decide
    (``code`` -1: out of time order; ``D_NEED_PROBABILITY``; or ``pend`` full).

    ``risk`` (:class:`ReplayRisk` as a tuple) holds the greek limits and what the book's greeks
    are computed from when one is set: at each decision, the open trades' (:func:`book_risk`)
    and one contract of the candidate's.
    """
    limits, want, rate, fwd, strike_f, entry_fwd, entry_iv, cand_k, cand_scen, spot, vol = risk
    port = np.zeros(bk.K_SIZE)
    port_scen = np.zeros(cand_scen.shape[1])
    for j in range(ts.shape[0]):
        if want and bk.advance(st, pend, ts[j], day[j], params):
            book_risk(
                st, pend, ts[j], path_row, path_len, path_ts, path_bid, path_ask, fwd, qty,
                n_legs, strike_f, is_call, settle_ns, rate, entry_fwd, entry_iv, money, spot,
                vol, port, port_scen,
            )  # fmt: skip
        c, n = bk.decide(
            st, pend, params, limits, ts[j], day[j], filter_code[j], gated[j], False, 0,
            max_loss_c[j], prob[j], port, cand_k[j], port_scen, cand_scen[j],
        )  # fmt: skip
        code[j] = c
        if c < 0 or c == bk.D_NEED_PROBABILITY:
            return j
        if c != bk.D_TAKEN:
            continue
        a = path_row[j]
        b = a + path_len[j]
        e = k.scan_exit(
            path_ts[a:b], path_bid[a:b], path_ask[a:b], qty[j], n_legs[j], fill_params,
            rules[j], settle_cost[j], can_settle[j],
        )  # fmt: skip
        for m in range(5):
            exits[j, m] = e[m]
        idx = e[0]
        reason = e[1]
        if reason == k.REASON_END_OF_DATA and idx < 0:
            code[j] = D_NO_EXIT_QUOTES
            continue
        exit_ts[j] = settle_ns[j] if reason == k.REASON_SETTLEMENT else path_ts[a + idx]
        exit_day = ordinals[np.searchsorted(midnights, exit_ts[j], "right") - 1]
        pnl = _settle(
            j, n, reason, a + idx, qty, n_legs, bid, ask, strike, is_call, settle_c,
            path_bid, path_ask, fill_params, fee_params, credit[j] - e[2], money, entry_px,
            exit_px,
        )  # fmt: skip
        bk.count_entry(st, day[j])
        if not bk.add_exit(
            st, pend, params, exit_ts[j], exit_day, pnl, reason == k.REASON_STOP_LOSS, j
        ):
            return j
    return -1


@jit
def book_risk(
    st, pend, ts, path_row, path_len, path_ts, path_bid, path_ask, fwd, qty, n_legs, strike,
    is_call, settle_ns, rate, entry_fwd, entry_iv, money, spot, vol, port, port_scen,
):  # fmt: skip
    """The dollar greeks (``port``, ``K_*``) and scenario P&L (``port_scen``) at ``ts`` of the
    trades open in the book (its pending exits: candidate ``j`` = ``PEND_REF``), each at its
    last path minute at or before ``ts`` (its entry before the first) by
    :func:`quantlab.risk.kernels.state_at`, as the live runner computes them from its chain."""
    for i in range(port.shape[0]):
        port[i] = 0.0
    for i in range(port_scen.shape[0]):
        port_scen[i] = 0.0
    iv = np.empty(qty.shape[1])
    for p in range(st[bk.ST_N_PEND]):
        j = pend[p, bk.PEND_REF]
        a = path_row[j]
        r = a + np.searchsorted(path_ts[a : a + path_len[j]], ts, "right") - 1
        T = rk.year_frac(ts, settle_ns[j])
        df = np.exp(-rate * T)
        if r >= a:
            f = rk.state_at(
                path_bid[r], path_ask[r], fwd[r], T, df, strike[j], is_call[j], n_legs[j],
                entry_fwd[j], entry_iv[j], iv,
            )  # fmt: skip
        else:
            f = entry_fwd[j]
            iv[: n_legs[j]] = entry_iv[j, : n_legs[j]]
        rk.add_position(
            f, T, df, rate, qty[j], strike[j], is_call[j], n_legs[j], iv,
            money[j, M_CONTRACTS], spot, vol, port, port_scen,
        )  # fmt: skip


@jit(inline="always")
def _settle(
    j, n, reason, r, qty, n_legs, bid, ask, strike, is_call, settle_c, path_bid, path_ask,
    fill_params, fee_params, gain_c, money, entry_px, exit_px,
):  # fmt: skip
    """A taken candidate's legs' fills, fees and P&L (millicents) into ``money[j]``."""
    nl = n_legs[j]
    for m in range(nl):
        entry_px[j, m] = fill_cents(bid[j, m], ask[j, m], qty[j, m] < 0, fill_params)
    fees_in = order_fees_mc(entry_px[j], qty[j], nl, n, fee_params)
    fees_out = 0
    if reason == k.REASON_SETTLEMENT:
        for m in range(nl):
            exit_px[j, m] = k.intrinsic(settle_c[j], strike[j, m], is_call[j, m])
    else:
        for m in range(nl):
            exit_px[j, m] = fill_cents(path_bid[r, m], path_ask[r, m], qty[j, m] > 0, fill_params)
        fees_out = order_fees_mc(exit_px[j], -qty[j], nl, n, fee_params)
    pnl = gain_c * n * _MC_PER_CENT_SHARE - fees_in - fees_out
    money[j, M_CONTRACTS] = n
    money[j, M_ENTRY_FEES] = fees_in
    money[j, M_FEES] = fees_in + fees_out
    money[j, M_PNL] = pnl
    return pnl


@jit(inline="always")
def _dollars(mid2, credit_c, n, fee):
    """A trade's mark in dollars from twice the mid cost to close (``NO_NET``: no mark yet):
    the mid P&L x ``n`` contracts, net of the entry ``fee``."""
    if mid2 == NO_NET:
        return -fee
    return (2 * credit_c - mid2) * n / 2.0 - fee


@jit
def path_marks(
    path_row, upto, path_bid, path_ask, qty, n_legs, fill_params, lo, hi, credit, money, out
):  # fmt: skip
    """Each trade's mark in dollars at its path rows ``path_row[t] .. + upto[t]`` (the last
    valid mid carried, :func:`quantlab.strategy.kernels.mark_path`; ``-entry fees`` before
    the first), into ``out`` laid out trade after trade."""
    mid2 = np.empty(upto.max() if upto.shape[0] else 0, np.int64)
    pos = 0
    for t in range(path_row.shape[0]):
        a = path_row[t]
        b = a + upto[t]
        n = money[t, M_CONTRACTS]
        fee = money[t, M_ENTRY_FEES] / MILLICENTS_PER_DOLLAR
        k.mark_path(
            path_bid[a:b], path_ask[a:b], qty[t], n_legs[t], fill_params, lo[t], hi[t], upto[t],
            mid2,
        )  # fmt: skip
        for i in range(upto[t]):
            out[pos] = _dollars(mid2[i], credit[t], n, fee)
            pos += 1


@jit(inline="always")
def _mark_at(
    r, path_row, upto, path_ts, path_bid, path_ask, qty, n_legs, fill, lo, hi, cr, n, fee, t
):
    """Trade ``r``'s mark in dollars at time ``t`` (as :func:`path_marks` has it at the last
    path row at or before ``t``)."""
    a = path_row[r]
    i = np.searchsorted(path_ts[a : a + upto[r]], t, "right") - 1
    while i >= 0:
        mid2, _ = k.close_cost(
            path_bid[a + i], path_ask[a + i], qty[r], n_legs[r], fill, lo[r], hi[r]
        )
        if mid2 != NO_NET:
            return _dollars(mid2, cr[r], n, fee)
        i -= 1
    return -fee


@jit
def daily_equity(
    closes, path_row, upto, path_ts, path_bid, path_ask, qty, n_legs, fill_params, lo, hi,
    credit, money, exit_ts, pnl, capital, out,
):  # fmt: skip
    """Equity at each session close of ``closes``: the same figure :func:`equity_curve` has at
    the last stamp at or before the close (realized P&L summed in exit-time order, stamp by
    stamp, then the marks of the trades open, in trade order), computed at the closes only."""
    order = np.argsort(exit_ts, kind="mergesort")
    m = exit_ts.shape[0]
    stamps = np.empty(m, np.int64)  # distinct exit stamps, ascending, and the running P&L
    cum = np.empty(m)
    u = -1
    acc = 0.0
    step = 0.0
    for q in range(m):
        t = order[q]
        if u < 0 or exit_ts[t] != stamps[u]:
            if u >= 0:
                acc += step
            u += 1
            stamps[u] = exit_ts[t]
            step = 0.0
        step += pnl[t]
        cum[u] = acc + step
    first = np.empty(m, np.int64)
    for t in range(m):
        first[t] = path_ts[path_row[t]] if upto[t] > 0 else exit_ts[t]
    for d in range(closes.shape[0]):
        c = closes[d]
        j = np.searchsorted(stamps[: u + 1], c, "right") - 1
        any_point = j >= 0
        realized = cum[j] if j >= 0 else 0.0
        marks = 0.0
        for t in range(m):
            if first[t] <= c < exit_ts[t] and upto[t] > 0:
                any_point = True
                n = money[t, M_CONTRACTS]
                fee = money[t, M_ENTRY_FEES] / MILLICENTS_PER_DOLLAR
                marks += _mark_at(
                    t, path_row, upto, path_ts, path_bid, path_ask, qty, n_legs, fill_params,
                    lo, hi, credit, n, fee, c,
                )  # fmt: skip
        out[d] = capital + realized + marks if any_point else capital


@jit
def equity_curve(grid, starts, ts, mtm, exit_ts, pnl, capital, out):
    """Equity at each stamp of ``grid`` (sorted, unique): ``capital`` plus the P&L of trades
    exited at or before it plus the marks of those open (a trade's ``ts``/``mtm`` run from
    ``starts[t]`` to ``starts[t + 1]``; its mark holds from its first stamp until its exit)."""
    steps = np.zeros(grid.shape[0])
    marks = np.zeros(grid.shape[0])
    for t in range(exit_ts.shape[0]):
        b = np.searchsorted(grid, exit_ts[t])
        steps[b] += pnl[t]
        s0 = starts[t]
        s1 = starts[t + 1]
        if s1 == s0:
            continue
        g = np.searchsorted(grid, ts[s0])
        p = s0
        while g < b:
            while p + 1 < s1 and ts[p + 1] <= grid[g]:
                p += 1
            marks[g] += mtm[p]
            g += 1
    acc = 0.0
    for i in range(grid.shape[0]):
        acc += steps[i]
        out[i] = capital + acc + marks[i]


__all__ = ["D_NO_EXIT_QUOTES", "M_SIZE", "daily_equity", "equity_curve", "path_marks", "replay"]
