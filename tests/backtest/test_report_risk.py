"""The report's risk panels (quantlab.backtest._report_risk): the book's greeks over time, the
attribution by month and per inspected trade, the worst trade's entry scenarios; and the risk
files ``write_outputs`` adds."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab.backtest import _report_plots as plots
from quantlab.backtest import _report_risk as rr
from quantlab.backtest import report as rp
from quantlab.backtest.records import empty_trades
from quantlab.risk.greeks import GREEKS, TradeRisk
from quantlab.risk.scenarios import SPOT_MOVES, VOL_MOVES
from tests.backtest.test_analytics import synthetic_backtest
from tests.conftest import MARKET, SyntheticStore

PANEL_IDS = ('id="risk"', 'id="book-greeks"', 'id="attribution-monthly"', 'id="scenario-worst"')
RISK_FIGURES = ("greeks.png", "attribution_monthly.png", "scenarios_worst.png")
_NS_PER_MIN = 60_000_000_000


def _risk_of(bt: dict, seed: int = 3) -> TradeRisk:
    """A TradeRisk by hand for the synthetic backtest's trades: constant greeks per trade over
    its path minutes, random attribution terms whose sum with the costs is the trade's P&L, and
    random scenario grids."""
    rng = np.random.default_rng(seed)
    trades = bt["trades"]
    rows = []
    for i, t in enumerate(trades.iter_rows(named=True)):
        ts = bt["paths"][t["trade_id"]]["ts"].to_numpy() if t["trade_id"] in bt["paths"] else None
        if ts is None:
            ts = np.arange(t["entry_ts"], t["exit_ts"], 30 * _NS_PER_MIN, dtype=np.int64)
        g = {
            name: float(k * (i + 1)) for k, name in zip((1, 2, -3, -4, 5, -6), GREEKS, strict=True)
        }
        rows.append(
            pl.DataFrame({"trade_id": t["trade_id"], "ts": ts, "exit_ts": t["exit_ts"]} | g)
        )
    minutes = pl.concat(rows)
    n = trades.height
    terms = rng.normal(0, 50, (n, 5))
    table = pl.DataFrame(
        {"trade_id": trades["trade_id"], "pnl": trades["pnl"]}
        | {f"entry_{g}": rng.normal(0, 10, n) for g in GREEKS}
        | {"worst_scenario_loss": rng.uniform(100, 2000, n)}
        | {"worst_spot_move_pct": np.full(n, -10.0), "worst_vol_move_pts": np.full(n, 30.0)}
        | {name: terms[:, j] for j, name in enumerate(("delta", "gamma", "vega", "theta"))}
        | {"residual": terms[:, 4]}
    ).with_columns(
        (pl.col("pnl") - pl.sum_horizontal("delta", "gamma", "vega", "theta", "residual")).alias(
            "costs"
        )
    )
    daily = pl.DataFrame(
        {
            "trade_id": trades["trade_id"],
            "date": trades["exit_date"],
            **{c: table[c] for c in ("delta", "gamma", "vega", "theta")},
            "actual": table["pnl"] - table["costs"],
            "residual": table["residual"],
        }
    )
    scen = rng.normal(0, 300, (n, SPOT_MOVES.size, VOL_MOVES.size))
    return TradeRisk(minutes, daily, table, scen)


def _empty(risk: TradeRisk) -> TradeRisk:
    """The same frames without rows (a result without trades)."""
    frames = (risk.minutes.clear(), risk.daily.clear(), risk.trades.clear())
    return TradeRisk(*frames, risk.scenarios[:0])


@pytest.fixture(scope="module")
def bt():
    return synthetic_backtest()


@pytest.fixture(scope="module")
def risk(bt):
    return _risk_of(bt)


def _write(out: Path, bt: dict, risk: TradeRisk | None, **kw) -> str:
    path = rp.write_report(
        out,
        bt["trades"],
        bt["equity_daily"],
        bt["capital"],
        paths=bt["paths"],
        inspect=3,
        n_boot=50,
        risk=risk,
        **kw,
    )
    return path.read_text(encoding="utf-8")


def test_report_has_the_risk_panels(bt, risk, tmp_path):
    text = _write(tmp_path, bt, risk)
    for anchor in PANEL_IDS:
        assert anchor in text, anchor
    for title in (
        "Greeks and P&amp;L attribution",
        "Book greeks over time",
        "P&amp;L attribution by month",
        "Entry scenarios of the trade with the largest worst-case loss",
        "Sticky strike",
    ):
        assert title in text, title
    for name in RISK_FIGURES:
        w, h = _png_size((tmp_path / name).read_bytes())
        assert w > 600 and h > 300
    attr = sorted(p.name for p in tmp_path.glob("attribution_T*.png"))
    assert len(attr) == 3 == len(list(tmp_path.glob("trade_*.png")))
    for name in attr:  # each inspected trade's attribution, anchored under its id
        assert f'id="attribution-{name[len("attribution_") : -4]}"' in text
    worst = risk.trades.sort("worst_scenario_loss", descending=True)["trade_id"][0]
    assert f"Trade {worst}: the trade with the largest worst-case" in text
    assert text.count("<td>total</td>") == 1  # the monthly table's total row, once
    assert "<script" not in text and "http" not in text  # still self-contained
    blobs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(blobs) == 3 + 3 + len(RISK_FIGURES) + 3


def test_no_risk_no_section_and_same_inputs_same_bytes(bt, risk, tmp_path):
    assert 'id="risk"' not in _write(tmp_path / "none", bt, None)
    a = _write(tmp_path / "a", bt, risk)
    b = _write(tmp_path / "b", bt, risk)
    assert a == b
    for name in RISK_FIGURES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_report_with_zero_trades_and_their_risk(bt, risk, tmp_path):
    text = rp.write_report(
        tmp_path, empty_trades(), bt["equity_daily"], bt["capital"], n_boot=50, risk=_empty(risk)
    ).read_text(encoding="utf-8")
    section = text[text.index('id="risk"') : text.index("<h2>Breakdowns")]
    assert "no trades" in section
    assert not any((tmp_path / name).exists() for name in RISK_FIGURES)


def test_book_grid_sums_the_trades_open_at_each_sample(bt, risk):
    dates = np.array(bt["equity_daily"]["date"].to_list(), dtype="datetime64[D]")
    grid = rr.book_grid(risk, dates, 30)
    assert grid.height == dates.size * 13  # 10:00 .. 16:00 ET every 30 minutes
    first = risk.minutes.group_by("trade_id").agg(pl.col("ts").min(), pl.col("exit_ts").first())
    const = risk.minutes.group_by("trade_id").agg(pl.col("delta_pct").first())
    life = first.join(const, on="trade_id")
    g = grid["ts"].to_numpy()
    want = np.zeros(g.size)
    for t0, t1, v in life.select("ts", "exit_ts", "delta_pct").iter_rows():
        want += np.where((g >= t0) & (g < t1), v, 0.0)
    np.testing.assert_allclose(grid["delta_pct"].to_numpy(), want)
    assert (grid["delta_pct"] == 0).any() and (grid["delta_pct"] > 0).any()  # flat, then not


def test_monthly_attribution_adds_up_to_the_pnl(bt, risk):
    m = rr.monthly_attribution(risk, bt["trades"])
    assert m["n_trades"].sum() == bt["trades"].height
    np.testing.assert_allclose(m.select(pl.sum_horizontal(rr.TERMS)).to_series(), m["pnl"])
    np.testing.assert_allclose(m["pnl"].sum(), bt["trades"]["pnl"].sum())
    months = bt["trades"]["exit_date"].dt.strftime("%Y-%m").unique().sort().to_list()
    assert m["month"].to_list() == months


def test_worst_trade_has_the_largest_scenario_loss(risk):
    w = rr.worst_trade(risk)
    assert w is not None
    assert w["worst_scenario_loss"] == risk.trades["worst_scenario_loss"].max()
    assert risk.trades["trade_id"][w["index"]] == w["trade_id"]
    assert rr.worst_trade(_empty(risk)) is None


def test_palette_png_is_smaller_and_the_same_size(risk):
    import matplotlib

    with matplotlib.rc_context(plots._STYLE):
        full = plots._png(rr.fig_scenarios(risk.scenarios[0], "T000"))
        small = plots._png(rr.fig_scenarios(risk.scenarios[0], "T000"), palette=True)
    assert _png_size(small) == _png_size(full)
    assert len(small) < 0.6 * len(full)


def _png_size(data: bytes) -> tuple[int, int]:
    import struct

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# --------------------------------------------------------------------------- a real backtest


@pytest.fixture(scope="module")
def store(synthetic_store: SyntheticStore) -> Path:
    return synthetic_store(**MARKET)


@pytest.mark.parametrize("min_credit", [0.30, 50.0], ids=["trades", "no-trades"])
def test_backtest_writes_the_risk_files_and_panels(store, tmp_path, min_credit):
    import duckdb

    from quantlab.backtest.engine import backtest
    from quantlab.config import read_yaml
    from quantlab.strategy import StrategySpec

    root = Path(__file__).resolve().parents[2]
    d = read_yaml(root / "pipelines" / "strategies" / "spxw_put_credit.yaml")
    d["filters"]["min_credit"] = min_credit
    res = backtest(StrategySpec.from_dict(d), store, workers=1, out=tmp_path)
    r = res.results[0]
    risk_trades = pl.read_parquet(tmp_path / "risk_trades.parquet")
    daily = pl.read_parquet(tmp_path / "attribution_daily.parquet")
    assert risk_trades.height == r.trades.height
    terms = pl.sum_horizontal("delta", "gamma", "vega", "theta", "residual", "costs")
    np.testing.assert_allclose(risk_trades.select(terms).to_series(), risk_trades["pnl"])
    with duckdb.connect(str(tmp_path / "results.duckdb"), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM attribution_daily").fetchall()
    assert n == [(daily.height,)]
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="risk"' in text
    if r.trades.height:
        assert all(a in text for a in PANEL_IDS)
        assert len(list(tmp_path.glob("attribution_*.png"))) == 1 + len(
            list(tmp_path.glob("trade_*.png"))
        )
        html_img = re.search(r'id="book-greeks".*?base64,([A-Za-z0-9+/=]+)', text, re.S)
        assert (
            html_img
            and base64.b64decode(html_img.group(1)) == (tmp_path / "greeks.png").read_bytes()
        )
    else:
        assert daily.height == 0 and "no trades" in text
