"""Tests of quantlab.stats.overfitting: PSR, expected max Sharpe, DSR and PBO by CSCV.

Reference values come from the published formulas written out by hand here, from the numerical
example of Bailey & López de Prado (2014) "The Deflated Sharpe Ratio", and from a hand-worked
CSCV enumeration; the vectorised PBO is also checked against a naive re-slicing loop.
"""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantlab.errors import InputError
from quantlab.stats import (
    DeflatedSharpe,
    deflated_sharpe_from_matrix,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    overfitting,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
)

GAMMA = 0.5772156649015329  # Euler-Mascheroni


def phi(x: float) -> float:
    """Standard normal CDF written out with math.erf."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# --------------------------------------------------------------------------- Sharpe / PSR


def test_sharpe_ratio_by_hand():
    r = [0.01, -0.01, 0.02, 0.0]
    mean = 0.02 / 4  # 0.005
    var = ((0.005) ** 2 + (0.015) ** 2 + (0.015) ** 2 + (0.005) ** 2) / 3  # ddof=1
    assert sharpe_ratio(r) == pytest.approx(mean / math.sqrt(var), rel=1e-12)
    assert sharpe_ratio(r, periods_per_year=252) == pytest.approx(
        mean / math.sqrt(var) * math.sqrt(252), rel=1e-12
    )
    assert sharpe_ratio(np.zeros(5)) == 0.0  # never traded
    assert sharpe_ratio([0.01, 0.01, 0.01]) == math.inf
    assert sharpe_ratio([-0.01, -0.01]) == -math.inf


def test_psr_worked_example():
    """SR=0.1 per period, n=252, skew=-0.5, raw kurtosis 4, benchmark 0.05."""
    sr, bench, n, g3, g4 = 0.1, 0.05, 252, -0.5, 4.0
    # denominator: 1 - (-0.5)(0.1) + (4 - 1)/4 * 0.1**2 = 1 + 0.05 + 0.0075 = 1.0575
    denom = math.sqrt(1.0 + 0.05 + 0.0075)
    z = (0.1 - 0.05) * math.sqrt(251) / denom  # = 0.05 * 15.8430 / 1.02835 = 0.77031
    assert z == pytest.approx(0.770312, abs=1e-6)
    expected = phi(z)  # 0.77944
    assert probabilistic_sharpe_ratio(sr, bench, n, g3, g4) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.779443, abs=1e-6)
    # normal returns (skew 0, kurtosis 3): denominator 1 + 0.5 * SR^2
    z0 = 0.1 * math.sqrt(251) / math.sqrt(1.0 + 0.5 * 0.01)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 252) == pytest.approx(phi(z0), abs=1e-12)
    # at the benchmark the probability is one half
    assert probabilistic_sharpe_ratio(0.07, 0.07, 100, -1.0, 6.0) == pytest.approx(0.5)


def test_expected_max_sharpe_hand_formula():
    # Phi^-1(1 - 1/100) = 2.3263478740408408 ; Phi^-1(1 - 1/(100 e)) = 2.6802104449668...
    z1 = 2.3263478740408408
    z2 = 2.680210444966887
    expected = (1 - GAMMA) * z1 + GAMMA * z2
    assert expected_max_sharpe(100, 1.0) == pytest.approx(expected, abs=1e-8)
    assert expected_max_sharpe(100, 0.25) == pytest.approx(0.5 * expected, abs=1e-8)
    assert expected_max_sharpe(1, 3.0) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0
    scipy_stats = pytest.importorskip("scipy.stats")
    for n in (2, 10, 1000):
        ref = (1 - GAMMA) * scipy_stats.norm.ppf(1 - 1 / n) + GAMMA * scipy_stats.norm.ppf(
            1 - 1 / (n * math.e)
        )
        assert expected_max_sharpe(n, 1.0) == pytest.approx(ref, abs=1e-9)


def test_expected_max_sharpe_monte_carlo():
    """N = 100 iid normal Sharpe ratios: E[max] by simulation vs the approximation."""
    rng = np.random.default_rng(20140415)
    var = 0.5 / 250
    draws = rng.normal(0.0, math.sqrt(var), size=(20_000, 100)).max(axis=1)
    mc = draws.mean()  # standard error ~ 0.4 * sqrt(var) / sqrt(20000)
    # the approximation is ~1 % high at N = 100 (exact E[max of 100 N(0,1)] = 2.5076)
    assert expected_max_sharpe(100, var) == pytest.approx(mc, rel=0.02)


def test_dsr_paper_numerical_example():
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example.

    Best of N = 100 trials: annualised SR 2.5, variance of the trials' annualised SRs 1/2,
    T = 1250 daily observations (5 years of 250 days), skewness -3, raw kurtosis 10. The paper
    de-annualises with 250 days: SR0 = 0.1132 per day and DSR = 0.9004; with N = 46 trials the
    DSR would be 0.9505.
    """
    sr = 2.5 / math.sqrt(250)
    var = 0.5 / 250
    sr0 = expected_max_sharpe(100, var)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert probabilistic_sharpe_ratio(sr, sr0, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=5e-5)
    sr0_46 = expected_max_sharpe(46, var)
    assert probabilistic_sharpe_ratio(sr, sr0_46, 1250, -3.0, 10.0) == pytest.approx(
        0.9505, abs=5e-5
    )


def _moments_by_hand(x: np.ndarray) -> tuple[float, float]:
    d = x - x.mean()
    m2, m3, m4 = (d**2).mean(), (d**3).mean(), (d**4).mean()
    return m3 / m2**1.5, m4 / m2**2


def test_deflated_sharpe_ratio_composes_psr():
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, size=750) * 0.01 + 0.0015
    trials = rng.normal(0.0, 0.04, size=40)
    res = deflated_sharpe_ratio(r, trials)
    assert isinstance(res, DeflatedSharpe)
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = _moments_by_hand(r)
    var = trials.var(ddof=1)
    sr_star = math.sqrt(var) * (
        (1 - GAMMA) * overfitting._NORMAL.inv_cdf(1 - 1 / 40)
        + GAMMA * overfitting._NORMAL.inv_cdf(1 - 1 / (40 * math.e))
    )
    z = (sr - sr_star) * math.sqrt(749) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert res.sr == pytest.approx(sr, rel=1e-12)
    assert (res.skew, res.kurtosis) == pytest.approx((g3, g4), rel=1e-10)
    assert res.var_sharpe == pytest.approx(var, rel=1e-12)
    assert res.sr_star == pytest.approx(sr_star, rel=1e-10)
    assert res.dsr == pytest.approx(phi(z), abs=1e-12)
    assert (res.n_trials, res.n_obs) == (40.0, 750)
    # explicit n_trials / var_sharpe give the same result and override the array
    same = deflated_sharpe_ratio(r, n_trials=40, var_sharpe=var)
    assert same.dsr == pytest.approx(res.dsr, abs=1e-12)
    fewer = deflated_sharpe_ratio(r, trials, n_trials=10)
    assert fewer.n_trials == 10.0 and fewer.dsr > res.dsr


def test_deflated_sharpe_from_matrix_picks_best_column():
    rng = np.random.default_rng(11)
    m = rng.normal(0.0, 0.01, size=(500, 25))
    m[:, 7] += 0.002
    m[:, 12] = 0.0  # a configuration that never traded: Sharpe 0, still a trial
    res = deflated_sharpe_from_matrix(m)
    with np.errstate(invalid="ignore"):
        srs = m.mean(axis=0) / m.std(axis=0, ddof=1)
    srs[12] = 0.0  # 0 / 0 for the never-traded column
    assert res.best_index == int(np.argmax(srs)) == 7
    ref = deflated_sharpe_ratio(m[:, 7], srs)
    assert res.dsr == pytest.approx(ref.dsr, abs=1e-12)
    assert res.var_sharpe == pytest.approx(srs.var(ddof=1), rel=1e-12)
    noise = rng.normal(0.0, 0.01, size=(500, 25))
    assert deflated_sharpe_from_matrix(noise).dsr < 0.95


# --------------------------------------------------------------------------- PBO


HAND = np.array(
    [  # rows = periods (one per block), columns = configurations A, B, C
        [1.0, 0.0, 3.0],
        [2.0, 1.0, -1.0],
        [0.0, 2.0, 1.0],
        [1.0, 3.0, 0.0],
    ]
)


def test_pbo_hand_worked_mean_metric():
    """T = 4 rows, S = 4 blocks, N = 3 configurations, metric = mean; ranks 1 = worst.

    IS blocks  IS sums (A, B, C)  pick  OOS sums (A, B, C)  OOS rank of pick      ω = r/4   λ
    {0,1}      3, 1, 2            A     1, 5, 1             ties C: (1+2)/2 = 1.5 0.375  ln 0.6
    {0,2}      1, 2, 4            C     3, 4, -1            1                  0.25   ln 1/3
    {0,3}      2, 3, 3            B     2, 3, 0             3                  0.75   ln 3
               (IS tie B = C: the lowest column wins)
    {1,2}      2, 3, 0            B     2, 3, 3             ties C: 1+(2+1)/2 = 2.5   ln 5/3
    {1,3}      3, 4, -1           B     1, 2, 4             2                  0.5    0
    {2,3}      1, 5, 1            B     3, 1, 2             1                  0.25   ln 1/3
    λ <= 0 in 4 of 6 combinations: PBO = 2/3. OOS sums of the pick: 1, -1, 3, 3, 2, 1.
    """
    res = pbo_cscv(HAND, n_splits=4, metric="mean")
    expected_logits = [
        math.log(0.6),
        math.log(1 / 3),
        math.log(3.0),
        math.log(5 / 3),
        0.0,
        math.log(1 / 3),
    ]
    np.testing.assert_allclose(res.logits, expected_logits, atol=1e-12)
    assert res.pbo == pytest.approx(4 / 6)
    assert res.n_combinations == 6 and res.n_splits == 4 and res.n_configs == 3
    np.testing.assert_array_equal(res.chosen, [0, 2, 1, 1, 1, 1])
    is_means = np.array([3, 4, 3, 3, 4, 5]) / 2
    oos_means = np.array([1, -1, 3, 3, 2, 1]) / 2
    np.testing.assert_allclose(res.is_metric, is_means)
    np.testing.assert_allclose(res.oos_metric, oos_means)
    assert res.prob_oos_loss == pytest.approx(1 / 6)
    slope, intercept = np.polyfit(is_means, oos_means, 1)
    assert res.degradation_slope == pytest.approx(slope)
    assert res.degradation_intercept == pytest.approx(intercept)
    # "sum" ranks identically (equal half lengths)
    np.testing.assert_allclose(pbo_cscv(HAND, n_splits=4, metric="sum").logits, expected_logits)


def _naive_pbo(x: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """Reference CSCV: slice every half and compute its Sharpe ratios column by column."""
    n_cfg = x.shape[1]
    blocks = np.array_split(x[: (x.shape[0] // s) * s], s)
    logits = []
    for is_idx in itertools.combinations(range(s), s // 2):
        oos_idx = [b for b in range(s) if b not in is_idx]
        xi = np.concatenate([blocks[b] for b in is_idx])
        xo = np.concatenate([blocks[b] for b in oos_idx])
        sr_is = [sharpe_ratio(xi[:, j]) for j in range(n_cfg)]
        sr_oos = np.array([sharpe_ratio(xo[:, j]) for j in range(n_cfg)])
        best = int(np.argmax(sr_is))
        rank = 1 + np.sum(sr_oos < sr_oos[best]) + (np.sum(sr_oos == sr_oos[best]) - 1) / 2
        w = rank / (n_cfg + 1)
        logits.append(math.log(w / (1 - w)))
    arr = np.array(logits)
    return float(np.mean(arr <= 0)), arr


def test_pbo_matches_naive_reslicing():
    x = np.random.default_rng(5).normal(0.0005, 0.01, size=(67, 6))  # 67 = 8*8 + 3 dropped
    x[:, 2] = 0.0  # never-traded configuration (Sharpe 0 everywhere)
    res = pbo_cscv(x, n_splits=8)
    ref_pbo, ref_logits = _naive_pbo(x, 8)
    assert res.n_rows_used == 64
    np.testing.assert_allclose(res.logits, ref_logits, atol=1e-12)
    assert res.pbo == ref_pbo
    same = pbo_cscv(x, n_splits=8, metric=sharpe_ratio)
    np.testing.assert_array_equal(same.logits, res.logits)


def test_pbo_callable_metric_matches_builtin():
    x = np.random.default_rng(9).normal(0.0, 0.01, size=(60, 5))
    builtin = pbo_cscv(x, n_splits=6, metric="mean")
    custom = pbo_cscv(x, n_splits=6, metric=lambda a: a.mean(axis=0))
    np.testing.assert_allclose(custom.logits, builtin.logits, atol=1e-12)
    np.testing.assert_allclose(custom.oos_metric, builtin.oos_metric, atol=1e-15)


def test_pbo_pure_noise_is_near_one_half():
    """N = 50 noise configurations, T = 1000, S = 16.

    One noise matrix's PBO is itself noisy (over 40 seeds: mean 0.48, sd 0.16; the 12,870
    combinations share their data), so the average over 8 seeded matrices is tested.
    """
    pbos = [
        pbo_cscv(np.random.default_rng(seed).normal(0.0, 0.01, size=(1000, 50))).pbo
        for seed in range(8)
    ]
    assert 0.3 < float(np.mean(pbos)) < 0.7
    assert all(0.0 < p < 1.0 for p in pbos)


def test_pbo_true_edge_is_near_zero():
    rng = np.random.default_rng(2017)
    x = rng.normal(0.0, 0.01, size=(1000, 50))
    x[:, 17] += 0.004  # per-period SR 0.4 in every block
    res = pbo_cscv(x)
    assert res.pbo < 0.05
    assert np.all(res.chosen == 17)
    assert res.prob_oos_loss == 0.0


@given(st.integers(0, 10_000))
def test_pbo_invariant_to_column_permutation(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.01, size=(96, 9))
    perm = rng.permutation(9)
    a = pbo_cscv(x, n_splits=8)
    b = pbo_cscv(x[:, perm], n_splits=8)
    assert a.pbo == b.pbo
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-12)
    np.testing.assert_array_equal(perm[b.chosen], a.chosen)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"returns_matrix": np.zeros(100)}, "returns_matrix"),
        ({"returns_matrix": np.zeros((100, 1))}, "returns_matrix"),
        ({"returns_matrix": np.zeros((100, 3)), "n_splits": 7}, "n_splits"),
        ({"returns_matrix": np.zeros((10, 3)), "n_splits": 12}, "n_splits"),
        ({"returns_matrix": np.zeros((100, 3)), "n_splits": 0}, "n_splits"),
        ({"returns_matrix": np.zeros((100, 3)), "n_splits": 2.0}, "n_splits"),
        ({"returns_matrix": np.zeros((100, 3)), "n_splits": 30}, "n_splits"),
        ({"returns_matrix": np.zeros((100, 3)), "metric": "sortino"}, "metric"),
    ],
)
def test_pbo_bad_input(kwargs, name):
    with pytest.raises(InputError, match=name):
        pbo_cscv(**kwargs)


def test_pbo_rejects_nan_with_location():
    x = np.zeros((20, 3))
    x[4, 1] = np.nan
    with pytest.raises(InputError, match=r"returns_matrix.*row 4, column 1"):
        pbo_cscv(x, n_splits=4)


def test_sharpe_family_bad_input():
    with pytest.raises(InputError, match="returns"):
        sharpe_ratio([0.01])
    with pytest.raises(InputError, match="returns"):
        sharpe_ratio(np.zeros((3, 2)))
    with pytest.raises(InputError, match="periods_per_year"):
        sharpe_ratio([0.01, 0.02], periods_per_year=0)
    with pytest.raises(InputError, match="kurtosis"):
        probabilistic_sharpe_ratio(0.1, 0.0, 252, skew=-0.5, kurtosis=0.8)  # excess, not raw
    with pytest.raises(InputError, match="n must"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1)
    with pytest.raises(InputError, match="n_trials"):
        expected_max_sharpe(0, 1.0)
    with pytest.raises(InputError, match="var_sharpe"):
        expected_max_sharpe(10, -1.0)
    with pytest.raises(InputError, match="trial_sharpes"):
        deflated_sharpe_ratio(np.ones(10) * 0.01 + np.arange(10) * 1e-3)
    with pytest.raises(InputError, match="returns_matrix"):
        deflated_sharpe_from_matrix(np.zeros(50))
    const = np.random.default_rng(0).normal(size=(50, 3))
    const[:, 1] = 0.01
    with pytest.raises(InputError, match="column 1"):
        deflated_sharpe_from_matrix(const)


def test_docstring_examples_run():
    result = doctest.testmod(overfitting, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
