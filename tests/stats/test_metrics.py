"""Tests of quantlab.stats.metrics: every performance metric, defined once.

Reference values are worked by hand on small series; vectorbt's returns accessor is the outside
reference on random series where its conventions coincide with ours, and where they do not
(zero volatility, drawdowns measured from the capital) the difference is asserted and explained.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlab.errors import InputError
from quantlab.stats import metrics as m
from quantlab.stats import overfitting

R4 = [0.01, -0.01, 0.02, 0.0]  # mean 0.005, squared deviations sum to 0.0005
PATH = [95.0, 97.0, 110.0, 104.0, 99.0, 105.0, 112.0, 111.0]  # equity from capital 100


# --------------------------------------------------------------------------- by hand


def test_returns_and_compounding_by_hand():
    r = m.returns_from_equity([95.0, 110.0, 99.0], 100.0)
    np.testing.assert_allclose(r, [-0.05, 110 / 95 - 1, 99 / 110 - 1], rtol=1e-15)
    assert m.total_return(r) == pytest.approx(-0.01, abs=1e-15)  # 99 / 100 - 1
    assert m.total_return([]) == 0.0
    # CAGR: 8 sessions that made 11 % -> 1.11 ** (252 / 8) - 1
    r8 = m.returns_from_equity(PATH, 100.0)
    assert m.annualized_return(r8) == pytest.approx(1.11 ** (252 / 8) - 1, rel=1e-12)
    assert m.annualized_return([0.1, 0.1], periods_per_year=1) == pytest.approx(0.1)
    assert m.annualized_return([-1.0, 0.5]) == -1.0  # wiped out


def test_volatility_sharpe_sortino_by_hand():
    std = math.sqrt(0.0005 / 3)  # ddof = 1
    assert m.annualized_volatility(R4) == pytest.approx(std * math.sqrt(252), rel=1e-12)
    assert m.sharpe_ratio(R4) == pytest.approx(0.005 / std, rel=1e-12)
    assert m.sharpe_ratio(R4, periods_per_year=252) == pytest.approx(
        0.005 / std * math.sqrt(252), rel=1e-12
    )
    # Sortino: target 0, root mean square of min(r, 0) over all 4 periods (not over the 2 losers)
    r = [0.02, -0.01, 0.0, -0.03]
    dd = math.sqrt((0.01**2 + 0.03**2) / 4)
    assert m.downside_deviation(r) == pytest.approx(dd, rel=1e-12)
    assert m.sortino_ratio(r) == pytest.approx(-0.005 / dd, rel=1e-12)
    assert m.sortino_ratio(r, periods_per_year=12) == pytest.approx(
        -0.005 * 12 / (dd * math.sqrt(12)), rel=1e-12
    )


def test_drawdowns_by_hand():
    # path 100 | 95 97 110 104 99 105 112 111: three drawdowns
    #   100 -> 95 (-5 %), back at 110: under water for 95, 97 (2 sessions)
    #   110 -> 99 (-10 %), back at 112: under water for 104, 99, 105 (3 sessions)
    #   112 -> 111, still active: 1 session
    dd = m.drawdown(PATH, 100.0)
    np.testing.assert_allclose(
        dd, [-0.05, -0.03, 0.0, 104 / 110 - 1, -0.1, 105 / 110 - 1, 0.0, 111 / 112 - 1]
    )
    assert m.max_drawdown(PATH, 100.0) == pytest.approx(-0.10)
    assert m.max_drawdown_dollars(PATH, 100.0) == pytest.approx(-11.0)
    p = m.drawdown_periods(PATH, 100.0)
    assert p.count == 3
    assert p.peak_index.tolist() == [0, 3, 7]  # path indices: 0 is the capital
    assert p.valley_index.tolist() == [1, 5, 8]
    assert p.end_index.tolist() == [3, 7, 8]
    assert p.recovered.tolist() == [True, True, False]
    assert p.duration.tolist() == [2, 3, 1]
    assert p.decline.tolist() == [1, 2, 1]
    np.testing.assert_allclose(p.depth, [-0.05, -0.10, 111 / 112 - 1])
    np.testing.assert_allclose(p.depth_dollars, [-5.0, -11.0, -1.0])
    # a loss on day one is a drawdown from the capital
    assert m.max_drawdown([90.0, 101.0], 100.0) == pytest.approx(-0.10)
    assert m.max_drawdown([], 100.0) == 0.0 and m.drawdown_periods([], 100.0).count == 0
    # the peak is the last point at the running maximum before the fall
    flat_top = m.drawdown_periods([100.0, 100.0, 99.0, 100.0], 100.0)
    assert flat_top.peak_index.tolist() == [2] and flat_top.end_index.tolist() == [4]


def test_calmar_by_hand():
    r = m.returns_from_equity(PATH, 100.0)
    assert m.calmar_ratio(r) == pytest.approx((1.11 ** (252 / 8) - 1) / 0.10, rel=1e-12)


FIVE = [100.0, -200.0, 50.0, 150.0, -50.0]


def test_trade_statistics_by_hand():
    assert m.win_rate(FIVE) == pytest.approx(0.6)
    assert m.win_rate([0.0, 10.0]) == 0.5  # breakeven is not a win but is a trade
    assert m.gross_profit(FIVE) == 300.0 and m.gross_loss(FIVE) == 250.0
    assert m.profit_factor(FIVE) == pytest.approx(1.2)
    assert m.expectancy(FIVE) == pytest.approx(10.0)
    assert m.average_win(FIVE) == pytest.approx(100.0)
    assert m.average_loss(FIVE) == pytest.approx(-125.0)
    assert m.cvar(FIVE) == -200.0  # worst ceil(0.05 * 5) = 1
    assert m.cvar(FIVE, 0.4) == pytest.approx(-125.0)  # worst 2
    assert m.cvar(FIVE * 12) == pytest.approx(-200.0)  # 0.05 * 60 is 3.0000000000000004
    hold = m.average_holding_minutes([0, 0, 0], [30 * 60_000_000_000, 60 * 60_000_000_000, 0])
    assert hold == pytest.approx(30.0)
    t0 = 1_704_200_000_000_000_000  # integer nanoseconds are subtracted exactly
    assert m.average_holding_minutes([t0], [t0 + 60_000_000_000 + 1]) == 1 + 1 / 60e9
    ror = m.average_return_on_risk(FIVE, [1000.0, 2000.0, 0.0, np.nan, 500.0])
    assert ror == pytest.approx((0.1 - 0.1 - 0.1) / 3)


def test_trade_statistics_without_trades_or_losses():
    for fn in (m.win_rate, m.expectancy, m.average_win, m.average_loss, m.cvar):
        assert math.isnan(fn([]))
    assert math.isnan(m.profit_factor([])) and math.isnan(m.profit_factor([0.0, 0.0]))
    assert m.profit_factor([5.0, 0.0]) == math.inf
    assert m.profit_factor([-5.0]) == 0.0
    assert math.isnan(m.average_holding_minutes([], []))
    assert math.isnan(m.average_return_on_risk([1.0], [0.0]))


# --------------------------------------------------------------------------- zero volatility


def test_zero_volatility_rule_for_every_ratio():
    """0/0 -> 0.0 and x/0 -> ±inf with x's sign: Sharpe, Sortino, Calmar, all variants."""
    zeros, up, down = np.zeros(6), np.full(6, 0.01), np.full(6, -0.01)
    assert m.sharpe_ratio(zeros) == 0.0
    assert m.sharpe_ratio(up) == math.inf and m.sharpe_ratio(down) == -math.inf
    assert m.sharpe_ratio(up, periods_per_year=252) == math.inf
    cols = m.sharpe_ratio_columns(np.column_stack([zeros, up, down, [*R4, 0.0, 0.0]]))
    assert cols[:3].tolist() == [0.0, math.inf, -math.inf] and math.isfinite(cols[3])
    sums = m.sharpe_from_sums([0.0, 0.06, -0.06], [0.0, 6e-4, 6e-4], 6)
    assert sums.tolist() == [0.0, math.inf, -math.inf]
    # Sortino: downside deviation 0 means no losing period, so the mean is >= 0
    assert m.sortino_ratio(zeros) == 0.0
    assert m.sortino_ratio(up) == math.inf and m.sortino_ratio([0.0, 0.02]) == math.inf
    assert m.sortino_ratio(down) == pytest.approx(-1.0)  # finite: -0.01 / 0.01
    # Calmar: no drawdown from the capital means no loss, so the return is >= 0
    assert m.calmar_ratio(zeros) == 0.0 and m.calmar_ratio([0.0, 0.01]) == math.inf
    assert m.annualized_volatility(zeros) == 0.0 and m.annualized_volatility(up) == 0.0
    # a constant series' mean can round, leaving numpy a std of 1.7e-17 and a Sharpe of 6e15:
    # zero volatility is tested on the values, not on the rounded std
    assert np.std([0.1, 0.1, 0.1], ddof=1) > 0.0
    assert m.sharpe_ratio([0.1, 0.1, 0.1]) == math.inf
    assert m.risk_ratio(3.0, 0.0) == math.inf and m.risk_ratio(-0.0, 0.0) == 0.0


def test_zero_volatility_in_the_overfitting_statistics():
    """A never-traded configuration is a trial with Sharpe 0; a riskless one is refused."""
    rng = np.random.default_rng(4)
    x = rng.normal(0.0005, 0.01, size=(120, 5))
    x[:, 2] = 0.0
    res = overfitting.deflated_sharpe_from_matrix(x)
    srs = m.sharpe_ratio_columns(x)
    assert srs[2] == 0.0 and res.var_sharpe == pytest.approx(srs.var(ddof=1), rel=1e-12)
    pbo = overfitting.pbo_cscv(x, n_splits=4)
    assert np.all(np.isfinite(pbo.logits))
    x[:, 3] = 0.001
    with pytest.raises(InputError, match="column 3"):
        overfitting.deflated_sharpe_from_matrix(x)


# --------------------------------------------------------------------------- vectorbt


def _vbt(r: np.ndarray):
    import pandas as pd
    import vectorbt  # noqa: F401  (registers the .vbt accessor)

    return pd.Series(r).vbt.returns(freq="1D", year_freq="252D")


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_vectorbt_on_random_series(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    r = rng.normal(0.0004, 0.01, n)
    r[rng.random(n) < 0.3] = 0.0  # no-trade sessions
    acc = _vbt(r)
    assert m.sharpe_ratio(r, periods_per_year=252) == pytest.approx(acc.sharpe_ratio(), rel=1e-10)
    assert m.sortino_ratio(r, periods_per_year=252) == pytest.approx(acc.sortino_ratio(), rel=1e-10)
    assert m.annualized_return(r) == pytest.approx(acc.annualized(), rel=1e-10)
    assert m.annualized_volatility(r) == pytest.approx(acc.annualized_volatility(), rel=1e-10)
    assert m.total_return(r) == pytest.approx(acc.total(), rel=1e-10, abs=1e-14)
    # vectorbt's drawdown path starts after the first period, ours at the capital: they agree
    # when the first period is not a loss, and ours is vectorbt's with a leading zero return.
    wealth = np.cumprod(1.0 + r)
    ours = m.max_drawdown(wealth, 1.0)
    assert ours == pytest.approx(_vbt(np.r_[0.0, r]).max_drawdown(), rel=1e-10, abs=1e-15)
    r_up = np.r_[abs(r[0]), r[1:]]
    assert m.max_drawdown(np.cumprod(1.0 + r_up), 1.0) == pytest.approx(
        _vbt(r_up).max_drawdown(), rel=1e-10, abs=1e-15
    )
    assert m.calmar_ratio(r_up) == pytest.approx(_vbt(r_up).calmar_ratio(), rel=1e-10)


def test_first_day_loss_is_where_drawdowns_differ_from_vectorbt():
    r = np.array([-0.10, 0.05, 0.02])
    wealth = np.cumprod(1.0 + r)
    assert m.max_drawdown(wealth, 1.0) == pytest.approx(-0.10)
    assert _vbt(r).max_drawdown() == pytest.approx(0.0)  # blind to the day-one loss
    assert m.calmar_ratio(r) == pytest.approx(m.annualized_return(r) / 0.10)


def test_zero_volatility_is_where_ratios_differ_from_vectorbt():
    """vectorbt returns +inf whenever the volatility is zero, and NaN Calmar without drawdown;
    the one rule here gives 0.0 for all zeros and the mean's sign otherwise."""
    zeros, down = np.zeros(5), np.full(5, -0.01)
    assert _vbt(zeros).sharpe_ratio() == math.inf and m.sharpe_ratio(zeros) == 0.0
    assert _vbt(down).sharpe_ratio() == math.inf and m.sharpe_ratio(down) == -math.inf
    assert _vbt(zeros).sortino_ratio() == math.inf and m.sortino_ratio(zeros) == 0.0
    up = np.full(5, 0.01)
    assert math.isnan(_vbt(up).calmar_ratio()) and m.calmar_ratio(up) == math.inf
    assert math.isnan(_vbt(zeros).calmar_ratio()) and m.calmar_ratio(zeros) == 0.0


def test_drawdown_periods_match_vectorbt_records():
    import pandas as pd
    import vectorbt as vbt

    rng = np.random.default_rng(12)
    for _ in range(5):
        equity = 100.0 * np.cumprod(1.0 + rng.normal(0.0, 0.02, 150))
        equity[40:45] = equity[39]  # a flat stretch: ties at the peak
        p = m.drawdown_periods(equity, 100.0)
        dd = vbt.Drawdowns.from_ts(pd.Series(np.r_[100.0, equity]), wrapper_kwargs={"freq": "1D"})
        rec = dd.records
        assert p.peak_index.tolist() == rec["peak_idx"].tolist()
        assert p.valley_index.tolist() == rec["valley_idx"].tolist()
        assert p.end_index.tolist() == rec["end_idx"].tolist()
        assert p.recovered.tolist() == (rec["status"] == 1).tolist()
        assert p.duration.tolist() == dd.duration.values.astype(int).tolist()
        assert float(np.min(p.depth)) == pytest.approx(dd.max_drawdown())


# --------------------------------------------------------------------------- properties

grid = st.integers(-2000, 2000).map(lambda k: k / 1e4)  # returns on a 1 bp grid, |r| <= 20 %
series = st.lists(grid, min_size=2, max_size=60)


@given(series, st.floats(0.01, 100.0))
def test_sharpe_and_sortino_are_scale_invariant(r, c):
    x = np.array(r)
    assert m.sharpe_ratio(c * x) == pytest.approx(m.sharpe_ratio(x), rel=1e-9, abs=1e-12)
    assert m.sortino_ratio(c * x) == pytest.approx(m.sortino_ratio(x), rel=1e-9, abs=1e-12)


@given(series)
def test_sharpe_of_negated_returns_is_negated(r):
    x = np.array(r)
    assert m.sharpe_ratio(-x) == -m.sharpe_ratio(x)


@given(series)
def test_drawdowns_are_never_positive(r):
    equity = 100.0 * np.cumprod(1.0 + np.array(r))
    dd = m.drawdown(equity, 100.0)
    assert np.all(dd <= 0.0)
    mdd = m.max_drawdown(equity, 100.0)
    assert mdd <= 0.0 and mdd == min(0.0, float(dd.min()))
    p = m.drawdown_periods(equity, 100.0)
    assert np.all(p.depth < 0.0) and np.all(p.duration >= 1)
    assert (float(p.depth.min()) if p.count else 0.0) == pytest.approx(mdd, abs=1e-15)
    assert m.max_drawdown_dollars(equity, 100.0) <= 0.0
    if p.count:
        assert m.calmar_ratio(r) == pytest.approx(m.annualized_return(r) / -mdd, rel=1e-9)


@settings(max_examples=50)
@given(st.lists(st.lists(grid, min_size=4, max_size=4), min_size=2, max_size=30))
def test_columnwise_sharpe_equals_sharpe_per_column(rows):
    x = np.array(rows)  # T x 4
    cols = m.sharpe_ratio_columns(x, periods_per_year=252)
    one = [m.sharpe_ratio(x[:, j], periods_per_year=252) for j in range(4)]
    np.testing.assert_allclose(cols, one, rtol=1e-9, atol=1e-12)
    sums = m.sharpe_from_sums(x.sum(axis=0), (x * x).sum(axis=0), x.shape[0], periods_per_year=252)
    np.testing.assert_allclose(sums, one, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_value():
    with pytest.raises(InputError, match=r"returns needs at least 2.*got 1"):
        m.sharpe_ratio([0.01])
    with pytest.raises(InputError, match=r"returns must be finite \(got nan at index 1\)"):
        m.sortino_ratio([0.01, np.nan, 0.0])
    with pytest.raises(InputError, match=r"returns must be a 1-D series \(got shape \(2, 2\)\)"):
        m.annualized_volatility(np.zeros((2, 2)))
    with pytest.raises(InputError, match=r"periods_per_year must be positive \(got -1\)"):
        m.sharpe_ratio(R4, periods_per_year=-1)
    with pytest.raises(InputError, match=r"capital must be a positive.*got 0"):
        m.max_drawdown([1.0], 0)
    with pytest.raises(InputError, match=r"equity must be positive.*got -1.0 at index 1"):
        m.returns_from_equity([5.0, -1.0], 10.0)
    with pytest.raises(InputError, match=r"returns_matrix.*row 1, column 0"):
        m.sharpe_ratio_columns(np.array([[0.0, 0.0], [np.inf, 0.0]]))
    with pytest.raises(InputError, match=r"alpha must lie strictly between 0 and 1 \(got 1.5\)"):
        m.cvar(FIVE, 1.5)
    with pytest.raises(InputError, match="same length"):
        m.average_holding_minutes([0, 1], [2])
    with pytest.raises(InputError, match="n must be at least 2"):
        m.sharpe_from_sums([0.0], [0.0], 1)
    with pytest.raises(InputError, match=r"returns needs at least 1 observation\(s\) \(got 0\)"):
        m.annualized_return([])


def test_docstring_examples_run():
    result = doctest.testmod(m, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 20 and result.failed == 0
