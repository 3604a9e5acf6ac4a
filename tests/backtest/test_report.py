"""The HTML/PNG backtest report: files, sections, embedded images, trade inspector."""

from __future__ import annotations

import base64
import datetime as dt
import re
import struct

import numpy as np
import polars as pl
import pytest

from quantlab.backtest import _report_plots as plots
from quantlab.backtest import analytics as an
from quantlab.backtest import report as rp
from quantlab.backtest.records import empty_trades
from quantlab.errors import InputError
from tests.backtest.test_analytics import CAPITAL, _ns, _sessions, synthetic_backtest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = (
    "Headline metrics",
    "Equity curve",
    "Drawdown",
    "Deepest drawdowns",
    "Monthly returns",
    "Trade P&amp;L distribution",
    "Breakdowns",
    "by exit reason",
    "by weekday",
    "by DTE",
    "by delta target",
    "by width",
    "by entry time (ET)",
    "Decisions",
    "Trade inspector",
    "Worst trades",
    "Notes",
)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def bt():
    return synthetic_backtest()


@pytest.fixture(scope="module")
def written(bt, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = rp.write_report(
        out,
        bt["trades"],
        bt["equity_daily"],
        bt["capital"],
        equity_minutes=bt["equity_minutes"],
        decisions=bt["decisions"],
        paths=bt["paths"],
        tp_pct=50.0,
        sl_pct=100.0,
        title="SPXW put spreads <test>",
        inspect=4,
        n_boot=300,
    )
    return path


def test_report_html_has_every_section_and_escapes_the_title(written):
    assert written.name == "report.html"
    text = written.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in text, section
    assert "SPXW put spreads &lt;test&gt;" in text
    assert "<script" not in text and "http" not in text  # self-contained


def test_embedded_images_are_valid_pngs(written):
    text = written.read_text(encoding="utf-8")
    blobs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(blobs) == 3 + 4  # equity, drawdown, histogram + four inspected trades
    for blob in blobs:
        w, h = _png_size(base64.b64decode(blob))
        assert w > 600 and h > 300


def test_png_files_written_next_to_the_report(written, bt):
    out = written.parent
    for name in ("equity.png", "drawdown.png", "pnl_hist.png"):
        _png_size((out / name).read_bytes())
    inspected = sorted(p.name for p in out.glob("trade_*.png"))
    assert len(inspected) == 4
    with_path = bt["trades"].filter(pl.col("trade_id").is_in(list(bt["paths"]))).sort("pnl")
    worst, best = with_path["trade_id"][0], with_path["trade_id"][-1]
    assert f"trade_{worst}.png" in inspected and f"trade_{best}.png" in inspected
    for name in inspected:
        _png_size((out / name).read_bytes())


def test_report_numbers_match_the_analytics(written, bt):
    text = written.read_text(encoding="utf-8")
    stats = an.trade_stats(bt["trades"])
    assert f"<th>trades</th><td>{stats['n_trades']}</td>" in text
    assert rp._fmt(stats["expectancy"], "usd") in text
    assert rp._fmt(stats["win_rate"], "pct") in text


def test_same_inputs_give_identical_files(bt, tmp_path):
    kw = {"paths": bt["paths"], "inspect": 1, "n_boot": 200, "tp_pct": 50.0, "sl_pct": 100.0}
    args = (bt["trades"], bt["equity_daily"], bt["capital"])
    a = rp.write_report(tmp_path / "a", *args, **kw)
    b = rp.write_report(tmp_path / "b", *args, **kw)
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in a.parent.iterdir()) == sorted(p.name for p in b.parent.iterdir())


def test_empty_backtest_report(tmp_path):
    flat = pl.DataFrame({"date": _sessions(dt.date(2024, 3, 1), 5), "equity": [CAPITAL] * 5})
    path = rp.write_report(tmp_path, empty_trades(), flat, CAPITAL, n_boot=50)
    text = path.read_text(encoding="utf-8")
    assert "no trades" in text and "no per-trade paths were given" in text
    assert not list(tmp_path.glob("trade_*.png"))
    _png_size((tmp_path / "pnl_hist.png").read_bytes())
    none = rp.write_report(tmp_path / "none", empty_trades(), flat, CAPITAL, paths={}, n_boot=50)
    assert "no trade has a path" in none.read_text(encoding="utf-8")


def test_callable_paths_and_missing_paths(bt, tmp_path):
    calls = []

    def get(trade_id):
        calls.append(trade_id)
        return bt["paths"][trade_id]  # KeyError for trades without a path

    rp.write_report(
        tmp_path, bt["trades"], bt["equity_daily"], CAPITAL, paths=get, inspect=2, n_boot=50
    )
    assert len(list(tmp_path.glob("trade_*.png"))) == 2
    assert len(calls) >= 2


def test_take_profit_and_stop_levels():
    trade = {"credit_per_share": 2.0}
    assert rp._levels(trade, 50.0, 100.0) == (1.0, 4.0)
    assert rp._levels(trade, None, None) == (None, None)
    assert rp._levels({**trade, "tp_level": 0.6, "sl_level": 5.0}, 50.0, 100.0) == (0.6, 5.0)


def test_inspection_order_worst_best_then_reasons(bt):
    order = rp._inspection_order(bt["trades"])
    by_pnl = bt["trades"].sort("pnl", "trade_id")
    assert order[0] == by_pnl["trade_id"][0] and order[1] == by_pnl["trade_id"][-1]
    assert sorted(order) == sorted(bt["trades"]["trade_id"].to_list())
    head = bt["trades"].filter(pl.col("trade_id").is_in(order[:6]))
    assert head["exit_reason"].n_unique() == 4  # every reason of the sample is represented


def test_eastern_time_conversion_and_ticks():
    winter, summer = _ns(dt.date(2024, 1, 2), 931), _ns(dt.date(2024, 7, 2), 931)
    assert winter % 86_400_000_000_000 == (14 * 60 + 31) * 60_000_000_000  # EST = UTC-5
    assert summer % 86_400_000_000_000 == (13 * 60 + 31) * 60_000_000_000  # EDT = UTC-4
    et = rp._et(np.array([winter, summer]))
    assert [str(t.astype("datetime64[m]")) for t in et] == [
        "2024-01-02T09:31",
        "2024-07-02T09:31",
    ]
    day = winter + np.arange(390, dtype=np.int64) * 60_000_000_000
    two_days = np.concatenate([day, _ns(dt.date(2024, 1, 3), 931) + (day - winter)])
    pos, labels, breaks = plots._time_ticks(rp._et(two_days))
    assert 0 in pos and 390 in pos and breaks == [390]
    assert labels[0].startswith("Tue 01-02") and len(pos) <= 9
    assert "12:00" in labels


def test_bad_arguments(bt, tmp_path):
    not_dir = tmp_path / "file.txt"
    not_dir.write_text("x")
    args = (bt["trades"], bt["equity_daily"], CAPITAL)
    with pytest.raises(InputError, match="not a directory"):
        rp.write_report(not_dir, *args)
    with pytest.raises(InputError, match="inspect"):
        rp.write_report(tmp_path, *args, inspect=-1)
    with pytest.raises(InputError, match="paths"):
        rp.write_report(tmp_path, *args, paths=42, n_boot=10)  # type: ignore[arg-type]
