"""Volatility indexes computed from option chains.

:func:`cboe_variance` is the Cboe VIX methodology's model-free variance of one expiry and
:func:`cboe_index` its 30-day interpolation (×100), as Cboe computes the VIX from SPX/SPXW.
"""

from __future__ import annotations

from quantlab.volatility.cboe import (
    CALL,
    K0_AVERAGE,
    MINUTES_30D,
    MINUTES_PER_YEAR,
    PUT,
    CboeVariance,
    cboe_index,
    cboe_variance,
    cboe_weights,
    vix_from_chain,
)

__all__ = [
    "CALL",
    "K0_AVERAGE",
    "MINUTES_30D",
    "MINUTES_PER_YEAR",
    "PUT",
    "CboeVariance",
    "cboe_index",
    "cboe_variance",
    "cboe_weights",
    "vix_from_chain",
]
