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
from quantlab.pricing.forward import ForwardFit, implied_forward
from quantlab.pricing.implied_vol import implied_vol

__all__ = [
    "ForwardFit",
    "IVStatus",
    "black76_greeks",
    "black76_price",
    "bsm_greeks",
    "bsm_price",
    "implied_forward",
    "implied_vol",
]
