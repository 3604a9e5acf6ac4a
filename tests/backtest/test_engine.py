"""The replay backtester on a small, fully known market: hand-checked trades and invariants."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlab import calendar
from quantlab.backtest.stage1 import run_stage1
from quantlab.backtest.stage2 import run_stage2
from quantlab.data import read
from quantlab.strategy import StrategySpec
from tests.backtest.market import build, et, ramp

MON, TUE, WED, THU, FRI = (dt.date(2024, 3, d) for d in (4, 5, 6, 7, 8))
EXPIRIES = [WED, FRI]


def spec(**kw) -> StrategySpec:  # type: ignore[no-untyped-def]
    base = {
        "name": "t",
        "dte": {"target": 2, "tolerance": 0},
        "entry": {"times": ["10:00"]},
        "short_delta": 0.10,
        "width": 25,
        "filters": {"min_credit": 0.0},
    }
    for key, val in kw.items():
        if isinstance(val, dict) and isinstance(base.get(key), dict):
            base[key] = base[key] | val  # type: ignore[operator]
        else:
            base[key] = val
    return StrategySpec.from_dict(base)


@pytest.fixture(scope="module")
def rally(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flat 5000 until 10:00 Monday, then a rally to 5060 by 14:00: puts decay fast."""
    root = tmp_path_factory.mktemp("rally")
    read.clear_cache()
    return build(
        root, [MON, TUE, WED], EXPIRIES, ramp([(et(MON, 10, 0), 5000.0), (et(MON, 14, 0), 5060.0)])
    )


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flat 5000 on Monday, then an overnight gap down to 4930 at Tuesday's open."""
    root = tmp_path_factory.mktemp("crash")
    read.clear_cache()
    return build(
        root, [MON, TUE, WED], EXPIRIES, ramp([(et(MON, 16, 15), 5000.0), (et(TUE, 9, 31), 4930.0)])
    )


@pytest.fixture(scope="module")
def calm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flat at 5000 throughout: nothing triggers, trades go to settlement or a time exit."""
    root = tmp_path_factory.mktemp("calm")
    read.clear_cache()
    return build(root, [MON, TUE, WED], EXPIRIES, ramp([(et(MON, 9, 30), 5000.0)]))


def _quote(store: Path, day: dt.date, occ: str, ts: int) -> tuple[float, float]:
    dq = read.load_day(store, "SPX", day)
    pos = dq.instruments["raw_symbol"].to_list().index(occ)
    snap = dq.snapshot_arrays(ts, np.array([pos]))
    return float(snap["bid"][0]), float(snap["ask"][0])


def _sell(bid: float, ask: float) -> float:  # mid - 0.30 x spread, down to the tick
    raw = (bid + ask) / 2 - 0.3 * (ask - bid)
    tick = 0.10 if raw >= 3 else 0.05
    return math.floor(raw / tick + 1e-9) * tick


def _buy(bid: float, ask: float) -> float:
    raw = (bid + ask) / 2 + 0.3 * (ask - bid)
    tick = 0.10 if raw >= 3 else 0.05
    return math.ceil(raw / tick - 1e-9) * tick


def test_take_profit_trade_by_hand(rally: Path) -> None:
    s = spec()
    s1 = run_stage1(rally, [s], MON, MON)
    r = run_stage2(s1, s)
    assert r.trades.height == 1
    t = r.trades.row(0, named=True)
    short, long = t["legs"]
    assert short["quantity"] == -1 and long["quantity"] == 1 and short["right"] == "P"
    assert short["strike"] - long["strike"] == 25.0 and t["expiry"] == WED and t["dte"] == 2
    assert t["short_delta"] == pytest.approx(0.10, abs=0.02)
    # credit from the 10:00 quotes, worked by hand
    sb, sa = _quote(rally, MON, short["occ"], et(MON, 10, 0))
    lb, la = _quote(rally, MON, long["occ"], et(MON, 10, 0))
    credit = _sell(sb, sa) - _buy(lb, la)
    assert t["credit_per_share"] == pytest.approx(credit)
    assert t["max_loss_per_share"] == pytest.approx(25.0 - credit)
    # exit: the first minute whose mid cost to close is <= 50% of the credit
    minutes = calendar.quote_minutes_ns(MON)
    first = None
    for m in minutes[minutes > et(MON, 10, 0)]:
        sb, sa = _quote(rally, MON, short["occ"], int(m))
        lb, la = _quote(rally, MON, long["occ"], int(m))
        if (sb + sa) / 2 - (lb + la) / 2 <= 0.5 * credit:
            first = int(m)
            exit_cost = _buy(sb, sa) - _sell(lb, la)
            break
    assert first is not None
    assert t["exit_reason"] == "take_profit" and t["exit_ts"] == first
    assert t["exit_cost_per_share"] == pytest.approx(exit_cost)
    assert t["pnl"] == pytest.approx((credit - exit_cost) * 100 - t["fees"])
    assert short["instrument_id_entry"] == short["instrument_id_exit"]  # same day


def test_stop_loss_through_an_overnight_gap_fills_at_the_price_seen(crash: Path) -> None:
    s = spec(dte={"target": 4, "tolerance": 0})  # Friday expiry, held overnight
    s1 = run_stage1(crash, [s], MON, MON)
    t = run_stage2(s1, s).trades.row(0, named=True)
    assert t["exit_reason"] == "stop_loss"
    assert t["exit_ts"] == et(TUE, 9, 31)  # the first minute of Tuesday, after the gap
    short, long = t["legs"]
    sb, sa = _quote(crash, TUE, short["occ"], et(TUE, 9, 31))
    lb, la = _quote(crash, TUE, long["occ"], et(TUE, 9, 31))
    paid = _buy(sb, sa) - _sell(lb, la)
    assert t["exit_cost_per_share"] == pytest.approx(paid)
    assert paid > 2 * t["credit_per_share"]  # gapped through the stop level: no fill at the level
    assert t["pnl"] < -t["credit_per_share"] * 100
    # Databento ids change daily: the position is followed by OCC symbol
    assert short["instrument_id_exit"] != short["instrument_id_entry"]


def test_settlement_and_time_exit(calm: Path) -> None:
    s = spec(management={"take_profit_pct": None, "stop_loss_pct": None})
    s1 = run_stage1(calm, [s], MON, MON)
    t = run_stage2(s1, s).trades.row(0, named=True)
    assert t["exit_reason"] == "settlement"
    assert t["exit_ts"] == calendar.settlement_ns("SPXW", WED)
    assert t["exit_cost_per_share"] == pytest.approx(0.0)  # settles near 5000: both puts worthless
    entry_only = t["fees"]
    assert t["pnl"] == pytest.approx(t["credit_per_share"] * 100 - entry_only)
    timed = spec(management={"take_profit_pct": None, "stop_loss_pct": None, "exit_time": "15:00"})
    t2 = run_stage2(run_stage1(calm, [timed], MON, MON), timed).trades.row(0, named=True)
    assert t2["exit_reason"] == "time_exit" and t2["exit_ts"] == et(WED, 15, 0)


@pytest.mark.parametrize(("tie_break", "expiry"), [("shorter", WED), ("longer", FRI)])
def test_dte_tie_break(calm: Path, tie_break: str, expiry: dt.date) -> None:
    # target 3 from Monday: Wednesday (2) and Friday (4) are equally near
    s = spec(dte={"target": 3, "tolerance": 1, "tie_break": tie_break})
    s1 = run_stage1(calm, [s], MON, MON)
    assert s1.candidates["expiry"].to_list() == [expiry]
    s_none = spec(dte={"target": 3, "tolerance": 0})
    s1 = run_stage1(calm, [s_none], MON, MON)
    assert s1.candidates.height == 0 and s1.rejections["reason"].to_list() == [
        "no_expiry_in_tolerance"
    ]


def test_risk_rules_and_decisions(calm: Path) -> None:
    s = spec(
        entry={"times": ["10:00", "11:00", "12:00"]},
        dte={"target": 2, "tolerance": 2},
        management={"take_profit_pct": None, "stop_loss_pct": None},
    )
    s1 = run_stage1(calm, [s], MON, TUE)
    r = run_stage2(s1, s)
    # max 1 open trade: Monday 10:00 is taken and held to Wednesday; everything else is skipped
    assert r.trades.height == 1
    d = r.decisions
    assert d.filter(pl.col("decision") == "taken").height == 1
    assert set(d.filter(pl.col("decision") == "skipped")["reason"]) <= {
        "max_open_trades",
        "max_new_trades_per_day",
    }
    assert d.height == s1.candidates.height + s1.rejections.height
    s2 = spec(
        entry={"times": ["10:00", "11:00", "12:00"]},
        dte={"target": 2, "tolerance": 2},
        management={"take_profit_pct": None, "stop_loss_pct": None},
        risk={"max_open_trades": 5, "max_new_trades_per_day": 2},
    )
    r2 = run_stage2(s1, s2)
    per_day = r2.trades.group_by("entry_date").len()
    assert per_day["len"].max() == 2 and r2.trades.height == 4


def test_first_valid_window_takes_one_trade_a_day(calm: Path) -> None:
    s = spec(
        entry={"times": ["10:00", "11:00", "12:00"], "mode": "first_valid"},
        dte={"target": 2, "tolerance": 2},
        risk={"max_open_trades": 3},
        management={"take_profit_pct": None, "stop_loss_pct": None},
    )
    r = run_stage2(run_stage1(calm, [s], MON, TUE), s)
    assert r.trades["entry_time"].to_list() == ["10:00", "10:00"]
    assert set(r.decisions.filter(pl.col("decision") == "skipped")["reason"]) == {"later_window"}


def test_no_look_ahead(tmp_path: Path) -> None:
    """Perturbing every quote stamped after the decision leaves the decision unchanged."""
    s = spec()
    a = build(tmp_path / "a", [MON], EXPIRIES, ramp([(et(MON, 9, 30), 5000.0)]))
    b = build(
        tmp_path / "b", [MON], EXPIRIES, ramp([(et(MON, 10, 0), 5000.0), (et(MON, 10, 1), 4800.0)])
    )
    read.clear_cache()
    ca = run_stage1(a, [s], MON, MON).candidates
    cb = run_stage1(b, [s], MON, MON).candidates
    assert ca.select("legs", "forward", "candidate_id").equals(
        cb.select("legs", "forward", "candidate_id")
    )


def test_trade_pnl_is_the_sum_of_leg_pnls(rally: Path, crash: Path, calm: Path) -> None:
    for store in (rally, crash, calm):
        for s in (
            spec(),
            spec(dte={"target": 4, "tolerance": 0}),
            spec(width=10, fills={"kind": "natural"}),
        ):
            r = run_stage2(run_stage1(store, [s], MON, MON), s)
            for t in r.trades.iter_rows(named=True):
                legs = sum(
                    -lg["quantity"] * (lg["entry_price"] - lg["exit_price"]) for lg in t["legs"]
                )
                assert legs == pytest.approx(t["credit_per_share"] - t["exit_cost_per_share"])
                assert t["pnl"] == pytest.approx(legs * 100 * t["contracts"] - t["fees"])
                assert t["fees"] > 0


def test_sharded_stage1_equals_one_pass(calm: Path, tmp_path: Path) -> None:
    from quantlab.backtest.engine import backtest, stage1

    s = spec(entry={"times": ["10:00", "12:00"]}, dte={"target": 2, "tolerance": 2})
    one = stage1(calm, [s], MON, WED, workers=1)
    two = stage1(calm, [s], MON, WED, workers=2, min_shard_days=1)
    assert one.candidates.equals(two.candidates)
    np.testing.assert_array_equal(one.offsets, two.offsets)
    np.testing.assert_array_equal(one.path_bid, two.path_bid)
    a, b = run_stage2(one, s), run_stage2(two, s)
    assert a.trades.drop("data_checksum").equals(b.trades.drop("data_checksum"))
    # outputs: parquet + duckdb (+ report when the report module is there)
    res = backtest(s, calm, start=MON, end=TUE, out=tmp_path / "bt", report=False)
    import duckdb

    con = duckdb.connect(str(tmp_path / "bt" / "results.duckdb"), read_only=True)
    assert con.execute("select count(*) from trades").fetchone()[0] == res.results[0].trades.height
    assert (
        con.execute("select count(*) from decisions").fetchone()[0]
        == res.results[0].decisions.height
    )


def test_stop_blocks_the_rest_of_the_day_and_loss_limit_and_risk_sizing(crash: Path) -> None:
    common = {"entry": {"times": ["10:00"]}, "dte": {"target": 4, "tolerance": 3}}
    s = spec(**common, risk={"max_open_trades": 5})
    r = run_stage2(run_stage1(crash, [s], MON, TUE), s)
    tue = r.decisions.filter(pl.col("entry_date") == TUE)
    assert (
        r.trades.row(0, named=True)["exit_reason"] == "stop_loss"
    )  # Monday's trade, stopped Tuesday 09:31
    assert tue["reason"].to_list() == ["stopped_today"]
    s2 = spec(
        **common, risk={"max_open_trades": 5, "no_new_after_stop": False, "daily_loss_limit": 50.0}
    )
    r2 = run_stage2(run_stage1(crash, [s2], MON, TUE), s2)
    assert r2.decisions.filter(pl.col("entry_date") == TUE)["reason"].to_list() == [
        "daily_loss_limit"
    ]
    s3 = spec(**common, sizing={"mode": "risk_pct", "risk_pct": 10.0, "capital": 100_000.0})
    t = run_stage2(run_stage1(crash, [s3], MON, MON), s3).trades.row(0, named=True)
    assert t["contracts"] == int(100_000.0 * 0.10 // (t["max_loss_per_share"] * 100)) > 1
    assert t["max_loss"] == pytest.approx(t["max_loss_per_share"] * 100 * t["contracts"])


def test_iron_condor_four_legs(calm: Path, rally: Path) -> None:
    s = spec(structure="iron_condor", management={"take_profit_pct": 50, "stop_loss_pct": 100})
    for store in (calm, rally):
        r = run_stage2(run_stage1(store, [s], MON, MON), s)
        t = r.trades.row(0, named=True)
        rights = [(lg["right"], lg["quantity"]) for lg in t["legs"]]
        assert rights == [("P", -1), ("P", 1), ("C", -1), ("C", 1)]
        puts = sorted(lg["strike"] for lg in t["legs"] if lg["right"] == "P")
        calls = sorted(lg["strike"] for lg in t["legs"] if lg["right"] == "C")
        assert puts[1] - puts[0] == 25 and calls[1] - calls[0] == 25 and puts[1] < calls[0]
        # defined risk: the wider wing minus the credit
        assert t["max_loss_per_share"] == pytest.approx(25.0 - t["credit_per_share"])
        legs = sum(lg["quantity"] * (lg["exit_price"] - lg["entry_price"]) for lg in t["legs"])
        assert t["pnl"] == pytest.approx(legs * 100 * t["contracts"] - t["fees"])


def _naive_exit(store: Path, cand: dict, spec_: StrategySpec) -> tuple[int, str, float]:
    """Independent replay of one candidate: walk every session minute after entry, reading the
    legs' quotes straight from the store by OCC symbol, and apply the rules literally."""
    fm, m = spec_.fills, spec_.management
    legs = cand["legs"]

    def px(b: float, a: float, sell: bool) -> float:
        raw = (
            (b + a) / 2 + (-1 if sell else 1) * fm.k * (a - b)
            if fm.kind == "mid_k"
            else (b + a) / 2
        )
        tick = 0.10 if raw >= 3 else 0.05
        return (math.floor(raw / tick + 1e-9) if sell else math.ceil(raw / tick - 1e-9)) * tick

    q0 = [_quote(store, cand["entry_date"], lg["occ"], cand["entry_ts"]) for lg in legs]
    credit = sum(
        -lg["quantity"] * px(b, a, lg["quantity"] < 0) for lg, (b, a) in zip(legs, q0, strict=True)
    )
    tp = (1 - m.take_profit_pct / 100) * credit
    sl = (1 + m.stop_loss_pct / 100) * credit
    for day in calendar.sessions(cand["entry_date"], cand["expiry"]):
        for ts in calendar.quote_minutes_ns(day, expiring=day == cand["expiry"]):
            if ts <= cand["entry_ts"]:
                continue
            q = [_quote(store, day, lg["occ"], int(ts)) for lg in legs]
            mid = sum(-lg["quantity"] * (b + a) / 2 for lg, (b, a) in zip(legs, q, strict=True))
            fill = sum(
                -lg["quantity"] * px(b, a, lg["quantity"] > 0)
                for lg, (b, a) in zip(legs, q, strict=True)
            )
            if mid >= sl:
                return int(ts), "stop_loss", fill
            if mid <= tp:
                return int(ts), "take_profit", fill
    return calendar.settlement_ns("SPXW", cand["expiry"]), "settlement", math.nan


@given(
    tp=st.sampled_from([20.0, 50.0, 80.0]),
    sl=st.sampled_from([50.0, 100.0, 200.0]),
    k=st.sampled_from([0.0, 0.3, 0.5]),
    which=st.sampled_from(["rally", "crash"]),
)
@settings(max_examples=8, deadline=None)
def test_stage2_equals_a_direct_replay(
    tp: float, sl: float, k: float, which: str, rally: Path, crash: Path
) -> None:
    store = rally if which == "rally" else crash
    s = spec(
        dte={"target": 4, "tolerance": 0},
        management={"take_profit_pct": tp, "stop_loss_pct": sl},
        fills={"k": k},
    )
    s1 = run_stage1(store, [s], MON, MON)
    t = run_stage2(s1, s).trades.row(0, named=True)
    ts, reason, cost = _naive_exit(store, s1.candidates.row(0, named=True), s)
    assert (t["exit_ts"], t["exit_reason"]) == (ts, reason)
    if reason != "settlement":
        assert t["exit_cost_per_share"] == pytest.approx(cost)


@given(
    max_open=st.integers(1, 3),
    max_new=st.integers(1, 3),
    after_stop=st.booleans(),
    loss=st.sampled_from([None, 20.0, 200.0]),
    which=st.sampled_from(["calm", "crash", "rally"]),
)
@settings(max_examples=10, deadline=None)
def test_risk_rules_never_violated_in_the_trade_log(
    max_open: int,
    max_new: int,
    after_stop: bool,
    loss: float | None,
    which: str,
    calm: Path,
    crash: Path,
    rally: Path,
) -> None:
    store = {"calm": calm, "crash": crash, "rally": rally}[which]
    s = spec(
        entry={"times": ["10:00", "11:00", "12:00", "14:00"]},
        dte={"target": 2, "tolerance": 2},
        risk={
            "max_open_trades": max_open,
            "max_new_trades_per_day": max_new,
            "no_new_after_stop": after_stop,
            "daily_loss_limit": loss,
        },
    )
    t = run_stage2(run_stage1(store, [s], MON, TUE), s).trades.sort("entry_ts")
    rows = t.to_dicts()
    for r in rows:
        opened = [x for x in rows if x["entry_ts"] < r["entry_ts"] < x["exit_ts"]]
        assert len(opened) < max_open
        same_day = [
            x for x in rows if x["entry_date"] == r["entry_date"] and x["entry_ts"] < r["entry_ts"]
        ]
        assert len(same_day) < max_new
        closed_today = [
            x for x in rows if x["exit_ts"] <= r["entry_ts"] and x["exit_date"] == r["entry_date"]
        ]
        if after_stop:
            assert not any(x["exit_reason"] == "stop_loss" for x in closed_today)
        if loss is not None:
            assert sum(x["pnl"] for x in closed_today) > -loss
