"""What a structure is worth at expiry: payoff bounds, max loss, width, intrinsic value.

All in integer cents per share (:mod:`quantlab.money`); strikes are whole cents (SPX strikes
are multiples of 5 points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantlab.money import CENTS_PER_DOLLAR
from quantlab.strategy import kernels as k

UNBOUNDED = k.UNBOUNDED


def strike_cents(strikes: Any) -> np.ndarray:
    """Strikes in index points as int64 cents."""
    return np.rint(np.asarray(strikes, dtype=np.float64) * CENTS_PER_DOLLAR).astype(np.int64)


def payoff_bounds(qty: Any, strike_c: Any, is_call: Any) -> tuple[int, int]:
    """``(lo, hi)``: the least and the most the position costs to close at expiry, per share in
    cents (``-UNBOUNDED`` / ``UNBOUNDED`` when unbounded). A put credit vertical 25 wide:
    ``(0, 2500)``.

    Examples
    --------
    >>> payoff_bounds([-1, 1], [500000, 497500], [False, False])
    (0, 2500)
    """
    q = np.asarray(qty, dtype=np.int64)
    lo, hi = k.payoff_bounds(q, np.asarray(strike_c, np.int64), np.asarray(is_call, bool), q.size)
    return int(lo), int(hi)


def max_loss_cents(hi_c: int, credit_c: int) -> int:
    """Worst loss per share at expiry net of the credit, in cents (``UNBOUNDED`` for undefined
    risk): ``hi - credit``, at least 0."""
    if hi_c >= UNBOUNDED:
        return UNBOUNDED
    return max(hi_c - credit_c, 0)


def width(strikes: Sequence[float], rights: Sequence[str]) -> float:
    """Points between the outermost strikes of the same right, the widest wing (0 for a
    single leg per right): the ``width`` column of trade records
    (:func:`quantlab.strategy.kernels.width_cents`)."""
    s = strike_cents(list(strikes))
    c = np.array([r == "C" for r in rights], bool)
    if s.size != c.size:
        raise ValueError(f"width: {s.size} strikes but {c.size} rights")
    return int(k.width_cents(s, c, s.size)) / CENTS_PER_DOLLAR


def settlement_cost_cents(settle_c: int, qty: Any, strike_c: Any, is_call: Any) -> int:
    """Cost to close per share in cents at cash settlement: intrinsic values summed."""
    q = np.asarray(qty, dtype=np.int64)
    return int(
        k.settlement_cost(
            np.int64(settle_c), q, np.asarray(strike_c, np.int64), np.asarray(is_call, bool), q.size
        )
    )


def intrinsic_cents(settle_c: int, strike_c: Any, is_call: Any) -> np.ndarray:
    """Each leg's intrinsic value per share in cents at a settlement value
    (:func:`quantlab.strategy.kernels.intrinsic`)."""
    s = np.asarray(strike_c, np.int64)
    c = np.asarray(is_call, bool)
    return np.array(
        [k.intrinsic(int(settle_c), int(a), bool(b)) for a, b in zip(s, c, strict=True)], np.int64
    )


__all__ = [
    "UNBOUNDED",
    "intrinsic_cents",
    "max_loss_cents",
    "payoff_bounds",
    "settlement_cost_cents",
    "strike_cents",
    "width",
]
