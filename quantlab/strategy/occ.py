"""OCC option symbols: the identity of a contract across days.

Databento's instrument ids are unique within a day only; anything that spans days (a position,
a path, a trade record) is keyed on the OCC symbol: root padded to 6 characters, expiry
``YYMMDD``, ``C``/``P``, strike x 1000 in 8 digits, e.g. ``SPXW  240119P04700000``.
"""

from __future__ import annotations

import datetime as dt

from quantlab.errors import InputError


def occ_symbol(root: str, expiry: dt.date, right: str, strike: float) -> str:
    """The OCC symbol of a contract.

    Examples
    --------
    >>> occ_symbol("SPXW", dt.date(2024, 1, 19), "P", 4700)
    'SPXW  240119P04700000'
    """
    milli = round(float(strike) * 1000)
    if not 0 < milli < 10**8:
        raise InputError(f"strike {strike!r} does not fit an OCC symbol (0 < strike < 100000).")
    if right not in ("C", "P"):
        raise InputError(f"right must be 'C' or 'P' (got {right!r}).")
    if not root or len(root) > 6:
        raise InputError(f"root must be 1-6 characters, e.g. 'SPXW' (got {root!r}).")
    return f"{root:<6}{expiry:%y%m%d}{right}{milli:08d}"


def parse_occ(occ: str) -> tuple[str, dt.date, str, float]:
    """``(root, expiry, right, strike)`` of an OCC symbol (inverse of :func:`occ_symbol`).

    Examples
    --------
    >>> parse_occ("SPXW  240119P04700000")
    ('SPXW', datetime.date(2024, 1, 19), 'P', 4700.0)
    """
    if not isinstance(occ, str) or len(occ) != 21 or occ[12] not in "CP":
        raise InputError(
            f"not an OCC option symbol: {occ!r} (expected e.g. 'SPXW  240119P04700000')"
        )
    try:
        expiry = dt.date(2000 + int(occ[6:8]), int(occ[8:10]), int(occ[10:12]))
        strike = int(occ[13:21]) / 1000.0
    except ValueError:
        raise InputError(
            f"not an OCC option symbol: {occ!r} (expiry YYMMDD and an 8-digit strike x 1000)"
        ) from None
    return occ[:6].strip(), expiry, occ[12], strike


__all__ = ["occ_symbol", "parse_occ"]
