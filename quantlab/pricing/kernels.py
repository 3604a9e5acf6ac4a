"""The compiled pricing kernels other packages call from their own numba code or array loops.

These are the functions behind :func:`quantlab.pricing.black76_greeks` and
:func:`quantlab.pricing.implied_vol`, without their argument checks and broadcasting: the chain
snapshot fills preallocated arrays with them, and the synthetic market prices quotes inside its
own kernel. Their implementations live in the package's private modules.
"""

from __future__ import annotations

from quantlab.pricing._forward_kernels import fit_forward
from quantlab.pricing._iv_kernels import implied_vol_1d, implied_vol_scalar
from quantlab.pricing._kernels import b76_greeks_1d, b76_greeks_one, b76_price_scalar

__all__ = [
    "b76_greeks_1d",
    "b76_greeks_one",
    "b76_price_scalar",
    "fit_forward",
    "implied_vol_1d",
    "implied_vol_scalar",
]
