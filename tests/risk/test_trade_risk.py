"""Greeks and attribution of a backtest's trades on the synthetic market: the forward each
path minute carries is the decision snapshot's, attribution plus costs is each trade's P&L,
and for OTM verticals held over several days the greeks explain the daily P&L."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab import calendar
from quantlab.backtest.engine import backtest
from quantlab.chain.snapshot import ChainView
from quantlab.data import read
from quantlab.strategy import StrategySpec
from tests.conftest import MARKET, SyntheticStore

START, END = dt.date(2024, 3, 1), dt.date(2024, 3, 11)
HELD = {
    "name": "held-verticals",
    "dte": {"target": 5, "tolerance": 2},
    "entry": {"times": ["10:00", "13:00"]},
    "short_delta": 0.15,
    "width": 25,
    "management": {"take_profit_pct": None, "stop_loss_pct": None, "exit_days_before_expiry": 1},
    "risk": {"max_open_trades": 6, "max_new_trades_per_day": 2},
}


@pytest.fixture(scope="module")
def store(synthetic_store: SyntheticStore) -> Path:
    return synthetic_store(**MARKET)


@pytest.fixture(scope="module")
def run(store: Path):  # type: ignore[no-untyped-def]
    spec = StrategySpec.from_dict(HELD)
    return backtest(spec, store, start=START, end=END, workers=1, report=False)


def test_path_forwards_are_the_snapshots(store: Path, run) -> None:  # type: ignore[no-untyped-def]
    s1 = run.stage1
    cand = s1.candidates
    rng = np.random.default_rng(5)
    checked = 0
    for i in rng.choice(len(s1), 6, replace=False).tolist():
        a, b = int(s1.offsets[i]), int(s1.offsets[i + 1])
        for r in rng.choice(np.arange(a, b), 4).tolist():
            ts = int(s1.path_ts[r])
            dq = read.load_day(store, "SPX", calendar.et_date(ts))
            view = ChainView(dq, ts, dq.select(roots=["SPXW"]), rate=0.045, max_age_s=300.0)
            fit = view.fit(cand["root"][i], cand["expiry"][i])
            if fit is None or not np.isfinite(fit.forward):
                assert np.isnan(s1.path_fwd[r])
                continue
            assert s1.path_fwd[r] == pytest.approx(fit.forward, abs=1e-9)
            checked += 1
    assert checked >= 15


def test_attribution_plus_costs_is_each_trades_pnl(run) -> None:  # type: ignore[no-untyped-def]
    res = run.results[0]
    t = res.risk().trades
    assert t.height == res.trades.height > 5
    total = t["delta"] + t["gamma"] + t["vega"] + t["theta"] + t["residual"] + t["costs"]
    np.testing.assert_allclose(total.to_numpy(), t["pnl"].to_numpy(), atol=1e-9)
    # the entry greeks of a short OTM put vertical: long delta, short gamma and vega
    assert (t["entry_delta_pt"] > 0).all() and (t["entry_vega_pt"] < 0).all()
    assert (t["entry_gamma_pct"] < 0).all() and (t["worst_scenario_loss"] > 0).all()
    fwd = res.trades["forward"].to_numpy()
    np.testing.assert_allclose(
        t["entry_gamma_pt"].to_numpy() * (fwd / 100) ** 2, t["entry_gamma_pct"].to_numpy()
    )
    # the worst scenario cannot lose more than the structure's max loss
    ml = res.trades["max_loss"].to_numpy()
    assert (t["worst_scenario_loss"].to_numpy() <= ml + 1e-6).all()


def test_greeks_explain_the_daily_pnl_of_verticals_held_over_days(run) -> None:  # type: ignore[no-untyped-def]
    r = run.results[0].risk()
    share = r.explained_share()
    days = r.daily.height
    print(f"\nattribution explains {share:.1%} of the daily mid P&L variance ({days} trade-days)")
    assert days >= 20
    assert share >= 0.90
    # the book: minute greeks are the sums over the trades open
    book = r.book_minutes()
    m = r.minutes.filter(pl.col("ts") < pl.col("exit_ts"))
    ts = int(book["ts"][len(book) // 2])
    at = m.filter(pl.col("ts") == ts)
    assert book.filter(pl.col("ts") == ts)["vega_pt"][0] == pytest.approx(at["vega_pt"].sum())
    eq = run.results[0].equity_greeks()
    assert eq.height == run.results[0].equity_minutes.height
    assert eq.filter(pl.col("ts") == ts)["vega_pt"][0] == pytest.approx(at["vega_pt"].sum())


def test_daily_cadence_reads_only_closes_and_still_adds_up(run) -> None:  # type: ignore[no-untyped-def]
    res = run.results[0]
    minute = res.risk(minutes=False)
    close = res.risk(minutes=False, cadence="close")
    t = close.trades
    total = t["delta"] + t["gamma"] + t["vega"] + t["theta"] + t["residual"] + t["costs"]
    np.testing.assert_allclose(total.to_numpy(), t["pnl"].to_numpy(), atol=1e-9)
    # the same days' actual mid P&L, one second-order step per day
    a = minute.daily.select("trade_id", "date", "actual")
    b = close.daily.select("trade_id", "date", pl.col("actual").alias("actual_close"))
    both = a.join(b, on=["trade_id", "date"])
    assert both.height == a.height
    np.testing.assert_allclose(
        both["actual"].to_numpy(), both["actual_close"].to_numpy(), atol=1e-6
    )
    share = close.explained_share()
    print(f"\ndaily steps explain {share:.1%} (minute steps {minute.explained_share():.1%})")
    assert share >= 0.8
    with pytest.raises(ValueError, match="cadence"):
        res.risk(cadence="hourly")
