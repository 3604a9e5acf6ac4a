"""Option pricing: Black-76 and Black-Scholes-Merton prices and greeks, implied volatility and
forwards implied by put-call parity.

Every function accepts numpy arrays, Python scalars and polars Series, broadcasts like numpy and
returns float64 arrays. Time to expiry ``T`` is a year fraction; quantlab measures it as minutes
to the expiry's settlement time / 525,600, and the kernels are exact down to a few minutes.
"""

from __future__ import annotations

from quantlab.pricing._status import IVStatus
from quantlab.pricing.black76 import black76_greeks, black76_price
from quantlab.pricing.bsm import bsm_greeks, bsm_price

__all__ = [
    "IVStatus",
    "black76_greeks",
    "black76_price",
    "bsm_greeks",
    "bsm_price",
]


def __getattr__(name: str):
    # implied_vol / implied_forward are imported on first use (they live in their own modules)
    if name == "implied_vol":
        from quantlab.pricing.implied_vol import implied_vol

        return implied_vol
    if name == "implied_forward":
        from quantlab.pricing.forward import implied_forward

        return implied_forward
    raise AttributeError(f"module 'quantlab.pricing' has no attribute {name!r}")
