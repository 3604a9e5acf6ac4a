"""The decision book's rules as numba kernels over a small integer state: written once, called
by :class:`quantlab.strategy.book.DecisionBook` (the live runner, one candidate at a time) and
by the backtester's replay (:func:`quantlab.backtest.replay.replay`, every candidate of a
config in one compiled loop). So a rule exists in one place and decides the same way in both.

The state of one account is two int64 arrays:

- ``st`` (``ST_*``): the book's clock, the realized P&L (millicents) at or before it, and what
  the rules remember of the current session (its day number, entries counted, whether an
  entry window was used, whether a stop-loss exit of that day has been realized, the day's
  realized P&L) and the number of pending exits;
- ``pend`` (``[capacity, PEND_SIZE]``): trades whose exit is known but later than the clock
  (exit time, exit day, P&L, stop flag). They count as open until the clock reaches them.

Days are ``datetime.date.toordinal()`` of the ET session. Decisions come in time order, so only
the current session's counters matter; a day later than the current one starts a new session.

The rule parameters are one int64 array (``P_*``) built by :func:`params` of the book.
"""

from __future__ import annotations

import numpy as np

from quantlab._numba import jit
from quantlab.money import BP, MILLICENTS_PER_CENT, SHARES_PER_CONTRACT

(
    ST_NOW,
    ST_REALIZED,
    ST_DAY,
    ST_DAY_NEW,
    ST_DAY_WINDOW,
    ST_DAY_STOPPED,
    ST_DAY_REALIZED,
    ST_N_PEND,
    ST_PEAK,
    ST_WEEK,
    ST_WEEK_REALIZED,
    ST_STREAK,
    ST_PAUSE_END,
    ST_SEQ,
) = range(14)
ST_SIZE = 14
PEND_TS, PEND_DAY, PEND_PNL, PEND_STOP, PEND_SEQ, PEND_REF = range(6)
PEND_SIZE = 6

(
    P_FIRST_VALID,
    P_MAX_OPEN,
    P_MAX_NEW,
    P_NO_NEW_AFTER_STOP,
    P_HAS_LOSS_LIMIT,
    P_LOSS_LIMIT_MC,
    P_SIZING,
    P_CONTRACTS,
    P_CAPITAL_MC,
    P_RISK_BP,
    P_HAS_DRAWDOWN,
    P_DRAWDOWN_BP,
    P_HAS_WEEK_LIMIT,
    P_WEEK_LIMIT_MC,
    P_MAX_STREAK,
    P_PAUSE_DAYS,
) = range(16)
P_SIZE = 16
#: the greek limits (float64 array, ``inf`` = none): on the book after the candidate is added,
#: in dollars (:mod:`quantlab.risk`): |delta| per SPX point, |delta| per 1 % move, |vega| per
#: vol point, short gamma per 1 % squared (``-gamma``), worst scenario loss
(L_DELTA_PT, L_DELTA_PCT, L_VEGA, L_SHORT_GAMMA, L_SCENARIO) = range(5)
L_SIZE = 5
#: the book's greeks (dollars) the caller passes: the open trades', and one contract's of the
#: candidate
(K_DELTA_PT, K_DELTA_PCT, K_VEGA, K_GAMMA_PCT) = range(4)
K_SIZE = 4
SIZING_FIXED, SIZING_RISK_PCT, SIZING_PROBABILITY = range(3)
SIZING_MODES = ("fixed", "risk_pct", "probability")

#: decision codes of :func:`decide`; the gate's and the filters' reasons are the caller's
(
    D_TAKEN,
    D_LATER_WINDOW,
    D_GATE,
    D_FILTER,
    D_KILL,
    D_MAX_OPEN,
    D_MAX_NEW,
    D_STOPPED,
    D_LOSS_LIMIT,
    D_SIZE_ZERO,
    D_NEED_PROBABILITY,
    D_DRAWDOWN,
    D_WEEK_LIMIT,
    D_LOSS_STREAK,
    D_DELTA,
    D_VEGA,
    D_GAMMA,
    D_SCENARIO,
) = range(18)
#: the reason of each code (``None``: the gate's or the filter's own reason)
D_REASONS = (
    "",
    "later_window",
    None,
    None,
    "kill_switch",
    "max_open_trades",
    "max_new_trades_per_day",
    "stopped_today",
    "daily_loss_limit",
    "size_zero",
    None,
    "max_drawdown",
    "weekly_loss_limit",
    "loss_streak_pause",
    "max_portfolio_delta",
    "max_portfolio_vega",
    "max_short_gamma",
    "max_scenario_loss",
)
NEVER = np.iinfo(np.int64).min
_MC_PER_CENT_SHARE = SHARES_PER_CONTRACT * MILLICENTS_PER_CENT


def new_state(capacity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``(st, pend)`` of an account with no history, room for ``capacity`` pending exits."""
    st = np.zeros(ST_SIZE, np.int64)
    st[ST_NOW] = NEVER
    st[ST_DAY] = NEVER
    st[ST_WEEK] = NEVER
    st[ST_PAUSE_END] = NEVER
    return st, np.zeros((max(int(capacity), 1), PEND_SIZE), np.int64)


@jit
def enter_day(st, day):
    """Make ``day`` the current session if it is later than the current one (its counters
    start at zero); returns whether ``day`` is the current session now."""
    if day > st[ST_DAY]:
        st[ST_DAY] = day
        st[ST_DAY_NEW] = 0
        st[ST_DAY_WINDOW] = 0
        st[ST_DAY_STOPPED] = 0
        st[ST_DAY_REALIZED] = 0
        if week_of(day) > st[ST_WEEK]:
            st[ST_WEEK] = week_of(day)
            st[ST_WEEK_REALIZED] = 0
    return day == st[ST_DAY]


@jit(inline="always")
def week_of(day):
    """The Monday-to-Sunday week of a day ordinal (ordinal 1 is a Monday)."""
    return (day - 1) // 7


@jit
def add_weekdays(day, n):
    """The day ordinal ``n`` weekdays (Monday to Friday) after ``day``."""
    d = day
    while n > 0:
        d += 1
        if (d - 1) % 7 < 5:
            n -= 1
    return d


@jit
def advance(st, pend, ts, day, params):
    """Move the clock to ``ts`` (session ``day``): pending exits at or before it become
    realized, in exit-time order (ties in the order they were added): in the day's and the
    week's P&L and the day's stop flag when they exit then, in the realized equity's peak and
    in the run of losing exits (``P_MAX_STREAK`` of them pause entries until
    ``P_PAUSE_DAYS`` weekdays after the day of the last). Returns False when ``ts`` is earlier
    than the clock (nothing changes)."""
    if ts < st[ST_NOW]:
        return False
    enter_day(st, day)
    st[ST_NOW] = ts
    while True:
        best = -1
        for i in range(st[ST_N_PEND]):
            if pend[i, PEND_TS] <= ts and (
                best < 0
                or pend[i, PEND_TS] < pend[best, PEND_TS]
                or (
                    pend[i, PEND_TS] == pend[best, PEND_TS]
                    and pend[i, PEND_SEQ] < pend[best, PEND_SEQ]
                )
            ):
                best = i
        if best < 0:
            return True
        _realize(st, pend[best], params)
        last = st[ST_N_PEND] - 1
        for i in range(best, last):
            for m in range(PEND_SIZE):
                pend[i, m] = pend[i + 1, m]
        st[ST_N_PEND] = last


@jit(inline="always")
def _realize(st, p, params):
    pnl = p[PEND_PNL]
    st[ST_REALIZED] += pnl
    st[ST_PEAK] = max(st[ST_PEAK], st[ST_REALIZED])
    if p[PEND_DAY] == st[ST_DAY]:
        st[ST_DAY_REALIZED] += pnl
        if p[PEND_STOP]:
            st[ST_DAY_STOPPED] = 1
    if week_of(p[PEND_DAY]) == st[ST_WEEK]:
        st[ST_WEEK_REALIZED] += pnl
    if pnl < 0:
        st[ST_STREAK] += 1
        if params[P_MAX_STREAK] > 0 and st[ST_STREAK] >= params[P_MAX_STREAK]:
            st[ST_PAUSE_END] = add_weekdays(p[PEND_DAY], params[P_PAUSE_DAYS])
            st[ST_STREAK] = 0
    else:
        st[ST_STREAK] = 0


@jit
def count_entry(st, day):
    """An entry was taken on ``day``: it counts towards the day's new trades."""
    if enter_day(st, day):
        st[ST_DAY_NEW] += 1


@jit
def use_window(st, day):
    """An entry window of ``day`` was used (``entry.mode: first_valid``)."""
    if enter_day(st, day):
        st[ST_DAY_WINDOW] = 1


@jit
def add_exit(st, pend, params, exit_ts, exit_day, pnl_mc, stop, ref):
    """A trade (the caller's reference ``ref``) exits at ``exit_ts`` with ``pnl_mc``; realized
    at once when that is not later than the clock. Returns False when ``pend`` is full
    (nothing changes)."""
    n = st[ST_N_PEND]
    if n >= pend.shape[0]:
        return False
    pend[n, PEND_TS] = exit_ts
    pend[n, PEND_DAY] = exit_day
    pend[n, PEND_PNL] = pnl_mc
    pend[n, PEND_STOP] = 1 if stop else 0
    pend[n, PEND_SEQ] = st[ST_SEQ]
    pend[n, PEND_REF] = ref
    st[ST_SEQ] += 1
    st[ST_N_PEND] = n + 1
    if exit_ts <= st[ST_NOW]:
        advance(st, pend, st[ST_NOW], st[ST_DAY], params)
    return True


@jit
def probability_size(p, max_contracts):
    """``floor(max_contracts x p + 1/2)`` with ``p`` clipped to [0, 1] (half up)."""
    q = min(max(p, 0.0), 1.0)
    return np.int64(np.floor(max_contracts * q + 0.5))


@jit
def size(st, params, max_loss_c, probability):
    """Contracts for a candidate with max loss ``max_loss_c`` cents per share; -1 when the
    sizing needs a probability and ``probability`` is NaN."""
    mode = params[P_SIZING]
    if mode == SIZING_FIXED:
        return params[P_CONTRACTS]
    if mode == SIZING_PROBABILITY:
        if np.isnan(probability):
            return -1
        return probability_size(probability, params[P_CONTRACTS])
    per_contract = max_loss_c * _MC_PER_CENT_SHARE
    if per_contract <= 0:
        return 0
    equity = params[P_CAPITAL_MC] + st[ST_REALIZED]
    return (equity * params[P_RISK_BP]) // (BP * per_contract)


@jit
def breaker(st, params, day):
    """The account breaker that stops new entries on ``day`` (a ``D_*`` code), or 0: the
    day's loss limit, the drawdown of realized equity from its peak, the week's loss limit,
    the pause after a run of losses."""
    if params[P_HAS_LOSS_LIMIT] and st[ST_DAY_REALIZED] <= -params[P_LOSS_LIMIT_MC]:
        return D_LOSS_LIMIT
    if params[P_HAS_DRAWDOWN]:
        peak = params[P_CAPITAL_MC] + st[ST_PEAK]
        equity = params[P_CAPITAL_MC] + st[ST_REALIZED]
        if (peak - equity) * BP >= params[P_DRAWDOWN_BP] * peak:
            return D_DRAWDOWN
    if params[P_HAS_WEEK_LIMIT] and st[ST_WEEK_REALIZED] <= -params[P_WEEK_LIMIT_MC]:
        return D_WEEK_LIMIT
    if day <= st[ST_PAUSE_END]:
        return D_LOSS_STREAK
    return 0


@jit
def greek_limit(limits, n, port, cand, port_scen, cand_scen):
    """The greek limit the book breaks with ``n`` more contracts of the candidate (a ``D_*``
    code), or 0. ``port``/``cand`` are ``K_*`` arrays in dollars (the open trades'; one
    contract of the candidate's), ``port_scen``/``cand_scen`` their scenario P&L (empty when
    there is no scenario limit)."""
    if abs(port[K_DELTA_PT] + n * cand[K_DELTA_PT]) > limits[L_DELTA_PT]:
        return D_DELTA
    if abs(port[K_DELTA_PCT] + n * cand[K_DELTA_PCT]) > limits[L_DELTA_PCT]:
        return D_DELTA
    if abs(port[K_VEGA] + n * cand[K_VEGA]) > limits[L_VEGA]:
        return D_VEGA
    if -(port[K_GAMMA_PCT] + n * cand[K_GAMMA_PCT]) > limits[L_SHORT_GAMMA]:
        return D_GAMMA
    worst = 0.0
    for i in range(cand_scen.shape[0]):
        worst = min(worst, port_scen[i] + n * cand_scen[i])
    if -worst > limits[L_SCENARIO]:
        return D_SCENARIO
    return 0


@jit
def decide(
    st, pend, params, limits, ts, day, filter_code, gated, halted, n_unknown, max_loss_c, prob,
    port, cand, port_scen, cand_scen,
):  # fmt: skip
    """``(code, contracts)``: one candidate decided at ``ts`` (session ``day``), the rules in
    the order of :mod:`quantlab.strategy.book`. ``n_unknown`` = trades entered whose exit is
    not known yet (live); ``prob`` NaN = none; ``port``... the book's greeks
    (:func:`greek_limit`), read only when ``limits`` has one. Code -1: ``ts`` is before the
    clock."""
    if not advance(st, pend, ts, day, params):
        return -1, 0
    if params[P_FIRST_VALID] and st[ST_DAY_WINDOW]:
        return D_LATER_WINDOW, 0
    if gated:
        return D_GATE, 0
    if filter_code != 0:
        return D_FILTER, 0
    if params[P_FIRST_VALID]:
        st[ST_DAY_WINDOW] = 1
    if halted:
        return D_KILL, 0
    if n_unknown + st[ST_N_PEND] >= params[P_MAX_OPEN]:
        return D_MAX_OPEN, 0
    if st[ST_DAY_NEW] >= params[P_MAX_NEW]:
        return D_MAX_NEW, 0
    if params[P_NO_NEW_AFTER_STOP] and st[ST_DAY_STOPPED]:
        return D_STOPPED, 0
    b = breaker(st, params, day)
    if b != 0:
        return b, 0
    n = size(st, params, max_loss_c, prob)
    if n < 0:
        return D_NEED_PROBABILITY, 0
    if n < 1:
        return D_SIZE_ZERO, 0
    g = greek_limit(limits, n, port, cand, port_scen, cand_scen)
    if g != 0:
        return g, 0
    return D_TAKEN, n


@jit
def has_greek_limit(limits):
    """Whether any greek limit is set (the caller then computes the book's greeks)."""
    for i in range(limits.shape[0]):
        if limits[i] < np.inf:
            return True
    return False


@jit
def probability_sizes(p, max_contracts, out):
    """:func:`probability_size` of every element of ``p``."""
    for i in range(p.shape[0]):
        out[i] = probability_size(p[i], max_contracts)


__all__ = [
    "D_REASONS",
    "K_SIZE",
    "L_SIZE",
    "NEVER",
    "P_SIZE",
    "SIZING_MODES",
    "ST_SIZE",
    "add_exit",
    "add_weekdays",
    "advance",
    "breaker",
    "count_entry",
    "decide",
    "enter_day",
    "greek_limit",
    "has_greek_limit",
    "new_state",
    "probability_size",
    "probability_sizes",
    "size",
    "use_window",
    "week_of",
]
