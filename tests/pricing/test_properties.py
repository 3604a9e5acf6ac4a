"""Invariants of the pricing kernels, checked with hypothesis and against QuantLib."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantlab.pricing import black76_greeks, black76_price, bsm_greeks, bsm_price

fwd = st.floats(50.0, 10_000.0)
moneyness = st.floats(-0.8, 0.8)
years = st.floats(1 / 525_600, 3.0)
vols = st.floats(0.01, 3.0)
rates = st.floats(-0.01, 0.10)


@given(F=fwd, m=moneyness, T=years, s=vols, r=rates)
def test_put_call_parity(F: float, m: float, T: float, s: float, r: float) -> None:
    K = F * math.exp(m)
    df = math.exp(-r * T)
    c = float(black76_price(F, K, T, s, df, True))
    p = float(black76_price(F, K, T, s, df, False))
    assert c - p == pytest.approx(df * (F - K), abs=1e-12 * max(F, K))


@given(F=fwd, m=moneyness, T=years, s=vols, r=rates)
def test_no_arbitrage_bounds(F: float, m: float, T: float, s: float, r: float) -> None:
    K = F * math.exp(m)
    df = math.exp(-r * T)
    c = float(black76_price(F, K, T, s, df, True))
    p = float(black76_price(F, K, T, s, df, False))
    tol = 1e-12 * F
    assert df * max(F - K, 0.0) - tol <= c <= df * F + tol
    assert df * max(K - F, 0.0) - tol <= p <= df * K + tol


@given(F=fwd, T=years, s=vols, right=st.booleans())
def test_monotone_in_strike_and_vol(F: float, T: float, s: float, right: bool) -> None:
    K = F * np.exp(np.linspace(-0.5, 0.5, 41))
    prices = black76_price(F, K, T, s, 1.0, right)
    d = np.diff(prices)
    tol = 1e-12 * F
    assert (d <= tol).all() if right else (d >= -tol).all()
    sig = np.linspace(0.01, 3.0, 41)
    by_vol = black76_price(F, F * 1.05, T, sig, 1.0, right)
    assert (np.diff(by_vol) >= -tol).all()


@given(
    F=fwd,
    m=st.floats(-0.3, 0.3),
    T=st.floats(1 / 365, 2.0),
    s=st.floats(0.05, 1.0),
    right=st.booleans(),
)
def test_black76_greeks_match_finite_differences(
    F: float, m: float, T: float, s: float, right: bool
) -> None:
    K = F * math.exp(m)
    df = 0.97
    g = black76_greeks(F, K, T, s, df, right)
    h = 1e-3 * F * s * math.sqrt(T)  # bump small against the distribution's width

    def p(f: float = F, sig: float = s) -> float:
        return float(black76_price(f, K, T, sig, df, right))

    assert float(g["delta"]) == pytest.approx((p(F + h) - p(F - h)) / (2 * h), rel=1e-6, abs=1e-8)
    assert float(g["gamma"]) == pytest.approx(
        (p(F + h) - 2 * p() + p(F - h)) / h**2, rel=1e-4, abs=1e-12 * F / h**2
    )
    hv = 1e-5
    assert float(g["vega"]) == pytest.approx(
        (p(sig=s + hv) - p(sig=s - hv)) / (2 * hv), rel=1e-5, abs=1e-6 * F
    )


@given(
    S=fwd,
    m=st.floats(-0.3, 0.3),
    T=st.floats(1 / 365, 2.0),
    r=rates,
    q=st.floats(0.0, 0.05),
    s=st.floats(0.05, 1.0),
    right=st.booleans(),
)
def test_bsm_greeks_match_finite_differences(
    S: float, m: float, T: float, r: float, q: float, s: float, right: bool
) -> None:
    K = S * math.exp(m)
    g = bsm_greeks(S, K, T, r, q, s, right)

    def p(S_: float = S, T_: float = T, r_: float = r, s_: float = s) -> float:
        return float(bsm_price(S_, K, T_, r_, q, s_, right))

    h = 1e-3 * S * s * math.sqrt(T)
    assert float(g["price"]) == pytest.approx(p(), rel=1e-13, abs=1e-12 * S)
    assert float(g["delta"]) == pytest.approx((p(S + h) - p(S - h)) / (2 * h), rel=1e-6, abs=1e-8)
    assert float(g["gamma"]) == pytest.approx(
        (p(S + h) - 2 * p() + p(S - h)) / h**2, rel=1e-4, abs=1e-12 * S / h**2
    )
    assert float(g["vega"]) == pytest.approx(
        (p(s_=s + 1e-5) - p(s_=s - 1e-5)) / 2e-5, rel=1e-5, abs=1e-6 * S
    )
    dT = 1e-6
    assert float(g["theta"]) == pytest.approx(
        -(p(T_=T + dT) - p(T_=T - dT)) / (2 * dT), rel=1e-4, abs=1e-5 * S
    )
    assert float(g["rho"]) == pytest.approx(
        (p(r_=r + 1e-6) - p(r_=r - 1e-6)) / 2e-6, rel=1e-5, abs=1e-5 * S
    )


def test_short_is_minus_long_and_broadcasting() -> None:
    K = np.arange(4800.0, 5205.0, 5.0)[:, None]
    T = np.array([1 / 525_600, 3 / 365, 0.5])[None, :]
    out = black76_price(5000.0, K, T, 0.18, 0.999, True)
    assert out.shape == (K.shape[0], 3) and out.dtype == np.float64
    g = black76_greeks(5000.0, K, T, 0.18, 0.999, True)
    assert all(v.shape == out.shape for v in g.values())
    np.testing.assert_array_equal(g["price"], out)


def test_against_quantlib_randomized() -> None:
    ql = pytest.importorskip("QuantLib")
    rng = np.random.default_rng(11)
    n = 300
    S = rng.uniform(100, 6000, n)
    K = S * np.exp(rng.uniform(-0.5, 0.5, n))
    T = rng.uniform(1 / 365, 3, n)
    r = rng.uniform(0, 0.08, n)
    q = rng.uniform(0, 0.04, n)
    s = rng.uniform(0.05, 1.2, n)
    right = rng.random(n) < 0.5
    g = bsm_greeks(S, K, T, r, q, s, right)
    for i in range(n):
        F = S[i] * math.exp((r[i] - q[i]) * T[i])
        kind = ql.Option.Call if right[i] else ql.Option.Put
        bc = ql.BlackCalculator(
            ql.PlainVanillaPayoff(kind, K[i]), F, s[i] * math.sqrt(T[i]), math.exp(-r[i] * T[i])
        )
        assert g["price"][i] == pytest.approx(bc.value(), rel=1e-10, abs=1e-10 * S[i])
        assert g["delta"][i] == pytest.approx(bc.delta(S[i]), abs=1e-10)
        assert g["gamma"][i] == pytest.approx(bc.gamma(S[i]), rel=1e-9, abs=1e-14)
        assert g["vega"][i] == pytest.approx(bc.vega(T[i]), rel=1e-9, abs=1e-10 * S[i])
        assert g["theta"][i] == pytest.approx(bc.theta(S[i], T[i]), rel=1e-9, abs=1e-10 * S[i])
        assert g["rho"][i] == pytest.approx(bc.rho(T[i]), rel=1e-9, abs=1e-10 * S[i])
