"""``quantlab live stop | status | reconcile`` through the registered root CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from quantlab import calendar
from quantlab.brokers.simulated import SimulatedBroker
from quantlab.cli import app
from quantlab.execution import FillModel
from quantlab.live import Journal, LiveRunner, load_live_config
from quantlab.strategy import StrategySpec
from tests.conftest import SyntheticStore
from tests.live.test_reconcile import DAYS, SPEC, replayed_journal

cli = CliRunner()


@pytest.fixture(scope="module")
def replay(
    tmp_path_factory: pytest.TempPathFactory, synthetic_store: SyntheticStore
) -> tuple[Path, Path]:
    return replayed_journal(tmp_path_factory, synthetic_store)


def _config(tmp: Path, store: Path, spec: StrategySpec = SPEC, **kw: object) -> Path:
    (tmp / "strategy.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    cfg = {
        "strategy": "strategy.yaml",
        "broker": "sim",
        "account": "SIM",
        "mode": "paper",
        "kill_file": str(tmp / "KILL"),
        "store": str(store),
        "notify": {"console": False},
    } | kw
    path = tmp / "live.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_stop_creates_the_kill_file_and_the_runner_cancels_its_entry_order(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    store, _ = replay
    # the runner bids at the mid, the market fills at the natural price: its entry order rests
    mid = SPEC.model_copy(update={"fills": FillModel(kind="mid")})
    path = _config(tmp_path, store, mid, reprice_every_min=30, reprice_attempts=5)
    cfg, spec = load_live_config(path)
    day = DAYS[0]
    broker = SimulatedBroker(store, day, FillModel(kind="natural"), spec.fees)
    run = LiveRunner(
        cfg, broker, Journal(tmp_path / "j.duckdb"), spec=spec, notify=lambda k, m, d: None
    )
    stop_at = calendar.to_ns(dt.datetime.combine(day, dt.time(10, 0), tzinfo=calendar.ET))
    run.run_day(day, until=stop_at)
    resting = broker.open_orders()
    assert len(resting) == 1 and "-opening-" in resting[0].order_ref, "the entry should rest"
    res = cli.invoke(app, ["live", "stop", "--config", str(path), "--reason", "test"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "KILL").is_file() and "test" in (tmp_path / "KILL").read_text()
    assert str((tmp_path / "KILL").resolve()) in res.output.replace("\n", "")
    run.run_day(day)
    assert not broker.open_orders() and not broker.fills
    assert broker.orders[resting[0].order_id].status == "cancelled"
    orders = run.journal.table("orders", "paper")
    assert orders.filter(pl.col("order_ref") == resting[0].order_ref)["status"].to_list() == [
        "cancelled"
    ]
    assert not run.open and run.journal.table("trades", "paper").height == 0
    dec = run.journal.table("decisions", "paper").sort("entry_ts")
    assert dec["decision"].to_list()[0] == "taken"
    assert set(dec["reason"].to_list()[1:]) == {"kill_switch"}
    assert "kill_switch" in run.journal.table("events", "paper")["kind"].to_list()


def test_status_prints_the_days_pnl_and_open_trades(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    store, journal = replay
    path = _config(tmp_path, store)
    j = Journal(journal)
    trades = j.table("trades", "paper").filter(pl.col("exit_date") == DAYS[-1])
    opened = j.open_states("paper")
    risk = j.table("events", "paper").filter(pl.col("kind") == "book_risk").sort("ts")
    j.close()
    res = cli.invoke(
        app,
        ["live", "status", "--config", str(path), "--journal", str(journal)],
        env={"COLUMNS": "250"},
    )
    assert res.exit_code == 0, res.output
    pnl = float(trades["pnl"].sum())
    assert f"{DAYS[-1]}" in res.output and f"realized P&L {pnl:,.2f} $" in res.output
    assert f"{len(opened)} open" in res.output
    for tid in [*trades["trade_id"].to_list(), *opened]:
        assert tid in res.output
    assert risk.height  # the runner journals its book's risk every 30 minutes while open
    assert ("Book risk" in res.output) == bool(opened)


def test_status_shows_the_open_books_greeks_and_scenarios(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    store, _ = replay
    path = _config(tmp_path, store, risk_every_min=15)
    cfg, spec = load_live_config(path)
    day = DAYS[0]
    journal = tmp_path / "j.duckdb"
    run = LiveRunner(
        cfg,
        SimulatedBroker(store, day, spec.fills, spec.fees),
        Journal(journal),
        spec=spec,
        notify=lambda k, m, d: None,
    )
    run.run_day(day, until=calendar.to_ns(dt.datetime.combine(day, dt.time(13, 0), calendar.ET)))
    assert run.open
    risk = run.journal.table("events", "paper").filter(pl.col("kind") == "book_risk").sort("ts")
    run.journal.close()
    rec = json.loads(risk["data"][-1])
    assert rec["n_open"] == len(run.open) and len(rec["pnl"]) == 21 and len(rec["pnl"][0]) == 8
    worst = -min(min(row) for row in rec["pnl"])
    assert rec["worst"]["loss"] == pytest.approx(max(worst, 0.0), abs=0.01)
    assert rec["greeks"]["vega_pt"] < 0 and rec["greeks"]["gamma_pct"] < 0  # short premium
    res = cli.invoke(
        app,
        ["live", "status", "--config", str(path), "--journal", str(journal)],
        env={"COLUMNS": "250"},
    )
    assert res.exit_code == 0, res.output
    assert "Book risk" in res.output and "Scenario P&L" in res.output
    assert f"worst scenario {rec['worst']['loss']:,.0f} $" in res.output
    res = cli.invoke(
        app, ["live", "status", "--config", str(path), "--journal", str(tmp_path / "none.duckdb")]
    )
    assert res.exit_code == 2 and "no live journal" in res.output


def test_reconcile_writes_html_next_to_the_journal(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    store, journal = replay
    path = _config(tmp_path, store)
    day = DAYS[1]
    res = cli.invoke(
        app,
        ["live", "reconcile", "--config", str(path), "--date", str(day), "--journal", str(journal)],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    html = journal.parent / f"reconcile-{journal.stem}-paper-{day}.html"
    assert html.is_file() and "PARITY" in html.read_text()
    assert "PARITY" in res.output and "BROKEN" not in res.output and "Decisions" in res.output
    res = cli.invoke(
        app,
        [
            "live",
            "reconcile",
            "--config",
            str(path),
            "--date",
            "2024-03-09",
            "--journal",
            str(journal),
        ],
    )
    assert res.exit_code == 2 and "not a trading session" in res.output
