"""``quantlab live flatten``: the simulated broker (in process and through the command) and the
real ib_async client against the TWS stub, with one close that never fills."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from quantlab import calendar
from quantlab.brokers.ibkr import IBKRBroker
from quantlab.brokers.simulated import SimulatedBroker
from quantlab.cli import app
from quantlab.execution import FillModel
from quantlab.live import Journal, LiveConfig, LiveRunner
from quantlab.live.flatten import close_limit, flatten, owns_order_ref
from quantlab.strategy import StrategySpec
from tests.conftest import MARKET, SyntheticStore
from tests.live.tws_stub import MarketModel, StubOrder, TWSStub

cli = CliRunner()
DAY = dt.date(2024, 3, 4)
T10 = calendar.to_ns(dt.datetime.combine(DAY, dt.time(10), tzinfo=calendar.ET))
T11 = calendar.to_ns(dt.datetime.combine(DAY, dt.time(11), tzinfo=calendar.ET))
MIN = calendar.NS_PER_MINUTE
SPEC = StrategySpec.from_dict(
    {
        "name": "flatten",
        "dte": {"target": 1, "tolerance": 1},
        "entry": {"times": ["10:00", "10:05", "11:00"]},
        "short_delta": 0.20,
        "width": 25,
        "sizing": {"contracts": 2},
        "management": {"take_profit_pct": 90, "stop_loss_pct": 300},
        "risk": {"max_open_trades": 3, "max_new_trades_per_day": 3},
    }
)
QUIET = {"notify": {"console": False}}


@pytest.fixture(scope="module")
def store(synthetic_store: SyntheticStore) -> Path:
    return synthetic_store(**MARKET)


def _cfg(tmp: Path, **kw: object) -> LiveConfig:
    base = {"strategy": "unused.yaml", "kill_file": str(tmp / "KILL")} | QUIET
    return LiveConfig.from_dict(base | kw)


def _config_file(tmp: Path, store: Path, **kw: object) -> Path:
    (tmp / "strategy.yaml").write_text(yaml.safe_dump(SPEC.model_dump(mode="json")))
    cfg = {"strategy": "strategy.yaml", "kill_file": str(tmp / "KILL"), "store": str(store)}
    path = tmp / "live.yaml"
    path.write_text(yaml.safe_dump(cfg | QUIET | kw))
    return path


def _sim_runner(store: Path, tmp: Path, spec: StrategySpec = SPEC, **kw: object) -> LiveRunner:
    broker = SimulatedBroker(store, DAY, kw.pop("broker_fills", spec.fills), spec.fees)  # type: ignore[arg-type]
    journal = Journal(tmp / "journal.duckdb")
    return LiveRunner(_cfg(tmp, **kw), broker, journal, spec=spec, notify=lambda k, m, d: None)


def test_sim_flatten_closes_everything_and_a_second_run_is_a_no_op(
    store: Path, tmp_path: Path
) -> None:
    run = _sim_runner(store, tmp_path)
    run.run_day(DAY, until=T11)
    opened = dict(run.open)
    assert len(opened) >= 2 and all(t["status"] == "open" for t in opened.values())
    broker, journal = run.broker, run.journal
    assert isinstance(broker, SimulatedBroker)
    quotes = {}
    for tid, t in opened.items():
        legs = [lg["occ"] for lg in t["legs"]]
        ratio = [-lg["quantity"] for lg in t["legs"]]
        quotes[tid] = close_limit(SPEC.fills, *broker.quotes(legs), ratio)
    events: list = []
    rep = flatten(run.config, broker, journal, spec=SPEC, notify=lambda k, m, d: events.append(k))
    assert rep.ok and {ln.trade_id for ln in rep.closed} == set(opened) and not rep.cancelled
    assert broker.positions() == [] and broker.open_orders() == []
    assert journal.open_states("paper") == {}
    trades = journal.table("trades", "paper").filter(pl.col("trade_id").is_in(list(opened)))
    assert set(trades["exit_reason"]) == {"flatten"} and set(trades["exit_ts"]) == {T11}
    for r in trades.iter_rows(named=True):  # one order each, at the fill model's price
        assert r["exit_cost_per_share"] == pytest.approx(-quotes[r["trade_id"]])
    orders = journal.table("orders", "paper").filter(pl.col("purpose") == "flatten")
    assert sorted(orders["order_ref"]) == sorted(f"{t}-flatten-0" for t in opened)
    assert set(orders["status"]) == {"filled"}
    assert all(owns_order_ref(r, run.cfg_hash) for r in orders["order_ref"])
    fills = journal.table("fills", "paper")
    assert set(orders["order_ref"]) <= set(fills["order_ref"])
    # P&L: the broker's cash is the capital plus every closed trade's P&L (fees included)
    pnl = float(journal.table("trades", "paper")["pnl"].sum())
    assert broker.cash == pytest.approx(SPEC.sizing.capital + pnl, abs=0.01)
    assert {ln.pnl for ln in rep.closed} == set(trades["pnl"])
    assert "flatten" in events and "exit" in events
    n_orders = len(broker.orders)
    again = flatten(run.config, broker, journal, spec=SPEC, notify=lambda k, m, d: None)
    assert again.ok and again.lines == [] and again.cancelled == []
    assert len(broker.orders) == n_orders
    # the runner, restarted on the journal, goes on with the book the flatten left
    run2 = LiveRunner(run.config, broker, journal, spec=SPEC, notify=lambda k, m, d: None)
    assert run2.open == {}
    journal.close()


def test_sim_flatten_cancels_a_working_entry(store: Path, tmp_path: Path) -> None:
    # the runner bids at the mid, the market fills at the natural price: the entry rests
    mid = SPEC.model_copy(update={"fills": FillModel(kind="mid")})
    run = _sim_runner(
        store, tmp_path, mid, broker_fills=FillModel(kind="natural"), reprice_every_min=30
    )
    run.run_day(DAY, until=T10)
    ((_tid, tr),) = run.open.items()
    assert tr["status"] == "opening"
    rep = flatten(run.config, run.broker, run.journal, spec=mid, notify=lambda k, m, d: None)
    assert rep.ok and rep.lines == [] and rep.cancelled == [tr["order_ref"]]
    assert run.broker.open_orders() == [] and run.journal.open_states("paper") == {}
    orders = run.journal.table("orders", "paper")
    assert orders.select("order_ref", "status").rows() == [(tr["order_ref"], "cancelled")]
    assert run.journal.table("trades", "paper").height == 0
    run.journal.close()


def test_cli_flatten_sim_then_status_then_nothing_open(store: Path, tmp_path: Path) -> None:
    run = _sim_runner(store, tmp_path)
    run.run_day(DAY, until=T11)
    opened = set(run.open)
    run.journal.close()
    path = _config_file(tmp_path, store)
    jp = str(tmp_path / "journal.duckdb")
    base = ["--config", str(path), "--journal", jp]
    res = cli.invoke(app, ["live", "flatten", *base], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert f"{len(opened)} closed" in res.output and "STILL OPEN" not in res.output
    assert all(tid in res.output for tid in opened)
    j = Journal(jp)
    trades = j.table("trades", "paper")
    assert j.open_states("paper") == {} and set(trades["trade_id"]) >= opened
    assert set(trades.filter(pl.col("trade_id").is_in(list(opened)))["exit_reason"]) == {"flatten"}
    pnl = float(trades["pnl"].sum())
    j.close()
    res = cli.invoke(app, ["live", "status", *base], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert f"realized P&L {pnl:,.2f} $" in res.output and "0 open" in res.output
    res = cli.invoke(app, ["live", "flatten", *base])
    assert res.exit_code == 0 and "nothing open" in res.output, res.output


def test_cli_flatten_bad_input(store: Path, tmp_path: Path) -> None:
    res = cli.invoke(app, ["live", "flatten", "--config", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "nope.yaml" in res.output, res.output
    path = _config_file(tmp_path, store)
    res = cli.invoke(
        app, ["live", "flatten", "--config", str(path), "--journal", str(tmp_path / "no.duckdb")]
    )
    assert res.exit_code == 2 and "no live journal" in res.output, res.output
    assert not (tmp_path / "no.duckdb").exists()
    Journal(tmp_path / "empty.duckdb").close()
    for args, why in (
        (["--mode", "shadow"], "shadow"),
        (["--live"], "--live is only for mode live"),
        ([], "no minute processed"),
    ):
        res = cli.invoke(
            app,
            [
                "live",
                "flatten",
                "--config",
                str(path),
                "--journal",
                str(tmp_path / "empty.duckdb"),
                *args,
            ],
        )
        assert res.exit_code == 2 and why in res.output, res.output


# -- IBKR: the real ib_async client against the TWS stub ------------------------------------------
class StuckStub(TWSStub):
    """The stub gateway, except that orders whose ref starts with ``stuck`` never fill."""

    stuck = ""

    def _try_fill(self, o: StubOrder) -> None:
        if self.stuck and o.order_ref.startswith(self.stuck):
            return
        super()._try_fill(o)


@pytest.fixture
def stub() -> Iterator[StuckStub]:
    with StuckStub(MarketModel(DAY)) as s:
        yield s


def test_ibkr_flatten_reprices_a_stuck_close_and_reports_it_open(
    stub: StuckStub, tmp_path: Path
) -> None:
    m = stub.model
    times = (dt.time(10), dt.time(10, 5))
    spec = SPEC.model_copy(update={"entry": SPEC.entry.model_copy(update={"times": times})})
    broker = IBKRBroker(
        port=stub.port,
        client_id=5,
        timeout=5,
        clock=lambda: m.now_ns,
        roots=spec.roots,
        dte=spec.dte,
        strike_window=100,
    )
    cfg = _cfg(tmp_path, broker="ibkr")
    jp = tmp_path / "ibkr.duckdb"
    run = LiveRunner(cfg, broker, Journal(jp), spec=spec, notify=lambda k, m, d: None)
    m.now_ns = T10
    run.run_day(DAY, until=T10)
    m.now_ns = T10 + 5 * MIN  # a second entry 5 minutes later (same spread, another trade)
    run.run_day(DAY, until=m.now_ns)
    for _ in range(200):  # the fill's execution report may come after the minute's poll
        if all(t["status"] == "open" for t in run.open.values()):
            break
        broker.ib.sleep(0.02)
        run.step(DAY, m.now_ns, None)
    assert len(run.open) == 2 and all(t["status"] == "open" for t in run.open.values())
    good, stuck = sorted(run.open)
    held = {p.occ: p.quantity for p in broker.positions()}
    broker.disconnect()
    run.journal.close()
    stub.stuck = f"{stuck}-flatten-"

    path = _config_file(
        tmp_path,
        tmp_path,
        broker="ibkr",
        ibkr={"port": stub.port, "client_id": 9, "request_timeout": 1},
    )
    args = ["live", "flatten", "--config", str(path), "--journal", str(jp)]
    res = cli.invoke(app, [*args, "--attempts", "3", "--wait", "0.3"], env={"COLUMNS": "250"})
    assert res.exit_code == 1, res.output
    assert "1 closed" in res.output and "1 STILL OPEN" in res.output and stuck in res.output

    mine = [o for o in stub.orders if o.order_ref.startswith(f"{stuck}-flatten-")]
    assert [o.order_ref for o in mine] == [f"{stuck}-flatten-{n}" for n in range(3)]
    assert [o.status for o in mine] == ["Cancelled"] * 3  # the last one too
    # re-priced on the same quotes: one more 0.05 of debit per attempt (IB BUY price = debit)
    assert [round(b.lmt - a.lmt, 2) for a, b in itertools.pairwise(mine)] == [0.05, 0.05]
    (done,) = [o for o in stub.orders if o.order_ref == f"{good}-flatten-0"]
    assert done.status == "Filled"

    j = Journal(jp)
    orders = j.table("orders", "paper").filter(pl.col("purpose") == "flatten")
    by_ref = dict(orders.select("order_ref", "status").rows())
    assert by_ref == {f"{good}-flatten-0": "filled"} | {o.order_ref: "cancelled" for o in mine}
    limits = dict(orders.select("order_ref", "limit_price").rows())
    assert [-limits[o.order_ref] for o in mine] == pytest.approx([o.lmt for o in mine])
    (trade,) = j.table("trades", "paper").iter_rows(named=True)
    assert trade["trade_id"] == good and trade["exit_reason"] == "flatten"
    assert trade["exit_cost_per_share"] == pytest.approx(done.lmt)
    opened = j.open_states("paper")
    assert set(opened) == {stuck} and opened[stuck]["status"] == "open"
    events = j.table("events", "paper").filter(pl.col("kind") == "flatten")["message"].to_list()
    assert sum("cancelled" in e for e in events) == 3 and "1 still open" in events[-1]
    j.close()
    # the stuck trade's legs are all the account still holds
    left = {stub.model.contracts[c].local_symbol: int(q) for c, (q, _) in stub.positions.items()}
    want = {lg["occ"]: lg["quantity"] * opened[stuck]["contracts"] for lg in opened[stuck]["legs"]}
    assert {k: v for k, v in left.items() if v} == want
    assert sum(abs(v) for v in held.values()) == 2 * sum(abs(v) for v in want.values())
