"""Commissions and exchange fees per contract per side for SPX/SPXW options.

The default schedule is a retail customer at Interactive Brokers (IBKR Pro, Tiered,
<= 10,000 contracts a month, smart-routed to Cboe), as published in November 2026:

======================  ===============================================  =====================
component               rate per contract per side                       source
======================  ===============================================  =====================
IBKR commission         $0.65 premium >= $0.10; $0.50 for $0.05-0.10;    IBKR options
                        $0.25 below $0.05; $1.00 minimum per order       commissions page
Cboe customer fee       $0.36 premium < $1.00; $0.45 premium >= $1.00    Cboe fee schedule, SPX
(SPX, SPXW)                                                              and SPXW (2024-11-01)
Options Regulatory Fee  $0.027                                           IBKR pricing page
OCC clearing            $0.02                                            IBKR pricing page
FINRA TAF               $0.00279, sells only                             IBKR pricing page
SEC Section 31          none (options on securities indexes)             17 CFR 240.31-1
======================  ===============================================  =====================

All-in: about $1.06 (premium $0.50) to $1.15 (premium $5) per contract per side. No fee is
charged at cash settlement. Every figure is a field, so a user can put in their own schedule.

Exactness: fees are computed in integer millicents ($0.00001, :mod:`quantlab.money`) from fill
prices in integer cents, so an order's fees are exact decimals (e.g. $2.20958); every rate must
be a whole number of millicents and every premium tier boundary a whole number of cents.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from quantlab._convert import as_float
from quantlab._numba import jit
from quantlab.config import StrictModel
from quantlab.money import CENTS_PER_DOLLAR, MILLICENTS_PER_DOLLAR, exact_units, to_cents

# index of each rate in FeeSchedule.params (millicents, or cents for the premium tiers)
(
    F_COMM_HIGH,
    F_COMM_HIGH_FROM,
    F_COMM_MID,
    F_COMM_MID_FROM,
    F_COMM_LOW,
    F_MIN_COMM,
    F_EXCH_LOW,
    F_EXCH_HIGH,
    F_EXCH_BREAK,
    F_REG,
    F_CLEAR,
    F_SELL,
) = range(12)
_FIELDS = (
    "commission_high",
    "commission_high_from",
    "commission_mid",
    "commission_mid_from",
    "commission_low",
    "min_commission_per_order",
    "exchange_fee_low",
    "exchange_fee_high",
    "exchange_fee_break",
    "regulatory_fee",
    "clearing_fee",
    "sell_fee",
)
_TIERS = frozenset({"commission_high_from", "commission_mid_from", "exchange_fee_break"})


@jit(inline="always")
def _commission_mc(p: int, params: np.ndarray) -> int:
    if p >= params[F_COMM_HIGH_FROM]:
        return params[F_COMM_HIGH]
    if p >= params[F_COMM_MID_FROM]:
        return params[F_COMM_MID]
    return params[F_COMM_LOW]


@jit
def order_fees_mc(premium_c, quantity, n_legs, contracts, params):
    """Fees of one order in int millicents.

    ``premium_c``: each leg's fill price in cents; ``quantity``: signed per-spread quantity of
    each leg in this order (< 0 = sold); ``contracts``: spreads in the order. The commission
    minimum applies to the order as a whole.
    """
    total = 0
    commission = 0
    count = 0
    for j in range(n_legs):
        q = quantity[j] * contracts
        nq = q if q > 0 else -q
        if nq == 0:
            continue
        p = premium_c[j] if premium_c[j] > 0 else -premium_c[j]
        c = _commission_mc(p, params)
        exch = params[F_EXCH_HIGH] if p >= params[F_EXCH_BREAK] else params[F_EXCH_LOW]
        per = c + exch + params[F_REG] + params[F_CLEAR]
        if q < 0:
            per += params[F_SELL]
        total += per * nq
        commission += c * nq
        count += nq
    if count > 0 and commission < params[F_MIN_COMM]:
        total += params[F_MIN_COMM] - commission
    return total


@functools.lru_cache(maxsize=256)
def _params(values: tuple[float, ...]) -> np.ndarray:
    out = []
    for name, v in zip(_FIELDS, values, strict=True):
        if name in _TIERS:
            out.append(exact_units(v, CENTS_PER_DOLLAR, f"fees.{name}", "cents"))
        else:
            out.append(exact_units(v, MILLICENTS_PER_DOLLAR, f"fees.{name}", "millicents"))
    p = np.array(out, dtype=np.int64)
    p.flags.writeable = False
    return p


class FeeSchedule(StrictModel):
    """Per contract, per side fees; see the module docstring for sources."""

    commission_high: float = Field(0.65, ge=0, description="premium >= commission_high_from")
    commission_high_from: float = Field(0.10, ge=0)
    commission_mid: float = Field(
        0.50, ge=0, description="premium in [commission_mid_from, high_from)"
    )
    commission_mid_from: float = Field(0.05, ge=0)
    commission_low: float = Field(0.25, ge=0, description="premium below commission_mid_from")
    min_commission_per_order: float = Field(1.00, ge=0)
    exchange_fee_low: float = Field(
        0.36, ge=0, description="Cboe fee, premium below exchange_fee_break"
    )
    exchange_fee_high: float = Field(0.45, ge=0)
    exchange_fee_break: float = Field(1.00, ge=0)
    regulatory_fee: float = Field(0.027, ge=0, description="Options Regulatory Fee")
    clearing_fee: float = Field(0.02, ge=0, description="OCC")
    sell_fee: float = Field(0.00279, ge=0, description="FINRA TAF, sells only")

    @field_validator(*_FIELDS)
    @classmethod
    def _exact(cls, v: float, info: Any) -> float:
        if info.field_name in _TIERS:
            exact_units(v, CENTS_PER_DOLLAR, f"fees.{info.field_name}", "cents")
        else:
            exact_units(v, MILLICENTS_PER_DOLLAR, f"fees.{info.field_name}", "millicents")
        return v

    @property
    def params(self) -> np.ndarray:
        """The schedule as the int64 array :func:`order_fees_mc` takes."""
        return _params(tuple(getattr(self, f) for f in _FIELDS))

    def commission(self, premium: np.ndarray) -> np.ndarray:
        """Broker commission per contract for premiums per share (before the order minimum)."""
        p = np.abs(premium)
        return np.where(
            p >= self.commission_high_from,
            self.commission_high,
            np.where(p >= self.commission_mid_from, self.commission_mid, self.commission_low),
        )

    def per_contract(self, premium: Any, is_sell: Any) -> np.ndarray:
        """Fees in dollars for one contract of each leg (premium per share, e.g. 1.25)."""
        p = np.atleast_1d(np.abs(as_float("premium", premium)))
        sell = np.broadcast_to(np.asarray(is_sell, dtype=bool), p.shape)
        out = np.array(
            [
                self.order_fees_cents_mc([c], [-1 if s else 1], apply_minimum=False)
                for c, s in zip(to_cents(p).tolist(), sell.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        return out / MILLICENTS_PER_DOLLAR

    def order_fees_cents_mc(
        self, premium_c: Any, quantities: Any, *, apply_minimum: bool = True
    ) -> int:
        """Fees of one order in int millicents: legs' fill prices in cents, signed quantities."""
        pc = np.ascontiguousarray(np.asarray(premium_c, dtype=np.int64).ravel())
        q = np.ascontiguousarray(np.asarray(quantities, dtype=np.int64).ravel())
        params = self.params
        if not apply_minimum:
            params = params.copy()
            params[F_MIN_COMM] = 0
        return int(order_fees_mc(pc, q, pc.size, 1, params))

    def order_fees(self, premiums: Any, quantities: Any) -> float:
        """Total fees of one order in dollars: legs' premiums per share and signed quantities
        (< 0 = sell). The commission minimum applies to the order as a whole."""
        p = to_cents(np.abs(as_float("premiums", premiums)).ravel())
        q = as_float("quantities", quantities).ravel()
        if np.any(q != np.round(q)):
            raise ValueError(f"quantities must be whole contracts (got {q.tolist()})")
        return self.order_fees_cents_mc(p, q.astype(np.int64)) / MILLICENTS_PER_DOLLAR
