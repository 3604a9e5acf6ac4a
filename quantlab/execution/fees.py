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
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from quantlab._convert import as_float
from quantlab.config import StrictModel


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
        p = np.abs(as_float("premium", premium))
        sell = np.asarray(is_sell, dtype=bool)
        commission = self.commission(p)
        exchange = np.where(
            p >= self.exchange_fee_break, self.exchange_fee_high, self.exchange_fee_low
        )
        return (
            commission
            + exchange
            + self.regulatory_fee
            + self.clearing_fee
            + np.where(sell, self.sell_fee, 0.0)
        )

    def order_fees(self, premiums: Any, quantities: Any) -> float:
        """Total fees of one order: legs' premiums per share and signed quantities (< 0 = sell).

        The commission minimum applies to the order as a whole.
        """
        p = np.abs(as_float("premiums", premiums)).ravel()
        q = as_float("quantities", quantities).ravel()
        n = np.abs(q)
        sell = q < 0
        total = float(np.sum(self.per_contract(p, sell) * n))
        commission = float(np.sum(self.commission(p) * n))
        if n.sum() > 0 and commission < self.min_commission_per_order:
            total += self.min_commission_per_order - commission
        return total
