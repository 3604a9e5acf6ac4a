"""Fill models and the fee schedule: hand-worked cases and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantlab.errors import ConfigError
from quantlab.execution import FeeSchedule, FillModel, tick_size


def test_mid_k_rounds_against_the_trader() -> None:
    fm = FillModel()  # mid -/+ 0.30 x spread
    # sell 1.00/1.20: 1.10 - 0.06 = 1.04 -> 1.00 ; buy 2.90/3.10: 3.06 -> 3.10 (0.10 tick at >= $3)
    np.testing.assert_allclose(fm.leg_prices([1.0, 2.9], [1.2, 3.1], [True, False]), [1.00, 3.10])
    # put credit vertical: sell the 2.00/2.20 put, buy the 1.00/1.10 put
    # sell: 2.10 - 0.06 = 2.04 -> 2.00 ; buy: 1.05 + 0.03 = 1.08 -> 1.10 ; credit 0.90
    assert fm.net_price([2.0, 1.0], [2.2, 1.1], [-1, 1]) == pytest.approx(0.90)


def test_mid_and_natural() -> None:
    bid, ask = [2.0, 1.0], [2.2, 1.1]
    assert FillModel(kind="mid").net_price(bid, ask, [-1, 1]) == pytest.approx(2.10 - 1.05)
    assert FillModel(kind="natural").net_price(bid, ask, [-1, 1]) == pytest.approx(2.0 - 1.1)
    assert FillModel(kind="natural").net_price(bid, ask, [1, -1]) == pytest.approx(-(2.2 - 1.0))


def test_ticks() -> None:
    np.testing.assert_allclose(tick_size([0.05, 2.95, 3.0, 25.0]), [0.05, 0.05, 0.10, 0.10])


def test_unusable_quote_gives_nan() -> None:
    # no ask, or an ask of zero: no fill; a missing bid counts as a bid of zero
    out = FillModel().leg_prices([1.0, 1.0, np.nan], [np.nan, 0.0, 1.0], [True, True, True])
    assert np.isnan(out[:2]).all()
    assert out[2] == 0.20  # mid 0.50 - 0.30 x spread 1.00, on the 5-cent tick


quote = st.tuples(st.floats(0.0, 60.0), st.floats(0.0, 5.0)).map(
    lambda t: (round(t[0], 2), round(t[0] + t[1] + 0.05, 2))
)


@given(q1=quote, q2=quote, k=st.integers(0, 5000).map(lambda i: i / 10_000))
def test_fills_never_better_than_mid_and_natural_is_worst(q1, q2, k) -> None:  # type: ignore[no-untyped-def]
    bid = [q1[0], q2[0]]
    ask = [q1[1], q2[1]]
    credit_mid = (q1[0] + q1[1]) / 2 - (q2[0] + q2[1]) / 2
    credit_k = FillModel(k=k).net_price(bid, ask, [-1, 1])
    credit_nat = FillModel(kind="natural").net_price(bid, ask, [-1, 1])
    assert credit_k <= credit_mid + 1e-9
    assert credit_nat <= credit_k + 1e-9
    # the same spread closed: a debit at least as large as the mid debit
    debit = -FillModel(k=k).net_price(bid, ask, [1, -1])
    assert debit >= credit_mid - 1e-9


def test_fee_schedule_matches_published_rates() -> None:
    fs = FeeSchedule()
    # premium $0.50 sell: 0.65 + 0.36 + 0.027 + 0.02 + 0.00279
    assert fs.per_contract(0.50, True) == pytest.approx(1.05979)
    # premium $5 buy: 0.65 + 0.45 + 0.027 + 0.02
    assert fs.per_contract(5.0, False) == pytest.approx(1.147)
    assert fs.per_contract(0.04, False) == pytest.approx(0.25 + 0.36 + 0.047)
    # a 1-lot of a $0.04 option hits the $1 order minimum on commission
    assert fs.order_fees([0.04], [1]) == pytest.approx(1.0 + 0.36 + 0.047)
    # a 10-lot vertical: 20 contracts, no minimum
    assert fs.order_fees([2.0, 1.0], [-10, 10]) == pytest.approx(
        10 * (0.65 + 0.45 + 0.047 + 0.00279) + 10 * (0.65 + 0.45 + 0.047)
    )


@given(p=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=4), n=st.integers(1, 20))
def test_fees_are_positive_and_grow_with_size(p: list[float], n: int) -> None:
    fs = FeeSchedule()
    q = [(-1) ** i * n for i in range(len(p))]
    one = fs.order_fees(p, [np.sign(x) for x in q])
    many = fs.order_fees(p, q)
    assert one > 0 and many >= one


def test_configs_are_strict() -> None:
    with pytest.raises(ConfigError, match="unknown key 'kk'"):
        FillModel.from_dict({"kind": "mid", "kk": 1})
    with pytest.raises(ConfigError, match="'kind'"):
        FillModel.from_dict({"kind": "best"})
    with pytest.raises(ConfigError, match="'clearing_fee'"):
        FeeSchedule.from_dict({"clearing_fee": -1})
