"""Walk-forward optimisation: window planning, the choice, no look-ahead, the stitched book."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from quantlab.backtest.stage1 import run_stage1
from quantlab.backtest.stage2 import run_stage2
from quantlab.backtest.walkforward import (
    WindowSpec,
    choose,
    plan_windows,
    run_walkforward,
    train_scores,
)
from quantlab.errors import ConfigError, InputError
from quantlab.strategy import StrategySpec
from tests.conftest import MARKET, SyntheticStore

CAPITAL = 100_000.0
YEAR = [dt.date(2024, 1, 1) + dt.timedelta(i) for i in range(366)]
WEEKDAYS = [d for d in YEAR if d.weekday() < 5]


# --------------------------------------------------------------------------- window planning


def test_rolling_months_tile_calendar_months_after_the_train_window() -> None:
    ws = plan_windows(WEEKDAYS, WindowSpec(train=6, test=1, step=1))
    assert len(ws) == 6
    first = ws[0].dates()
    assert first["train_start"] == dt.date(2024, 1, 1) and first["test_start"] == dt.date(
        2024, 7, 1
    )
    assert first["train_end"] == dt.date(2024, 6, 28) and first["test_end"] == dt.date(2024, 7, 31)
    assert ws[1].dates()["train_start"] == dt.date(2024, 2, 1)
    assert [w.dates()["test_start"].month for w in ws] == [7, 8, 9, 10, 11, 12]


def test_anchored_windows_all_start_at_the_first_session() -> None:
    ws = plan_windows(WEEKDAYS, WindowSpec(mode="anchored", train=6, test=1, step=1))
    assert {w.train_lo for w in ws} == {0}
    assert [w.train_hi for w in ws] == sorted(w.train_hi for w in ws)


def test_embargo_drops_sessions_from_the_end_of_train() -> None:
    plain = plan_windows(WEEKDAYS, WindowSpec(train=6, test=1, step=1))
    gap = plan_windows(WEEKDAYS, WindowSpec(train=6, test=1, step=1, embargo=5))
    for a, b in zip(plain, gap, strict=True):
        assert (b.train_lo, b.train_hi, b.test_lo, b.test_hi) == (
            a.train_lo,
            a.train_hi - 5,
            a.test_lo,
            a.test_hi,
        )


def test_bad_window_specs_are_refused() -> None:
    with pytest.raises(ConfigError, match="step"):
        WindowSpec.from_dict({"test": 2, "step": 1})
    with pytest.raises(InputError, match="longer than one train window"):
        plan_windows(WEEKDAYS[:50], WindowSpec(train=6))
    with pytest.raises(InputError, match="at least 2"):
        plan_windows(WEEKDAYS, WindowSpec(unit="sessions", train=3, embargo=2))


@settings(max_examples=200, deadline=None)
@given(
    n=hs.integers(6, 80),
    mode=hs.sampled_from(["rolling", "anchored"]),
    train=hs.integers(2, 20),
    test=hs.integers(1, 6),
    extra=hs.integers(0, 3),
    embargo=hs.integers(0, 3),
)
def test_windows_never_overlap(
    n: int, mode: str, train: int, test: int, extra: int, embargo: int
) -> None:
    spec = WindowSpec(
        mode=mode,
        unit="sessions",
        train=train + embargo,
        test=test,
        step=test + extra,
        embargo=embargo,
    )
    try:
        ws = plan_windows(WEEKDAYS[:n], spec)
    except InputError:
        assert n <= train + embargo
        return
    for w in ws:
        assert 0 <= w.train_lo < w.train_hi == w.test_lo - embargo < w.test_hi <= n
        assert w.train_lo == 0 if mode == "anchored" else w.train_hi - w.train_lo == train
    for a, b in itertools.pairwise(ws):
        assert a.test_hi <= b.test_lo  # test windows are disjoint and in order
    assert ws[-1].test_lo + spec.step >= n  # the range is walked to its end


# --------------------------------------------------------------------------- the choice


def test_ties_go_to_the_smallest_config_id_and_nan_loses() -> None:
    assert choose(np.array([1.0, 3.0, 3.0]), ["a", "z", "m"]) == 2
    assert choose(np.array([np.nan, -5.0]), ["a", "b"]) == 1
    assert choose(np.array([np.nan, np.nan]), ["b", "a"]) == 1
    assert choose(np.zeros(4), ["d", "b", "c", "e"]) == 1


def test_sharpe_score_is_the_stats_sharpe_of_the_rebased_window() -> None:
    from quantlab.stats import metrics as mt

    rng = np.random.default_rng(3)
    pnl = rng.normal(20, 300, size=(60, 3))
    rows = np.arange(10, 40)
    got = train_scores("sharpe", pnl, rows, CAPITAL)
    for j in range(3):
        eq = CAPITAL + np.cumsum(pnl[rows, j])
        want = mt.sharpe_ratio(mt.returns_from_equity(eq, CAPITAL), periods_per_year=252)
        assert got[j] == pytest.approx(want)
    assert np.array_equal(train_scores("-sharpe", pnl, rows, CAPITAL), -got)


def test_unknown_metric_names_the_choices() -> None:
    trades = [pl.DataFrame(schema={"entry_date": pl.Date, "exit_date": pl.Date})] * 2
    with pytest.raises(InputError, match="sharpe_ratio"):
        train_scores("sharpness", np.zeros((5, 2)), np.arange(5), CAPITAL, trades, WEEKDAYS[:5])


@settings(max_examples=60, deadline=None)
@given(
    seed=hs.integers(0, 2**32 - 1),
    criterion=hs.sampled_from(["sharpe", "deflated_sharpe"]),
    lo=hs.integers(0, 20),
)
def test_a_choice_does_not_see_its_test_window(seed: int, criterion: str, lo: int) -> None:
    """Whatever happens from the test window on, the train window's choice is the same."""
    rng = np.random.default_rng(seed)
    pnl = rng.normal(10, 200, size=(80, 6))
    w = plan_windows(WEEKDAYS[:80], WindowSpec(unit="sessions", train=20 + lo, test=5, step=5))[0]
    ids = [f"c{j}" for j in range(6)]
    before = choose(train_scores(criterion, pnl, w.train_rows, CAPITAL), ids)
    shaken = pnl.copy()
    shaken[w.test_lo :] = rng.normal(0, 5_000, size=shaken[w.test_lo :].shape)
    assert choose(train_scores(criterion, shaken, w.train_rows, CAPITAL), ids) == before


def test_planted_regime_the_choice_switches_after_the_change() -> None:
    """Config 2 is best only in the second half of the year: the windows whose train sessions
    are all after the change choose it, those before choose config 0."""
    rng = np.random.default_rng(11)
    n = len(WEEKDAYS)
    pnl = rng.normal(0.0, 150.0, size=(n, 4))
    half = n // 2
    pnl[:half, 0] += 60.0
    pnl[half:, 0] -= 60.0
    pnl[half:, 2] += 60.0
    ws = plan_windows(WEEKDAYS, WindowSpec(train=3, test=1, step=1))
    ids = ["a", "b", "c", "d"]
    picks = [choose(train_scores("sharpe", pnl, w.train_rows, CAPITAL), ids) for w in ws]
    for w, j in zip(ws, picks, strict=True):
        if w.train_hi <= half:
            assert j == 0
        elif w.train_lo >= half:
            assert j == 2
    assert picks[0] == 0 and picks[-1] == 2


# --------------------------------------------------------------------------- on a store


def _spec(name: str, delta: float, width: int) -> StrategySpec:
    return StrategySpec.from_dict(
        {
            "name": name,
            "dte": {"target": 3, "tolerance": 2},
            "entry": {"times": ["10:00"]},
            "short_delta": delta,
            "width": width,
            "filters": {"min_credit": 0.0},
            "risk": {"max_open_trades": 1, "max_new_trades_per_day": 1},
        }
    )


SPECS = [_spec("a", 0.10, 25), _spec("b", 0.20, 10), _spec("c", 0.15, 50)]
WINDOWS = WindowSpec(unit="sessions", train=4, test=2, step=2)


@pytest.fixture(scope="module")
def walked(synthetic_store: SyntheticStore) -> tuple[object, object]:
    store: Path = synthetic_store(**MARKET)
    s1 = run_stage1(store, SPECS, dt.date(2024, 3, 1), dt.date(2024, 3, 18))
    return s1, run_walkforward(s1, SPECS, WINDOWS, "sharpe")


def test_stitched_pnl_is_the_sum_of_the_window_trades(walked: tuple) -> None:
    s1, res = walked
    trades = res.trades
    assert res.windows.height == len(plan_windows(s1.days, WINDOWS)) >= 3
    assert trades["window"].n_unique() >= 2
    assert res.equity_daily["pnl"].sum() == pytest.approx(trades["pnl"].sum(), abs=1e-6)
    assert res.summary["oos_total_pnl"] == pytest.approx(trades["pnl"].sum(), abs=1e-6)
    per_window = trades.group_by("window").agg(pl.col("pnl").sum()).sort("window")
    got = dict(res.windows.select("window", "pnl").iter_rows())
    for w, p in per_window.iter_rows():
        assert got[w] == pytest.approx(p)
    lo, hi = res.summary["oos_total_pnl_ci"]
    assert lo <= res.summary["oos_total_pnl"] <= hi
    lo, hi = res.summary["oos_sharpe_ci"]
    assert lo < hi


def test_each_window_trades_only_its_test_sessions_with_a_flat_handover(walked: tuple) -> None:
    _, res = walked
    bounds = {r["window"]: r for r in res.windows.to_dicts()}
    for t in res.trades.to_dicts():
        b = bounds[t["window"]]
        assert b["test_start"] <= t["entry_date"] <= b["test_end"]
    tr = res.trades.sort("entry_ts")
    for a, b in zip(tr.to_dicts(), tr.to_dicts()[1:], strict=False):
        if a["window"] != b["window"]:
            assert b["entry_ts"] >= a["exit_ts"]  # the book is flat at a hand-over


def test_the_look_ahead_config_is_the_full_period_best(walked: tuple) -> None:
    s1, res = walked
    full = [run_stage2(s1, s) for s in SPECS]
    pnl = np.column_stack([r.equity_daily["pnl"].to_numpy() for r in full])
    ids = [s.config_hash() for s in SPECS]
    best = choose(train_scores("sharpe", pnl, np.arange(len(s1.days)), CAPITAL), ids)
    assert res.summary["lookahead_config_id"] == ids[best]
    first = res.windows["test_start"][0]
    la = res.lookahead_trades
    assert la.height == 0 or la["entry_date"].min() >= first
    oos = res.equity_daily
    assert oos["lookahead_pnl"].sum() == pytest.approx(la["pnl"].sum(), abs=1e-6)


def test_any_config_metric_can_choose(walked: tuple) -> None:
    s1, _ = walked
    res = run_walkforward(s1, SPECS, WINDOWS, "-max_drawdown_duration")
    assert res.windows.height > 0 and res.summary["criterion"] == "-max_drawdown_duration"
    dsr = run_walkforward(s1, SPECS, WINDOWS, "deflated_sharpe").summary["deflated_sharpe"]
    assert dsr["n_trials"] == len(SPECS)


def test_perturbed_test_window_quotes_leave_its_choice_unchanged(
    synthetic_store: SyntheticStore, tmp_path: Path, walked: tuple
) -> None:
    """No look-ahead through the store: the quotes of the last window's test sessions are
    rewritten (asks x 1.5, a different market), stage 1 and the walk-forward run again; every
    window's choice and train score stay the same while its out-of-sample trades change."""
    s1, res = walked
    store = synthetic_store(**MARKET, copy_to=tmp_path / "perturbed")
    last = plan_windows(s1.days, WINDOWS)[-1]
    lo, hi = last.dates()["test_start"], last.dates()["test_end"]
    days = [d for d in s1.days if lo <= d <= hi]
    for d in days:
        f = store / "parquet" / "quotes" / "underlying=SPX" / f"date={d}" / "part-0.parquet"
        q = pl.read_parquet(f)
        q.with_columns(pl.col("ask") * 1.5).write_parquet(f)
    shutil.rmtree(store / "cache", ignore_errors=True)  # the day cache of the old quotes
    s1p = run_stage1(store, SPECS, dt.date(2024, 3, 1), dt.date(2024, 3, 18))
    again = run_walkforward(s1p, SPECS, WINDOWS, "sharpe")
    cols = ["window", "config_id", "score", "is_sharpe"]
    assert again.windows.select(cols).equals(res.windows.select(cols), null_equal=True)
    before = res.trades.filter(pl.col("entry_date") >= days[0])
    after = again.trades.filter(pl.col("entry_date") >= days[0])
    assert before.height and not before.select("pnl").equals(after.select("pnl"))


def test_a_regime_planted_in_the_store_switches_the_choice(
    synthetic_store: SyntheticStore, tmp_path: Path
) -> None:
    """Through stage 1 and 2 on the store: config ``first`` may only enter in the first half
    of the sessions and ``second`` only in the second (each skips the other half as event
    days), and the criterion is the number of trades (any metric can choose), so ``second``
    is the best config only after the change. Windows that train on the first half choose
    ``first``; once a train window lies in the second half, ``second`` is chosen. (By Sharpe
    the planted config need not win: a config with no trades scores 0, above a losing one.)"""
    store = synthetic_store(**MARKET)
    a, b = dt.date(2024, 3, 1), dt.date(2024, 3, 18)
    days = run_stage1(store, SPECS[:1], a, b).days
    half = len(days) // 2

    def only(name: str, keep: list[dt.date]) -> StrategySpec:
        f = tmp_path / f"{name}.csv"
        f.write_text("date\n" + "".join(f"{d}\n" for d in days if d not in keep))
        base = SPECS[0].model_dump(mode="json")
        filters = base["filters"] | {"skip_event_days": True, "events_file": str(f)}
        return StrategySpec.from_dict(base | {"name": name, "filters": filters})

    specs = [only("first", days[:half]), only("second", days[half:])]
    s1 = run_stage1(store, specs, a, b)
    res = run_walkforward(s1, specs, WINDOWS, "n_trades")
    w = res.windows.to_dicts()
    chosen = {r["window"]: r["config"] for r in w}
    for r in w:
        train = [d for d in days if r["train_start"] <= d <= r["train_end"]]
        if train[-1] < days[half]:
            assert chosen[r["window"]] == "first", r
        if train[0] >= days[half]:
            assert chosen[r["window"]] == "second", r
    assert {"first", "second"} <= set(chosen.values())


# --------------------------------------------------------------------------- the command


def test_walkforward_command_writes_the_page_and_logs_a_parent_and_a_child_per_window(
    synthetic_store: SyntheticStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from quantlab.cli import app

    store = synthetic_store(**MARKET)
    base = SPECS[0].model_dump(mode="json")
    sweep = {
        "name": "wf-grid",
        "base": base,
        "grid": {"short_delta": [0.1, 0.2], "width": [10, 25]},
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(sweep))
    wf = {
        "name": "wf",
        "sweep": "grid.yaml",
        "windows": WINDOWS.model_dump(),
        "criterion": "sharpe",
    }
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(wf))
    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "out"
    args = ["walkforward", str(tmp_path / "wf.yaml"), "--store", str(store), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "out of sample: P&L" in res.output and "look-ahead (" in res.output
    windows = pl.read_parquet(out / "windows.parquet")
    page = (out / "walkforward.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "look-ahead" in page
    for name in ("trades.parquet", "equity_daily.parquet", "equity.png", "configs.png"):
        assert (out / name).is_file(), name
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("quantlab-backtests")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("quantlab.kind") == "walkforward"]
    assert len(parents) == 1
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(kids) == windows.height
    assert sorted(k.data.params["config_id"] for k in kids) == sorted(windows["config_id"])
    assert parents[0].data.metrics["n_configs"] == 4.0
