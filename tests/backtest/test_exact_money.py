"""Exact money: every trade recomputed by hand from the raw Parquet quotes and the settlement
value, in integer cents, on a synthetic month and on real end-of-day chains."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab import calendar
from quantlab.backtest.analytics import settlement_stats, summarize
from quantlab.backtest.cli import summary_table
from quantlab.backtest.engine import backtest, run_grid
from quantlab.data import read, settlements
from quantlab.data import store as st
from quantlab.errors import DataWarning
from quantlab.strategy import StrategySpec
from tests.conftest import SyntheticStore, shared_data

START, END = dt.date(2024, 3, 4), dt.date(2024, 3, 29)
TIMES = ["10:00", "11:30", "13:00", "14:30"]
MANAGED = StrategySpec.from_dict(
    {
        "name": "tp-sl",
        "dte": {"target": 2, "tolerance": 2},
        "entry": {"times": TIMES},
        "short_delta": 0.25,
        "width": 10,
        "management": {"take_profit_pct": 50, "stop_loss_pct": 100},
        "risk": {"max_open_trades": 8, "max_new_trades_per_day": 4, "no_new_after_stop": False},
        "filters": {"min_credit": 0.0},
    }
)
ZERO_DTE = StrategySpec.from_dict(
    {
        "name": "0dte-held",
        "dte": {"target": 0, "tolerance": 0},
        "entry": {"times": ["15:00"]},
        "short_delta": 0.30,
        "width": 10,
        "filters": {"min_credit": 0.0},
        "management": {"take_profit_pct": None, "stop_loss_pct": None, "hold_to_settlement": True},
    }
)
SPX_AM = StrategySpec.from_dict(
    {
        "name": "spx-am",
        "roots": ["SPX"],
        "dte": {"target": 3, "tolerance": 3},
        "entry": {"times": ["10:00", "14:00"]},
        "short_delta": 0.2,
        "width": 25,
        "filters": {"min_credit": 0.0},
        "risk": {"max_open_trades": 4, "max_new_trades_per_day": 2},
        "management": {"take_profit_pct": None, "stop_loss_pct": None},
    }
)


@pytest.fixture(scope="module")
def month(synthetic_store: SyntheticStore) -> Path:
    """The synthetic month, built once per run (shared: read only)."""
    return synthetic_store(START, END, 3, "test", dte_max=3, moneyness=0.04)


# -------------------------------------------------------------------- the raw quotes, by hand
def _raw_quotes(store: Path, occs: list[str], days: list[dt.date]) -> pl.DataFrame:
    """Every raw quote of the contracts on those days, keyed by OCC symbol, in cents."""
    frames = []
    for d in days:
        base = Path(store) / "parquet"
        inst = pl.read_parquet(base / f"instruments/underlying=SPX/date={d}/part-0.parquet")
        q = pl.read_parquet(base / f"quotes/underlying=SPX/date={d}/part-0.parquet")
        ids = inst.filter(pl.col("raw_symbol").is_in(occs)).select("instrument_id", "raw_symbol")
        frames.append(q.join(ids, on="instrument_id"))
    return (
        pl.concat(frames)
        .select(
            "ts",
            "raw_symbol",
            (pl.col("bid") * 100).round().cast(pl.Int64).alias("bid"),
            (pl.col("ask") * 100).round().cast(pl.Int64).alias("ask"),
        )
        .sort("ts")
    )


def _minute_marks(store: Path, trade: dict) -> tuple[np.ndarray, np.ndarray]:
    """Minute stamps after entry (to the exit) and twice the mid cost to close in cents."""
    legs = trade["legs"]
    days = [d for d in calendar.sessions(trade["entry_date"], trade["exit_date"])]
    raw = _raw_quotes(store, [lg["occ"] for lg in legs], days)
    minutes = np.concatenate([calendar.quote_minutes_ns(d) for d in days])
    minutes = minutes[(minutes > trade["entry_ts"]) & (minutes <= trade["exit_ts"])]
    grid = pl.DataFrame({"ts": minutes})
    mid2 = np.zeros(minutes.size, np.int64)
    usable = np.ones(minutes.size, bool)
    for lg in legs:  # the last quote at or before each minute (carried across days)
        q = raw.filter(pl.col("raw_symbol") == lg["occ"]).drop("raw_symbol")
        at = grid.join_asof(q, on="ts", strategy="backward")
        bid = at["bid"].fill_null(-1).to_numpy()
        ask = at["ask"].fill_null(-1).to_numpy()
        usable &= ask > 0
        mid2 += -lg["quantity"] * (np.maximum(bid, 0) + ask)
    width_c = round(trade["width"] * 100)
    mid2 = np.clip(mid2, 0, 2 * width_c)  # a vertical costs 0..width to close
    return minutes[usable], mid2[usable]


def test_every_exit_is_the_first_minute_its_rule_holds(month: Path) -> None:
    res = backtest(MANAGED, month, start=START, end=END, workers=1, report=False).results[0]
    trades = res.trades
    assert trades.height >= 40
    reasons = trades["exit_reason"].value_counts()
    assert {"take_profit", "stop_loss"} <= set(reasons["exit_reason"].to_list())
    for t in trades.iter_rows(named=True):
        credit_c = round(t["credit_per_share"] * 100)
        assert t["credit_per_share"] == credit_c / 100  # logged as the exact decimal
        ts, mid2 = _minute_marks(month, t)
        tp = mid2 <= credit_c  # cost <= 50% of the credit
        sl = mid2 >= 4 * credit_c  # cost >= 200% of the credit
        hit = np.flatnonzero(tp | sl)
        if t["exit_reason"] in ("take_profit", "stop_loss"):
            assert hit.size and ts[hit[0]] == t["exit_ts"], t["trade_id"]
            want = "stop_loss" if sl[hit[0]] else "take_profit"
            assert t["exit_reason"] == want
        else:  # nothing held before the exit
            assert not hit.size or ts[hit[0]] >= t["exit_ts"], t["trade_id"]
        # the P&L from the logged prices, in integer millicents
        exit_c = round(t["exit_cost_per_share"] * 100)
        fees_mc = round(t["fees"] * 100_000)
        pnl_mc = (credit_c - exit_c) * t["contracts"] * 100 * 1000 - fees_mc
        assert round(t["pnl"] * 100_000) == pnl_mc
        legs_c = sum(-lg["quantity"] * round(lg["entry_price"] * 100) for lg in t["legs"])
        assert legs_c == credit_c


def test_zero_dte_held_to_expiry_settles_at_intrinsic(month: Path) -> None:
    res = backtest(ZERO_DTE, month, start=START, end=END, workers=1, report=False).results[0]
    trades = res.trades
    assert trades.height >= 15
    assert set(trades["exit_reason"]) == {"settlement"}
    assert set(trades["settlement_source"]) == {"index"}
    st_ = settlement_stats(trades)
    assert st_["by_source"] == {"index": trades.height} and st_["n_estimated"] == 0
    for t in trades.iter_rows(named=True):
        s = settlements.lookup(month, "SPXW", t["expiry"])
        assert s is not None and t["settlement_value"] == s.value
        # the synthetic market's own closing value
        bars = st.read_partition(month, "underlying_bars", "SPX", t["expiry"])
        assert bars is not None
        close = bars.filter(pl.col("ts") == calendar.settlement_ns("SPXW", t["expiry"]))
        assert close["close"][0] == pytest.approx(s.value, abs=1e-9)
        v_c = round(s.value * 100)
        intrinsic = [
            max(v_c - round(lg["strike"] * 100), 0)
            if lg["right"] == "C"
            else max(round(lg["strike"] * 100) - v_c, 0)
            for lg in t["legs"]
        ]
        assert [round(lg["exit_price"] * 100) for lg in t["legs"]] == intrinsic
        cost = sum(-lg["quantity"] * p for lg, p in zip(t["legs"], intrinsic, strict=True))
        assert round(t["exit_cost_per_share"] * 100) == cost
        assert t["exit_ts"] == calendar.settlement_ns("SPXW", t["expiry"])
        assert t["pnl"] >= -t["max_loss"] - t["fees"] - 1e-9


def test_spx_am_trades_are_the_same_however_the_run_is_split(month: Path) -> None:
    a, b = dt.date(2024, 3, 11), dt.date(2024, 3, 14)  # the March monthly settles 03-15 AM
    runs = [run_grid(month, [SPX_AM], a, b, workers=w, min_shard_days=1) for w in (1, 2, 4)]
    ref = runs[0].results[0]
    settled = ref.trades.filter(pl.col("exit_reason") == "settlement")
    assert settled.height > 0 and set(settled["root"]) == {"SPX"}
    assert set(settled["exit_ts"]) == {calendar.settlement_ns("SPX", dt.date(2024, 3, 15))}
    for g in runs[1:]:
        assert g.stage1.data_checksum == runs[0].stage1.data_checksum
        for frame in ("trades", "decisions", "equity_minutes", "equity_daily"):
            assert getattr(g.results[0], frame).equals(getattr(ref, frame)), frame
    short = run_grid(month, [SPX_AM], a, dt.date(2024, 3, 12), workers=2, min_shard_days=1)
    want = ref.trades.filter(pl.col("entry_date") <= dt.date(2024, 3, 12))
    assert short.results[0].trades.equals(want)


def _render(table: object) -> str:
    from rich.console import Console

    con = Console(width=200, record=True, file=open("/dev/null", "w"))
    con.print(table)
    return con.export_text()


# -------------------------------------------------------------------- real end-of-day chains
EOD_SPEC = StrategySpec.from_dict(
    {
        "name": "eod-held",
        "dte": {"target": 7, "tolerance": 7},
        "entry": {"times": ["16:00"]},
        "short_delta": 0.15,
        "width": 25,
        "filters": {"min_credit": 0.0, "max_rel_spread": 2.0},
        "management": {"take_profit_pct": None, "stop_loss_pct": None},
        "risk": {"max_open_trades": 20, "max_new_trades_per_day": 1},
    }
)
OFFICIAL = {dt.date(2018, 1, 31): 2823.81, dt.date(2018, 2, 28): 2713.83}


@pytest.fixture(scope="module")
def eod(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from quantlab.data.importers import import_eod

    root = tmp_path_factory.mktemp("eod")
    import_eod(shared_data("real", "SPXW_2018-01_02_hod.csv"), root)
    read.clear_cache()
    return root


def _settled(store: Path) -> pl.DataFrame:
    res = backtest(EOD_SPEC, store, workers=1, report=False).results[0]
    t = res.trades.filter(pl.col("expiry").is_in(list(OFFICIAL)))
    assert t.height >= 5 and set(t["exit_reason"]) == {"settlement"}
    return t


def test_real_eod_trades_settle_near_the_official_close_and_official_values_win(
    eod: Path, tmp_path: Path
) -> None:
    t = _settled(eod)
    assert set(t["settlement_source"]) == {"vendor_underlying"}
    summary = summarize(
        t,
        pl.DataFrame({"date": [], "equity": []}, schema={"date": pl.Date, "equity": pl.Float64}),
        100_000.0,
        n_boot=10,
    )
    text = _render(summary_table(summary, "eod"))
    assert "settled at expiry" in text and f"{t.height} vendor_underlying" in text
    for row in t.iter_rows(named=True):
        assert abs(row["settlement_value"] - OFFICIAL[row["expiry"]]) <= 0.15
    csv = tmp_path / "official.csv"
    csv.write_text("root,expiry,value\n" + "".join(f"SPXW,{d},{v}\n" for d, v in OFFICIAL.items()))
    settlements.import_csv(eod, csv)
    t = _settled(eod)
    assert set(t["settlement_source"]) == {"official"}
    assert all(r["settlement_value"] == OFFICIAL[r["expiry"]] for r in t.iter_rows(named=True))


def test_no_quote_at_the_decision_time_is_its_own_reason(eod: Path) -> None:
    spec = EOD_SPEC.model_copy(
        update={"entry": EOD_SPEC.entry.model_copy(update={"times": (dt.time(10, 0),)})}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = backtest(spec, eod, workers=1, report=False)
    dec = res.results[0].decisions
    assert res.results[0].trades.height == 0
    assert set(dec["reason"]) == {"no_quote_at_time"}
    msgs = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(msgs) == 1 and "16:00 ET only" in msgs[0] and "10:00" in msgs[0]


def test_daily_equity_is_the_minute_curve_at_each_close(month: Path) -> None:
    """Stage 2 computes the daily equity at the closes alone and builds the minute curve only
    when read (and when pickled): the two agree to the last bit, with several trades open."""
    import pickle

    from polars.testing import assert_frame_equal

    from quantlab.backtest.equity import daily_from_minutes

    for spec in (MANAGED, SPX_AM):
        res = backtest(spec, month, start=START, end=END, workers=1, report=False).results[0]
        assert res.trades.height >= 4
        days = res.equity_daily["date"].to_list()
        again = pickle.loads(pickle.dumps(res))
        assert_frame_equal(again.equity_minutes, res.equity_minutes, check_exact=True)
        ref = daily_from_minutes(res.equity_minutes, res.capital, days)
        assert_frame_equal(res.equity_daily, ref, check_exact=True)
