"""Status codes returned by :func:`quantlab.pricing.implied_vol` with ``return_status=True``."""

from __future__ import annotations

from enum import IntEnum


class IVStatus(IntEnum):
    """Why an implied vol is what it is (int8 codes, stable: stored and compared in tests)."""

    OK = 0
    """Solved; the price round-trips."""
    BELOW_INTRINSIC = 1
    """Price at or below the discounted intrinsic value: no positive vol reproduces it."""
    ABOVE_MAX = 2
    """Price at or above the upper bound (df*F for a call, df*K for a put)."""
    EXPIRED = 3
    """T <= 0: no time value left to invert."""
    INVALID_INPUT = 4
    """Non-finite input, or F, K or df not positive."""
    NO_TIME_VALUE = 5
    """Time value below 1e-12 * F (or vol beyond the solvable range): too small to resolve."""


IV_OK = 0
IV_BELOW_INTRINSIC = 1
IV_ABOVE_MAX = 2
IV_EXPIRED = 3
IV_INVALID_INPUT = 4
IV_NO_TIME_VALUE = 5
