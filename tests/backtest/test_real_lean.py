"""Real LEAN SPXW minute quotes (Jan 2021), imported with the market-data importer, through the
same backtest engine end to end."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from quantlab.backtest.engine import backtest
from quantlab.data.importers import import_lean
from quantlab.strategy import StrategySpec
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def lean_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = shared_data("real", "lean")
    store = tmp_path_factory.mktemp("lean")
    import_lean([src], store)
    return store


def test_real_quotes_run_end_to_end(lean_store: Path) -> None:
    # the LEAN sample holds only a few strikes (3700/3800/3820 puts): a wide vertical by delta
    spec = StrategySpec.from_dict(
        {
            "name": "lean-real",
            "dte": {"target": 4, "tolerance": 4},
            "entry": {"times": ["10:00"]},
            "short_delta": 0.45,
            "long_delta": 0.02,
            "filters": {"min_credit": 0.0, "max_rel_spread": 1.0, "max_quote_age_s": 900},
            "risk": {"max_open_trades": 5},
        }
    )
    res = backtest(
        spec,
        lean_store,
        start=dt.date(2021, 1, 4),
        end=dt.date(2021, 1, 8),
        report=False,
        workers=1,
    )
    r = res.results[0]
    assert r.decisions.height == 5  # one decision per session, taken or not, with its reason
    assert r.trades.height >= 1
    for t in r.trades.iter_rows(named=True):
        short, long = t["legs"]
        assert short["right"] == long["right"] == "P" and short["strike"] > long["strike"]
        assert t["exit_reason"] in {
            "take_profit",
            "stop_loss",
            "settlement",
            "time_exit",
            "end_of_data",
        }
        legs = sum(lg["quantity"] * (lg["exit_price"] - lg["entry_price"]) for lg in t["legs"])
        assert t["pnl"] == pytest.approx(legs * 100 * t["contracts"] - t["fees"])
        assert t["entry_ts"] < t["exit_ts"]
    rejected = r.decisions.filter(r.decisions["decision"] == "rejected")
    assert (rejected["reason"] != "").all()
