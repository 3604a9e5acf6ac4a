"""Position greeks, dollar units, attribution on hand-built paths, and scenarios, checked
against quantlab.pricing and against repricing by finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlab.pricing import black76_greeks, black76_price
from quantlab.risk import kernels as rk
from quantlab.risk.scenarios import SPOT_MOVES, VOL_MOVES, worst

NS_MIN = 60_000_000_000
RATE = 0.045


def _value(F: float, T: float, df: float, qty, K, call, iv) -> float:
    return float(
        sum(
            q * black76_price(F, k, T, s, df, c)
            for q, k, c, s in zip(qty, K, call, iv, strict=True)
        )
    )


legs = st.lists(
    st.tuples(
        st.sampled_from([-2, -1, 1, 2]),
        st.floats(4500, 5500),
        st.booleans(),
        st.floats(0.08, 0.6),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(legs, st.floats(4800, 5200), st.floats(0.5 / 365, 30 / 365))
def test_position_greeks_are_the_sum_of_leg_greeks(lg, F, T) -> None:
    qty = np.array([x[0] for x in lg], np.int64)
    K = np.array([x[1] for x in lg])
    call = np.array([x[2] for x in lg])
    iv = np.array([x[3] for x in lg])
    df = math.exp(-RATE * T)
    g = np.empty(rk.G_SIZE)
    rk.position_greeks(F, T, df, RATE, qty, K, call, qty.size, iv, g)
    ref = black76_greeks(F, K, T, iv, df, call)
    for name, i in (("delta", rk.G_DELTA), ("gamma", rk.G_GAMMA), ("vega", rk.G_VEGA)):
        assert g[i] == pytest.approx(float(np.sum(qty * ref[name])), rel=1e-12, abs=1e-12)
    assert g[rk.G_VALUE] == pytest.approx(_value(F, T, df, qty, K, call, iv), rel=1e-12, abs=1e-9)


def test_dollar_delta_gamma_and_theta_match_repricing() -> None:
    qty, K, call = np.array([-1, 1]), np.array([4950.0, 4925.0]), np.array([False, False])
    iv, F, T = np.array([0.16, 0.175]), 5000.0, 5 / 365
    df = math.exp(-RATE * T)
    g = np.empty(rk.G_SIZE)
    rk.position_greeks(F, T, df, RATE, qty, K, call, 2, iv, g)
    d = np.empty(4)
    contracts = 3
    rk.dollar_greeks(g, F, contracts, d)
    shares = 300

    def v(f: float, t: float = T) -> float:
        return _value(f, t, math.exp(-RATE * t), qty, K, call, iv) * shares

    h = 0.5
    assert d[0] == pytest.approx((v(F + h) - v(F - h)) / (2 * h), rel=1e-6)  # $ per point
    one = F / 100  # a 1 % move
    assert d[1] == pytest.approx((v(F + one) - v(F - one)) / 2, rel=2e-2)  # $ per 1 %
    gamma_pt = (v(F + h) - 2 * v(F) + v(F - h)) / h**2  # $ delta change per point
    assert d[3] == pytest.approx(gamma_pt * one**2, rel=1e-4)  # x (1 % in points) squared
    up = _value(F, T, df, qty, K, call, iv + 0.0001) * shares
    down = _value(F, T, df, qty, K, call, iv - 0.0001) * shares
    assert d[2] == pytest.approx((up - down) / 0.02, rel=1e-5)  # $ per vol point
    dt = 1 / 525_600  # a minute either side
    theta = (v(F, T - dt) - v(F, T + dt)) / (2 * dt)
    assert g[rk.G_THETA] * shares == pytest.approx(theta, rel=1e-5)


def _path(F, sig, ts, settle, qty, K, call):
    """Exact quotes (bid = ask = the model price in cents) along a path."""
    T = (settle - ts) / rk.NS_PER_YEAR
    df = np.exp(-RATE * T)
    px = np.stack([black76_price(F, K[m], T, sig[:, m], df, call[m]) for m in range(K.size)], 1)
    c = np.round(px * 100).astype(np.int32)
    return c, c


def _attribute(F, sig, ts, settle, F0, sig0, t0, qty, K, call):
    bid, ask = _path(F, sig, ts, settle, qty, K, call)
    e_bid, _ = _path(np.array([F0]), sig0[None, :], np.array([t0]), settle, qty, K, call)
    n = ts.size
    greeks = np.zeros((n + 1, rk.G_SIZE))
    ivs = np.zeros((n + 1, K.size))
    terms = np.zeros((n + 1, rk.A_SIZE))
    valid = np.zeros(n + 1, bool)
    rk.path_risk(
        ts, bid, ask, F, t0, F0, e_bid[0].astype(np.int64), e_bid[0].astype(np.int64),
        sig0.copy(), qty, K, call, K.size, settle, math.nan, RATE, greeks, ivs, terms, valid,
        np.zeros(rk.G_SIZE), False,
    )  # fmt: skip
    return terms.sum(axis=0) * 100  # dollars for one contract


# an at-the-money put spread 100 points wide: prices of tens of dollars, so cent rounding of
# the quotes is small against the moves
QTY, K, CALL = np.array([-1, 1]), np.array([5000.0, 4900.0]), np.array([False, False])
SETTLE = 20 * 1440 * NS_MIN


def test_a_pure_forward_move_is_delta_and_gamma() -> None:
    iv0 = np.array([0.18, 0.18])
    # one jump of 40 points, no time passing: delta and gamma to second order
    a = _attribute(
        np.array([4960.0]), iv0[None, :], np.array([1]), SETTLE, 5000.0, iv0, 0, QTY, K, CALL
    )
    d, g, v, t, actual = a
    assert abs(actual) > 500 and abs(g) > 0.01 * abs(actual)
    assert d + g == pytest.approx(actual, rel=1e-2)
    assert abs(v) < 1e-3 * abs(actual) and abs(t) < 1e-3
    # down 40, up 25, down 10: each step to second order from the greeks at its start
    F = np.array([4960.0, 4985.0, 4975.0])
    a = _attribute(F, np.tile(iv0, (3, 1)), np.arange(1, 4), SETTLE, 5000.0, iv0, 0, QTY, K, CALL)
    d, g, v, t, actual = a
    assert d + g == pytest.approx(actual, rel=1e-2)


def test_a_pure_vol_move_is_vega() -> None:
    n = 200
    ts = np.arange(1, n + 1, dtype=np.int64)
    F = np.full(n, 5000.0)
    sig = np.stack([np.linspace(0.18, 0.24, n), np.linspace(0.19, 0.26, n)], 1)
    a = _attribute(F, sig, ts, SETTLE, 5000.0, np.array([0.18, 0.19]), 0, QTY, K, CALL)
    d, g, v, t, actual = a
    assert abs(actual) > 50
    assert v == pytest.approx(actual, rel=5e-3)
    assert d == 0 and g == 0 and abs(t) < 1e-3


def test_time_alone_is_theta() -> None:
    n = 3 * 390
    ts = np.arange(1, n + 1, dtype=np.int64) * 3 * NS_MIN  # about two and a half days
    F = np.full(n, 5000.0)
    sig = np.full((n, 2), 0.18)
    a = _attribute(F, sig, ts, SETTLE, 5000.0, np.array([0.18, 0.18]), 0, QTY, K, CALL)
    d, g, v, t, actual = a
    assert abs(actual) > 20
    assert t == pytest.approx(actual, rel=1e-2)
    assert d == 0 and g == 0 and abs(v) < 0.01 * abs(actual)


def test_scenarios_reprice_every_cell_in_full() -> None:
    iv, F, T = np.array([0.16, 0.18]), 5000.0, 4 / 365
    df = math.exp(-RATE * T)
    out = np.empty((SPOT_MOVES.size, VOL_MOVES.size))
    rk.scenario_values(F, T, df, QTY, K, CALL, 2, iv, SPOT_MOVES, VOL_MOVES, out)
    base = _value(F, T, df, QTY, K, CALL, iv)
    a, b = 3, 5  # -7 %, +15 vol points
    want = _value(F * (1 + SPOT_MOVES[a]), T, df, QTY, K, CALL, iv + VOL_MOVES[b]) - base
    assert out[a, b] == pytest.approx(want, rel=1e-12)
    assert out[list(SPOT_MOVES).index(0.0), list(VOL_MOVES).index(0.0)] == pytest.approx(
        0, abs=1e-12
    )
    loss, spot, vol = worst(out * 100)
    assert (
        loss == pytest.approx(-out.min() * 100) and spot == -10.0 and vol == -5.0
    )  # deep in the money: less vol, nearer full width
    low = np.empty_like(out)
    rk.scenario_values(
        F, T, df, QTY, K, CALL, 2, np.array([0.02, 0.03]), SPOT_MOVES, VOL_MOVES, low
    )
    assert np.isfinite(low).all()  # a -5 point shift floors each vol at 1 point


def test_a_leg_without_a_vol_borrows_its_nearest_legs() -> None:
    iv = np.array([0.2, np.nan, 0.3, np.nan])
    strike = np.array([5000.0, 4990.0, 5100.0, 5110.0])
    rk.borrow_vols(iv, strike, 4)
    assert iv.tolist() == [0.2, 0.2, 0.3, 0.3]
    none = np.array([np.nan, np.nan])
    rk.borrow_vols(none, strike[:2], 2)
    assert np.isnan(none).all()
    loss, spot, vol = worst(np.full(SPOT_MOVES.size * VOL_MOVES.size, np.nan))
    assert np.isnan(loss) and np.isnan(spot) and np.isnan(vol)


def test_path_vols_are_the_exact_solvers() -> None:
    """Each minute's vol (Newton from the last minute's, or the exact solver) equals the exact
    solver's on that minute's mid, on a random path with nickel quotes."""
    from quantlab.pricing import implied_vol

    rng = np.random.default_rng(3)
    n = 600
    ts = np.arange(1, n + 1, dtype=np.int64) * NS_MIN
    F = 5000 * np.exp(np.cumsum(rng.normal(0, 0.0006, n)))
    sig = np.stack([0.16 + np.cumsum(rng.normal(0, 0.001, n)), np.full(n, 0.2)], 1)
    K, qty, call = np.array([4950.0, 4900.0]), np.array([-1, 1]), np.array([False, False])
    T = (SETTLE - ts) / rk.NS_PER_YEAR
    df = np.exp(-RATE * T)
    px = np.stack([black76_price(F, K[m], T, sig[:, m], df, False) for m in range(2)], 1)
    bid = (np.floor(px * 20) * 5).astype(np.int32)
    ask = bid + 5
    g = np.zeros((n + 1, rk.G_SIZE))
    ivs = np.zeros((n + 1, 2))
    terms = np.zeros((n + 1, rk.A_SIZE))
    valid = np.zeros(n + 1, bool)
    rk.path_risk(
        ts, bid, ask, F, 0, 5000.0, bid[0].astype(np.int64), ask[0].astype(np.int64),
        np.array([0.16, 0.2]), qty, K, call, 2, SETTLE, math.nan, RATE, g, ivs, terms, valid,
        np.zeros(rk.G_SIZE), False,
    )  # fmt: skip
    mid = (bid + ask) / 200.0
    for m in range(2):
        exact = implied_vol(mid[:, m], F, K[m], T, df, False)
        ok = bid[:, m] > 0
        np.testing.assert_allclose(ivs[:n][ok, m], exact[ok], rtol=1e-10, atol=1e-12)
