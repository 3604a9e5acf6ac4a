"""Fill models: the price a limit order is expected to get, per leg, on SPX ticks, in cents.

Shared by the backtester (entries and exits) and the live runner (limit prices). Every fill
takes the side that costs you: a leg you sell fills at or below its mid, a leg you buy at or
above it, and rounding to the option's tick goes against you too.

- ``mid``: each leg at its mid (then rounded against you).
- ``mid_k`` (default, k = 0.30): sell at ``mid - k * spread``, buy at ``mid + k * spread``;
  a credit entry collects ``mid - 0.30 x spread`` per leg, a debit exit pays ``mid + 0.30 x spread``.
- ``natural``: cross the whole spread (sell at the bid, buy at the ask).

SPX/SPXW minimum price variation: $0.05 below $3.00, $0.10 at or above (Cboe).

``slippage`` (default 0) is a fixed extra cost per share per leg, in whole cents, taken after
the tick rounding: a leg you sell fills that much lower (never below 0), a leg you buy that
much higher. It is exact (a slippage of $0.02 costs $2 per contract per leg, wherever the
price sits on the tick grid), so a price with slippage may lie off the tick grid; it is a cost
assumption for backtests and cost curves (:mod:`quantlab.backtest.costs`), and a live config
that used it would set its limit prices that much worse too. At its default it is left out of
the config's dump, so the hashes of configs without it are those from before it existed.

Exactness: the kernel works on integer cents (:mod:`quantlab.money`) with ``k`` held in basis
points, so ``mid - k * spread`` is an exact rational and the tick rounding never depends on a
binary representation error (the price 1.05 on a 5-cent grid stays 1.05). ``k`` must therefore
be a multiple of 0.0001 and the ticks and the slippage whole cents; the config says so if they
are not.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from quantlab._convert import as_float
from quantlab._numba import jit
from quantlab.config import StrictModel
from quantlab.money import (
    BP,
    CENTS_PER_DOLLAR,
    NO_NET,
    NO_PRICE,
    exact_units,
    from_cents,
    to_cents,
)

KIND_CODES = {"mid": 0, "mid_k": 1, "natural": 2}
#: index of each field in :attr:`FillModel.params` (the int64 array the kernels take)
P_KIND, P_K_BP, P_TICK_SMALL, P_TICK_LARGE, P_THRESHOLD, P_SLIPPAGE = range(6)


@jit(inline="always")
def fill_cents(bid: int, ask: int, sell: bool, params: np.ndarray) -> int:
    """Fill price of one leg in cents, rounded to the tick against the trader, then moved
    by the slippage against the trader (a sell never below 0).

    ``bid``/``ask`` are int cents (``NO_PRICE`` = missing); ``params`` is
    :attr:`FillModel.params`. Returns ``NO_PRICE`` when the quote is unusable (no ask, or an
    ask of zero); a missing bid counts as zero.
    """
    if ask < 0 or ask == 0:
        return NO_PRICE
    b = bid if bid > 0 else 0
    a = ask
    spread = a - b if a >= b else 0
    kind = params[P_KIND]
    # the raw price in units of 1/(2 * BP) cent: exact integers
    if kind == 0:
        raw = BP * (a + b)
    elif kind == 1:
        kk = 2 * params[P_K_BP] * spread
        raw = BP * (a + b) - kk if sell else BP * (a + b) + kk
    else:
        raw = 2 * BP * (b if sell else a)
    if raw < 0:
        raw = 0
    tick = params[P_TICK_LARGE] if raw >= 2 * BP * params[P_THRESHOLD] else params[P_TICK_SMALL]
    unit = 2 * BP * tick
    slip = params[P_SLIPPAGE]
    if sell:
        px = (raw // unit) * tick - slip
        return px if px > 0 else 0
    return -((-raw) // unit) * tick + slip


@jit
def fill_cents_1d(bid, ask, sell, params, out):
    """:func:`fill_cents` over arrays (``out`` int64)."""
    for i in range(out.shape[0]):
        out[i] = fill_cents(bid[i], ask[i], sell[i], params)


def tick_size(
    price: Any, small: float = 0.05, large: float = 0.10, threshold: float = 3.0
) -> np.ndarray:
    """SPX/SPXW minimum price variation for each price."""
    p = as_float("price", price)
    return np.where(p >= threshold, large, small)


@functools.lru_cache(maxsize=256)
def _params(
    kind: str, k: float, small: float, large: float, threshold: float, slippage: float
) -> np.ndarray:
    p = np.array(
        [
            KIND_CODES[kind],
            exact_units(k, BP, "fills.k", "basis points"),
            exact_units(small, CENTS_PER_DOLLAR, "fills.tick_small", "cents"),
            exact_units(large, CENTS_PER_DOLLAR, "fills.tick_large", "cents"),
            exact_units(threshold, CENTS_PER_DOLLAR, "fills.tick_threshold", "cents"),
            exact_units(slippage, CENTS_PER_DOLLAR, "fills.slippage", "cents"),
        ],
        dtype=np.int64,
    )
    p.flags.writeable = False
    return p


class FillModel(StrictModel):
    """How entries and exits fill; see the module docstring."""

    kind: Literal["mid", "mid_k", "natural"] = "mid_k"
    k: float = Field(
        0.30, ge=0.0, le=1.0, description="fraction of the bid/ask spread given up per leg"
    )
    tick_small: float = Field(0.05, gt=0)
    tick_large: float = Field(0.10, gt=0)
    tick_threshold: float = Field(3.0, ge=0)
    slippage: float = Field(
        0.0,
        ge=0,
        description="extra cost per share per leg after the tick rounding, dollars (whole cents)",
        exclude_if=lambda v: v == 0,  # the hashes of configs without it stay as they were
    )

    @field_validator("k")
    @classmethod
    def _k_exact(cls, v: float) -> float:
        exact_units(v, BP, "fills.k", "basis points")
        return v

    @field_validator("tick_small", "tick_large", "tick_threshold", "slippage")
    @classmethod
    def _whole_cents(cls, v: float, info: Any) -> float:
        exact_units(v, CENTS_PER_DOLLAR, f"fills.{info.field_name}", "cents")
        return v

    @property
    def kind_code(self) -> int:
        return KIND_CODES[self.kind]

    @property
    def params(self) -> np.ndarray:
        """The model as the int64 array the kernels take (kind, k in bp, ticks and slippage
        in cents; indices ``P_*``)."""
        return _params(
            self.kind, self.k, self.tick_small, self.tick_large, self.tick_threshold, self.slippage
        )

    def leg_cents(self, bid_c: Any, ask_c: Any, sell: Any) -> np.ndarray:
        """Fill price of each leg in int64 cents from int cents quotes (``NO_PRICE`` = none)."""
        b = np.ascontiguousarray(np.asarray(bid_c, dtype=np.int64).ravel())
        a = np.ascontiguousarray(np.asarray(ask_c, dtype=np.int64).ravel())
        s = np.ascontiguousarray(np.broadcast_to(np.asarray(sell, dtype=bool), b.shape))
        out = np.empty(b.shape[0], dtype=np.int64)
        fill_cents_1d(b, a, s, self.params, out)
        return out

    def leg_prices(self, bid: Any, ask: Any, sell: Any) -> np.ndarray:
        """Fill price per share of each leg in dollars (``sell`` True for a leg you sell);
        NaN where the quote is unusable. Quotes are taken to the cent (:func:`quantlab.money.
        to_cents`)."""
        b = to_cents(as_float("bid", bid).ravel())
        a = to_cents(as_float("ask", ask).ravel())
        return from_cents(self.leg_cents(b, a, sell))

    def net_cents(self, bid_c: Any, ask_c: Any, quantity: Any) -> int:
        """Net price per spread in cents: positive = credit received, negative = debit paid;
        ``NO_NET`` when any leg is unusable. ``quantity`` per leg is signed (-1 = sell one)."""
        q = np.asarray(quantity, dtype=np.int64).ravel()
        px = self.leg_cents(bid_c, ask_c, q < 0)
        if np.any(px == NO_PRICE):
            return NO_NET
        return int(np.sum(-q * px))

    def net_price(self, bid: Any, ask: Any, quantity: Any) -> float:
        """Net price per spread in dollars: positive = credit received, negative = debit paid
        (NaN when a leg is unusable). ``quantity`` per leg is signed (-1 = sell one)."""
        q = as_float("quantity", quantity).ravel()
        b = to_cents(as_float("bid", bid).ravel())
        a = to_cents(as_float("ask", ask).ravel())
        px = self.leg_cents(b, a, q < 0)
        if np.any(px == NO_PRICE):
            return float("nan")
        return int(np.sum(-q.astype(np.int64) * px)) / CENTS_PER_DOLLAR


def net_of_legs(quantity: Any, prices: Any) -> float:
    """Net price per spread in dollars of legs filled at ``prices`` (per share, on the cent):
    positive = credit received. Summed in integer cents, so it is exact (``1.1``, never
    ``1.1000000000000005``); NaN when a price is missing."""
    q = np.asarray(quantity, dtype=np.float64).ravel()
    px = as_float("prices", prices).ravel()
    if not np.all(np.isfinite(px)):
        return float("nan")
    total = int(np.sum(-q.astype(np.int64) * to_cents(px).astype(np.int64)))
    return total / CENTS_PER_DOLLAR


__all__ = ["KIND_CODES", "FillModel", "fill_cents", "fill_cents_1d", "net_of_legs", "tick_size"]
