"""Black-76 prices and greeks on the forward, discounted by a discount factor."""

from __future__ import annotations

from typing import Any

import numpy as np

from quantlab._convert import (
    FloatArray,
    as_bool_right,
    as_float,
    broadcast,
    check_positive,
    out_array,
)
from quantlab.pricing import _kernels as k

PARALLEL_MIN = 20_000
"""Arrays at least this long use the ``prange`` kernels."""


def prepare(
    names: tuple[str, ...], values: tuple[Any, ...], right_name: str, right: Any
) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Convert, broadcast and flatten the numeric arguments plus the option right."""
    arrays: dict[str, np.ndarray] = {n: as_float(n, v) for n, v in zip(names, values, strict=True)}
    arrays[right_name] = as_bool_right(right_name, right)
    shape, flat = broadcast(**arrays)
    return shape, [flat[n] for n in (*names, right_name)]


def _check_b76(
    F: np.ndarray, K: np.ndarray, T: np.ndarray, sigma: np.ndarray, df: np.ndarray
) -> None:
    check_positive("F", F, hint="F is the forward of the expiry in index points.")
    check_positive("K", K, hint="K is the strike in index points.")
    check_positive("T", T, allow_zero=True, hint="T is a year fraction (minutes / 525,600).")
    check_positive(
        "sigma", sigma, allow_zero=True, hint="sigma is a decimal (0.15 = 15 vol points)."
    )
    check_positive("df", df, hint="df is a discount factor, e.g. exp(-r*T).")


def black76_price(
    F: Any, K: Any, T: Any, sigma: Any, df: Any, is_call: Any, *, out: np.ndarray | None = None
) -> FloatArray:
    """Black-76 option premium: ``df * (F N(d1) - K N(d2))`` for a call, by parity for a put.

    Parameters
    ----------
    F, K : array_like
        Forward and strike (positive).
    T : array_like
        Time to expiry as a year fraction (>= 0; quantlab uses minutes / 525,600).
    sigma : array_like
        Black volatility, decimal (>= 0).
    df : array_like
        Discount factor to the payment date (> 0).
    is_call : array_like
        True / 1 / 'C' for calls, False / 0 / 'P' for puts.
    out : numpy.ndarray, optional
        A float64 buffer of the broadcast shape to write into (saves the allocation in hot loops).

    Returns
    -------
    numpy.ndarray
        float64 premiums, broadcast shape of the inputs. NaN inputs give NaN; T = 0 or
        sigma = 0 gives the discounted intrinsic value.

    Raises
    ------
    quantlab.errors.InputError
        Shapes that do not broadcast, non-numeric input, F/K/df not positive, T/sigma negative.

    Examples
    --------
    >>> import numpy as np
    >>> from quantlab.pricing import black76_price
    >>> round(float(black76_price(19.0, 19.0, 0.75, 0.28, np.exp(-0.10 * 0.75), True)), 4)
    1.7011
    """
    shape, (F_, K_, T_, s_, df_, c_) = prepare(
        ("F", "K", "T", "sigma", "df"), (F, K, T, sigma, df), "is_call", is_call
    )
    _check_b76(F_, K_, T_, s_, df_)
    res = out_array("out", out, shape)
    kern = k.b76_price_1d_par if res.shape[0] >= PARALLEL_MIN else k.b76_price_1d
    kern(F_, K_, T_, s_, df_, c_, res)
    return res.reshape(shape)


def black76_greeks(
    F: Any,
    K: Any,
    T: Any,
    sigma: Any,
    df: Any,
    is_call: Any,
    *,
    out: dict[str, np.ndarray] | None = None,
) -> dict[str, FloatArray]:
    """Black-76 price and greeks with respect to the forward.

    Returns a dict of float64 arrays (broadcast shape):

    - ``price``: as :func:`black76_price`;
    - ``delta``: dV/dF, including the discount factor (call ``df N(d1)``, put ``-df N(-d1)``);
    - ``gamma``: d2V/dF2;
    - ``vega``: dV/dsigma per 1.00 of vol (divide by 100 for one vol point).

    Arguments and errors as :func:`black76_price`; ``out`` is a dict of float64 buffers with
    those four keys.

    Examples
    --------
    >>> from quantlab.pricing import black76_greeks
    >>> g = black76_greeks(100.0, 100.0, 1.0, 0.2, 1.0, True)
    >>> round(float(g["delta"]), 6), round(float(g["vega"]), 4)
    (0.539828, 39.6953)
    """
    shape, (F_, K_, T_, s_, df_, c_) = prepare(
        ("F", "K", "T", "sigma", "df"), (F, K, T, sigma, df), "is_call", is_call
    )
    _check_b76(F_, K_, T_, s_, df_)
    n = F_.shape[0]
    names = ("price", "delta", "gamma", "vega")
    outs = [out_array(f"out[{g!r}]", None if out is None else out.get(g), shape) for g in names]
    kern = k.b76_greeks_1d_par if n >= PARALLEL_MIN else k.b76_greeks_1d
    kern(F_, K_, T_, s_, df_, c_, *outs)
    return {
        name: o.reshape(shape)
        for name, o in zip(("price", "delta", "gamma", "vega"), outs, strict=True)
    }
