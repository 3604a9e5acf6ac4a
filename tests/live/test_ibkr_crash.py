"""The live runner over IBKR (the stub gateway): killed mid-trade, restarted, no duplicate order."""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantlab import calendar
from quantlab.brokers.ibkr import IBKRBroker
from quantlab.live import Journal, LiveConfig, LiveRunner
from quantlab.strategy import StrategySpec
from tests.live.tws_stub import MarketModel, TWSStub

DAY = dt.date(2024, 3, 4)
T10 = calendar.to_ns(dt.datetime.combine(DAY, dt.time(10), tzinfo=calendar.ET))
MIN = calendar.NS_PER_MINUTE
SPEC = {
    "name": "ibkr-crash",
    "dte": {"target": 1, "tolerance": 1},
    "entry": {"times": ["10:00"]},
    "short_delta": 0.20,
    "width": 25,
    "sizing": {"contracts": 2},
    "management": {"take_profit_pct": 50, "stop_loss_pct": 100},
}
CLIENT = 7
SCRIPT = textwrap.dedent("""
    import json, sys, time
    from quantlab.brokers.ibkr import IBKRBroker
    from quantlab.live import Journal, LiveConfig, LiveRunner
    from quantlab.strategy import StrategySpec
    import datetime as dt

    port, journal, kill_file, clock, spec = sys.argv[1:6]
    spec = StrategySpec.from_dict(json.loads(spec))
    clock = int(clock)
    cfg = LiveConfig.from_dict({"strategy": "unused.yaml", "broker": "ibkr",
                                "kill_file": kill_file})
    broker = IBKRBroker(port=int(port), client_id=CLIENT_ID, timeout=5, clock=lambda: clock,
                        roots=spec.roots, dte=spec.dte, strike_window=100)
    runner = LiveRunner(cfg, broker, Journal(journal), spec=spec, notify=lambda *a: None)
    runner.run_day(dt.date(2024, 3, 4), until=clock)  # the 10:00 entry is sent, not filled
    print("PLACED", json.dumps(runner.journal.table("orders")["order_ref"].to_list()), flush=True)
    time.sleep(600)  # ... and the process is killed here
""").replace("CLIENT_ID", str(CLIENT))


@pytest.fixture
def stub() -> Iterator[TWSStub]:
    with TWSStub(MarketModel(DAY), auto_fill=False) as s:
        yield s


def _cfg(tmp: Path) -> LiveConfig:
    return LiveConfig.from_dict(
        {"strategy": "unused.yaml", "broker": "ibkr", "kill_file": str(tmp / "KILL")}
    )


def _wait(b: IBKRBroker, cond: object, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():  # type: ignore[operator]
            return
        b.ib.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_kill_mid_trade_restart_reconciles_by_order_ref(stub: TWSStub, tmp_path: Path) -> None:
    jpath = tmp_path / "journal.duckdb"
    (tmp_path / "run.py").write_text(SCRIPT)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(tmp_path / "run.py"),
            str(stub.port),
            str(jpath),
            str(tmp_path / "KILL"),
            str(T10),
            json.dumps(SPEC),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)  # never hang the suite
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("PLACED"), proc.stderr.read() if proc.stderr else line
        proc.kill()  # SIGKILL: no cleanup, the socket and the DuckDB file just close
    finally:
        proc.kill()
        proc.wait(timeout=30)
    (ref,) = json.loads(line.split(" ", 1)[1])
    (order,) = stub.orders
    assert order.order_ref == ref and order.working and order.client_id == CLIENT
    assert stub.wait_for(lambda: CLIENT not in stub.connected_clients())

    journal = Journal(jpath)
    ((tid, state),) = journal.open_states("paper").items()
    assert state["status"] == "opening" and state["order_id"] == str(order.perm_id)
    # the worst moment: dead after sending, before the order id was journaled (and checkpointed)
    journal.save_open(tid, state | {"order_id": None}, "paper")
    journal.con.execute("DELETE FROM progress")
    stub.set_auto_fill(True)  # ... and the order fills while the runner is down
    assert order.status == "Filled"

    m = stub.model  # one clock for the exchange and the runner
    m.now_ns = T10 + MIN
    broker = IBKRBroker(
        port=stub.port,
        client_id=CLIENT,
        timeout=5,
        clock=lambda: m.now_ns,
        roots=("SPXW",),
        dte=StrategySpec.from_dict(SPEC).dte,
        strike_window=100,
    )
    spec = StrategySpec.from_dict(SPEC)
    events: list = []
    runner = LiveRunner(
        _cfg(tmp_path), broker, journal, spec=spec, notify=lambda k, m, d: events.append(k)
    )
    runner.run_day(DAY, until=m.now_ns)  # reconciles: resend by orderRef -> the existing order
    runner.step(DAY, T10, dt.time(10))  # replaying the decided 10:00 minute sends nothing
    assert len(stub.orders) == 1 and len(stub.messages(3)) == 1
    assert len(stub.orders_with_ref(ref)) == 1

    orders = journal.table("orders", "paper")
    assert orders.select("order_ref", "order_id", "status").rows() == [
        (ref, str(order.perm_id), "filled")
    ]
    (fill,) = journal.table("fills", "paper").iter_rows(named=True)
    assert fill["order_ref"] == ref and fill["price"] == pytest.approx(-order.lmt)
    assert fill["fees"] == pytest.approx(2 * 2 * stub.commission)  # 2 legs x 2 contracts
    tr = journal.open_states("paper")[tid]
    assert tr["status"] == "open" and tr["credit"] == pytest.approx(-order.lmt)
    dec = journal.table("decisions", "paper")
    assert dec["decision"].to_list() == ["taken"] and "fill" in events

    # the market rallies: take-profit on the spread mid, closed through IBKR too
    m.spot += 150.0
    m.now_ns = T10 + 2 * MIN
    stub.publish()
    occs = [lg["occ"] for lg in tr["legs"]]
    want = [m.quote(m.by_occ(o).con_id)[1] for o in occs]
    _wait(broker, lambda: broker.quotes(occs)[1] == want)
    runner.run_day(DAY, until=m.now_ns)
    (close,) = [o for o in stub.orders if o.order_ref != ref]
    assert close.order_ref == f"{tid}-closing-0" and close.status == "Filled"
    assert close.lmt > 0  # a debit: a positive IB BUY price
    _wait(broker, lambda: broker.order_status(str(close.perm_id)).status == "filled")
    m.now_ns = T10 + 3 * MIN
    runner.run_day(DAY, until=m.now_ns)
    (trade,) = journal.table("trades", "paper").iter_rows(named=True)
    assert trade["exit_reason"] == "take_profit" and not journal.open_states("paper")
    assert trade["credit_per_share"] == pytest.approx(-order.lmt)
    assert trade["exit_cost_per_share"] == pytest.approx(close.lmt)
    fees = 4 * 2 * stub.commission
    assert trade["fees"] == pytest.approx(fees)
    assert trade["pnl"] == pytest.approx((-order.lmt - close.lmt) * 100 * 2 - fees)
    assert journal.table("orders", "paper")["status"].to_list() == ["filled", "filled"]
    assert journal.table("fills", "paper").height == 2 and len(stub.orders) == 2
    broker.disconnect()
    journal.close()


def test_run_script_refuses_bad_ibkr_arguments_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import importlib.util

    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("live_run", repo / "live" / "run.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    strat = tmp_path / "s.yaml"
    strat.write_text(
        "name: x\ndte: {target: 1}\nentry: {times: ['10:00']}\nshort_delta: 0.1\nwidth: 25\n"
    )
    cfg = tmp_path / "live.yaml"
    cfg.write_text("strategy: s.yaml\nbroker: ibkr\nibkr: {port: 1}\n")  # nothing listens there
    base = ["--config", str(cfg), "--journal", str(tmp_path / "j.duckdb")]

    def refused(args: list[str], why: str) -> None:
        assert mod.main(args) == 2
        err = capsys.readouterr().err
        assert why in err, err  # refused for this reason, before anything connects

    refused([*base, "--date", "2024-03-04"], "current session only")
    refused([*base, "--mode", "live"], "explicit --live flag")
    refused([*base, "--live"], "--live is only for mode live")
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: s.yaml\nbroker: ibkr\nibkr: {port: 0}\n")
    refused(["--config", str(bad)], "port")
    assert not (tmp_path / "j.duckdb").exists()
