"""Fill models: the price a limit order is expected to get, per leg, on SPX ticks.

Shared by the backtester (entries and exits) and the live runner (limit prices). Every fill
takes the side that costs you: a leg you sell fills at or below its mid, a leg you buy at or
above it, and rounding to the option's tick goes against you too.

- ``mid``: each leg at its mid (then rounded against you).
- ``mid_k`` (default, k = 0.30): sell at ``mid - k * spread``, buy at ``mid + k * spread``;
  a credit entry collects ``mid - 0.30 x spread`` per leg, a debit exit pays ``mid + 0.30 x spread``.
- ``natural``: cross the whole spread (sell at the bid, buy at the ask).

SPX/SPXW minimum price variation: $0.05 below $3.00, $0.10 at or above (Cboe).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from quantlab._convert import as_float
from quantlab._numba import jit
from quantlab.config import StrictModel

KIND_CODES = {"mid": 0, "mid_k": 1, "natural": 2}


@jit(inline="always")
def tick_of(price: float, small: float, large: float, threshold: float) -> float:
    return large if price >= threshold else small


@jit(inline="always")
def fill_price_scalar(
    bid: float,
    ask: float,
    sell: bool,
    kind: int,
    k: float,
    small: float,
    large: float,
    threshold: float,
) -> float:
    """Fill price per share of one leg, rounded against the trader; NaN if the quote is unusable."""
    if not (bid == bid and ask == ask) or ask <= 0.0:
        return np.nan
    if bid < 0.0:
        bid = 0.0
    mid = 0.5 * (bid + ask)
    spread = ask - bid if ask >= bid else 0.0
    if kind == 0:
        raw = mid
    elif kind == 1:
        raw = mid - k * spread if sell else mid + k * spread
    else:
        raw = bid if sell else ask
    if raw < 0.0:
        raw = 0.0
    tick = tick_of(raw, small, large, threshold)
    units = raw / tick
    cents = np.floor(tick * 100.0 + 0.5)
    # a hair of slack so prices already on the grid do not move a tick; whole cents out
    if sell:
        return np.floor(units + 1e-9) * cents / 100.0
    return np.ceil(units - 1e-9) * cents / 100.0


@jit
def fill_prices_1d(bid, ask, sell, kind, k, small, large, threshold, out):
    for i in range(out.shape[0]):
        out[i] = fill_price_scalar(bid[i], ask[i], sell[i], kind, k, small, large, threshold)


def tick_size(
    price: Any, small: float = 0.05, large: float = 0.10, threshold: float = 3.0
) -> np.ndarray:
    """SPX/SPXW minimum price variation for each price."""
    p = as_float("price", price)
    return np.where(p >= threshold, large, small)


class FillModel(StrictModel):
    """How entries and exits fill; see the module docstring."""

    kind: Literal["mid", "mid_k", "natural"] = "mid_k"
    k: float = Field(
        0.30, ge=0.0, le=1.0, description="fraction of the bid/ask spread given up per leg"
    )
    tick_small: float = Field(0.05, gt=0)
    tick_large: float = Field(0.10, gt=0)
    tick_threshold: float = Field(3.0, ge=0)

    @property
    def kind_code(self) -> int:
        return KIND_CODES[self.kind]

    def leg_prices(self, bid: Any, ask: Any, sell: Any) -> np.ndarray:
        """Fill price per share of each leg (``sell`` True for a leg you sell)."""
        b = np.ascontiguousarray(as_float("bid", bid)).ravel()
        a = np.ascontiguousarray(as_float("ask", ask)).ravel()
        s = np.ascontiguousarray(np.broadcast_to(np.asarray(sell, dtype=bool), b.shape))
        out = np.empty(b.shape[0], dtype=np.float64)
        fill_prices_1d(
            b,
            a,
            s,
            self.kind_code,
            self.k,
            self.tick_small,
            self.tick_large,
            self.tick_threshold,
            out,
        )
        return out

    def net_price(self, bid: Any, ask: Any, quantity: Any) -> float:
        """Net price per spread: positive = credit received, negative = debit paid.

        ``quantity`` per leg is signed (-1 = sell one, +1 = buy one).
        """
        q = as_float("quantity", quantity).ravel()
        px = self.leg_prices(bid, ask, q < 0)
        return round(float(np.sum(-q * px)), 8)
