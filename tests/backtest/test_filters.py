"""Entry filters on decision-time values: event days and the 30-day index, on the synthetic market."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest

from quantlab import calendar
from quantlab.backtest.stage1 import run_stage1
from quantlab.backtest.stage2 import run_stage2
from quantlab.data import read
from quantlab.strategy import StrategySpec
from quantlab.volatility import vix_from_chain
from tests.conftest import MARKET, SyntheticStore

CPI, AFTER = dt.date(2024, 3, 12), dt.date(2024, 3, 13)  # 2024-03-12: CPI release (events.csv)


@pytest.fixture(scope="module")
def market(synthetic_store: SyntheticStore) -> Path:
    """The shared synthetic market (read only), which holds CPI and AFTER."""
    return synthetic_store(**MARKET)


def spec(**filters) -> StrategySpec:  # type: ignore[no-untyped-def]
    return StrategySpec.from_dict(
        {
            "name": "f",
            "dte": {"target": 5, "tolerance": 2},
            "entry": {"times": ["10:00"]},
            "short_delta": 0.10,
            "width": 25,
            "filters": {"min_credit": 0.0} | filters,
            "risk": {"max_open_trades": 5},
        }
    )


def test_event_days_are_skipped(market: Path) -> None:
    assert CPI in calendar.load_events()
    s = spec(skip_event_days=True)
    d = run_stage2(run_stage1(market, [s], CPI, AFTER), s).decisions
    assert d.filter(pl.col("entry_date") == CPI)["reason"].to_list() == ["event_day"]
    assert d.filter(pl.col("entry_date") == AFTER)["decision"].to_list() == ["taken"]


def test_thirty_day_index_filter(market: Path) -> None:
    s = spec(vix_min=0.0, vix_max=1000.0)
    s1 = run_stage1(market, [s], CPI, AFTER)
    vix = s1.candidates["vix"].to_list()
    assert all(math.isfinite(v) and 5 < v < 100 for v in vix)
    # the value is the Cboe-method index of the chain as known at the decision time
    ts = int(s1.candidates["entry_ts"][0])
    chain = read.load_day(market, "SPX", CPI).snapshot(ts)
    assert vix[0] == pytest.approx(vix_from_chain(chain, ts, s.rate))
    low = spec(vix_min=vix[0] + 1.0)
    d = run_stage2(run_stage1(market, [low], CPI, CPI), low).decisions
    assert d["reason"].to_list() == ["vix_out_of_range"]
    assert run_stage2(s1, s).trades.height == 2
