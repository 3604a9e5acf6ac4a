"""The evening reconciliation: exact parity on a simulated replay, and a perturbed journal's
worse fill shows up as slippage and a parity break naming the trade."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from quantlab import calendar
from quantlab.brokers.simulated import SimulatedBroker
from quantlab.errors import DataError, InputError
from quantlab.live import Journal, LiveConfig, LiveRunner
from quantlab.live.reconcile import ReconcileReport, reconcile_day
from quantlab.strategy import StrategySpec
from tests.conftest import MARKET, SyntheticStore

DAYS = calendar.sessions(dt.date(2024, 3, 4), dt.date(2024, 3, 6))
SPEC = StrategySpec.from_dict(
    {
        "name": "reconcile",
        "dte": {"target": 1, "tolerance": 1},
        "entry": {"times": ["10:00", "11:00", "13:00"]},
        "short_delta": 0.20,
        "width": 25,
        "management": {"take_profit_pct": 50, "stop_loss_pct": 100},
        "risk": {"max_open_trades": 2, "max_new_trades_per_day": 2},
    }
)
_BUILT: dict[str, Path] = {}


def replayed_journal(
    factory: pytest.TempPathFactory, synthetic_store: SyntheticStore
) -> tuple[Path, Path]:
    """The shared synthetic market (read only), which holds ``DAYS``, and the journal of a paper
    replay of ``DAYS`` (built once per session; ``tests/live/test_live_cli.py`` shares
    it)."""
    if not _BUILT:
        root = synthetic_store(**MARKET)
        work = factory.mktemp("reconcile_run")
        cfg = LiveConfig.from_dict({"strategy": "unused.yaml", "kill_file": str(work / "KILL")})
        journal = Journal(work / "paper.duckdb")
        run = LiveRunner(
            cfg,
            SimulatedBroker(root, DAYS[0], SPEC.fills, SPEC.fees),
            journal,
            spec=SPEC,
            notify=lambda k, m, d: None,
        )
        for d in DAYS:
            run.run_day(d)
        journal.close()
        _BUILT.update(store=root, journal=work / "paper.duckdb")
    return _BUILT["store"], _BUILT["journal"]


@pytest.fixture(scope="module")
def replay(
    tmp_path_factory: pytest.TempPathFactory, synthetic_store: SyntheticStore
) -> tuple[Path, Path]:
    return replayed_journal(tmp_path_factory, synthetic_store)


@pytest.fixture(scope="module")
def reports(replay: tuple[Path, Path]) -> list[ReconcileReport]:
    store, journal = replay
    return [reconcile_day(journal, store, SPEC, d, "paper") for d in DAYS]


def test_simulated_replay_reconciles_exactly(reports: list[ReconcileReport]) -> None:
    for rep in reports:
        assert rep.parity, rep.breaks
        assert rep.decisions.height > 0 and rep.decisions["match"].all()
        assert rep.fills.height == 0 or rep.fills["slippage_usd"].abs().max() == 0.0
        assert rep.total_slippage_usd == 0.0
    trades = [r for rep in reports for r in rep.trades.iter_rows(named=True)]
    closed = [t for t in trades if t["status"] == "closed"]
    assert len(closed) >= 2 and all(t["pnl_diff"] == pytest.approx(0.0, abs=1e-9) for t in closed)
    assert all(t["live_exit_reason"] == t["bt_exit_reason"] for t in closed)
    assert sum(rep.fills.height for rep in reports) >= 2 * len({t["trade_id"] for t in closed}) - 2


def test_a_worse_fill_breaks_parity_and_names_the_trade(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    store, src = replay
    path = tmp_path / "perturbed.duckdb"
    shutil.copy(src, path)
    j = Journal(path)
    tid, ref, qty, day = j.con.execute(
        "SELECT t.trade_id, f.order_ref, f.quantity, t.entry_date FROM trades t JOIN orders o "
        "ON o.trade_id = t.trade_id AND o.purpose = 'opening' JOIN fills f "
        "ON f.order_ref = o.order_ref ORDER BY t.entry_ts LIMIT 1"
    ).fetchone()
    # the broker filled the entry 0.10 worse than the fill model: less credit, less P&L
    j.con.execute("UPDATE fills SET price = price - 0.10 WHERE order_ref = ?", [ref])
    j.con.execute(
        "UPDATE trades SET credit_per_share = credit_per_share - 0.10, "
        "pnl = pnl - 10.0 * contracts WHERE trade_id = ?",
        [tid],
    )
    rep = reconcile_day(j, store, SPEC, day, "paper")
    assert not rep.parity
    assert rep.total_slippage_usd == pytest.approx(-10.0 * qty, abs=1e-6)
    fill = rep.fills.filter(rep.fills["order_ref"] == ref).row(0, named=True)
    assert fill["slippage_per_share"] == pytest.approx(-0.10, abs=1e-9)
    assert fill["trade_id"] == tid
    trade = rep.trades.filter(rep.trades["trade_id"] == tid).row(0, named=True)
    assert not trade["match"] and trade["pnl_diff"] == pytest.approx(-10.0 * qty, abs=1e-6)
    assert any(tid in b and "slippage" in b for b in rep.breaks)
    assert any(b.startswith(f"trade {tid}:") and "P&L" in b for b in rep.breaks)
    assert rep.decisions["match"].all()  # the decisions themselves were the backtest's
    html = rep.to_html(tmp_path / "r.html").read_text()
    assert "PARITY BROKEN" in html and tid in html and "class=bad" in html
    from rich.console import Console

    con = Console(record=True, width=250)
    rep.print(con)
    assert tid in con.export_text()
    j.close()


def test_report_renders_and_bad_inputs_are_clear(
    reports: list[ReconcileReport], replay: tuple[Path, Path], tmp_path: Path
) -> None:
    rep = reports[0]
    text = rep.to_html(tmp_path / "ok.html").read_text()
    assert "PARITY" in text and "BROKEN" not in text and rep.summary().startswith(str(DAYS[0]))
    store, journal = replay
    with pytest.raises(DataError, match="no live journal"):
        reconcile_day(tmp_path / "missing.duckdb", store, SPEC, DAYS[0])
    with pytest.raises(InputError, match="not a trading session"):
        reconcile_day(journal, store, SPEC, "2024-03-09")
    with pytest.raises(InputError, match="mode"):
        reconcile_day(journal, store, SPEC, DAYS[0], "backtest")
