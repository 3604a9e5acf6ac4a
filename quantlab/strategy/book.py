"""The decision book: risk rules, their order and sizing, over the state of one account.

One :class:`DecisionBook` holds what the risk rules need to know about an account (open trades,
realized P&L per day, stops, entries per day, the entry window) and decides each candidate in
one fixed order. The backtester replays it over the candidates of a config in time order; the
live runner asks it once per candidate at an entry minute and tells it about every fill and
exit; ML evaluation goes through the backtester. So each rule exists once.

Order of the checks (the first that fails names the decision, :func:`quantlab.strategy.rules.
decision_kind` gives its kind):

1. ``later_window``: ``entry.mode: first_valid`` and a candidate passed the filters earlier
   the same day;
2. the gate (a meta-labeler or an allowed set of candidate ids), its own reason;
3. the entry filters (:func:`quantlab.strategy.rules.entry_filter_codes`); a candidate that
   passes them uses the day's window;
4. ``kill_switch``: the caller says entries are halted (the live runner's kill file or loss
   limit);
5. ``max_open_trades``: trades open at the decision time (entered, exit not yet reached);
6. ``max_new_trades_per_day``;
7. ``stopped_today``: ``no_new_after_stop`` and a stop-loss exit on that day at or before now;
8. ``daily_loss_limit``: realized P&L of the day (trades exited at or before now) at or
   below minus the limit;
9. sizing: ``fixed`` contracts; ``risk_pct``: ``floor(equity x risk_pct / max loss per
   contract)`` with equity = capital + P&L realized at or before now (compounding); or
   ``probability``: ``round_half_up(contracts x p)`` of the meta-label probability ``p``;
   ``size_zero`` when that is 0.

Money is integer (:mod:`quantlab.money`): P&L and equity in millicents, max loss in cents per
share, percentages in basis points, so a rule that sits exactly on its limit decides the same
way in the backtest and live.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantlab import calendar
from quantlab.errors import ConfigError
from quantlab.money import (
    BP,
    MILLICENTS_PER_CENT,
    MILLICENTS_PER_DOLLAR,
    SHARES_PER_CONTRACT,
    exact_units,
)
from quantlab.strategy.rules import decision_kind
from quantlab.strategy.spec import StrategySpec


@dataclass
class DayState:
    """What the rules remember about one session."""

    new: int = 0
    window_used: bool = False
    stopped_at: int | None = None


@dataclass(frozen=True)
class Decision:
    """A decision: ``reason`` ("" = taken), its ``kind`` and the contracts (0 unless taken)."""

    reason: str
    kind: str
    contracts: int = 0

    @property
    def taken(self) -> bool:
        return not self.reason


@dataclass
class DecisionBook:
    """The risk-rule state of one account under one strategy; see the module docstring.

    Parameters
    ----------
    spec : StrategySpec
        Its ``entry.mode``, ``risk`` and ``sizing`` are read.
    """

    spec: StrategySpec
    _days: dict[dt.date, DayState] = field(default_factory=dict)
    _open: set[str] = field(default_factory=set)  # entered, exit not known yet
    _closing: list[tuple[int, str, int]] = field(default_factory=list)  # heap (exit ts, id, pnl)
    _realized: int = 0  # millicents, exits at or before the last decision time
    _realized_day: dict[dt.date, int] = field(default_factory=dict)
    _now: int = -(2**63)

    def __post_init__(self) -> None:
        sz, r = self.spec.sizing, self.spec.risk
        self.capital_mc = exact_units(sz.capital, MILLICENTS_PER_DOLLAR, "sizing.capital", "cents")
        self.risk_bp = exact_units(sz.risk_pct, BP // 100, "sizing.risk_pct", "0.01 %")
        self.loss_limit_mc: int | None = None
        if r.daily_loss_limit is not None:
            self.loss_limit_mc = exact_units(
                r.daily_loss_limit, MILLICENTS_PER_DOLLAR, "risk.daily_loss_limit", "cents"
            )
        self.first_valid = self.spec.entry.mode == "first_valid"

    # -- state ------------------------------------------------------------------------------
    def day(self, d: dt.date) -> DayState:
        s = self._days.get(d)
        if s is None:
            s = self._days[d] = DayState()
        return s

    def advance(self, ts: int) -> None:
        """Move the book's clock to ``ts``: exits at or before it become realized."""
        if ts < self._now:
            raise ValueError(f"decisions must come in time order ({ts} < {self._now})")
        self._now = ts
        heap = self._closing
        while heap and heap[0][0] <= ts:
            t, _, pnl = heapq.heappop(heap)
            self._realized += pnl
            d = calendar.et_date(t)
            self._realized_day[d] = self._realized_day.get(d, 0) + pnl

    def n_open(self) -> int:
        """Trades open at the book's clock (entered and not yet exited)."""
        return len(self._open) + len(self._closing)

    def equity_mc(self) -> int:
        """Capital plus the P&L realized at or before the book's clock, millicents."""
        return self.capital_mc + self._realized

    def realized_on(self, d: dt.date) -> int:
        return self._realized_day.get(d, 0)

    def open_trade(self, trade: str, day: dt.date, *, count: bool = True) -> None:
        """A trade was entered (an entry decision the caller acts on); ``count=False`` for one
        whose decision was counted already (a restart placing an order it had decided)."""
        self._open.add(trade)
        if count:
            self.day(day).new += 1

    def cancel(self, trade: str) -> None:
        """An entry that never filled: it no longer counts as open (it still used the day's
        new-trade count, as the decision was taken)."""
        self._open.discard(trade)

    def close_trade(self, trade: str, exit_ts: int, pnl_mc: int, reason: str) -> None:
        """A trade exits at ``exit_ts`` (now or, in a replay, later) with P&L in millicents."""
        self._open.discard(trade)
        heapq.heappush(self._closing, (int(exit_ts), trade, int(pnl_mc)))
        if reason == "stop_loss":
            ds = self.day(calendar.et_date(exit_ts))
            if ds.stopped_at is None or exit_ts < ds.stopped_at:
                ds.stopped_at = int(exit_ts)
        if exit_ts <= self._now:  # live: realized at once
            self.advance(self._now)

    # -- the decision -----------------------------------------------------------------------
    def decide(
        self,
        ts: int,
        day: dt.date,
        *,
        filter_reason: str = "",
        gate_reason: str = "",
        max_loss_c: int = 0,
        probability: float | None = None,
        halted: bool = False,
    ) -> Decision:
        """Decide one candidate at ``ts`` (ET session ``day``); see the module docstring.

        ``max_loss_c`` is the max loss per share in cents at the candidate's credit. A taken
        decision uses the day's window; the caller then calls :meth:`open_trade`.
        """
        self.advance(ts)
        ds = self.day(day)
        if self.first_valid and ds.window_used:
            return self._no("later_window")
        if gate_reason:
            return self._no(gate_reason)
        if filter_reason:
            return self._no(filter_reason)
        if self.first_valid:
            ds.window_used = True
        r = self.spec.risk
        if halted:
            return self._no("kill_switch")
        if self.n_open() >= r.max_open_trades:
            return self._no("max_open_trades")
        if ds.new >= r.max_new_trades_per_day:
            return self._no("max_new_trades_per_day")
        if r.no_new_after_stop and ds.stopped_at is not None and ds.stopped_at <= ts:
            return self._no("stopped_today")
        if self.loss_limit_mc is not None and self.realized_on(day) <= -self.loss_limit_mc:
            return self._no("daily_loss_limit")
        n = self.size(max_loss_c, probability)
        if n < 1:
            return self._no("size_zero")
        return Decision("", "taken", n)

    def size(self, max_loss_c: int, probability: float | None = None) -> int:
        """Contracts for a candidate with max loss ``max_loss_c`` cents per share."""
        sz = self.spec.sizing
        if sz.mode == "fixed":
            return sz.contracts
        if sz.mode == "probability":
            if probability is None:
                raise ConfigError(
                    "sizing.mode 'probability' needs meta-label probabilities: evaluate the "
                    "strategy through a trained meta-labeler (quantlab train) or the live gate."
                )
            return int(probability_contracts(probability, sz.contracts))
        per_contract = max_loss_c * SHARES_PER_CONTRACT * MILLICENTS_PER_CENT
        if per_contract <= 0:
            return 0
        return (self.equity_mc() * self.risk_bp) // (BP * per_contract)

    @staticmethod
    def _no(reason: str) -> Decision:
        return Decision(reason, decision_kind(reason))


def probability_contracts(p: Any, max_contracts: int) -> Any:
    """Bet size from a calibrated probability: ``floor(max_contracts x p + 1/2)`` (half up),
    ``p`` clipped to [0, 1]; an int for a scalar, an int64 array for an array."""
    q = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    out = np.floor(max_contracts * q + 0.5).astype(np.int64)
    return int(out) if out.ndim == 0 else out


__all__ = ["DayState", "Decision", "DecisionBook", "probability_contracts"]
