"""The account breakers and greek limits of the decision book: each triggers with its own
reason exactly at its limit, in the order of :mod:`quantlab.strategy.book`, and never when
it is not set; the spec validates them strictly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pydantic import ValidationError

from quantlab import calendar
from quantlab.errors import ConfigError
from quantlab.strategy import StrategySpec
from quantlab.strategy import book_kernels as bk
from quantlab.strategy.book import DecisionBook

BASE = {
    "name": "breakers",
    "dte": {"target": 1},
    "entry": {"times": ["10:00"]},
    "short_delta": 0.2,
    "width": 10,
}
MON, TUE, FRI = dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 8)
NEXT_MON, NEXT_TUE = dt.date(2024, 3, 11), dt.date(2024, 3, 12)
MC = 100_000  # millicents per dollar


def book(**risk: object) -> DecisionBook:
    r = {"max_open_trades": 9, "max_new_trades_per_day": 9, "no_new_after_stop": False}
    return DecisionBook(
        StrategySpec.from_dict(BASE | {"risk": r | risk, "sizing": {"capital": 10_000}})
    )


def ns(day: dt.date, hh: int = 10, mm: int = 0) -> int:
    return calendar.to_ns(dt.datetime.combine(day, dt.time(hh, mm), tzinfo=calendar.ET))


def trade(b: DecisionBook, name: str, day: dt.date, pnl_dollars: float, mm: int = 30) -> None:
    b.open_trade(name, day)
    b.close_trade(name, ns(day, 10, mm), round(pnl_dollars * MC), "time_exit")


def test_drawdown_from_the_realized_peak_exactly_at_the_limit() -> None:
    b = book(max_drawdown_pct=10)
    trade(b, "w", MON, 1_000)  # peak 11,000
    trade(b, "l", MON, -1_099.99, mm=40)  # 9,900.01: 9.9999 % below
    assert b.decide(ns(MON, 11), MON, max_loss_c=100).taken
    trade(b, "l2", MON, -0.01, mm=50)  # 9,900.00: exactly 10 %
    assert b.decide(ns(MON, 12), MON, max_loss_c=100).reason == "max_drawdown"
    trade(b, "w2", TUE, 0.01)  # recovered above the line
    assert b.decide(ns(TUE, 11), TUE, max_loss_c=100).taken
    assert b.decide(ns(TUE, 11), TUE, max_loss_c=100).kind == "taken"


def test_weekly_loss_limit_resets_on_monday() -> None:
    b = book(weekly_loss_limit=300)
    trade(b, "a", MON, -200)
    trade(b, "b", TUE, -99.99)
    assert b.decide(ns(TUE, 11), TUE, max_loss_c=100).taken
    trade(b, "c", FRI, -0.01)
    assert b.decide(ns(FRI, 11), FRI, max_loss_c=100).reason == "weekly_loss_limit"
    assert b.decide(ns(NEXT_MON), NEXT_MON, max_loss_c=100).taken


def test_loss_streak_pauses_the_rest_of_the_day_and_n_weekdays() -> None:
    b = book(max_consecutive_losses=2, loss_pause_days=1)
    trade(b, "a", FRI, -10)
    trade(b, "w", FRI, 0.0, mm=35)  # a zero P&L ends the run
    trade(b, "b", FRI, -10, mm=40)
    assert b.decide(ns(FRI, 11), FRI, max_loss_c=100).taken
    trade(b, "c", FRI, -10, mm=50)  # the second loss in a row
    assert b.decide(ns(FRI, 11, 5), FRI, max_loss_c=100).reason == "loss_streak_pause"
    assert b.decide(ns(NEXT_MON), NEXT_MON, max_loss_c=100).reason == "loss_streak_pause"
    assert b.decide(ns(NEXT_TUE), NEXT_TUE, max_loss_c=100).taken  # the run starts again
    b0 = book(max_consecutive_losses=1, loss_pause_days=0)
    trade(b0, "x", MON, -1)
    assert b0.decide(ns(MON, 11), MON, max_loss_c=100).reason == "loss_streak_pause"
    assert b0.decide(ns(TUE), TUE, max_loss_c=100).taken


def test_exits_at_the_same_minute_count_in_the_order_they_were_added() -> None:
    b = book(max_consecutive_losses=2, loss_pause_days=0)
    for name in ("a", "b", "c"):
        b.open_trade(name, MON)
    b.close_trade("a", ns(MON, 10, 30), -5 * MC, "time_exit")
    b.close_trade("b", ns(MON, 10, 30), 5 * MC, "time_exit")
    b.close_trade("c", ns(MON, 10, 30), -5 * MC, "time_exit")
    assert b.decide(ns(MON, 11), MON, max_loss_c=100).taken  # -, +, -: no run of two


def test_greek_limits_on_the_book_after_the_candidate() -> None:
    b = book(
        max_delta_per_point=10,
        max_delta_per_pct=400,
        max_vega=50,
        max_short_gamma=100,
    )
    port = np.array([6.0, 300.0, -20.0, -40.0])  # K_DELTA_PT, K_DELTA_PCT, K_VEGA, K_GAMMA_PCT
    one = np.array([2.0, 50.0, -10.0, -20.0])
    assert b.decide(ns(MON), MON, max_loss_c=100, greeks=(port, one)).taken  # 8, 350, 30, 60
    b2 = book(max_delta_per_point=7.99)
    assert b2.decide(ns(MON), MON, greeks=(port, one)).reason == "max_portfolio_delta"
    b3 = book(max_delta_per_pct=349)
    assert b3.decide(ns(MON), MON, greeks=(port, one)).reason == "max_portfolio_delta"
    b4 = book(max_vega=29.5)
    assert b4.decide(ns(MON), MON, greeks=(port, one)).reason == "max_portfolio_vega"
    b5 = book(max_short_gamma=59)
    assert b5.decide(ns(MON), MON, greeks=(port, one)).reason == "max_short_gamma"
    # at its size: 3 contracts of the candidate
    b6 = book(max_vega=49)
    b6.params[bk.P_CONTRACTS] = 3
    assert b6.decide(ns(MON), MON, greeks=(port, one)).reason == "max_portfolio_vega"
    # a short-gamma limit does not stop a long-gamma book
    assert book(max_short_gamma=1).decide(ns(MON), MON, greeks=(-port, -one)).taken


def test_scenario_limit_reads_the_worst_cell_of_book_plus_candidate() -> None:
    b = book(max_scenario_loss=1_000)
    port = np.array([-300.0, 100.0, 0.0])
    one = np.array([-700.0, -900.0, 50.0])
    z = np.zeros(bk.K_SIZE)
    assert b.decide(ns(MON), MON, greeks=(z, z), scenarios=(port, one)).taken  # worst -1,000
    b2 = book(max_scenario_loss=999.99)
    assert b2.decide(ns(MON), MON, greeks=(z, z), scenarios=(port, one)).reason == (
        "max_scenario_loss"
    )


def test_limits_never_trigger_when_not_set_and_need_their_inputs() -> None:
    b = book()
    big = np.full(bk.K_SIZE, 1e12)
    assert b.decide(ns(MON), MON, greeks=(big, big)).taken
    assert not b.has_greek_limit
    with pytest.raises(ConfigError, match="greek"):
        book(max_vega=1).decide(ns(MON), MON)
    with pytest.raises(ConfigError, match="scenario"):
        book(max_scenario_loss=1).decide(ns(MON), MON, greeks=(big, big))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("max_drawdown_pct", 0, "greater than 0"),
        ("max_drawdown_pct", 10.001, "0.01 %"),
        ("weekly_loss_limit", 10.001, "cents"),
        ("max_consecutive_losses", 0, "greater than or equal to 1"),
        ("max_vega", -1, "greater than 0"),
        ("max_vegas", 1, "max_vegas"),
    ],
)
def test_risk_fields_are_validated(field: str, value: object, match: str) -> None:
    with pytest.raises((ValidationError, ConfigError), match=match):
        StrategySpec.from_dict(BASE | {"risk": {field: value}})
