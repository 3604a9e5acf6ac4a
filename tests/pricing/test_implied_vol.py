"""Tests of the Black-76 implied volatility (Let's Be Rational) and its forward pricer."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlab.errors import InputError
from quantlab.pricing._iv_kernels import (
    black76_normalised_price_scalar,
    black76_price_1d,
    black76_price_scalar,
    implied_vol_1d,
    implied_vol_1d_par,
    implied_vol_scalar,
)
from quantlab.pricing._status import IVStatus
from quantlab.pricing.implied_vol import PARALLEL_THRESHOLD, implied_vol

EPS = np.finfo(float).eps
ONE_MINUTE = 1.0 / 525600.0
REPO_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def price(F, K, T, sigma, df, is_call):
    """Vectorised accurate Black-76 price (the kernel module's forward pricer)."""
    arrs = np.broadcast_arrays(
        np.asarray(F, float),
        np.asarray(K, float),
        np.asarray(T, float),
        np.asarray(sigma, float),
        np.asarray(df, float),
        np.asarray(is_call, bool),
    )
    flat = [np.ascontiguousarray(a).ravel() for a in arrs]
    out = np.empty(flat[0].shape[0])
    black76_price_1d(*flat, out)
    return out.reshape(arrs[0].shape)


def intrinsic(F, K, is_call):
    return np.where(is_call, np.maximum(F - K, 0.0), np.maximum(K - F, 0.0))


def sigma_error_from_price_rounding(p, F, K, T, sigma, df):
    """|d sigma| caused by a few ulps of rounding in the (discounted) input price."""
    sq = np.sqrt(T)
    d1 = (np.log(F / K) + 0.5 * sigma * sigma * T) / (sigma * sq)
    vega = df * F * np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) * sq
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return 4.0 * EPS * p / vega


def accuracy_grid():
    """|ln F/K| <= 1, T from one minute to 3 years, sigma from 1% to 300%, calls and puts."""
    x = np.linspace(-1.0, 1.0, 21)
    T = np.geomspace(ONE_MINUTE, 3.0, 12)
    sig = np.geomspace(0.01, 3.0, 12)
    cp = np.array([True, False])
    X, TT, S, C = (a.ravel() for a in np.meshgrid(x, T, sig, cp, indexing="ij"))
    F = np.full_like(X, 5000.0)
    K = F * np.exp(-X)
    df = np.full_like(X, 0.98)
    return F, K, TT, S, df, C


# ---------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------
def test_round_trip_grid():
    F, K, T, sig, df, cp = accuracy_grid()
    p = price(F, K, T, sig, df, cp)
    vol, status = implied_vol(p, F, K, T, df, cp, return_status=True)

    intr = intrinsic(F, K, cp)
    time_value = p / df - intr  # exactly as the kernel computes it
    expected = np.where(
        p <= df * intr,
        IVStatus.BELOW_INTRINSIC,
        np.where(time_value < 1e-12 * F, IVStatus.NO_TIME_VALUE, IVStatus.OK),
    )
    np.testing.assert_array_equal(status, expected)
    ok = status == IVStatus.OK
    assert np.isnan(vol[~ok]).all()
    assert ok.sum() > 1500  # short-dated low-vol wings carry no resolvable time value

    # price round trip wherever the time value exceeds 1e-12 * F
    p_back = price(F[ok], K[ok], T[ok], vol[ok], df[ok], cp[ok])
    rel = np.abs(p_back / p[ok] - 1.0)
    assert rel.max() < 1e-9, rel.max()
    assert rel.max() < 1e-12  # what is actually achieved (~1e-14)

    # volatility recovered to 1e-8 where the problem is well conditioned
    cond = sigma_error_from_price_rounding(p, F, K, T, sig, df)
    well = ok & (time_value > 1e-10 * F) & (cond < 1e-10)
    assert well.sum() > 1000
    err = np.abs(vol[well] - sig[well])
    assert err.max() < 1e-8, err.max()
    # everywhere it solves, the error is within what the rounding of the input price allows
    bound = 4.0 * cond[ok] + 16.0 * EPS * sig[ok]
    assert np.all(np.abs(vol[ok] - sig[ok]) <= bound)


@pytest.mark.parametrize(
    ("K", "T", "sigma", "is_call"),
    [
        (4800.0, 2 / 365, 0.25, False),  # 2 DTE put, ~4% OTM
        (5200.0, 2 / 365, 0.18, True),
        (4975.0, 30 / 525600, 0.40, False),  # 30 minutes to expiry
        (5015.0, 30 / 525600, 0.20, True),
        (4997.0, 1 / 525600, 0.30, False),  # one minute
        (4500.0, 3 / 365, 0.35, False),  # 0-3 DTE far wings
        (5150.0, 1 / 365, 0.22, True),
        (4990.0, 1 / 365, 0.12, True),  # in the money, near expiry: via parity
        (5100.0, 2 / 365, 0.15, False),  # in-the-money put
    ],
)
def test_spx_near_expiry_out_of_the_money(K, T, sigma, is_call):
    F, df = 5000.0, 0.9995
    p = black76_price_scalar(F, K, T, sigma, df, is_call)
    vol, status = implied_vol(p, F, K, T, df, is_call, return_status=True)
    assert status == IVStatus.OK
    assert abs(float(vol) - sigma) < 1e-10 * max(1.0, sigma)
    assert abs(black76_price_scalar(F, K, T, float(vol), df, is_call) / p - 1.0) < 1e-13


def test_spx_ten_delta_and_below_chain():
    """A 0-3 DTE chain out to (and beyond) the 10-delta wings: every quoted price inverts."""
    F, df = 5000.0, 0.9998
    K = np.arange(4000.0, 6001.0, 5.0)
    out = []
    for T in (30 / 525600, 4 / 8760, 1 / 365, 2 / 365, 3 / 365):
        for is_call in (True, False):
            sig = 0.12 + 0.8 * np.abs(np.log(K / F))  # a smile
            p = price(F, K, T, sig, df, is_call)
            vol, status = implied_vol(p, F, K, T, df, is_call, return_status=True)
            tv = p / df - intrinsic(F, K, is_call)
            resolvable = tv >= 1e-12 * F
            np.testing.assert_array_equal(status[resolvable], IVStatus.OK)
            assert (status[~resolvable] != IVStatus.OK).all()
            cond = sigma_error_from_price_rounding(p, F, K, T, sig, df)
            well = resolvable & (cond < 1e-10)
            out.append(np.abs(vol[well] - sig[well]))
            back = price(F, K[resolvable], T, vol[resolvable], df, is_call)
            assert np.max(np.abs(back / p[resolvable] - 1)) < 1e-12
    assert np.concatenate(out).max() < 1e-9


def test_inverts_arbitrary_precision_prices():
    """Prices computed to 50 digits (independent of our pricer) give back sigma to the last bits."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    rng = np.random.default_rng(17)
    F, df = 5000.0, 0.9999
    checked = 0
    for _ in range(120):
        K = float(np.round(F * math.exp(rng.uniform(-0.1, 0.1))))
        T = float(rng.choice([1, 30, 60, 390, 1440, 2880, 4320, 10080, 43200])) / 525600
        sigma = float(rng.uniform(0.08, 0.6))
        is_call = bool(rng.random() < 0.5)
        sd = mpmath.mpf(sigma) * mpmath.sqrt(mpmath.mpf(T))
        d1 = mpmath.log(mpmath.mpf(F) / mpmath.mpf(K)) / sd + sd / 2
        d2 = d1 - sd
        if is_call:
            undiscounted = F * mpmath.ncdf(d1) - K * mpmath.ncdf(d2)
        else:
            undiscounted = K * mpmath.ncdf(-d2) - F * mpmath.ncdf(-d1)
        p = float(mpmath.mpf(df) * undiscounted)
        vol, status = implied_vol_scalar(p, F, K, T, df, is_call)
        intr = max(F - K if is_call else K - F, 0.0)
        if p <= df * intr or p / df - intr < 1e-12 * F:
            assert status in (IVStatus.BELOW_INTRINSIC, IVStatus.NO_TIME_VALUE)
            continue
        assert status == IVStatus.OK
        cond = sigma_error_from_price_rounding(p, F, K, T, sigma, df)
        assert abs(vol - sigma) <= cond + 16 * EPS * sigma, (K, T, sigma, is_call)
        checked += 1
    assert checked > 60


def test_in_the_money_equals_out_of_the_money_twin():
    """An ITM call is inverted through its OTM put twin: the same vol comes back."""
    F, df = 5000.0, 0.99
    K = np.linspace(3000.0, 4990.0, 50)
    T, sig = 0.25, 0.3
    put = price(F, K, T, sig, df, False)
    call = put + df * (F - K)  # put-call parity
    v_put = implied_vol(put, F, K, T, df, False)
    v_call = implied_vol(call, F, K, T, df, True)
    np.testing.assert_allclose(v_put, sig, rtol=1e-13)
    # The call price carries the intrinsic value, so its rounding limits the twin's accuracy.
    cond = sigma_error_from_price_rounding(call, F, K, T, sig, df)
    assert np.all(np.abs(v_call - v_put) <= 4 * cond + 1e-14)


@settings(max_examples=300, deadline=None)
@given(
    F=st.floats(50.0, 20000.0),
    x=st.floats(-1.0, 1.0),
    T=st.floats(ONE_MINUTE, 3.0),
    sigma=st.floats(0.01, 3.0),
    df=st.floats(0.5, 1.0),
    is_call=st.booleans(),
)
def test_property_round_trip(F, x, T, sigma, df, is_call):
    K = F * math.exp(-x)
    p = black76_price_scalar(F, K, T, sigma, df, is_call)
    vol, status = implied_vol_scalar(p, F, K, T, df, is_call)
    intr = max(F - K, 0.0) if is_call else max(K - F, 0.0)
    tv = p / df - intr
    if p <= df * intr:
        assert status == IVStatus.BELOW_INTRINSIC
        return
    if tv < 1e-12 * F:
        assert status == IVStatus.NO_TIME_VALUE and math.isnan(vol)
        return
    assert status == IVStatus.OK
    assert abs(black76_price_scalar(F, K, T, vol, df, is_call) / p - 1.0) < 1e-9
    cond = sigma_error_from_price_rounding(p, F, K, T, sigma, df)
    if tv > 1e-10 * F and cond < 1e-10:
        assert abs(vol - sigma) < 1e-8


# ---------------------------------------------------------------------------------------------
# forward pricer
# ---------------------------------------------------------------------------------------------
def test_normalised_price_against_high_precision():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    rng = np.random.default_rng(7)
    xs = np.concatenate([rng.uniform(-3, 3, 150), rng.uniform(-40, 40, 50), [0.0, -1.0, 2.0]])
    ss = np.concatenate([10 ** rng.uniform(-4, 1, 200), [1e-6, 0.01, 0.5]])
    for x, s in zip(xs, ss, strict=True):
        for theta in (1.0, -1.0):
            xm, sm = mpmath.mpf(float(x)) * int(theta), mpmath.mpf(float(s))
            ref = mpmath.exp(xm / 2) * mpmath.ncdf(xm / sm + sm / 2) - mpmath.exp(
                -xm / 2
            ) * mpmath.ncdf(xm / sm - sm / 2)
            if ref < 1e-300:
                continue
            got = black76_normalised_price_scalar(float(x), float(s), theta)
            h2, t2 = (x / s) ** 2, (s / 2) ** 2
            # attainable: a few ulps times the condition number of b in (x, s)
            tol = 8 * EPS * (1 + h2 + t2 + abs(x))
            assert abs(got / float(ref) - 1) < tol, (x, s, theta, got, ref)


def test_normalised_price_edges():
    assert black76_normalised_price_scalar(0.3, 0.0, 1.0) == pytest.approx(2 * math.sinh(0.15))
    assert black76_normalised_price_scalar(-0.3, 0.0, 1.0) == 0.0
    assert black76_normalised_price_scalar(0.3, math.inf, -1.0) == pytest.approx(math.exp(-0.15))
    assert math.isnan(black76_normalised_price_scalar(0.3, -1.0, 1.0))
    assert math.isnan(black76_normalised_price_scalar(math.nan, 0.2, 1.0))
    # put-call parity: c - p = 2 sinh(x/2)
    for x in (-2.0, -0.1, 0.0, 1e-9, 0.7):
        c = black76_normalised_price_scalar(x, 0.4, 1.0)
        p = black76_normalised_price_scalar(x, 0.4, -1.0)
        assert c - p == pytest.approx(2 * math.sinh(x / 2), abs=1e-15)


def test_price_scalar_bad_inputs():
    assert math.isnan(black76_price_scalar(math.nan, 100.0, 1.0, 0.2, 1.0, True))
    assert math.isnan(black76_price_scalar(100.0, -1.0, 1.0, 0.2, 1.0, True))
    assert math.isnan(black76_price_scalar(100.0, 90.0, 1.0, -0.2, 1.0, True))
    assert black76_price_scalar(100.0, 90.0, 0.0, 0.2, 0.9, True) == pytest.approx(9.0)
    assert black76_price_scalar(100.0, 90.0, 1.0, 0.0, 0.9, False) == 0.0


# ---------------------------------------------------------------------------------------------
# statuses
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((math.nan, 100.0, 100.0, 1.0, 1.0, True), IVStatus.INVALID_INPUT),
        ((5.0, math.inf, 100.0, 1.0, 1.0, True), IVStatus.INVALID_INPUT),
        ((5.0, 100.0, math.nan, 1.0, 1.0, True), IVStatus.INVALID_INPUT),
        ((5.0, 100.0, 100.0, math.inf, 1.0, True), IVStatus.INVALID_INPUT),
        ((5.0, 100.0, 100.0, 1.0, math.nan, True), IVStatus.INVALID_INPUT),
        ((5.0, 0.0, 100.0, 1.0, 1.0, True), IVStatus.INVALID_INPUT),
        ((5.0, 100.0, -100.0, 1.0, 1.0, False), IVStatus.INVALID_INPUT),
        ((5.0, 100.0, 100.0, 1.0, 0.0, True), IVStatus.INVALID_INPUT),
        ((math.nan, 100.0, 100.0, 0.0, 1.0, True), IVStatus.INVALID_INPUT),  # invalid wins
        ((5.0, 100.0, 100.0, 0.0, 1.0, True), IVStatus.EXPIRED),
        ((5.0, 100.0, 100.0, -0.1, 1.0, False), IVStatus.EXPIRED),
        ((10.0, 110.0, 100.0, 1.0, 1.0, True), IVStatus.BELOW_INTRINSIC),  # at intrinsic
        ((9.0, 110.0, 100.0, 1.0, 1.0, True), IVStatus.BELOW_INTRINSIC),
        ((9.0, 100.0, 110.0, 1.0, 0.9, False), IVStatus.BELOW_INTRINSIC),  # = df * intrinsic
        ((0.0, 100.0, 110.0, 1.0, 1.0, True), IVStatus.BELOW_INTRINSIC),
        ((-1.0, 100.0, 110.0, 1.0, 1.0, False), IVStatus.BELOW_INTRINSIC),
        ((90.0, 100.0, 110.0, 1.0, 0.9, True), IVStatus.ABOVE_MAX),  # = df * F
        ((120.0, 100.0, 110.0, 1.0, 1.0, False), IVStatus.ABOVE_MAX),
        ((1e-11, 100.0, 110.0, 1.0, 1.0, True), IVStatus.NO_TIME_VALUE),
        ((10.0 + 5e-11, 110.0, 100.0, 1.0, 1.0, True), IVStatus.NO_TIME_VALUE),
        ((0.5, 1.0, math.exp(600.0), 1.0, 1.0, True), IVStatus.NO_TIME_VALUE),
        ((1e-301, 1e-300, 1e300, 1.0, 1.0, True), IVStatus.NO_TIME_VALUE),
    ],
)
def test_status_codes(args, expected):
    vol, status = implied_vol(*args, return_status=True)
    assert status.dtype == np.int8
    assert int(status) == expected
    assert math.isnan(float(vol))
    sig, code = implied_vol_scalar(*args)
    assert code == expected and math.isnan(sig)


def test_values_never_raise():
    rng = np.random.default_rng(3)
    n = 20_000
    pick = np.array([0.0, -1.0, 1e-320, 1e-300, 1.0, 1e300, math.inf, -math.inf, math.nan])
    cols = []
    for _ in range(5):
        c = 10 ** rng.uniform(-30, 30, n)
        mask = rng.random(n) < 0.2
        c[mask] = rng.choice(pick, mask.sum())
        cols.append(c)
    vol, status = implied_vol(*cols, rng.random(n) < 0.5, return_status=True)
    assert set(np.unique(status)) <= {int(s) for s in IVStatus}
    assert np.isnan(vol[status != 0]).all()
    good = status == 0
    assert np.isfinite(vol[good]).all() and (vol[good] > 0).all()


# ---------------------------------------------------------------------------------------------
# the public function: shapes and input types
# ---------------------------------------------------------------------------------------------
def test_broadcasting():
    F, T, df = 5000.0, 0.05, 0.999
    K = np.array([4800.0, 4900.0, 5000.0, 5100.0])
    sig = np.array([[0.15], [0.2], [0.3]])
    p = price(F, K, T, sig, df, False)  # (3, 4)
    vol, status = implied_vol(p, F, K, T, df, False, return_status=True)
    assert vol.shape == (3, 4) and status.shape == (3, 4)
    np.testing.assert_allclose(vol, np.broadcast_to(sig, (3, 4)), rtol=1e-12)
    for i in range(3):
        for j in range(4):
            assert vol[i, j] == implied_vol_scalar(p[i, j], F, K[j], T, df, False)[0]


def test_scalar_input_gives_zero_d():
    p = black76_price_scalar(100.0, 105.0, 0.5, 0.2, 1.0, True)
    vol = implied_vol(p, 100.0, 105.0, 0.5, 1.0, True)
    assert isinstance(vol, np.ndarray) and vol.shape == () and vol.dtype == np.float64
    assert float(vol) == pytest.approx(0.2, abs=1e-14)
    vol, status = implied_vol(p, 100.0, 105.0, 0.5, 1.0, "C", return_status=True)
    assert status.shape == () and status.dtype == np.int8 and int(status) == 0


def test_polars_series_input():
    pl = pytest.importorskip("polars")
    K = np.array([4900.0, 5000.0, 5100.0])
    p = price(5000.0, K, 0.1, 0.2, 0.99, True)
    vol = implied_vol(pl.Series("p", p), 5000.0, pl.Series("K", K), 0.1, 0.99, pl.Series([1, 1, 1]))
    assert isinstance(vol, np.ndarray) and vol.shape == (3,)
    np.testing.assert_allclose(vol, 0.2, rtol=1e-13)


def test_right_as_strings_and_empty():
    p = price(5000.0, 4900.0, 0.1, 0.2, 1.0, False)
    np.testing.assert_allclose(implied_vol([p, p], 5000.0, 4900.0, 0.1, 1.0, ["P", "put"]), 0.2)
    assert implied_vol(np.array([]), 5000.0, 4900.0, 0.1, 1.0, True).shape == (0,)


def test_shape_mismatch_raises_naming_arguments():
    with pytest.raises(InputError, match=r"price.*K") as info:
        implied_vol(np.ones(3), 100.0, np.ones(4), 1.0, 1.0, True)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InputError, match="is_call"):
        implied_vol(1.0, 100.0, 100.0, 1.0, 1.0, "X")


def test_parallel_kernel_matches_serial():
    n = PARALLEL_THRESHOLD + 1001
    rng = np.random.default_rng(11)
    F = np.full(n, 5000.0)
    K = F * np.exp(rng.uniform(-0.3, 0.3, n))
    T = rng.uniform(ONE_MINUTE, 1.0, n)
    sig = rng.uniform(0.05, 1.0, n)
    df = np.full(n, 0.99)
    cp = rng.random(n) < 0.5
    p = price(F, K, T, sig, df, cp)
    s1, c1 = np.empty(n), np.empty(n, np.int8)
    s2, c2 = np.empty(n), np.empty(n, np.int8)
    implied_vol_1d(p, F, K, T, df, cp, s1, c1)
    implied_vol_1d_par(p, F, K, T, df, cp, s2, c2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(s1, s2)
    vol = implied_vol(p, F, K, T, df, cp)  # takes the parallel path
    np.testing.assert_array_equal(vol, s1)


# ---------------------------------------------------------------------------------------------
# cross-checks
# ---------------------------------------------------------------------------------------------
def test_against_py_vollib():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iv_ref = pytest.importorskip("vollib.black.implied_volatility").implied_volatility
    F, r = 4000.0, 0.03
    n = 0
    for T in (7 / 365, 0.25, 1.5):
        df = math.exp(-r * T)
        for K in (3600.0, 3900.0, 4000.0, 4150.0, 4500.0):
            for is_call in (True, False):
                for sigma in (0.1, 0.25, 0.6):
                    p = black76_price_scalar(F, K, T, sigma, df, is_call)
                    tv = p / df - max(F - K if is_call else K - F, 0.0)
                    cond = sigma_error_from_price_rounding(p, F, K, T, sigma, df)
                    if tv < 1e-8 * F or cond > 1e-12:
                        continue  # ill-conditioned: the reference loses digits there
                    n += 1
                    ref = iv_ref(p, F, K, r, T, "c" if is_call else "p")
                    got = float(implied_vol(p, F, K, T, df, is_call))
                    assert got == pytest.approx(ref, rel=1e-10), (T, K, is_call, sigma)
                    assert got == pytest.approx(sigma, rel=1e-12)
    assert n > 60


TWIN_CASES = [
    # price given through sigma: (F, K, T, sigma, df, is_call) -- many LBR branches / regions
    *[
        (5000.0, K, T, sig, 0.999, cp)
        for K, T, sig, cp in [
            (4800.0, 2 / 365, 0.25, False),
            (5200.0, 2 / 365, 0.25, True),
            (4950.0, 30 / 525600, 0.3, False),
            (5000.0, 0.5, 0.2, True),
            (5000.0, 0.5, 0.2, False),
            (4000.0, 1.0, 0.15, False),
            (6000.0, 1.0, 0.15, True),
            (4000.0, 1.0, 0.15, True),  # deep ITM call
            (3000.0, 3.0, 2.5, True),  # upper branch
            (7000.0, 3.0, 3.0, False),
            (5001.0, 1 / 365, 0.1, True),
            (4999.999, 1 / 525600, 0.05, False),
            (2000.0, 0.1, 1.5, False),
            (12000.0, 0.2, 1.0, True),
            (5100.0, 0.01, 0.5, True),
            (4500.0, 10 / 365, 0.35, False),
            (5500.0, 10 / 365, 0.2, True),
            (5000.0, 3.0, 0.01, True),
            (4900.0, 3.0, 0.01, True),
            (5000.0, 1 / 525600, 3.0, False),
        ]
    ],
]


def _twin_payload():
    rows = []
    for F, K, T, sig, df, cp in TWIN_CASES:
        rows.append([black76_price_scalar(F, K, T, sig, df, cp), F, K, T, df, cp])
    # direct price inputs, including bad ones
    rows += [
        [1e-9, 5000.0, 4000.0, 0.01, 1.0, False],
        [0.0, 5000.0, 4000.0, 0.01, 1.0, False],
        [math.nan, 5000.0, 4000.0, 0.01, 1.0, False],
        [10.0, 5000.0, 5000.0, 0.0, 1.0, True],
        [6000.0, 5000.0, 5000.0, 1.0, 1.0, True],
        [1e-6, 1.0, 1.0, 1e-12, 1.0, True],
        [0.4, 1.0, 1.5, 1.0, 1.0, True],
        [0.9, 1.0, 150.0, 1.0, 1.0, True],  # |x| ~ 5, upper region
        [1e-9, 1.0, 1.0000001, 1.0, 1.0, True],
        [0.999, 1.0, 0.001, 1.0, 1.0, True],
    ]
    # normalised prices through the asymptotic and small-t regions (plain numbers)
    norm = [(-30.0, 0.5), (-12.0, 0.3), (-0.5, 0.01), (0.0, 1e-5), (-2.0, 4.0), (3.0, 0.2)]
    return rows, norm


_TWIN_SCRIPT = """
import json, sys
from quantlab.pricing._iv_kernels import implied_vol_scalar, black76_normalised_price_scalar
rows, norm = json.loads(sys.stdin.read())
out = [list(implied_vol_scalar(*r)) for r in rows]
out2 = [black76_normalised_price_scalar(x, s, 1.0) for x, s in norm]
print(json.dumps([[float(a), int(b)] for a, b in out] + [[float(v), -1] for v in out2]))
"""


def test_twin_numba_disabled_agrees():
    rows, norm = _twin_payload()
    assert len(rows) >= 30
    env = dict(os.environ, QUANTLAB_DISABLE_NUMBA="1")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-c", _TWIN_SCRIPT],
        input=json.dumps([rows, norm]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    plain = json.loads(res.stdout)
    jitted = [list(implied_vol_scalar(*r)) for r in rows]
    jitted += [[black76_normalised_price_scalar(x, s, 1.0), -1] for x, s in norm]
    assert len(plain) == len(jitted)
    n_ok = 0
    for (pv, pc), (jv, jc) in zip(plain, jitted, strict=True):
        assert pc == jc
        if math.isnan(jv):
            assert math.isnan(pv)
        else:
            n_ok += 1
            assert pv == pytest.approx(jv, rel=1e-12, abs=0.0)
    assert n_ok >= 30
