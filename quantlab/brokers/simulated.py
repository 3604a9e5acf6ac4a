"""A simulated broker replaying the quote store through an accelerated clock (paper/shadow offline).

The clock moves minute by minute, as fast as the runner calls :meth:`SimulatedBroker.advance_to`;
quotes at time t are each instrument's last quote stamped at or before t (the store's
point-in-time rule), carried over from an earlier session when a contract has not quoted yet today.

Fill rule: a combo limit order is marketable at a minute when the fill-model net price of that
minute (the same :class:`~quantlab.execution.FillModel` the backtester fills with, per leg, tick
rounded against the trader) is at least as good for the trader as the limit (net price >= limit
in the + credit / - debit convention of :mod:`quantlab.brokers.base`). It then fills, whole, at
the fill-model price (so a limit set at the model price fills at exactly the backtester's price).
It is checked when placed and again at every later minute until filled or cancelled. Commissions
and fees come from the :class:`~quantlab.execution.FeeSchedule` (order minimum per combo order).
Positions past their settlement time are cash-settled at intrinsic value, without fees.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.brokers.base import TERMINAL, AccountSummary, ComboLeg, Fill, Order, Position
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import InputError
from quantlab.execution import FeeSchedule, FillModel
from quantlab.execution.fills import net_of_legs
from quantlab.strategy.occ import parse_occ


class ReplayClock:
    """An accelerated clock: it only moves forward, when told to (int64 UTC ns)."""

    def __init__(self, ts: int = 0) -> None:
        self.ts = int(ts)

    def now(self) -> int:
        return self.ts

    def advance_to(self, ts: int) -> None:
        if ts < self.ts:
            raise InputError(f"the replay clock cannot go back (now {self.ts}, asked {ts}).")
        self.ts = int(ts)


class SimulatedBroker:
    """Paper broker over a quote store; see the module docstring for the fill rule.

    Parameters
    ----------
    store : path
        The data store with ``instruments`` and ``quotes`` partitions.
    day : date
        First session replayed (:meth:`start_day` moves on; positions carry over).
    fill_model, fees : FillModel, FeeSchedule
        The strategy's own models (the ones the backtester uses).
    clock : ReplayClock, optional
        Shared replay clock (a new one starting at the session open by default).
    underlying, capital, account, rate
        Underlying of the store, starting cash, account name, rate for a parity settlement value.
    """

    def __init__(
        self,
        store: st.StoreLike,
        day: dt.date,
        fill_model: FillModel,
        fees: FeeSchedule,
        clock: ReplayClock | None = None,
        *,
        underlying: str = "SPX",
        capital: float = 100_000.0,
        account: str = "SIM",
        rate: float = 0.045,
    ) -> None:
        self.store = store
        self.fill_model = fill_model
        self.fees = fees
        self.underlying = underlying
        self.account = account
        self.rate = rate
        self.clock = clock or ReplayClock(calendar.option_open_ns(day))
        self.cash = float(capital)
        self.connected = False
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.settlements: list[dict[str, Any]] = []
        self._by_ref: dict[str, str] = {}
        self._pos: dict[str, list[float]] = {}  # occ -> [quantity, avg price]
        self._carry: dict[str, tuple[float, float]] = {}
        self._sym: dict[str, int] = {}
        self._settle_cache: dict[tuple[str, dt.date], float] = {}
        self._settle_source: dict[tuple[str, dt.date], str | None] = {}
        self.day: dt.date | None = None
        self.dq: read.DayQuotes | None = None
        self.start_day(day)

    # -- session ----------------------------------------------------------------------------
    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    def now(self) -> int:
        return self.clock.now()

    def start_day(self, day: dt.date) -> None:
        """Load session ``day`` (carrying the last quotes of held or queried contracts)."""
        if self.day == day:
            return
        if self.dq is not None:
            last = int(self.dq.minutes()[-1])
            occs = list(self._carry) + [o for o in self._pos if o not in self._carry]
            bid, ask = self._quotes_at(occs, last)
            for occ, b, a in zip(occs, bid, ask, strict=True):
                self._carry[occ] = (b, a)
        self.day = day
        self.dq = read.load_day(self.store, self.underlying, day)
        self._sym = {s: i for i, s in enumerate(self.dq.instruments["raw_symbol"].to_list())}
        self.clock.advance_to(max(self.clock.now(), calendar.option_open_ns(day)))

    def advance_to(self, ts: int) -> None:
        """Move the clock to ``ts``: settle what expired, then try to fill working orders."""
        self.clock.advance_to(ts)
        self._settle_expired()
        for order in list(self.orders.values()):
            if order.status == "submitted":
                self._try_fill(order)

    # -- market data ------------------------------------------------------------------------
    def _quotes_at(self, occs: list[str], ts: int) -> tuple[list[float], list[float]]:
        assert self.dq is not None
        bid = [math.nan] * len(occs)
        ask = [math.nan] * len(occs)
        pos = [self._sym.get(o, -1) for o in occs]
        have = [i for i, p in enumerate(pos) if p >= 0]
        seen = [False] * len(occs)
        if have:
            a = self.dq.snapshot_arrays(ts, np.array([pos[i] for i in have], np.int64))
            for k, i in enumerate(have):
                if a["quote_ts"][k] >= 0:
                    bid[i], ask[i] = float(a["bid"][k]), float(a["ask"][k])
                    seen[i] = True
        for i, occ in enumerate(occs):  # no quote yet today: carry the last one seen (as stage 1)
            if not seen[i] and occ in self._carry:
                bid[i], ask[i] = self._carry[occ]
        return bid, ask

    def quotes(self, legs: list[str]) -> tuple[list[float], list[float]]:
        for occ in legs:
            self._carry.setdefault(occ, (math.nan, math.nan))
        return self._quotes_at(list(legs), self.clock.now())

    def chain_snapshot(self, underlying: str, ts: int) -> pl.DataFrame:
        if underlying.upper() != self.underlying:
            raise InputError(
                f"this simulated broker replays {self.underlying} (got {underlying!r})."
            )
        if ts > self.clock.now():
            raise InputError(
                f"chain at {ts} is after the replay clock {self.clock.now()} (look-ahead)."
            )
        assert self.dq is not None
        return self.dq.snapshot(ts, _key="all")

    # -- account ----------------------------------------------------------------------------
    def account_summary(self) -> AccountSummary:
        occs = list(self._pos)
        bid, ask = self._quotes_at(occs, self.clock.now()) if occs else ([], [])
        value = 0.0
        for occ, b, a in zip(occs, bid, ask, strict=True):
            mid = 0.5 * (max(b, 0.0) + a) if not math.isnan(a) else self._pos[occ][1]
            value += self._pos[occ][0] * mid * 100.0
        return AccountSummary(self.account, self.cash + value, self.cash)

    def positions(self) -> list[Position]:
        return [Position(o, int(q), p) for o, (q, p) in self._pos.items() if q != 0]

    def restore_positions(self, positions: list[Position]) -> None:
        """Hold ``positions`` (added to what is held): a new replay process taking over the
        book of an earlier one, whose broker lived only in memory (its journal is the record).
        """
        for p in positions:
            q0, p0 = self._pos.get(p.occ, [0.0, 0.0])
            q1 = q0 + p.quantity
            if q1 == 0:
                self._pos.pop(p.occ, None)
            else:
                self._pos[p.occ] = [q1, float(p.avg_price if q0 == 0 else p0)]

    # -- orders -----------------------------------------------------------------------------
    def place_combo(
        self, legs: tuple[ComboLeg, ...], quantity: int, limit_price: float, order_ref: str
    ) -> str:
        if order_ref in self._by_ref:  # idempotent: the same order_ref is the same order
            return self._by_ref[order_ref]
        if not legs or any(leg.ratio == 0 for leg in legs):
            raise InputError(f"a combo needs legs with nonzero ratios (got {legs!r}).")
        if int(quantity) < 1:
            raise InputError(f"quantity must be >= 1 combo unit (got {quantity!r}).")
        if not math.isfinite(limit_price):
            raise InputError(f"limit_price must be finite (got {limit_price!r}).")
        oid = f"SIM-{len(self.orders) + 1}"
        order = Order(oid, order_ref, tuple(legs), int(quantity), float(limit_price), self.now())
        self.orders[oid] = order
        self._by_ref[order_ref] = oid
        self._try_fill(order)
        return oid

    def cancel(self, order_id: str) -> None:
        order = self.order_status(order_id)
        if order.status not in TERMINAL:
            order.status = "cancelled"

    def order_status(self, order_id: str) -> Order:
        if order_id not in self.orders:
            raise InputError(f"unknown order id {order_id!r}.")
        return self.orders[order_id]

    def executions_since(self, ts: int) -> list[Fill]:
        return [f for f in self.fills if f.ts >= ts]

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status not in TERMINAL]

    def _try_fill(self, order: Order) -> None:
        occs = [leg.occ for leg in order.legs]
        bid, ask = self._quotes_at(occs, self.now())
        ratio = np.array([leg.ratio for leg in order.legs], dtype=np.float64)
        px = self.fill_model.leg_prices(bid, ask, ratio < 0)
        if not np.all(np.isfinite(px)):
            return
        net = net_of_legs(ratio, px)
        if net < order.limit_price - 1e-9:
            return
        qty = ratio * order.quantity
        fees = self.fees.order_fees(px, qty)
        order.status, order.filled_ts, order.fill_price = "filled", self.now(), net
        order.filled_quantity = order.quantity
        fill = Fill(
            f"{order.order_id}-E1",
            order.order_id,
            order.order_ref,
            self.now(),
            order.legs,
            order.quantity,
            net,
            tuple(float(p) for p in px),
            fees,
        )
        self.fills.append(fill)
        self.cash += net * 100.0 * order.quantity - fees
        for leg, p in zip(order.legs, px, strict=True):
            q0, p0 = self._pos.get(leg.occ, [0.0, 0.0])
            q1 = q0 + leg.ratio * order.quantity
            if q1 == 0:
                self._pos.pop(leg.occ, None)
            else:
                same = q0 == 0 or (q0 > 0) == (leg.ratio > 0)
                avg = (abs(q0) * p0 + abs(leg.ratio * order.quantity) * p) / abs(q1) if same else p0
                self._pos[leg.occ] = [q1, float(avg)]

    # -- settlement -------------------------------------------------------------------------
    def settlement_value(self, root: str, expiry: object) -> float:
        """The expiry's settlement value from the store (:func:`quantlab.data.settlements.
        lookup`, the value the backtester settles at); NaN before the settlement time or when
        the store has none."""
        from quantlab.data import settlements

        exp = expiry if isinstance(expiry, dt.date) else dt.date.fromisoformat(str(expiry))
        if self.now() < calendar.settlement_ns(root, exp):
            return math.nan
        key = (root, exp)
        if key not in self._settle_cache:
            found = settlements.lookup(self.store, root, exp, underlying=self.underlying)
            self._settle_cache[key] = math.nan if found is None else float(found.value)
            self._settle_source[key] = None if found is None else found.source
        return self._settle_cache[key]

    def settlement_source(self, root: str, expiry: object) -> str | None:
        """Where :meth:`settlement_value` came from (:data:`quantlab.data.settlements.SOURCES`)."""
        exp = expiry if isinstance(expiry, dt.date) else dt.date.fromisoformat(str(expiry))
        self.settlement_value(root, exp)
        return self._settle_source.get((root, exp))

    def _settle_expired(self) -> None:
        for occ in list(self._pos):
            root, expiry, right, strike = parse_occ(occ)
            if self.now() < calendar.settlement_ns(root, expiry):
                continue
            value = self.settlement_value(root, expiry)
            if math.isnan(value):
                continue
            intrinsic = max(value - strike, 0.0) if right == "C" else max(strike - value, 0.0)
            q = self._pos.pop(occ)[0]
            self.cash += q * intrinsic * 100.0
            self.settlements.append(
                {
                    "ts": self.now(),
                    "occ": occ,
                    "quantity": int(q),
                    "settlement_value": value,
                    "intrinsic": intrinsic,
                }
            )
