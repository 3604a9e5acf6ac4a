"""The cost curve: the config's own fill assumption is the backtest to the cent, P&L falls as
the fill model gives up more of the spread, and the break-even k is where the curve crosses
zero; on the synthetic month of test_exact_money (one stage 1 for the module)."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlab.backtest.analytics import config_metrics
from quantlab.backtest.costs import (
    DEFAULT_KS,
    break_even_k,
    break_even_sentence,
    cost_curve,
)
from quantlab.backtest.engine import backtest, stage1
from quantlab.backtest.stage1 import Stage1Result
from quantlab.backtest.stage2 import run_stage2
from quantlab.errors import ConfigError, InputError
from quantlab.execution import FillModel
from quantlab.strategy import StrategySpec
from tests.backtest.test_exact_money import END, MANAGED, START, ZERO_DTE
from tests.conftest import SyntheticStore

SLIPPAGE = (0.0, 0.05)


def _with(spec: StrategySpec, **fills: object) -> StrategySpec:
    return spec.model_copy(update={"fills": FillModel.from_dict(fills)})


def _pnl_mc(trades: pl.DataFrame) -> int:
    """Total P&L in integer millicents (what the trade log's dollars were divided from)."""
    return int(np.rint(trades["pnl"].to_numpy() * 100_000).astype(np.int64).sum())


@pytest.fixture(scope="module")
def month(synthetic_store: SyntheticStore) -> Path:
    return synthetic_store(START, END, 3, "test", dte_max=3, moneyness=0.04)


@pytest.fixture(scope="module")
def s1(month: Path) -> Stage1Result:
    return stage1(month, [MANAGED, ZERO_DTE], START, END, workers=1)


@pytest.fixture(scope="module")
def curves(s1: Stage1Result) -> dict[str, pl.DataFrame]:
    return {spec.name: cost_curve(s1, spec, slippage=SLIPPAGE) for spec in (MANAGED, ZERO_DTE)}


def _line(curve: pl.DataFrame, slippage: float) -> tuple[np.ndarray, np.ndarray]:
    sub = curve.filter(pl.col("slippage") == slippage).sort("k")
    return sub["k"].to_numpy(), sub["total_pnl"].to_numpy()


# ------------------------------------------------------------------ the backtest's own point
def test_k_030_reproduces_the_backtest_to_the_cent(
    s1: Stage1Result, curves: dict[str, pl.DataFrame]
) -> None:
    for spec in (MANAGED, ZERO_DTE):
        curve = curves[spec.name]
        assert curve.height == len(DEFAULT_KS) * len(SLIPPAGE)
        own = curve.filter(pl.col("is_spec"))
        assert own.select("k", "slippage").rows() == [(0.30, 0.0)]
        res = run_stage2(s1, spec)
        assert res.trades.height > 0
        assert own["trades"][0] == res.trades.height
        assert round(own["total_pnl"][0] * 100_000) == _pnl_mc(res.trades)
        m = config_metrics(res.trades, res.equity_daily, res.capital)
        assert own["sharpe"][0] == m["sharpe_ratio"] and own["win_rate"][0] == m["win_rate"]


def test_the_specs_own_assumption_is_always_on_the_curve(s1: Stage1Result) -> None:
    off_grid = _with(MANAGED, k=0.27, slippage=0.01)
    curve = cost_curve(s1, off_grid, ks=(0.0, 0.5))
    own = curve.filter(pl.col("is_spec"))
    assert curve.height == 3 and own.select("k", "slippage").rows() == [(0.27, 0.01)]
    assert round(own["total_pnl"][0] * 100_000) == _pnl_mc(run_stage2(s1, off_grid).trades)
    # natural fills are mid_k at k = 0.5: the natural config sits there, to the cent
    natural = _with(MANAGED, kind="natural")
    both = cost_curve(s1, natural, ks=(0.5,))
    assert both.height == 1 and both["is_spec"][0]
    half = run_stage2(s1, _with(MANAGED, k=0.5)).trades
    assert round(both["total_pnl"][0] * 100_000) == _pnl_mc(half)


# ------------------------------------------------------------------ P&L falls with k
def test_pnl_is_non_increasing_in_k_on_the_synthetic_month(
    curves: dict[str, pl.DataFrame],
) -> None:
    # held to settlement this is a theorem (below); for the managed config, whose exits and
    # risk rules are evaluated again at each k, it is what this month shows
    for name, curve in curves.items():
        for s in SLIPPAGE:
            _k, pnl = _line(curve, s)
            assert np.all(np.diff(pnl) <= 0), (name, s, pnl)
            assert pnl[0] > pnl[-1], (name, s)  # giving up the spread costs something


@settings(max_examples=25)
@given(
    ks=st.lists(st.integers(0, 5000), min_size=2, max_size=2).map(sorted),
    slips=st.lists(st.integers(0, 10), min_size=2, max_size=2).map(sorted),
)
def test_every_held_trade_loses_with_each_cent_given_up(
    s1: Stage1Result, ks: list[int], slips: list[int]
) -> None:
    # held to settlement, one contract, no credit filter: the same trades at any fill, each
    # one's P&L lower (or equal) with a larger k, strictly lower with more slippage
    a, b = (
        run_stage2(s1, _with(ZERO_DTE, k=k / 10_000, slippage=s / 100)).trades
        for k, s in zip(ks, slips, strict=True)
    )
    assert a.height > 0 and a["candidate_id"].to_list() == b["candidate_id"].to_list()
    pa, pb = a["pnl"].to_numpy(), b["pnl"].to_numpy()
    assert np.all(pb <= pa)
    if slips[1] > slips[0]:
        assert np.all(pb < pa)


def test_slippage_lowers_pnl(curves: dict[str, pl.DataFrame]) -> None:
    for name, curve in curves.items():
        _, none = _line(curve, 0.0)
        _, some = _line(curve, 0.05)
        assert np.all(some < none), name
        with_slip = break_even_sentence(curve, 0.05)
        assert "with $0.05 slippage per share per leg" in with_slip


# ------------------------------------------------------------------ the break-even k
def _hand(pnl: list[float], ks: list[float] | None = None, slippage: float = 0.0) -> pl.DataFrame:
    ks = ks if ks is not None else [i / 10 for i in range(len(pnl))]
    return pl.DataFrame({"k": ks, "slippage": slippage, "total_pnl": pnl})


def test_break_even_k_on_hand_made_curves() -> None:
    c = _hand([40.0, -60.0], [0.35, 0.40])
    assert break_even_k(c) == pytest.approx(0.37)
    assert break_even_sentence(c).startswith("this strategy stops making money at k = 0.37 ")
    assert break_even_k(_hand([500.0, 300.0, 100.0, -300.0])) == pytest.approx(0.225)
    assert break_even_k(_hand([300.0, 0.0, -100.0], [0.0, 0.25, 0.5])) == 0.25  # on a point
    rich = _hand([300.0, 200.0, 1.0], [0.0, 0.25, 0.5])
    assert break_even_k(rich) is None
    assert "still makes money at k = 0.5 (natural): total P&L $1." in break_even_sentence(rich)
    poor = _hand([-5.0, -50.0], [0.0, 0.5])
    assert break_even_k(poor) is None
    assert "loses money even at k = 0 (mid): total P&L -$5." in break_even_sentence(poor)
    assert "makes no money even at k = 0 (mid)" in break_even_sentence(_hand([0.0, -1.0]))
    twice = _hand([100.0, -50.0, 80.0, -20.0])
    assert break_even_k(twice) == pytest.approx(0.1 * 100 / 150)
    assert "falls to zero 2 times; this is the first" in break_even_sentence(twice)


def test_break_even_k_picks_its_slippage_line() -> None:
    two = pl.concat([_hand([100.0, -100.0]), _hand([50.0, -150.0], slippage=0.05)])
    assert break_even_k(two) == pytest.approx(0.05)  # the smallest slippage by default
    assert break_even_k(two, 0.05) == pytest.approx(0.025)
    with pytest.raises(InputError, match=r"no points at slippage 0.1 \(it has \[0.0, 0.05\]\)"):
        break_even_k(two, 0.1)
    with pytest.raises(InputError, match="empty"):
        break_even_k(two.clear())


def test_break_even_k_of_the_synthetic_month(curves: dict[str, pl.DataFrame]) -> None:
    curve = curves[ZERO_DTE.name]
    be = break_even_k(curve)
    assert be is not None
    k, pnl = _line(curve, 0.0)
    i = int(np.flatnonzero(pnl <= 0)[0])  # the first grid point that does not make money
    assert i > 0 and pnl[i - 1] > 0 and k[i - 1] < be <= k[i]
    assert np.interp(be, k, pnl) == pytest.approx(0.0, abs=1e-6)  # where the curve crosses zero
    assert f"stops making money at k = {be:.2f} " in break_even_sentence(curve)
    with_slip = break_even_k(curve, 0.05)
    assert with_slip is not None and with_slip < be  # slippage moves the break-even down


# ------------------------------------------------------------------ inputs
def test_bad_grids_are_refused_with_the_fix(s1: Stage1Result) -> None:
    with pytest.raises(
        ConfigError, match=r"slippage must be a whole number of cents.*0\.015.*0\.02"
    ):
        cost_curve(s1, MANAGED, slippage=(0.015,))
    with pytest.raises(ConfigError, match=r"whole number of basis points.*0\.12345"):
        cost_curve(s1, MANAGED, ks=(0.12345,))
    with pytest.raises(InputError, match=r"k must be in \[0, 1\] \(got 1.5\)"):
        cost_curve(s1, MANAGED, ks=(1.5,))
    with pytest.raises(InputError, match="at least one k"):
        cost_curve(s1, MANAGED, ks=())
    data = MANAGED.model_dump() | {"fills": {"slippage": 0.015}}
    with pytest.raises(ConfigError, match=r"'fills.slippage'.*whole number of cents.*0\.015"):
        StrategySpec.from_dict(data)


# ------------------------------------------------------------------ outputs and the report
def test_backtest_writes_the_curve_and_the_report_shows_it(month: Path, tmp_path: Path) -> None:
    import duckdb

    a, b = START, START + dt.timedelta(days=11)
    res = backtest(ZERO_DTE, month, start=a, end=b, out=tmp_path, workers=1)
    curve = res.cost_curve
    assert curve is not None and curve.filter(pl.col("is_spec"))["trades"][0] > 0
    assert pl.read_parquet(tmp_path / "cost_curve.parquet").equals(curve)
    con = duckdb.connect(str(tmp_path / "results.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM cost_curve").fetchone() == (curve.height,)
    finally:
        con.close()
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Cost curve</h2>" in page and (tmp_path / "cost_curve.png").is_file()
    assert html.escape(break_even_sentence(curve, 0.0, "This strategy")) in page
