"""Money units: exact integers wherever a decision compares money.

quantlab decides trades on integers, so a trade can be recomputed by hand from the stored
quotes to the cent and a price that lands exactly on a level triggers at that minute:

- **Prices** (bids, asks, leg fills, credits, costs to close, take-profit and stop levels,
  settlement values, strikes) are integer **cents per share**. Every SPX/SPXW quote sits on a
  5- or 10-cent tick (Cboe), so a quote converts to cents exactly; :func:`to_cents` rounds to
  the nearest cent and says nothing more is lost.
- **Fees and P&L** are integer **millicents** (1/1000 cent = $0.00001): fee schedules quote
  per-contract components such as the FINRA TAF of $0.00279, which are not whole cents.
- **Dollars** (floats) only at the edges (trade logs, equity curves, reports): a dollar value
  is always ``units / scale`` computed once from the exact integer, so it is the nearest double
  to the exact decimal (1.7 prints as ``1.7``, never ``1.7000000000000002``).

Ratios that scale money in rules (take-profit and stop percentages, ``k`` of the fill model,
risk percent of equity) are held as integers of basis points (1/10,000), validated where the
config is read (:func:`exact_units`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from quantlab.errors import ConfigError

CENTS_PER_DOLLAR = 100
MILLICENTS_PER_CENT = 1000
MILLICENTS_PER_DOLLAR = CENTS_PER_DOLLAR * MILLICENTS_PER_CENT
SHARES_PER_CONTRACT = 100
#: basis points in one (ratios such as take-profit fractions and the fill model's k)
BP = 10_000
#: int cents sentinel for a missing quote (prices are never negative)
NO_PRICE = -1
#: int sentinel for a missing net amount (nets and P&L may be negative)
NO_NET = -(2**62)


def to_cents(prices: Any) -> npt.NDArray[np.int32]:
    """Quote prices (dollars per share) as int32 cents; ``NO_PRICE`` where missing or negative.

    Examples
    --------
    >>> to_cents([1.1, 0.05, float("nan"), 2.675]).tolist()
    [110, 5, -1, 268]
    """
    p = np.asarray(prices, dtype=np.float64)
    out = np.full(p.shape, NO_PRICE, dtype=np.int32)
    ok = np.isfinite(p) & (p >= 0)
    out[ok] = np.rint(p[ok] * CENTS_PER_DOLLAR).astype(np.int32)
    return out


def cents(price: float) -> int:
    """One price in dollars as int cents (``NO_PRICE`` when missing or negative)."""
    if price is None or not math.isfinite(price) or price < 0:
        return NO_PRICE
    return round(price * CENTS_PER_DOLLAR)


def from_cents(c: Any) -> npt.NDArray[np.float64]:
    """Int cents as dollars (NaN where ``NO_PRICE``)."""
    a = np.asarray(c)
    return np.where(a >= 0, a / CENTS_PER_DOLLAR, np.nan)


def dollars(millicents: Any) -> Any:
    """Millicents as dollars: a float, or a float64 array for an array."""
    if isinstance(millicents, (int, np.integer)):
        return int(millicents) / MILLICENTS_PER_DOLLAR
    return np.asarray(millicents, dtype=np.int64) / MILLICENTS_PER_DOLLAR


def exact_units(value: float, per_unit: int, name: str, unit: str) -> int:
    """``value * per_unit`` as an int, refusing a value that is not a whole number of units.

    Used to validate configs: a fee of 0.000275 dollars cannot be held in millicents, a take
    profit of 33.333 % cannot be held in basis points, and quantlab says so instead of rounding
    a decision level silently.

    Examples
    --------
    >>> exact_units(0.00279, 100_000, "sell_fee", "millicents")
    279
    """
    scaled = float(value) * per_unit
    n = round(scaled)
    if not math.isfinite(scaled) or abs(scaled - n) > 1e-6 * max(1.0, abs(scaled)):
        step = 1 / per_unit
        raise ConfigError(
            f"{name} must be a whole number of {unit} (a multiple of {step:g}); got {value!r}. "
            f"Round it to {round(float(value) / step) * step:g}."
        )
    return int(n)


__all__ = [
    "BP",
    "CENTS_PER_DOLLAR",
    "MILLICENTS_PER_CENT",
    "MILLICENTS_PER_DOLLAR",
    "NO_NET",
    "NO_PRICE",
    "SHARES_PER_CONTRACT",
    "cents",
    "dollars",
    "exact_units",
    "from_cents",
    "to_cents",
]
