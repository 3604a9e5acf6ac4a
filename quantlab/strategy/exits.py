"""The exit rule of one trade: take profit, stop, time exit and settlement, in integer money.

An :class:`ExitRule` is built once per trade from the strategy's ``management`` section, the
credit actually filled and the legs; the backtester scans a whole stage-1 path with it
(:func:`scan_exit`) and the live runner asks it about one minute at a time (:meth:`ExitRule.
check`): both go through the same kernels (:mod:`quantlab.strategy.kernels`), so the two can
only agree.

Conventions (the strategy spec's): max profit is the credit ``C`` filled. "Take profit X %"
closes when the cost to close falls to ``(1 - X/100) C`` or below; "stop at Y %" when it rises
to ``(1 + Y/100) C`` or above (a loss of ``Y/100 C``). Both are checked on the spread mid by
default (``trigger_on: mid``) or on the fill-model cost (``exit_fill``), the stop first; the exit
fills at the same minute through the fill model, so a gap through a level fills at the price
seen. A time exit (``exit_time`` on the last trading day, or ``exit_days_before_expiry``) closes
at the first usable minute at or after its deadline. A trade still open when its contract stops
trading is cash-settled at intrinsic value, without fees (:mod:`quantlab.strategy.settlement`).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantlab import calendar
from quantlab.money import BP, exact_units
from quantlab.strategy import kernels as k
from quantlab.strategy.spec import ManagementSpec, StrategySpec

REASONS = k.REASONS
NEVER = np.iinfo(np.int64).max


def exit_deadline(m: ManagementSpec, root: str, expiry: dt.date) -> int:
    """UTC ns from which the trade is closed by time (``NEVER`` when held to settlement).

    ``exit_days_before_expiry: N``: at ``exit_time`` (default 15:45 ET) N sessions before the
    expiry; ``exit_time`` alone: at that time on the contract's last trading day. Never later
    than the contract's close. ``hold_to_settlement: false`` without either: at the close
    (the last minute it trades).
    """
    if m.exit_days_before_expiry is None and m.exit_time is None and m.hold_to_settlement:
        return NEVER
    return _deadline(m.exit_days_before_expiry, m.exit_time, root, expiry)


@functools.lru_cache(maxsize=1 << 14)
def _deadline(
    days_before: int | None, exit_time: dt.time | None, root: str, expiry: dt.date
) -> int:
    close_ns = calendar.contract_close_ns(root, expiry, calendar.last_trade_day(root, expiry))
    if days_before is not None:
        day = expiry
        for _ in range(days_before):
            day = calendar.previous_session(day)
        t = exit_time or dt.time(15, 45)
        return min(calendar.to_ns(dt.datetime.combine(day, t, tzinfo=calendar.ET)), close_ns)
    if exit_time is not None:
        last = calendar.last_trade_day(root, expiry)
        return min(
            calendar.to_ns(dt.datetime.combine(last, exit_time, tzinfo=calendar.ET)), close_ns
        )
    return close_ns


def level_bp(pct: float | None, name: str) -> int:
    """A take-profit or stop percentage in basis points of the credit (exact)."""
    return 0 if pct is None else exact_units(pct, BP // 100, f"management.{name}", "0.01 %")


@dataclass(frozen=True)
class ExitCheck:
    """One minute of the exit rule: ``reason`` ("" = stay open), the cost to close per share
    at mid (``mid2`` = 2 x cents) and through the fill model (cents); ``usable`` False when a
    leg had no quote (nothing was checked)."""

    reason: str
    mid2: int
    fill: int
    usable: bool


class ExitRule:
    """The exit state of one trade; see the module docstring.

    Parameters
    ----------
    spec : StrategySpec
    credit_c : int
        Credit filled per share, cents (max profit).
    lo_c, hi_c : int
        The structure's payoff bounds (:func:`quantlab.strategy.structure.payoff_bounds`).
    deadline : int
        :func:`exit_deadline` of the trade's contract.
    """

    def __init__(self, spec: StrategySpec, credit_c: int, lo_c: int, hi_c: int, deadline: int):
        self.rule = make_rule(spec, credit_c, lo_c, hi_c, deadline)
        self.fill_params = spec.fills.params

    def check(self, ts: int, bid_c: Any, ask_c: Any, qty: Any) -> ExitCheck:
        """The rule at minute ``ts`` on the legs' int cents quotes (``NO_PRICE`` = none)."""
        b = np.asarray(bid_c, dtype=np.int64)
        a = np.asarray(ask_c, dtype=np.int64)
        q = np.asarray(qty, dtype=np.int64)
        code, mid2, fill = k.exit_at(np.int64(ts), b, a, q, q.size, self.fill_params, self.rule)
        usable = int(mid2) != k.NO_NET
        return ExitCheck(REASONS[code] if code >= 0 else "", int(mid2), int(fill), usable)


def make_rule(spec: StrategySpec, credit_c: int, lo_c: int, hi_c: int, deadline: int) -> np.ndarray:
    """The int64 exit-rule array the kernels take (``R_*`` fields of the kernel module)."""
    return make_rules(spec, [credit_c], [lo_c], [hi_c], [deadline])[0]


def make_rules(
    spec: StrategySpec, credit_c: Any, lo_c: Any, hi_c: Any, deadline: Any
) -> np.ndarray:
    """Exit rules of many trades at once, one row each (``int64 [n, RULE_SIZE]``): the
    strategy's levels applied to each trade's credit, payoff bounds and deadline."""
    m = spec.management
    credit = np.asarray(credit_c, np.int64)
    r = np.zeros((credit.size, k.RULE_SIZE), np.int64)
    r[:, k.R_CREDIT] = credit
    r[:, k.R_TP] = 2 * (BP - level_bp(m.take_profit_pct, "take_profit_pct")) * credit
    r[:, k.R_SL] = 2 * (BP + level_bp(m.stop_loss_pct, "stop_loss_pct")) * credit
    r[:, k.R_USE_TP] = m.take_profit_pct is not None
    r[:, k.R_USE_SL] = m.stop_loss_pct is not None
    r[:, k.R_TRIGGER_FILL] = m.trigger_on == "exit_fill"
    r[:, k.R_DEADLINE] = deadline
    r[:, k.R_LO] = lo_c
    r[:, k.R_HI] = hi_c
    return r


def scan_exit(
    ts: np.ndarray,
    bid_c: np.ndarray,
    ask_c: np.ndarray,
    qty: np.ndarray,
    n_legs: int,
    fill_params: np.ndarray,
    rule: np.ndarray,
    settle_cost_c: int,
    can_settle: bool,
) -> tuple[int, int, int, int, int]:
    """Scan a path (int32 cents ``[m, W]``) for its exit; see :func:`quantlab.strategy.
    kernels.scan_exit`."""
    i, code, cost, mae2, mfe2 = k.scan_exit(
        ts, bid_c, ask_c, qty, n_legs, fill_params, rule, settle_cost_c, can_settle
    )
    return int(i), int(code), int(cost), int(mae2), int(mfe2)


__all__ = [
    "NEVER",
    "REASONS",
    "ExitCheck",
    "ExitRule",
    "exit_deadline",
    "make_rule",
    "make_rules",
    "scan_exit",
]
