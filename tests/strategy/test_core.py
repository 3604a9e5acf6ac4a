"""The decision core: exact exit levels, payoff bounds, the rules' order and sizing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantlab import calendar
from quantlab.errors import ConfigError, InputError
from quantlab.execution import FeeSchedule
from quantlab.money import NO_PRICE
from quantlab.strategy import StrategySpec
from quantlab.strategy import kernels as k
from quantlab.strategy.book import DecisionBook
from quantlab.strategy.exits import NEVER, ExitRule, exit_deadline, make_rule, scan_exit
from quantlab.strategy.ids import candidate_id, rejection_id, trade_id
from quantlab.strategy.occ import occ_symbol, parse_occ
from quantlab.strategy.rules import entry_filter_reason, meta_label_reason
from quantlab.strategy.structure import max_loss_cents, payoff_bounds, width

BASE = {
    "name": "core",
    "dte": {"target": 1},
    "entry": {"times": ["10:00"]},
    "short_delta": 0.2,
    "width": 10,
}
DAY = dt.date(2024, 3, 5)


def spec(**kw: object) -> StrategySpec:
    return StrategySpec.from_dict(BASE | kw)


def ns(hh: int, mm: int, day: dt.date = DAY) -> int:
    return calendar.to_ns(dt.datetime.combine(day, dt.time(hh, mm), tzinfo=calendar.ET))


# ------------------------------------------------------------------------------ exits
def test_a_mid_exactly_on_the_level_takes_profit_that_minute() -> None:
    """Credit 1.70, take profit 50 %: a mid cost of 0.85 closes (no float tie)."""
    s = spec(management={"take_profit_pct": 50, "stop_loss_pct": 100})
    rule = ExitRule(s, 170, 0, 1000, NEVER)
    qty = [-1, 1]
    assert rule.check(ns(10, 1), [120, 30], [130, 40], qty).reason == ""  # mid 0.90
    hit = rule.check(ns(10, 2), [115, 30], [125, 40], qty)  # mid 1.20 - 0.35 = 0.85
    assert hit.reason == "take_profit" and hit.mid2 == 170
    # the stop at exactly 200 % of 1.70 = 3.40
    assert rule.check(ns(10, 3), [375, 30], [385, 50], qty).reason == "stop_loss"  # 3.80-0.40
    assert rule.check(ns(10, 3), [374, 30], [384, 50], qty).reason == ""  # 3.39


def test_time_exit_comes_first_then_stop_then_profit() -> None:
    s = spec(management={"take_profit_pct": 50, "stop_loss_pct": 100, "exit_time": "15:00"})
    deadline = exit_deadline(s.management, "SPXW", DAY)
    assert deadline == ns(15, 0)
    rule = ExitRule(s, 100, 0, 1000, deadline)
    assert rule.check(ns(15, 0), [10, 0], [20, 5], [-1, 1]).reason == "time_exit"
    assert exit_deadline(spec().management, "SPXW", DAY) == NEVER  # held to settlement


def test_unusable_quotes_are_not_checked() -> None:
    rule = ExitRule(spec(), 100, 0, 1000, NEVER)
    chk = rule.check(ns(10, 1), [NO_PRICE, 10], [NO_PRICE, 20], [-1, 1])
    assert not chk.usable and chk.reason == ""


def test_levels_must_be_exact() -> None:
    with pytest.raises(ConfigError, match=r"0\.01 %"):
        spec(management={"take_profit_pct": 33.333})
    with pytest.raises(ConfigError, match="whole number of cents"):
        spec(filters={"min_credit": 0.125})


legs_q = st.sampled_from(
    [
        ([-1, 1], [False, False]),
        ([-1, 1], [True, True]),
        ([-1, 1, -1, 1], [False, False, True, True]),
    ]
)


@given(
    shape=legs_q,
    k0=st.integers(400_000, 500_000).map(lambda v: v - v % 500),
    gaps=st.lists(st.sampled_from([500, 1000, 2500, 5000]), min_size=3, max_size=3),
    credit=st.integers(1, 3000),
    tp=st.sampled_from([None, 25, 50, 75]),
    sl=st.sampled_from([None, 50, 100, 300]),
    contracts=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    settle_move=st.integers(-20_000, 20_000),
)
def test_no_trade_loses_more_than_its_max_loss_plus_fees(  # type: ignore[no-untyped-def]
    shape, k0, gaps, credit, tp, sl, contracts, seed, settle_move
) -> None:
    """Over random (even absurd) quote paths: the cost to close stays within the payoff bounds,
    so P&L >= -(max loss) - fees, settled or not."""
    qty, calls = shape
    n = len(qty)
    # strikes: puts low..high (short higher), calls high (short lower)
    if n == 2 and not calls[0]:
        strikes = [k0, k0 - gaps[0]]
    elif n == 2:
        strikes = [k0, k0 + gaps[0]]
    else:
        strikes = [k0, k0 - gaps[0], k0 + gaps[1], k0 + gaps[1] + gaps[2]]
    q = np.array(qty, np.int64)
    sk = np.array(strikes, np.int64)
    ic = np.array(calls, bool)
    lo, hi = payoff_bounds(q, sk, ic)
    if credit >= hi:
        credit = hi - 1
    s = spec(management={"take_profit_pct": tp, "stop_loss_pct": sl})
    rule = make_rule(s, credit, lo, hi, NEVER)
    rng = np.random.default_rng(seed)
    m = 50
    bid = rng.integers(0, 5000, (m, n)).astype(np.int32)
    ask = (bid + rng.integers(0, 800, (m, n))).astype(np.int32)
    ask[rng.random((m, n)) < 0.05] = NO_PRICE
    ts = np.arange(m, dtype=np.int64) + 1
    settle_c = k0 + settle_move
    settle_cost = int(k.settlement_cost(settle_c, q, sk, ic, n))
    _, _, cost, _, _ = scan_exit(ts, bid, ask, q, n, s.fills.params, rule, settle_cost, True)
    assert lo <= cost <= hi
    fees = FeeSchedule()
    fee_mc = fees.order_fees_cents_mc(np.full(n, 100), q * contracts) * 2  # generous bound
    pnl_mc = (credit - cost) * contracts * 100 * 1000 - fee_mc
    assert pnl_mc >= -max_loss_cents(hi, credit) * contracts * 100 * 1000 - fee_mc


def test_payoff_bounds_and_width() -> None:
    assert payoff_bounds([-1, 1], [500_000, 497_500], [False, False]) == (0, 2500)
    lo, hi = payoff_bounds(
        [-1, 1, -1, 1], [500_000, 497_500, 510_000, 515_000], [False, False, True, True]
    )
    assert (lo, hi) == (0, 5000)  # the wider (call) wing
    assert payoff_bounds([-1], [500_000], [True])[1] == k.UNBOUNDED
    assert width([5000, 4975, 5100, 5150], ["P", "P", "C", "C"]) == 50.0
    assert max_loss_cents(2500, 170) == 2330 and max_loss_cents(k.UNBOUNDED, 1) == k.UNBOUNDED


# ------------------------------------------------------------------------------ filters, ids
def test_entry_filters_in_order() -> None:
    s = spec(filters={"min_credit": 0.5, "min_bid": 0.10, "max_rel_spread": 0.5})
    q = [-1, 1]
    assert entry_filter_reason(s, DAY, 60, [100, 40], [110, 50], q, 1000, np.nan) == ""
    assert entry_filter_reason(s, DAY, 40, [100, 40], [110, 50], q, 1000, np.nan) == "min_credit"
    assert entry_filter_reason(s, DAY, 60, [5, 0], [15, 5], q, 1000, np.nan) == "min_bid"
    assert entry_filter_reason(s, DAY, 60, [100, 0], [200, 5], q, 1000, np.nan) == "max_rel_spread"
    assert entry_filter_reason(s, DAY, 0, [100, 40], [110, 50], q, 1000, np.nan) == "no_credit"
    assert entry_filter_reason(s, DAY, 1000, [100, 40], [110, 50], q, 1000, np.nan) == (
        "credit_not_below_width"
    )
    v = spec(filters={"vix_min": 15})
    assert entry_filter_reason(v, DAY, 60, [100, 40], [110, 50], q, 1000, np.nan) == (
        "vix_unavailable"
    )
    assert entry_filter_reason(v, DAY, 60, [100, 40], [110, 50], q, 1000, 12.0) == (
        "vix_out_of_range"
    )


def test_ids_and_occ_symbols() -> None:
    occ = occ_symbol("SPXW", dt.date(2024, 1, 19), "P", 4700)
    assert occ == "SPXW  240119P04700000" and parse_occ(occ)[3] == 4700.0
    with pytest.raises(InputError):
        parse_occ("SPXW 240119P4700")
    cid = candidate_id(1, "SPXW", DAY, [(occ, -1)])
    assert len(cid) == 16 and cid != candidate_id(2, "SPXW", DAY, [(occ, -1)])
    assert trade_id(cid, "abcdef123") == f"{cid}-abcdef"
    assert rejection_id("k", 1) != rejection_id("k", 2)
    assert meta_label_reason(0.5499, 0.55) == "meta_labeler p=0.5499<0.5500"


# ------------------------------------------------------------------------------ the book
def test_rules_apply_in_order() -> None:
    s = spec(risk={"max_open_trades": 2, "max_new_trades_per_day": 3, "daily_loss_limit": 100})
    b = DecisionBook(s)
    assert b.decide(ns(10, 0), DAY, gate_reason="filtered_by_model").kind == "rejected"
    assert b.decide(ns(10, 0), DAY, filter_reason="min_credit").reason == "min_credit"
    d = b.decide(ns(10, 0), DAY, max_loss_c=500)
    assert d.taken and d.contracts == 1
    b.open_trade("a", DAY)
    b.open_trade("b", DAY)
    assert b.decide(ns(10, 5), DAY).reason == "max_open_trades"
    assert b.decide(ns(10, 5), DAY, halted=True).reason == "kill_switch"
    # a stop exits later: counted open until then, then realized and the day is stopped
    b.close_trade("a", ns(11, 0), -100 * 100_000, "stop_loss")
    assert b.decide(ns(10, 30), DAY).reason == "max_open_trades"
    assert b.decide(ns(11, 0), DAY).reason == "stopped_today"
    s2 = s.model_copy(update={"risk": s.risk.model_copy(update={"no_new_after_stop": False})})
    b2 = DecisionBook(s2)
    b2.open_trade("x", DAY)
    b2.close_trade("x", ns(11, 0), -100 * 100_000, "stop_loss")
    assert b2.decide(ns(11, 0), DAY).reason == "daily_loss_limit"  # exactly at the limit
    with pytest.raises(ValueError, match="time order"):
        b2.decide(ns(10, 0), DAY)


def test_first_valid_uses_one_window_per_day() -> None:
    b = DecisionBook(spec(entry={"times": ["10:00", "11:00"], "mode": "first_valid"}))
    assert b.decide(ns(10, 0), DAY, filter_reason="min_bid").reason == "min_bid"
    assert b.decide(ns(10, 0), DAY, max_loss_c=100).taken
    assert b.decide(ns(11, 0), DAY).reason == "later_window"


def test_sizing_is_exact_and_compounds() -> None:
    s = spec(
        sizing={"mode": "risk_pct", "risk_pct": 2.0, "capital": 10_000},
        risk={"max_open_trades": 5, "max_new_trades_per_day": 5},
    )
    b = DecisionBook(s)
    # $200 at risk / $100 max loss per contract: exactly 2 (a float might say 1.9999)
    assert b.decide(ns(10, 0), DAY, max_loss_c=100).contracts == 2
    assert b.decide(ns(10, 0), DAY, max_loss_c=101).contracts == 1
    b.open_trade("w", DAY)
    b.close_trade("w", ns(10, 30), 5_000 * 100_000, "take_profit")  # equity 15,000
    assert b.decide(ns(10, 30), DAY, max_loss_c=100).contracts == 3
    p = DecisionBook(spec(sizing={"mode": "probability", "contracts": 4}))
    assert p.decide(ns(10, 0), DAY, max_loss_c=100, probability=0.62).contracts == 2
    assert p.decide(ns(10, 1), DAY, max_loss_c=100, probability=0.1).reason in (
        "size_zero",
        "max_open_trades",
    )
    with pytest.raises(ConfigError, match="probabilit"):
        DecisionBook(spec(sizing={"mode": "probability"})).decide(ns(10, 0), DAY, max_loss_c=1)
