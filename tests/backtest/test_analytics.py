"""Backtest analytics: reference values worked by hand and invariants.

The synthetic backtest built here (:func:`synthetic_backtest`) is also used by test_report.py.
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantlab.backtest import analytics as an
from quantlab.backtest.records import DECISION_SCHEMA, EXIT_REASONS, TRADE_SCHEMA, empty_trades
from quantlab.errors import InputError
from quantlab.stats import bootstrap as bs

ET = ZoneInfo("America/New_York")
UTC = dt.UTC
CAPITAL = 100_000.0


# --------------------------------------------------------------------------- synthetic data


def _ns(day: dt.date, hhmm: int) -> int:
    """ET wall time on ``day`` -> UTC ns."""
    t = dt.datetime(day.year, day.month, day.day, hhmm // 100, hhmm % 100, tzinfo=ET)
    return int(t.astimezone(UTC).timestamp()) * 1_000_000_000


def _sessions(start: dt.date, n: int) -> list[dt.date]:
    days = np.busday_offset(np.datetime64(start, "D"), np.arange(n), roll="forward")
    return [d.item() for d in days]


def _minutes(entry_ts: int, exit_ts: int, days: list[dt.date]) -> np.ndarray:
    """Every session minute stamp (09:31..16:00 ET) from entry to exit."""
    out = []
    for d in days:
        first = _ns(d, 931)
        stamps = first + np.arange(390, dtype=np.int64) * 60_000_000_000
        out.append(stamps[(stamps >= entry_ts) & (stamps <= exit_ts)])
    return np.concatenate(out) if out else np.empty(0, np.int64)


def _leg(right: str, strike: float, qty: int, expiry: dt.date, px_in: float, px_out: float):
    occ = f"SPXW  {expiry:%y%m%d}{right}{round(strike * 1000):08d}"
    return {
        "occ": occ,
        "root": "SPXW",
        "expiry": expiry,
        "right": right,
        "strike": strike,
        "quantity": qty,
        "instrument_id_entry": 1,
        "instrument_id_exit": 2,
        "entry_price": px_in,
        "exit_price": px_out,
    }


def synthetic_backtest(n_trades: int = 50, n_sessions: int = 60, seed: int = 7):
    """Deterministic put-credit-spread backtest: trades, equity, minute equity, paths, decisions.

    Exit costs follow the exit reason (take profit at half the credit, stop at twice the
    credit, settlement worthless, time exits in between); each trade's minute path is a
    Brownian bridge from the credit to its exit cost, so the path ends where the trade closed.
    """
    rng = np.random.default_rng(seed)
    sessions = _sessions(dt.date(2024, 1, 2), n_sessions)
    reasons = rng.choice(
        ["take_profit", "stop_loss", "time_exit", "settlement"],
        size=n_trades,
        p=[0.55, 0.15, 0.15, 0.15],
    )
    rows, paths = [], {}
    for i in range(n_trades):
        e = int(rng.integers(0, n_sessions - 8))
        dte_sessions = int(rng.choice([1, 3, 5]))
        entry_day, expiry = sessions[e], sessions[e + dte_sessions]
        entry_hhmm = int(rng.choice([1000, 1130, 1400]))
        credit = round(float(rng.uniform(1.0, 3.5)), 2)
        width = float(rng.choice([25.0, 50.0]))
        contracts = int(rng.choice([1, 2]))
        reason = str(reasons[i])
        if reason == "settlement":
            x, exit_hhmm, cost = e + dte_sessions, 1600, 0.0
        else:
            x = e + int(rng.integers(1, dte_sessions + 1))
            exit_hhmm = int(rng.choice([945, 1115, 1330, 1550]))
            cost = {
                "take_profit": 0.5 * credit,
                "stop_loss": 2.0 * credit,
                "time_exit": credit * float(rng.uniform(0.3, 1.3)),
            }[reason]
        exit_day = sessions[x]
        entry_ts, exit_ts = _ns(entry_day, entry_hhmm), _ns(exit_day, exit_hhmm)
        fees = 4 * 1.1 * contracts
        pnl = (credit - cost) * 100 * contracts - fees
        short = round(4700 - 25 * float(rng.integers(0, 8)), 0)
        tid = f"T{i:03d}"
        rows.append(
            {
                "trade_id": tid,
                "candidate_id": f"C{i:03d}",
                "strategy": "pcs_10d",
                "config_hash": "abc123",
                "entry_ts": entry_ts,
                "exit_ts": exit_ts,
                "entry_date": entry_day,
                "exit_date": exit_day,
                "entry_time": f"{entry_hhmm // 100:02d}:{entry_hhmm % 100:02d}",
                "root": "SPXW",
                "expiry": expiry,
                "dte": (expiry - entry_day).days,
                "structure": "put_credit_spread",
                "delta_target": float(rng.choice([0.10, 0.15])),
                "short_delta": float(rng.uniform(0.08, 0.17)),
                "width": width,
                "forward": 4800.0,
                "legs": [
                    _leg("P", short, -1, expiry, credit + 0.5, cost + 0.2),
                    _leg("P", short - width, 1, expiry, 0.5, 0.2),
                ],
                "contracts": contracts,
                "credit_per_share": credit,
                "exit_cost_per_share": cost,
                "max_loss_per_share": width - credit,
                "max_loss": (width - credit) * 100 * contracts,
                "fees": fees,
                "pnl": pnl,
                "exit_reason": reason,
                "mae_per_share": -credit,
                "mfe_per_share": credit * 0.6,
                "data_checksum": "sum",
            }
        )
        if i < 8:  # paths for a few trades only, as the engine might keep them
            ts = _minutes(entry_ts, exit_ts, sessions[e : x + 1])
            s = np.linspace(0.0, 1.0, ts.size)
            walk = np.cumsum(rng.normal(0.0, 0.04, ts.size))
            bridge = walk - s * walk[-1]
            mid = np.maximum(credit + (cost - credit) * s + bridge * np.sqrt(credit), 0.0)
            paths[tid] = pl.DataFrame({"ts": ts, "mid_cost": mid, "exit_cost": mid + 0.10})
    trades = pl.DataFrame(rows, schema=TRADE_SCHEMA)

    realized = trades.group_by("exit_date").agg(pl.col("pnl").sum()).rename({"exit_date": "date"})
    equity_daily = (
        pl.DataFrame({"date": sessions})
        .join(realized, on="date", how="left")
        .with_columns(pl.col("pnl").fill_null(0.0))
        .with_columns((CAPITAL + pl.col("pnl").cum_sum()).alias("equity"))
        .select("date", "equity", "pnl")
    )
    exits = trades.sort("exit_ts").select(
        pl.col("exit_ts").alias("ts"), (CAPITAL + pl.col("pnl").cum_sum()).alias("equity")
    )
    dips = exits.with_columns(
        pl.col("ts") - 1_200_000_000_000, pl.col("equity") - 300.0 * (pl.int_range(pl.len()) % 3)
    )
    equity_minutes = pl.concat([exits, dips]).sort("ts")
    decisions = pl.DataFrame(
        {
            "candidate_id": [f"C{i:03d}" for i in range(n_trades + 6)],
            "decision": ["taken"] * n_trades + ["rejected"] * 4 + ["skipped"] * 2,
            "reason": [""] * n_trades + ["max_open_trades"] * 4 + ["no_quote"] * 2,
        }
    )
    decisions = decisions.with_columns(
        [
            pl.lit(None, dtype).alias(c)
            for c, dtype in DECISION_SCHEMA.items()
            if c not in decisions.columns
        ]
    ).select(list(DECISION_SCHEMA))
    return {
        "trades": trades,
        "equity_daily": equity_daily,
        "equity_minutes": equity_minutes,
        "paths": paths,
        "decisions": decisions,
        "capital": CAPITAL,
    }


@pytest.fixture(scope="module")
def bt():
    return synthetic_backtest()


def _equity(values, start=dt.date(2024, 1, 2)):
    return pl.DataFrame({"date": _sessions(start, len(values)), "equity": values})


# --------------------------------------------------------------------------- performance

PATH = [95.0, 97.0, 110.0, 104.0, 99.0, 105.0, 112.0, 111.0]


def test_performance_matches_hand_computed_numbers():
    p = an.performance(_equity(PATH), 100.0)
    eq = np.array(PATH)
    r = eq / np.concatenate(([100.0], eq[:-1])) - 1.0
    assert r[0] == pytest.approx(-0.05)
    assert p["total_return"] == pytest.approx(0.11)
    assert p["annualized_return"] == pytest.approx(1.11 ** (252 / 8) - 1.0)
    assert p["sharpe_ratio"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * math.sqrt(252)
    assert p["sortino_ratio"] == pytest.approx(r.mean() * 252 / downside)
    assert p["annualized_volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(252))
    # deepest: 110 -> 99 (-10 %), under water for 104, 99, 105 (three sessions)
    assert p["max_drawdown"] == pytest.approx(-0.10)
    assert p["max_drawdown_dollars"] == pytest.approx(-11.0)
    assert p["max_drawdown_duration"] == 3
    assert p["n_drawdowns"] == 3  # 100->95, 110->99, 112->111 (still active)
    assert p["current_drawdown"] == pytest.approx(111 / 112 - 1)
    assert p["calmar_ratio"] == pytest.approx(p["annualized_return"] / 0.10)
    assert p["best_day"] == pytest.approx(110 / 97 - 1)
    assert p["worst_day"] == pytest.approx(104 / 110 - 1)
    assert p["positive_days"] == pytest.approx(4 / 8)
    assert p["end_equity"] == 111.0 and p["total_pnl"] == pytest.approx(11.0)


def test_drawdown_counts_a_first_day_loss_from_capital():
    # vectorbt's returns accessor starts its path after day one; ours starts at the capital
    p = an.performance(_equity([90.0, 95.0, 100.0, 101.0]), 100.0)
    assert p["max_drawdown"] == pytest.approx(-0.10)
    assert p["max_drawdown_duration"] == 2


def test_drawdown_agrees_with_vectorbt_when_day_one_is_up():
    import pandas as pd
    import vectorbt  # noqa: F401  (the .vbt accessor)

    path = [101.0, 97.0, 103.0, 92.0, 99.0]
    r = an.daily_returns(_equity(path), 100.0)
    ref = pd.Series(r).vbt.returns(freq="1D", year_freq="252D").max_drawdown()
    assert an.performance(_equity(path), 100.0)["max_drawdown"] == pytest.approx(ref)
    assert ref == pytest.approx(92 / 103 - 1)


def test_performance_agrees_with_vectorbt_on_a_backtest(bt):
    """The metrics module's definitions are vectorbt's returns accessor's where they coincide
    (day one of this backtest is not a loss, and its returns are not constant)."""
    import pandas as pd
    import vectorbt  # noqa: F401  (the .vbt accessor)

    r = an.daily_returns(bt["equity_daily"], bt["capital"])
    assert r[0] >= 0.0
    acc = pd.Series(r).vbt.returns(freq="1D", year_freq="252D")
    p = an.performance(bt["equity_daily"], bt["capital"])
    for ours, ref in (
        ("sharpe_ratio", acc.sharpe_ratio()),
        ("sortino_ratio", acc.sortino_ratio()),
        ("annualized_return", acc.annualized()),
        ("annualized_volatility", acc.annualized_volatility()),
        ("max_drawdown", acc.max_drawdown()),
        ("calmar_ratio", acc.calmar_ratio()),
        ("total_return", acc.total()),
    ):
        assert p[ours] == pytest.approx(ref, rel=1e-10), ours


def test_periods_per_year_scales_sharpe():
    a = an.performance(_equity(PATH), 100.0)
    b = an.performance(_equity(PATH), 100.0, periods_per_year=365)
    assert b["sharpe_ratio"] / a["sharpe_ratio"] == pytest.approx(math.sqrt(365 / 252))


def test_flat_and_empty_equity():
    # never traded: the zero-volatility rule of quantlab.stats.metrics gives 0.0, not NaN
    flat = an.performance(_equity([100.0] * 5), 100.0)
    assert flat["total_return"] == 0.0 and flat["max_drawdown"] == 0.0
    assert flat["sharpe_ratio"] == flat["sortino_ratio"] == flat["calmar_ratio"] == 0.0
    assert flat["annualized_volatility"] == 0.0 and flat["n_drawdowns"] == 0.0
    up = an.performance(_equity([101.0, 102.0, 103.0]), 100.0)  # no drawdown, a gain
    assert up["calmar_ratio"] == math.inf and up["sortino_ratio"] == math.inf
    one = an.performance(_equity([101.0]), 100.0)  # a volatility needs two sessions
    assert math.isnan(one["sharpe_ratio"]) and math.isnan(one["annualized_volatility"])
    assert one["calmar_ratio"] == math.inf and one["total_return"] == pytest.approx(0.01)
    empty = an.performance(_equity([100.0]).head(0), 100.0)
    assert empty["n_days"] == 0 and empty["total_return"] == 0.0
    assert math.isnan(empty["sharpe_ratio"])


def test_drawdown_table_and_monthly_returns():
    table = an.drawdown_table(_equity(PATH), 100.0)
    assert table["depth"].to_list() == pytest.approx([-0.10, -0.05, 111 / 112 - 1])
    assert table["status"].to_list() == ["recovered", "recovered", "active"]
    assert table["peak_date"][1] is None  # the starting capital was the peak
    assert table["duration_sessions"].to_list() == [3, 2, 1]
    monthly = an.monthly_returns(_equity([101.0, 102.0, 99.0], dt.date(2024, 1, 30)), 100.0)
    assert monthly["month"].to_list() == [1, 2]
    assert monthly["ret"].to_list() == pytest.approx([0.02, 99 / 102 - 1])


def test_intraday_drawdown_is_deeper_than_end_of_day(bt):
    s = an.summarize(
        bt["trades"],
        bt["equity_daily"],
        bt["capital"],
        equity_minutes=bt["equity_minutes"],
        n_boot=200,
    )
    perf = s["performance"]
    assert perf["max_drawdown_intraday"] <= perf["max_drawdown"] <= 0.0


def test_bad_inputs_name_the_problem():
    with pytest.raises(InputError, match="capital"):
        an.performance(_equity(PATH), -5.0)
    with pytest.raises(InputError, match="equity"):
        an.performance(pl.DataFrame({"date": [dt.date(2024, 1, 2)]}), 100.0)
    with pytest.raises(InputError, match="more than once"):
        an.performance(pl.concat([_equity(PATH), _equity(PATH)]), 100.0)
    with pytest.raises(InputError, match="trades lacks"):
        an.trade_stats(pl.DataFrame({"pnl": [1.0]}))


# --------------------------------------------------------------------------- trade stats


def _five_trades() -> pl.DataFrame:
    pnl = [100.0, -200.0, 50.0, 150.0, -50.0]
    t0 = 1_704_200_000_000_000_000
    hold_min = [30, 60, 90, 120, 150]
    return pl.DataFrame(
        {
            "trade_id": [f"t{i}" for i in range(5)],
            "pnl": pnl,
            "credit_per_share": [1.0, 2.0, 1.5, 2.5, 3.0],
            "contracts": [1, 1, 2, 1, 2],
            "fees": [4.0, 4.0, 8.0, 4.0, 8.0],
            "entry_ts": [t0] * 5,
            "exit_ts": [t0 + m * 60_000_000_000 for m in hold_min],
            "exit_reason": ["take_profit", "stop_loss", "take_profit", "time_exit", "settlement"],
            "max_loss": [2400.0, 2300.0, 4700.0, 2250.0, 4400.0],
            "entry_date": [dt.date(2024, 1, d) for d in (1, 2, 3, 8, 9)],  # Mon Tue Wed Mon Tue
        },
        schema_overrides={"contracts": pl.Int32},
    )


def test_trade_stats_on_a_hand_worked_table():
    s = an.trade_stats(_five_trades())
    assert s["n_trades"] == 5 and s["n_wins"] == 3 and s["n_losses"] == 2
    assert s["win_rate"] == pytest.approx(0.6)
    assert s["gross_win"] == pytest.approx(300.0) and s["gross_loss"] == pytest.approx(250.0)
    assert s["profit_factor"] == pytest.approx(1.2)
    assert s["expectancy"] == pytest.approx(10.0)
    assert s["total_pnl"] == pytest.approx(50.0)
    assert s["avg_win"] == pytest.approx(100.0) and s["avg_loss"] == pytest.approx(-125.0)
    assert s["largest_loss"] == -200.0 and s["largest_win"] == 150.0
    assert s["cvar_5"] == pytest.approx(-200.0)  # worst ceil(0.05 * 5) = 1 trade
    assert an.trade_stats(_five_trades(), alpha=0.4)["cvar_5"] == pytest.approx(-125.0)
    assert s["avg_credit_per_share"] == pytest.approx(2.0)
    assert s["avg_credit"] == pytest.approx((100 + 200 + 300 + 250 + 600) / 5)
    assert s["avg_holding_minutes"] == pytest.approx(90.0)
    assert s["total_fees"] == pytest.approx(28.0)
    assert s["max_max_loss"] == 4700.0 and s["avg_max_loss"] == pytest.approx(3210.0)
    ror = np.array([100 / 2400, -200 / 2300, 50 / 4700, 150 / 2250, -50 / 4400])
    assert s["avg_return_on_risk"] == pytest.approx(ror.mean())
    assert s["exit_reasons"] == {
        "take_profit": 2,
        "stop_loss": 1,
        "time_exit": 1,
        "settlement": 1,
        "end_of_data": 0,
    }


def test_cvar_uses_ceil_of_alpha_n_without_float_slop():
    df = _five_trades()
    many = pl.concat([df] * 12)  # 60 trades: 0.05 * 60 = 3.0000000000000004 in floating point
    assert an.trade_stats(many)["cvar_5"] == pytest.approx(-200.0)
    big = pl.concat([df] * 20)  # 100 trades, worst 5 are all -200
    assert an.trade_stats(big)["cvar_5"] == pytest.approx(-200.0)


def test_profit_factor_without_losses_is_infinite():
    wins = _five_trades().filter(pl.col("pnl") > 0)
    assert math.isinf(an.trade_stats(wins)["profit_factor"])


def test_empty_trades_give_a_zero_summary(bt):
    s = an.trade_stats(empty_trades())
    assert s["n_trades"] == 0 and s["total_pnl"] == 0.0 and math.isnan(s["win_rate"])
    assert set(s["exit_reasons"]) == set(EXIT_REASONS)
    assert an.trade_stats(pl.DataFrame())["n_trades"] == 0
    flat = _equity([CAPITAL] * 10)
    out = an.summarize(empty_trades(), flat, CAPITAL, n_boot=100)
    assert out["trades"]["n_trades"] == 0
    assert all(v.height == 0 for v in out["breakdowns"].values())
    assert all(math.isnan(v) for v in out["bootstrap"]["expectancy_ci"])


# --------------------------------------------------------------------------- breakdowns


def test_breakdown_rows_and_totals(bt):
    trades = bt["trades"]
    total = an.trade_stats(trades)
    parts = an.breakdowns(trades)
    assert set(parts) == set(an.BREAKDOWN_KEYS)
    for key, df in parts.items():
        assert (
            df.height
            == trades.select(
                pl.col("entry_date").dt.weekday() if key == "weekday" else pl.col(key)
            ).n_unique()
        ), key
        assert df["n_trades"].sum() == total["n_trades"]
        assert df["total_pnl"].sum() == pytest.approx(total["total_pnl"])
    weekday = parts["weekday"]["weekday"].to_list()
    assert weekday == sorted(weekday, key=an.WEEKDAYS.index)
    by_reason = parts["exit_reason"]
    tp = by_reason.filter(pl.col("exit_reason") == "take_profit")
    assert tp["win_rate"][0] == 1.0  # half the credit back, fees well below
    assert by_reason.filter(pl.col("exit_reason") == "stop_loss")["win_rate"][0] == 0.0


def test_breakdown_by_two_keys_and_weekday_by_hand():
    df = an.breakdown(_five_trades(), "weekday")
    assert df["weekday"].to_list() == ["Mon", "Tue", "Wed"]
    assert df["n_trades"].to_list() == [2, 2, 1]
    assert df["total_pnl"].to_list() == pytest.approx([250.0, -250.0, 50.0])
    two = an.breakdown(_five_trades(), ["weekday", "exit_reason"])
    assert two["n_trades"].sum() == 5 and two.height == 5
    with pytest.raises(InputError, match="nope"):
        an.breakdown(_five_trades(), "nope")


def test_breakdown_rows_are_trade_stats_of_each_group(bt):
    trades = bt["trades"]
    rows = an.breakdown(trades, "exit_reason")
    for row in rows.iter_rows(named=True):
        ref = an.trade_stats(trades.filter(pl.col("exit_reason") == row["exit_reason"]))
        for key, value in row.items():
            if key != "exit_reason":
                assert value == pytest.approx(ref[key], nan_ok=True), key
    assert rows.schema["n_trades"] == pl.Int64 and rows.schema["win_rate"] == pl.Float64
    empty = an.breakdown(empty_trades(), "dte")
    assert empty.height == 0 and "profit_factor" in empty.columns


def test_config_metrics_are_performance_and_trade_stats(bt):
    m = an.config_metrics(bt["trades"], bt["equity_daily"], bt["capital"])
    perf = an.performance(bt["equity_daily"], bt["capital"])
    stats = an.trade_stats(bt["trades"])
    assert set(m) == (set(perf) | set(stats)) - {"exit_reasons"}
    assert all(isinstance(v, float) for v in m.values())
    assert m["sharpe_ratio"] == perf["sharpe_ratio"] and m["win_rate"] == stats["win_rate"]
    assert m["total_pnl"] == stats["total_pnl"]  # the trades' sum wins over equity's change
    none = an.config_metrics(empty_trades(), _equity([CAPITAL] * 3), CAPITAL)
    assert none["n_trades"] == 0.0 and none["sharpe_ratio"] == 0.0  # sorts below any gain


def test_realized_stats_of_a_book_by_hand():
    book = pl.DataFrame(
        {
            "trade_id": ["b", "a", "c", "d"],
            "exit_ts": [2, 1, 2, 4],
            "pnl": [-300.0, 200.0, 50.0, 0.0],
        }
    )
    s = an.realized_stats(book, 1000.0)
    # exit order a, b, c, d: equity 1200, 900, 950, 950 -> deepest 900 / 1200 - 1
    assert s["n_trades"] == 4.0 and s["total_pnl"] == -50.0 and s["equity"] == 950.0
    assert s["win_rate"] == 0.5 and s["profit_factor"] == pytest.approx(250 / 300)
    assert s["max_drawdown"] == pytest.approx(-0.25) and s["max_drawdown_dollars"] == -300.0
    nothing = an.realized_stats(book.head(0), 1000.0)
    assert nothing["total_pnl"] == 0.0 and nothing["max_drawdown"] == 0.0
    assert math.isnan(nothing["win_rate"])
    with pytest.raises(InputError, match="capital"):
        an.realized_stats(book, 0.0)


def test_decision_counts(bt):
    counts = an.decision_counts(bt["decisions"])
    assert counts.row(0, named=True)["decision"] == "taken"
    assert counts["n"].to_list() == [50, 4, 2]
    assert counts["share"].sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_and_covers_the_estimate(bt):
    trades = bt["trades"]
    a = an.bootstrap_ci(trades, "mean", seed=3)
    assert a == an.bootstrap_ci(trades, "mean", seed=3)
    assert a != an.bootstrap_ci(trades, "mean", seed=4)
    mean = trades["pnl"].mean()
    assert a[0] < mean < a[1]
    # iid percentile interval ~ normal theory for a mean of 50 values
    half = 1.96 * trades["pnl"].std() / math.sqrt(trades.height)
    assert (a[1] - a[0]) / 2 == pytest.approx(half, rel=0.2)

    rets = an.daily_returns(bt["equity_daily"], bt["capital"])
    sharpe = an.performance(bt["equity_daily"], bt["capital"])["sharpe_ratio"]
    lo, hi = an.bootstrap_ci(rets, "sharpe", seed=3)
    assert lo < sharpe < hi
    assert (lo, hi) == an.bootstrap_ci(rets, "sharpe", seed=3)


def test_bootstrap_chunking_and_callables_agree():
    x = np.random.default_rng(0).normal(size=40)
    mean_rows = an.bootstrap_distribution(x, "mean", n_boot=300, seed=1)
    custom = an.bootstrap_distribution(x, lambda m: m.mean(axis=1), n_boot=300, seed=1)
    np.testing.assert_array_equal(mean_rows, custom)
    assert all(math.isnan(v) for v in an.bootstrap_ci([1.0], "mean"))
    with pytest.raises(InputError, match="stat"):
        an.bootstrap_ci(x, "median")
    with pytest.raises(InputError, match="method"):
        an.bootstrap_ci(x, "mean", method="moving")


@given(n=st.integers(2, 60), block=st.floats(1.0, 12.0), seed=st.integers(0, 2**16))
def test_stationary_indices_are_wrapped_runs(n, block, seed):
    idx = bs._stationary_indices(np.random.default_rng(seed), 5, n, block)
    assert idx.shape == (5, n) and idx.min() >= 0 and idx.max() < n
    circ = bs._circular_indices(np.random.default_rng(seed), 5, n, max(1, round(block)))
    assert circ.shape == (5, n) and circ.min() >= 0 and circ.max() < n
    steps = np.diff(circ, axis=1) % n
    blk = max(1, round(block))
    inside = (np.arange(1, n) % blk) != 0  # within a block the index advances by one
    assert np.all(steps[:, inside] == 1 % n)


def test_stationary_mean_block_length():
    idx = bs._stationary_indices(np.random.default_rng(5), 400, 200, 8.0)
    starts = (np.diff(idx, axis=1) % 200) != 1
    assert (starts.size / starts.sum()) == pytest.approx(8.0, rel=0.1)


@given(
    pnl=st.lists(st.floats(-5e3, 5e3, allow_nan=False), min_size=1, max_size=30),
)
def test_trade_stats_invariants(pnl):
    n = len(pnl)
    df = pl.DataFrame(
        {
            "pnl": pnl,
            "credit_per_share": [1.0] * n,
            "contracts": [1] * n,
            "fees": [2.0] * n,
            "entry_ts": [0] * n,
            "exit_ts": [60_000_000_000] * n,
            "exit_reason": ["time_exit"] * n,
            "max_loss": [500.0] * n,
        }
    )
    s = an.trade_stats(df)
    assert 0.0 <= s["win_rate"] <= 1.0
    assert s["n_wins"] + s["n_losses"] <= n
    assert s["gross_win"] - s["gross_loss"] == pytest.approx(s["total_pnl"], abs=1e-6)
    assert s["largest_loss"] - 1e-9 <= s["cvar_5"] <= s["expectancy"] + 1e-9
