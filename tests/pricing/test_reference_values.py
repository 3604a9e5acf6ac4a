"""Textbook reference values (Hull; Haug, The Complete Guide to Option Pricing Formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantlab.pricing import black76_greeks, black76_price, bsm_greeks, bsm_price


def test_hull_call_and_put() -> None:
    # Hull, Options Futures and Other Derivatives, example 15.6: S=42, K=40, r=10%, sigma=20%, T=0.5
    assert bsm_price(42, 40, 0.5, 0.10, 0.0, 0.20, True) == pytest.approx(4.7594, abs=5e-5)
    assert bsm_price(42, 40, 0.5, 0.10, 0.0, 0.20, False) == pytest.approx(0.8086, abs=5e-5)


def test_haug_tables() -> None:
    # Haug 1.1.1: call K=65, S=60, T=0.25, r=8%, q=0, sigma=30% -> 2.1334
    assert bsm_price(60, 65, 0.25, 0.08, 0.0, 0.30, "C") == pytest.approx(2.1334, abs=5e-5)
    # Haug 1.1.2 (Merton 1973): put K=95, S=100, T=0.5, r=10%, q=5%, sigma=20% -> 2.4648
    assert bsm_price(100, 95, 0.5, 0.10, 0.05, 0.20, "P") == pytest.approx(2.4648, abs=5e-5)
    # Haug 1.1.3 (Black 1976): F=K=19, T=0.75, r=10%, sigma=28% -> 1.7011 (call and put)
    df = math.exp(-0.10 * 0.75)
    assert black76_price(19, 19, 0.75, 0.28, df, True) == pytest.approx(1.7011, abs=5e-5)
    assert black76_price(19, 19, 0.75, 0.28, df, False) == pytest.approx(1.7011, abs=5e-5)
    # Haug 2.1.1: call delta K=100, S=105, T=0.5, r=q=10%, sigma=36% -> 0.5946
    assert bsm_greeks(105, 100, 0.5, 0.10, 0.10, 0.36, True)["delta"] == pytest.approx(
        0.5946, abs=5e-5
    )


def test_black76_greeks_closed_form_at_the_money() -> None:
    # F = K: delta = df N(sigma sqrt(T)/2), vega = df F n(sigma sqrt(T)/2) sqrt(T)
    F, T, s, df = 100.0, 1.0, 0.2, 0.95
    g = black76_greeks(F, F, T, s, df, True)
    d1 = 0.5 * s * math.sqrt(T)
    n1 = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    assert g["delta"] == pytest.approx(df * 0.5 * math.erfc(-d1 / math.sqrt(2)), rel=1e-14)
    assert g["vega"] == pytest.approx(df * F * n1 * math.sqrt(T), rel=1e-14)
    assert g["gamma"] == pytest.approx(df * n1 / (F * s * math.sqrt(T)), rel=1e-14)


def test_expired_and_zero_vol_give_discounted_intrinsic() -> None:
    out = black76_price(5000.0, [4990.0, 5010.0], [0.0, 0.0], 0.2, 0.99, [True, False])
    np.testing.assert_allclose(out, [9.9, 9.9], rtol=1e-14)
    g = black76_greeks(5000.0, [4990.0, 5010.0], 0.1, 0.0, 0.99, True)
    np.testing.assert_allclose(g["delta"], [0.99, 0.0])
    np.testing.assert_allclose(g["gamma"], [0.0, 0.0])


def test_one_minute_to_expiry_is_exact() -> None:
    # T of one minute: a 10-point OTM SPX put is worth essentially nothing, ATM is sigma*sqrt(T)*F*n(0)
    T = 1 / 525_600
    atm = float(black76_price(5000.0, 5000.0, T, 0.15, 1.0, True))
    s = 0.15 * math.sqrt(T)
    exact = 5000.0 * (math.erf(s / (2 * math.sqrt(2))))  # F (N(s/2) - N(-s/2))
    assert atm == pytest.approx(exact, rel=1e-12)


def _mp_black(F: float, K: float, T: float, s: float, is_call: bool) -> float:
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    sd = mp.mpf(s) * mp.sqrt(mp.mpf(T))
    d1 = mp.log(mp.mpf(F) / mp.mpf(K)) / sd + sd / 2
    d2 = d1 - sd
    if is_call:
        return float(mp.mpf(F) * mp.ncdf(d1) - mp.mpf(K) * mp.ncdf(d2))
    return float(mp.mpf(K) * mp.ncdf(-d2) - mp.mpf(F) * mp.ncdf(-d1))


@pytest.mark.parametrize(
    ("F", "K", "minutes", "s", "is_call"),
    [
        (5000.0, 4990.0, 1, 0.15, False),  # 10 points OTM, one minute left
        (5000.0, 4900.0, 60, 0.25, False),  # 2% OTM put, an hour left
        (5000.0, 5150.0, 3 * 1440, 0.12, True),  # 3 DTE 3% OTM call
        (5000.0, 4500.0, 2 * 1440, 0.40, False),  # 10% OTM put, 2 DTE, steep wing vol
        (5000.0, 4800.0, 30, 0.30, True),  # deep ITM call, 30 minutes: intrinsic + tiny time value
    ],
)
def test_near_expiry_wings_match_arbitrary_precision(
    F: float, K: float, minutes: int, s: float, is_call: bool
) -> None:
    T = minutes / 525_600
    ref = _mp_black(F, K, T, s, is_call)
    assert float(black76_price(F, K, T, s, 1.0, is_call)) == pytest.approx(
        ref, rel=1e-11, abs=1e-300
    )
