"""The broker protocol the live runner talks to, and its order/fill/position records.

Price convention (the whole protocol): a combo's price is the NET PRICE PER SHARE of one
combo unit, **positive = credit received, negative = debit paid** (quantlab's
:meth:`quantlab.execution.FillModel.net_price` convention). A limit on a credit order is the
minimum credit accepted; a limit on a debit order (negative) is minus the maximum debit paid.
Interactive Brokers quotes a credit BAG order with a NEGATIVE limit price (a BUY of the combo
at -1.20 receives 1.20): the IBKR adapter negates prices in both directions; nothing else does.

Legs are keyed by the OCC symbol (identity across days) with a signed ratio per combo unit
(-1 sold, +1 bought); ``quantity`` is the number of combo units (>= 1).

Orders carry a client ``order_ref`` chosen by the runner deterministically from the decision;
an adapter must make placement idempotent on it (placing an ``order_ref`` that already exists
returns the existing order id, never a second order): that is what makes a restart safe.

Events are polled (:meth:`Broker.order_status`, :meth:`Broker.executions_since`), not pushed:
one code path for the replayed simulator and a socket client, and nothing is lost while the
runner is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import polars as pl

OrderStatus = Literal["submitted", "filled", "cancelled", "rejected"]
TERMINAL: frozenset[str] = frozenset({"filled", "cancelled", "rejected"})


@dataclass(frozen=True)
class ComboLeg:
    """One leg of a combo: OCC symbol and signed ratio per combo unit (-1 sold, +1 bought)."""

    occ: str
    ratio: int


@dataclass
class Order:
    """A combo limit order as the broker knows it."""

    order_id: str
    order_ref: str
    legs: tuple[ComboLeg, ...]
    quantity: int
    limit_price: float  # net per share, + credit / - debit
    placed_ts: int
    status: OrderStatus = "submitted"
    filled_ts: int | None = None
    fill_price: float | None = None  # net per share, + credit / - debit
    filled_quantity: int = 0  # combo units filled so far (a partly filled order is submitted)


@dataclass(frozen=True)
class Fill:
    """One execution of a whole combo order (commissions and fees included, in dollars)."""

    exec_id: str
    order_id: str
    order_ref: str
    ts: int
    legs: tuple[ComboLeg, ...]
    quantity: int
    price: float  # net per share, + credit / - debit
    leg_prices: tuple[float, ...]  # per share, each leg's own (unsigned) price
    fees: float


@dataclass(frozen=True)
class Position:
    """A signed option position (contracts; < 0 short) and its average price per share."""

    occ: str
    quantity: int
    avg_price: float


@dataclass(frozen=True)
class AccountSummary:
    """Account values in dollars: ``equity`` (net liquidation, options marked at mid), ``cash``."""

    account: str
    equity: float
    cash: float


@runtime_checkable
class Broker(Protocol):
    """What the live runner needs of a broker (see the module docstring for conventions)."""

    def connect(self) -> None:
        """Open the session (idempotent)."""

    def disconnect(self) -> None:
        """Close the session (idempotent)."""

    def now(self) -> int:
        """The broker's clock, int64 UTC ns (wall clock live, the replay clock simulated)."""

    def account_summary(self) -> AccountSummary:
        """Equity and cash now."""

    def positions(self) -> list[Position]:
        """Open option positions."""

    def chain_snapshot(self, underlying: str, ts: int) -> pl.DataFrame:
        """The chain as known at ``ts`` (columns of :func:`quantlab.data.read.chain_at`)."""

    def quotes(self, legs: list[str]) -> tuple[list[float], list[float]]:
        """Latest (bid, ask) per OCC symbol (NaN when none)."""

    def place_combo(
        self, legs: tuple[ComboLeg, ...], quantity: int, limit_price: float, order_ref: str
    ) -> str:
        """Submit a combo limit order; returns its id (the existing one for a known ``order_ref``)."""

    def cancel(self, order_id: str) -> None:
        """Cancel an order that is not filled yet (no-op when already terminal)."""

    def order_status(self, order_id: str) -> Order:
        """The order's current state."""

    def executions_since(self, ts: int) -> list[Fill]:
        """Executions stamped at or after ``ts``, in time order."""

    def open_orders(self) -> list[Order]:
        """Orders not yet terminal."""

    def settlement_value(self, root: str, expiry: object) -> float:
        """Cash-settlement value of an expiry (NaN when not known yet)."""
