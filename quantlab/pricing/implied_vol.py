"""Black-76 implied volatility (vectorised, numba, machine precision)."""

from __future__ import annotations

from typing import Any

import numpy as np

from quantlab._convert import FloatArray, Int8Array, as_bool_right, as_float, broadcast, out_array
from quantlab.pricing._iv_kernels import implied_vol_1d, implied_vol_1d_par

#: Inputs with at least this many elements use the multi-threaded kernel.
PARALLEL_THRESHOLD = 20_000


def implied_vol(
    price: Any,
    F: Any,
    K: Any,
    T: Any,
    df: Any,
    is_call: Any,
    *,
    return_status: bool = False,
    out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
) -> FloatArray | tuple[FloatArray, Int8Array]:
    """Black-76 implied volatility of European options on a forward.

    Inverts ``price = df * (F N(d1) - K N(d2))`` for a call (``df * (K N(-d2) - F N(-d1))``
    for a put), ``d1,2 = (ln(F/K) +- sigma^2 T / 2) / (sigma sqrt(T))``, with Peter Jäckel's
    "Let's Be Rational" algorithm: the result is accurate to (close to) machine precision
    for every price that carries resolvable time value, including near-expiry far
    out-of-the-money and deep in-the-money options (these are inverted through their
    out-of-the-money twin by put-call parity).

    Parameters
    ----------
    price : array_like
        Discounted option premium (``df`` times the undiscounted Black-76 value).
    F : array_like
        Forward price of the underlying at expiry.
    K : array_like
        Strike, in the units of ``F``.
    T : array_like
        Time to expiry in years.
    df : array_like
        Discount factor to the premium payment date (``exp(-r T)``).
    is_call : array_like
        True for calls, False for puts; 1/0 and ``'C'``/``'P'``/``'call'``/``'put'`` work too.
    return_status : bool, default False
        Also return an int8 array of :class:`~quantlab.pricing._status.IVStatus` codes.

    All array arguments may be numpy arrays, Python scalars or sequences, polars Series
    or pyarrow arrays, and broadcast against each other like numpy.

    Returns
    -------
    sigma : numpy.ndarray of float64
        Implied volatility (annualised), with the broadcast shape of the inputs (0-d for
        all-scalar input). NaN wherever the status is not OK.
    status : numpy.ndarray of int8
        Only with ``return_status=True``. Same shape; codes:

        - 0 ``OK``: solved; the price round-trips to ~1e-15 relative.
        - 1 ``BELOW_INTRINSIC``: price at or below the discounted intrinsic value
          ``df * max(+-(F - K), 0)``.
        - 2 ``ABOVE_MAX``: price at or above the upper bound (``df*F`` call, ``df*K`` put).
        - 3 ``EXPIRED``: ``T <= 0``.
        - 4 ``INVALID_INPUT``: a non-finite input, or ``F``, ``K`` or ``df`` not positive.
        - 5 ``NO_TIME_VALUE``: undiscounted time value below ``1e-12 * F`` (too small to
          resolve a volatility), or ``|ln(F/K)| > 500``.

    Raises
    ------
    quantlab.errors.InputError
        If the arguments do not broadcast together or are not numeric / boolean.
        Bad *values* never raise: they give NaN and a status code.

    Examples
    --------
    >>> import numpy as np
    >>> from quantlab.pricing.implied_vol import implied_vol
    >>> from quantlab.pricing._iv_kernels import black76_price_scalar
    >>> p = black76_price_scalar(5000.0, 4800.0, 2 / 365, 0.25, 0.9999, False)
    >>> float(implied_vol(p, 5000.0, 4800.0, 2 / 365, 0.9999, "P"))  # doctest: +ELLIPSIS
    0.25...
    >>> sigma, status = implied_vol([10.0, 0.0, 1e-10], 5000.0, 5100.0, 0.1, 1.0, True,
    ...                             return_status=True)
    >>> status.tolist()
    [0, 1, 5]
    """
    arrays = {
        "price": as_float("price", price),
        "F": as_float("F", F),
        "K": as_float("K", K),
        "T": as_float("T", T),
        "df": as_float("df", df),
        "is_call": as_bool_right("is_call", is_call),
    }
    shape, flat = broadcast(**arrays)
    n = flat["price"].shape[0]
    out_sigma, out_status = out if isinstance(out, tuple) else (out, None)
    sigma = out_array("out", out_sigma, shape)
    status = out_array("out status", out_status, shape, np.int8)
    if n:
        kernel = implied_vol_1d_par if n >= PARALLEL_THRESHOLD else implied_vol_1d
        kernel(
            flat["price"],
            flat["F"],
            flat["K"],
            flat["T"],
            flat["df"],
            flat["is_call"],
            sigma,
            status,
        )
    sigma = sigma.reshape(shape)
    if return_status:
        return sigma, status.reshape(shape)
    return sigma


__all__ = ["PARALLEL_THRESHOLD", "implied_vol"]
