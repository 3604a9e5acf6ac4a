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


def test_slippage_is_an_exact_cost_after_the_tick() -> None:
    fm = FillModel(slippage=0.02)
    # sell 1.00/1.20: 1.00 on the tick, then 0.98; buy 2.90/3.10: 3.10, then 3.12;
    # sell 0.00/0.05: 0.01 -> 0.00 on the tick, and a sale never fills below zero
    np.testing.assert_allclose(
        fm.leg_prices([1.0, 2.9, 0.0], [1.2, 3.1, 0.05], [True, False, True]), [0.98, 3.12, 0.0]
    )
    # the vertical of test_mid_k_rounds_against_the_trader: 0.90 less two legs' slippage
    assert fm.net_price([2.0, 1.0], [2.2, 1.1], [-1, 1]) == pytest.approx(0.86)


cents_quote = st.tuples(st.integers(0, 6000), st.integers(1, 500)).map(
    lambda t: (t[0], t[0] + t[1])
)


@given(
    q=cents_quote,
    k=st.integers(0, 10_000).map(lambda i: i / 10_000),
    slip=st.integers(0, 50),
    sell=st.booleans(),
)
def test_slippage_moves_every_fill_by_exactly_its_cents(q, k, slip, sell) -> None:  # type: ignore[no-untyped-def]
    base = FillModel(k=k).leg_cents([q[0]], [q[1]], [sell])[0]
    slipped = FillModel(k=k, slippage=slip / 100).leg_cents([q[0]], [q[1]], [sell])[0]
    assert slipped == (max(base - slip, 0) if sell else base + slip)


@given(q=cents_quote, sell=st.booleans())
def test_natural_is_mid_k_at_one_half(q, sell) -> None:  # type: ignore[no-untyped-def]
    # the cost curve's k = 0.5 end is the natural fill (uncrossed quotes)
    nat = FillModel(kind="natural").leg_cents([q[0]], [q[1]], [sell])
    half = FillModel(k=0.5).leg_cents([q[0]], [q[1]], [sell])
    assert nat[0] == half[0]


def test_compiled_kernels_see_the_slippage() -> None:
    # the strategy kernels inline fill_cents: a numba cache compiled before the slippage
    # existed would ignore it silently (numba does not track changes in other modules)
    from quantlab.strategy import kernels as k

    bid = np.array([200, 100], np.int64)
    ask = np.array([220, 110], np.int64)
    qty = np.array([-1, 1], np.int64)
    for fm in (FillModel(), FillModel(slippage=0.05)):
        assert k.entry_credit(bid, ask, qty, 2, fm.params) == fm.net_cents(bid, ask, qty)
    lo, hi = 0, 1000
    _mid2, cost = k.close_cost(bid, ask, qty, 2, FillModel(slippage=0.05).params, lo, hi)
    assert cost == -FillModel(slippage=0.05).net_cents(bid, ask, -qty)


def test_slippage_must_be_whole_cents_and_leaves_old_hashes_alone() -> None:
    with pytest.raises(ConfigError, match=r"fills.slippage must be a whole number of cents.*0\.02"):
        FillModel.from_dict({"slippage": 0.015})
    with pytest.raises(ConfigError, match="'slippage'"):
        FillModel.from_dict({"slippage": -0.01})
    # at its default the field is not in the dump: hashes stored before it existed still hold
    assert "slippage" not in FillModel().model_dump()
    assert FillModel().config_hash() == "7d26e57dd5aeea20"  # computed before the field existed
    assert FillModel(slippage=0.01).config_hash() != FillModel().config_hash()


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
