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
8. the account breakers (realized P&L: trades exited at or before now): ``daily_loss_limit``
   (the day's P&L at or below minus the limit), ``max_drawdown`` (realized equity at least
   ``max_drawdown_pct`` below its running peak), ``weekly_loss_limit`` (the Monday-to-Sunday
   week's), ``loss_streak_pause`` (``max_consecutive_losses`` losing exits in a row: the rest
   of that day and ``loss_pause_days`` weekdays after);
9. sizing: ``fixed`` contracts; ``risk_pct``: ``floor(equity x risk_pct / max loss per
   contract)`` with equity = capital + P&L realized at or before now (compounding); or
   ``probability``: ``round_half_up(contracts x p)`` of the meta-label probability ``p``;
   ``size_zero`` when that is 0;
10. the greek limits, on the open trades' greeks plus the candidate's at its size (the caller
    computes both with :mod:`quantlab.risk`): ``max_portfolio_delta`` (per point, then per
    1 %), ``max_portfolio_vega``, ``max_short_gamma``, ``max_scenario_loss``.

The rules themselves are the numba kernels of :mod:`quantlab.strategy.book_kernels`, over an
integer state this class holds; the backtester's replay calls the same kernels in a compiled
loop. Money is integer (:mod:`quantlab.money`): P&L and equity in millicents, max loss in
cents per share, percentages in basis points, so a rule that sits exactly on its limit decides the same
way in the backtest and live.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantlab import calendar
from quantlab.errors import ConfigError
from quantlab.money import BP, MILLICENTS_PER_DOLLAR, exact_units
from quantlab.strategy import book_kernels as bk
from quantlab.strategy.rules import FILTER_REASONS, decision_kind
from quantlab.strategy.spec import StrategySpec

_NO_GREEKS = np.zeros(bk.K_SIZE)
_NO_SCEN = np.zeros(0)
_NEED_P = (
    "sizing.mode 'probability' needs meta-label probabilities: evaluate the strategy through "
    "a trained meta-labeler (quantlab train) or the live gate."
)


@dataclass(frozen=True)
class Decision:
    """A decision: ``reason`` ("" = taken), its ``kind`` and the contracts (0 unless taken)."""

    reason: str
    kind: str
    contracts: int = 0

    @property
    def taken(self) -> bool:
        return not self.reason


def book_params(spec: StrategySpec) -> np.ndarray:
    """The rule parameters of ``spec`` as the int64 array the kernels read (``P_*`` of
    :mod:`quantlab.strategy.book_kernels`), each converted exactly (an error names a value
    that is not a whole number of cents or of 0.01 %)."""
    sz, r = spec.sizing, spec.risk
    p = np.zeros(bk.P_SIZE, np.int64)
    p[bk.P_FIRST_VALID] = spec.entry.mode == "first_valid"
    p[bk.P_MAX_OPEN] = r.max_open_trades
    p[bk.P_MAX_NEW] = r.max_new_trades_per_day
    p[bk.P_NO_NEW_AFTER_STOP] = bool(r.no_new_after_stop)
    if r.daily_loss_limit is not None:
        p[bk.P_HAS_LOSS_LIMIT] = 1
        p[bk.P_LOSS_LIMIT_MC] = exact_units(
            r.daily_loss_limit, MILLICENTS_PER_DOLLAR, "risk.daily_loss_limit", "cents"
        )
    p[bk.P_SIZING] = bk.SIZING_MODES.index(sz.mode)
    p[bk.P_CONTRACTS] = sz.contracts
    p[bk.P_CAPITAL_MC] = exact_units(sz.capital, MILLICENTS_PER_DOLLAR, "sizing.capital", "cents")
    p[bk.P_RISK_BP] = exact_units(sz.risk_pct, BP // 100, "sizing.risk_pct", "0.01 %")
    if r.max_drawdown_pct is not None:
        p[bk.P_HAS_DRAWDOWN] = 1
        p[bk.P_DRAWDOWN_BP] = exact_units(
            r.max_drawdown_pct, BP // 100, "risk.max_drawdown_pct", "0.01 %"
        )
    if r.weekly_loss_limit is not None:
        p[bk.P_HAS_WEEK_LIMIT] = 1
        p[bk.P_WEEK_LIMIT_MC] = exact_units(
            r.weekly_loss_limit, MILLICENTS_PER_DOLLAR, "risk.weekly_loss_limit", "cents"
        )
    p[bk.P_MAX_STREAK] = r.max_consecutive_losses or 0
    p[bk.P_PAUSE_DAYS] = r.loss_pause_days
    return p


def book_limits(spec: StrategySpec) -> np.ndarray:
    """The greek limits of ``spec`` as the float64 array the kernels read (``L_*`` of
    :mod:`quantlab.strategy.book_kernels`; ``inf`` where none is set)."""
    r = spec.risk
    out = np.full(bk.L_SIZE, np.inf)
    for i, v in (
        (bk.L_DELTA_PT, r.max_delta_per_point),
        (bk.L_DELTA_PCT, r.max_delta_per_pct),
        (bk.L_VEGA, r.max_vega),
        (bk.L_SHORT_GAMMA, r.max_short_gamma),
        (bk.L_SCENARIO, r.max_scenario_loss),
    ):
        if v is not None:
            out[i] = float(v)
    return out


def decision_reason(code: int, filter_code: int = 0, gate_reason: str = "") -> str:
    """The reason of a kernel decision code (the gate's or the filter's own reason for those)."""
    if code == bk.D_GATE:
        return gate_reason or "filtered_by_model"
    if code == bk.D_FILTER:
        return FILTER_REASONS[filter_code]
    if code == bk.D_NEED_PROBABILITY:
        raise ConfigError(_NEED_P)
    return str(bk.D_REASONS[code])


class DecisionBook:
    """The risk-rule state of one account under one strategy; see the module docstring.

    Parameters
    ----------
    spec : StrategySpec
        Its ``entry.mode``, ``risk`` and ``sizing`` are read.
    """

    def __init__(self, spec: StrategySpec) -> None:
        self.spec = spec
        self.params = book_params(spec)
        self.limits = book_limits(spec)
        self.has_greek_limit = bool(bk.has_greek_limit(self.limits))
        self.has_scenario_limit = bool(np.isfinite(self.limits[bk.L_SCENARIO]))
        self.first_valid = bool(self.params[bk.P_FIRST_VALID])
        self.capital_mc = int(self.params[bk.P_CAPITAL_MC])
        self._st, self._pend = bk.new_state(8)
        self._open: set[str] = set()  # entered, exit not known yet

    # -- state ------------------------------------------------------------------------------
    def advance(self, ts: int) -> None:
        """Move the book's clock to ``ts``: exits at or before it become realized."""
        day = calendar.et_date(ts).toordinal()
        if not bk.advance(self._st, self._pend, int(ts), day, self.params):
            raise ValueError(f"decisions must come in time order ({ts} < {self.now})")

    @property
    def now(self) -> int:
        return int(self._st[bk.ST_NOW])

    def n_open(self) -> int:
        """Trades open at the book's clock (entered and not yet exited)."""
        return len(self._open) + int(self._st[bk.ST_N_PEND])

    def equity_mc(self) -> int:
        """Capital plus the P&L realized at or before the book's clock, millicents."""
        return self.capital_mc + int(self._st[bk.ST_REALIZED])

    def open_trade(self, trade: str, day: dt.date, *, count: bool = True) -> None:
        """A trade was entered (an entry decision the caller acts on); ``count=False`` for one
        whose decision was counted already (a restart placing an order it had decided)."""
        self._open.add(trade)
        if count:
            bk.count_entry(self._st, day.toordinal())

    def use_window(self, day: dt.date) -> None:
        """An entry window of ``day`` was used (a restart replaying ``first_valid`` entries)."""
        bk.use_window(self._st, day.toordinal())

    def cancel(self, trade: str) -> None:
        """An entry that never filled: it no longer counts as open (it still used the day's
        new-trade count, as the decision was taken)."""
        self._open.discard(trade)

    def close_trade(self, trade: str, exit_ts: int, pnl_mc: int, reason: str) -> None:
        """A trade exits at ``exit_ts`` (now or, in a replay, later) with P&L in millicents."""
        self._open.discard(trade)
        day = calendar.et_date(exit_ts).toordinal()
        stop = reason == "stop_loss"
        ref = int(self._st[bk.ST_SEQ])
        while not bk.add_exit(
            self._st, self._pend, self.params, int(exit_ts), day, int(pnl_mc), stop, ref
        ):
            self._pend = np.concatenate([self._pend, np.zeros_like(self._pend)])

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
        greeks: tuple[np.ndarray, np.ndarray] | None = None,
        scenarios: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Decision:
        """Decide one candidate at ``ts`` (ET session ``day``); see the module docstring.

        ``max_loss_c`` is the max loss per share in cents at the candidate's credit. With a
        greek limit, ``greeks`` = (the open trades', one contract of the candidate's) ``K_*``
        arrays in dollars and, with a scenario limit, ``scenarios`` = their scenario P&L
        (:mod:`quantlab.risk`). A taken decision uses the day's window; the caller then calls
        :meth:`open_trade`.
        """
        if self.has_greek_limit and greeks is None:
            raise ConfigError("this strategy has greek limits: decide() needs the book's greeks")
        if self.has_scenario_limit and scenarios is None:
            raise ConfigError("risk.max_scenario_loss: decide() needs the book's scenarios")
        port, cand = greeks if greeks is not None else (_NO_GREEKS, _NO_GREEKS)
        pscen, cscen = scenarios if scenarios is not None else (_NO_SCEN, _NO_SCEN)
        code, n = bk.decide(
            self._st,
            self._pend,
            self.params,
            self.limits,
            int(ts),
            day.toordinal(),
            1 if filter_reason else 0,
            bool(gate_reason),
            bool(halted),
            len(self._open),
            int(max_loss_c),
            np.nan if probability is None else float(probability),
            np.asarray(port, np.float64),
            np.asarray(cand, np.float64),
            np.asarray(pscen, np.float64).ravel(),
            np.asarray(cscen, np.float64).ravel(),
        )
        if code < 0:
            raise ValueError(f"decisions must come in time order ({ts} < {self.now})")
        if code == bk.D_TAKEN:
            return Decision("", "taken", int(n))
        return self._no(
            filter_reason if code == bk.D_FILTER else decision_reason(code, 0, gate_reason)
        )

    def size(self, max_loss_c: int, probability: float | None = None) -> int:
        """Contracts for a candidate with max loss ``max_loss_c`` cents per share."""
        p = np.nan if probability is None else float(probability)
        n = int(bk.size(self._st, self.params, int(max_loss_c), p))
        if n < 0:
            raise ConfigError(_NEED_P)
        return n

    @staticmethod
    def _no(reason: str) -> Decision:
        return Decision(reason, decision_kind(reason))


def probability_contracts(p: Any, max_contracts: int) -> Any:
    """Bet size from a calibrated probability: ``floor(max_contracts x p + 1/2)`` (half up),
    ``p`` clipped to [0, 1]; an int for a scalar, an int64 array for an array."""
    q = np.asarray(p, dtype=np.float64)
    out = np.empty(q.size, np.int64)
    bk.probability_sizes(np.ascontiguousarray(q.ravel()), np.int64(max_contracts), out)
    return int(out[0]) if q.ndim == 0 else out.reshape(q.shape)


__all__ = [
    "Decision",
    "DecisionBook",
    "book_limits",
    "book_params",
    "decision_reason",
    "probability_contracts",
]
