"""Forwards from put-call parity: exact on model prices, robust to a few bad quotes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantlab.errors import InputError
from quantlab.pricing import black76_price, implied_forward


def _board(F: float, T: float, r: float, half: float = 0.05):
    K = np.arange(round(F * 0.9 / 5) * 5, F * 1.1, 5.0)
    df = math.exp(-r * T)
    vol = 0.15 - 0.8 * np.log(K / F)  # put skew
    c = black76_price(F, K, T, np.clip(vol, 0.05, 1.0), df, True)
    p = black76_price(F, K, T, np.clip(vol, 0.05, 1.0), df, False)
    return K, c - half, c + half, p - half, p + half


@given(F=st.floats(1000, 7000), dte=st.floats(0.05, 10), r=st.floats(0.0, 0.06))
def test_recovers_forward_with_known_rate(F: float, dte: float, r: float) -> None:
    T = dte / 365
    K, cb, ca, pb, pa = _board(F, T, r)
    fit = implied_forward(K, cb, ca, pb, pa, T, r=r)
    assert fit.ok and fit.forward == pytest.approx(F, abs=1e-6)
    assert fit.df == pytest.approx(math.exp(-r * T))


def test_robust_to_bad_quotes() -> None:
    F, T, r = 5012.37, 5 / 365, 0.05
    K, cb, ca, pb, pa = _board(F, T, r)
    j = int(np.argmin(np.abs(K - F)))
    # a stale call 3 points rich two strikes away, and a fat-fingered put next door
    ca[j + 2] += 3.0
    cb[j + 2] += 3.0
    pb[j - 1] -= 2.0
    pa[j - 1] -= 2.0
    fit = implied_forward(K, cb, ca, pb, pa, T, r=r)
    assert fit.forward == pytest.approx(F, abs=0.01)
    assert fit.n_used <= fit.n_usable


def test_skips_one_sided_crossed_and_stale_pairs() -> None:
    F, T, r = 4000.0, 3 / 365, 0.04
    K, cb, ca, pb, pa = _board(F, T, r)
    j = int(np.argmin(np.abs(K - F)))
    cb[j] = 0.0  # zero bid: not two-sided
    pb[j + 1], pa[j + 1] = pa[j + 1] + 1.0, pb[j + 1]  # crossed
    fresh = np.ones(K.shape[0], dtype=bool)
    fresh[j - 1] = False
    cb[j - 1] += 50.0
    ca[j - 1] += 50.0  # wildly off but marked stale
    fit = implied_forward(K, cb, ca, pb, pa, T, r=r, fresh=fresh)
    assert (
        K[j] not in fit.used_strikes
        and K[j + 1] not in fit.used_strikes
        and K[j - 1] not in fit.used_strikes
    )
    assert fit.forward == pytest.approx(F, abs=1e-6)


def test_fits_discount_factor_for_long_expiry() -> None:
    F, T, r = 5100.0, 120 / 365, 0.045
    K, cb, ca, pb, pa = _board(F, T, r, half=0.2)
    fit = implied_forward(K, cb, ca, pb, pa, T)
    assert fit.forward == pytest.approx(F, abs=0.05)
    assert fit.r == pytest.approx(r, abs=5e-4)


def test_no_usable_pairs_gives_nan_with_reason() -> None:
    nan = np.full(3, np.nan)
    fit = implied_forward([1.0, 2.0, 3.0], nan, nan, nan, nan, 0.1, r=0.05)
    assert not fit.ok and "usable" in fit.reason


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="call_ask must have one value per strike"):
        implied_forward([1.0, 2.0], [1.0, 1.0], [1.0], [1.0, 1.0], [1.0, 1.0], 0.1, r=0.0)
    with pytest.raises(InputError, match="T must be"):
        implied_forward([1.0], [1.0], [1.0], [1.0], [1.0], 0.0, r=0.0)
