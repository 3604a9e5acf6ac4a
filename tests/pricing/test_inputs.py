"""Input handling: scalars, polars Series, rights as strings, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from quantlab.errors import InputError
from quantlab.pricing import black76_greeks, black76_price, bsm_greeks, bsm_price


def test_accepts_polars_series_and_strings() -> None:
    K = pl.Series("strike", [4900.0, 5000.0, 5100.0])
    right = pl.Series("right", ["P", "C", "call"])
    out = black76_price(5000.0, K, 7 / 365, 0.15, 0.999, right)
    ref = black76_price(5000.0, K.to_numpy(), 7 / 365, 0.15, 0.999, np.array([False, True, True]))
    np.testing.assert_array_equal(out, ref)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64


def test_scalar_inputs_give_0d_arrays() -> None:
    out = black76_price(5000, 5000, 0.1, 0.2, 1, 1)
    assert isinstance(out, np.ndarray) and out.shape == ()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"K": -5.0}, "K"),
        ({"K": 0.0}, "K"),
        ({"F": 0.0}, "F"),
        ({"T": -0.1}, "T"),
        ({"sigma": -0.2}, "sigma"),
        ({"df": 0.0}, "df"),
    ],
)
def test_bad_values_name_the_argument(kwargs: dict, name: str) -> None:
    args = {"F": 5000.0, "K": 5000.0, "T": 0.1, "sigma": 0.2, "df": 1.0, "is_call": True} | kwargs
    with pytest.raises(InputError, match=rf"^{name} must be"):
        black76_price(**args)
    with pytest.raises(ValueError):  # InputError is a ValueError
        black76_greeks(**args)


def test_shapes_that_do_not_broadcast() -> None:
    with pytest.raises(InputError, match=r"do not broadcast.*K\(3,\).*T\(2,\)"):
        black76_price(5000.0, [1.0, 2.0, 3.0], [0.1, 0.2], 0.2, 1.0, True)


def test_bad_right_and_non_numeric() -> None:
    with pytest.raises(InputError, match="is_call"):
        black76_price(5000.0, 5000.0, 0.1, 0.2, 1.0, "X")
    with pytest.raises(InputError, match="is_call"):
        bsm_price(5000.0, 5000.0, 0.1, 0.0, 0.0, 0.2, 2)
    with pytest.raises(InputError, match="sigma must be numeric"):
        black76_price(5000.0, 5000.0, 0.1, "high", 1.0, True)


def test_nan_propagates_without_error() -> None:
    out = black76_price([5000.0, np.nan], 5000.0, 0.1, 0.2, 1.0, True)
    assert np.isfinite(out[0]) and np.isnan(out[1])
    g = bsm_greeks([5000.0, np.nan], 5000.0, 0.1, 0.01, 0.0, 0.2, True)
    assert all(np.isnan(v[1]) and np.isfinite(v[0]) for v in g.values())


def test_parallel_and_serial_kernels_agree() -> None:
    rng = np.random.default_rng(3)
    n = 25_000  # above the parallel threshold
    F = rng.uniform(1000, 6000, n)
    K = F * np.exp(rng.uniform(-0.4, 0.4, n))
    T = rng.uniform(1 / 525_600, 1, n)
    s = rng.uniform(0.05, 1, n)
    c = rng.random(n) < 0.5
    big = black76_greeks(F, K, T, s, 0.99, c)
    for i in range(0, n, 997):
        small = black76_greeks(
            F[i : i + 1], K[i : i + 1], T[i : i + 1], s[i : i + 1], 0.99, c[i : i + 1]
        )
        for key in big:
            assert big[key][i] == small[key][0]


def test_out_buffers_are_filled_and_returned() -> None:
    from quantlab.pricing import implied_vol

    F, K = 5000.0, np.array([[4900.0, 5000.0], [5100.0, 5200.0]])
    buf = np.empty((2, 2))
    res = black76_price(F, K, 0.1, 0.2, 0.99, True, out=buf)
    assert res.base is buf or np.shares_memory(res, buf)
    np.testing.assert_array_equal(buf, black76_price(F, K, 0.1, 0.2, 0.99, True))
    g_out = {k: np.empty((2, 2)) for k in ("price", "delta", "gamma", "vega")}
    g = black76_greeks(F, K, 0.1, 0.2, 0.99, True, out=g_out)
    for key, arr in black76_greeks(F, K, 0.1, 0.2, 0.99, True).items():
        np.testing.assert_array_equal(g_out[key], arr)
        assert np.shares_memory(g[key], g_out[key])
    b_out = {k: np.empty((2, 2)) for k in ("price", "delta", "gamma", "vega", "theta", "rho")}
    bsm_greeks(F, K, 0.1, 0.04, 0.01, 0.2, False, out=b_out)
    np.testing.assert_array_equal(
        b_out["theta"], bsm_greeks(F, K, 0.1, 0.04, 0.01, 0.2, False)["theta"]
    )
    v_out, s_out = np.empty((2, 2)), np.empty((2, 2), dtype=np.int8)
    implied_vol(buf, F, K, 0.1, 0.99, True, return_status=True, out=(v_out, s_out))
    np.testing.assert_allclose(v_out, 0.2, atol=1e-10)
    assert (s_out == 0).all()
    with pytest.raises(
        InputError, match=r"out must be a C-contiguous float64 array of shape \(2, 2\)"
    ):
        black76_price(F, K, 0.1, 0.2, 0.99, True, out=np.empty(4))
    with pytest.raises(InputError, match=r"out\['vega'\]"):
        black76_greeks(
            F,
            K,
            0.1,
            0.2,
            0.99,
            True,
            out={k: v for k, v in g_out.items() if k != "vega"} | {"vega": np.empty(3)},
        )
