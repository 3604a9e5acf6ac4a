"""The live runner over the simulated broker: parity with the backtester, restarts, modes, kill."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from quantlab import calendar
from quantlab.backtest.engine import backtest
from quantlab.brokers import Broker, ComboLeg
from quantlab.brokers.simulated import SimulatedBroker
from quantlab.errors import BrokerDisconnected, ConfigError
from quantlab.live import Journal, LiveConfig, LiveRunner, Notifier, load_live_config
from quantlab.strategy import StrategySpec
from quantlab.strategy.occ import parse_occ
from tests.conftest import MARKET, SyntheticStore, copy_store
from tests.live.parity import closed_by, open_after

DAYS = calendar.sessions(dt.date(2024, 3, 4), dt.date(2024, 3, 7))
SPEC = StrategySpec.from_dict(
    {
        "name": "live-parity",
        "dte": {"target": 1, "tolerance": 1},
        "entry": {"times": ["10:00", "11:00"]},
        "short_delta": 0.20,
        "width": 25,
        "management": {"take_profit_pct": 50, "stop_loss_pct": 100},
        "risk": {"max_open_trades": 2, "max_new_trades_per_day": 2},
    }
)
COLS = [
    "trade_id",
    "candidate_id",
    "entry_ts",
    "exit_ts",
    "entry_date",
    "exit_date",
    "root",
    "expiry",
    "contracts",
    "exit_reason",
]
MONEY = [
    "credit_per_share",
    "exit_cost_per_share",
    "fees",
    "pnl",
    "max_loss",
    "mae_per_share",
    "mfe_per_share",
]


@pytest.fixture(scope="session")
def store(synthetic_store: SyntheticStore) -> Path:
    """The shared synthetic market (read only), which holds DAYS."""
    return synthetic_store(**MARKET)


def _cfg(tmp: Path, **kw: object) -> LiveConfig:
    return LiveConfig.from_dict({"strategy": "unused.yaml", "kill_file": str(tmp / "KILL")} | kw)


def _runner(
    store: Path,
    tmp: Path,
    journal: Journal | None = None,
    broker: SimulatedBroker | None = None,
    events: list | None = None,
    **kw: object,
) -> LiveRunner:
    broker = broker or SimulatedBroker(store, DAYS[0], SPEC.fills, SPEC.fees)
    journal = journal or Journal(tmp / "journal.duckdb")
    sink = events if events is not None else []
    return LiveRunner(
        _cfg(tmp, **kw), broker, journal, spec=SPEC, notify=lambda k, m, d: sink.append((k, m))
    )


@pytest.fixture(scope="session")
def bt(store: Path):  # type: ignore[no-untyped-def]
    return backtest(SPEC, store, start=DAYS[0], end=DAYS[-1], workers=1, report=False).results[0]


@pytest.fixture(scope="session")
def paper(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[LiveRunner, list]:
    tmp = tmp_path_factory.mktemp("paper")
    events: list = []
    run = _runner(store, tmp, events=events)
    for d in DAYS:
        run.run_day(d)
    return run, events


def test_paper_trades_equal_the_backtest(bt, paper) -> None:  # type: ignore[no-untyped-def]
    run, _ = paper
    live = run.journal.table("trades", "paper").sort("trade_id")
    ref = closed_by(bt.trades, DAYS[-1])
    assert ref.height >= 3, "the fixture market should produce several closed trades"
    assert live.height == ref.height
    assert live.select(COLS).equals(ref.select(COLS))
    assert live.select(MONEY).equals(ref.select(MONEY))  # exact: the same integer money
    for a, b in zip(live["legs"].to_list(), ref["legs"].to_list(), strict=True):
        for la, lb in zip(a, b, strict=True):
            assert (la["occ"], la["quantity"]) == (lb["occ"], lb["quantity"])
            assert la["entry_price"] == lb["entry_price"]
            assert la["exit_price"] == lb["exit_price"]
            assert la["instrument_id_entry"] == lb["instrument_id_entry"]
    # trades the backtest closes after the last live day (or runs into the end of the data)
    # are still open live (intended)
    assert set(run.open) == open_after(bt.trades, DAYS[-1])


def test_paper_decisions_equal_the_backtest(bt, paper) -> None:  # type: ignore[no-untyped-def]
    run, _ = paper
    cols = ["candidate_id", "entry_ts", "decision", "reason", "expiry"]
    live = run.journal.table("decisions", "paper").select(cols).sort("candidate_id")
    assert live.equals(bt.decisions.select(cols).sort("candidate_id"))


def test_journal_orders_fills_and_broker_agree(paper) -> None:  # type: ignore[no-untyped-def]
    run, events = paper
    j, b = run.journal, run.broker
    orders, fills = j.table("orders", "paper"), j.table("fills", "paper")
    assert orders["order_ref"].n_unique() == orders.height == len(b.orders)
    assert set(fills["exec_id"]) == {f.exec_id for f in b.fills}
    trades = j.table("trades", "paper")
    # broker cash = capital + realized P&L + open trades' entry cash flows
    open_cash = sum(t["credit"] * 100 * t["contracts"] - t["entry_fees"] for t in run.open.values())
    assert b.cash == pytest.approx(SPEC.sizing.capital + trades["pnl"].sum() + open_cash, abs=0.01)
    held = {p.occ: p.quantity for p in b.positions()}
    want: dict[str, int] = {}
    for t in run.open.values():
        for lg in t["legs"]:
            want[lg["occ"]] = want.get(lg["occ"], 0) + lg["quantity"] * t["contracts"]
    assert held == {k: v for k, v in want.items() if v}
    kinds = {k for k, _ in events}
    assert "fill" in kinds and ({"exit", "stop"} & kinds)
    assert isinstance(b, Broker)


def test_restart_mid_trade_places_no_duplicate(store: Path, tmp_path: Path, paper) -> None:  # type: ignore[no-untyped-def]
    day = DAYS[0]
    broker = SimulatedBroker(store, day, SPEC.fills, SPEC.fees)
    journal = Journal(tmp_path / "journal.duckdb")
    first = _runner(store, tmp_path, journal=journal, broker=broker)
    stop = calendar.to_ns(dt.datetime.combine(day, dt.time(10, 0), tzinfo=calendar.ET))
    first.run_day(day, until=stop)  # the 10:00 entry is placed and filled, then the runner dies
    assert first.open and all(t["status"] == "open" for t in first.open.values())
    n_orders = len(broker.orders)
    # ... as if it died between journaling the order and hearing back from the broker, before
    # the minute's checkpoint: the restart replays 10:00 and re-sends the same order_ref
    tid, state = next(iter(journal.open_states("paper").items()))
    journal.save_open(tid, state | {"status": "opening", "order_id": None}, "paper")
    journal.con.execute("DELETE FROM progress")
    second = _runner(store, tmp_path, journal=journal, broker=broker)
    assert set(second.open) == set(first.open)
    for d in DAYS:
        second.run_day(d)
    refs = [o.order_ref for o in broker.orders.values()]
    assert len(refs) == len(set(refs))
    assert len(broker.orders) == len(paper[0].broker.orders) and n_orders <= len(refs)
    cols = ["trade_id", "exit_ts", "exit_reason", "pnl"]
    got = journal.table("trades", "paper").select(cols).sort("trade_id")
    assert got.equals(paper[0].journal.table("trades", "paper").select(cols).sort("trade_id"))
    assert journal.table("orders")["order_ref"].n_unique() == journal.table("orders").height


class _FlakyBroker(SimulatedBroker):
    """The simulated broker with its connection down for the first ``down`` order attempts."""

    def __init__(self, *a: object, down: int, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.down, self.refused = down, []

    def place_combo(self, legs, quantity, limit_price, order_ref):  # type: ignore[no-untyped-def]
        if self.down > 0:
            self.down -= 1
            self.refused.append(order_ref)
            raise BrokerDisconnected("TWS connection lost (test)")
        return super().place_combo(legs, quantity, limit_price, order_ref)


def test_disconnect_defers_the_order_and_sends_it_once_back(store: Path, tmp_path: Path) -> None:
    broker = _FlakyBroker(store, DAYS[0], SPEC.fills, SPEC.fees, down=1)
    events: list = []
    run = _runner(store, tmp_path, broker=broker, events=events)
    run.run_day(DAYS[0])
    assert len(broker.refused) == 1
    ref = broker.refused[0]
    # the refused intent was sent exactly once when the next minute reconciled
    assert [o.order_ref for o in broker.orders.values()].count(ref) == 1
    refs = [o.order_ref for o in broker.orders.values()]
    assert len(refs) == len(set(refs))
    assert any(k == "disconnected" and ref in m for k, m in events)
    assert run.journal.table("orders").filter(pl.col("order_ref") == ref).height == 1


def test_placing_an_order_ref_twice_returns_the_same_order(store: Path) -> None:
    b = SimulatedBroker(store, DAYS[0], SPEC.fills, SPEC.fees)
    b.advance_to(calendar.to_ns(dt.datetime.combine(DAYS[0], dt.time(10), tzinfo=calendar.ET)))
    chain = b.chain_snapshot("SPX", b.now())
    occ = chain.filter(pl.col("bid") > 1)["raw_symbol"][0]
    a = b.place_combo((ComboLeg(occ, -1),), 1, 1e6, "ref-1")  # unmarketable credit limit
    assert b.place_combo((ComboLeg(occ, -1),), 1, 1e6, "ref-1") == a
    assert len(b.open_orders()) == 1 and not b.fills
    b.cancel(a)
    assert b.order_status(a).status == "cancelled" and not b.open_orders()
    assert parse_occ("SPXW  240119P04700000") == ("SPXW", dt.date(2024, 1, 19), "P", 4700.0)


def test_shadow_places_no_orders_and_decides_the_same(store: Path, tmp_path: Path, paper) -> None:  # type: ignore[no-untyped-def]
    run = _runner(store, tmp_path, mode="shadow")
    for d in DAYS[:2]:
        run.run_day(d)
    assert not run.broker.orders and not run.broker.fills
    cols = ["candidate_id", "decision", "reason"]
    mine = run.journal.table("decisions", "shadow").select(cols).sort("candidate_id")
    ref = paper[0].journal.table("decisions", "paper")
    ref = ref.filter(pl.col("entry_date").is_in(DAYS[:2])).select(cols).sort("candidate_id")
    assert mine.equals(ref)


def test_kill_file_stops_new_entries(store: Path, tmp_path: Path) -> None:
    (tmp_path / "KILL").touch()
    events: list = []
    run = _runner(store, tmp_path, events=events)
    run.run_day(DAYS[0])
    dec = run.journal.table("decisions", "paper")
    assert dec.height > 0 and set(dec["decision"]) <= {"skipped", "rejected"}
    assert "kill_switch" in set(dec["reason"])
    assert not run.broker.orders
    assert any(k == "kill_switch" for k, _ in events)


def test_bad_config_is_a_clear_error_before_connecting(tmp_path: Path) -> None:
    strat = tmp_path / "s.yaml"
    strat.write_text(
        "name: x\ndte: {target: 1}\nentry: {times: ['10:00']}\nshort_delta: 0.1\nwidth: 25\n"
    )
    good = tmp_path / "live.yaml"
    good.write_text("strategy: s.yaml\nbroker: sim\nmode: paper\n")
    cfg, spec = load_live_config(good)
    assert Path(cfg.strategy) == strat.resolve() and spec.name == "x"
    for text, needle in (
        ("strategy: s.yaml\nmode: yolo\n", "mode"),
        ("strategy: s.yaml\nmax_daily_loss: -5\n", "max_daily_loss"),
        ("strategy: s.yaml\nreprice_attempts: -1\n", "reprice_attempts"),
        ("strategy: s.yaml\nbrokr: sim\n", "unknown key 'brokr'"),
        ("strategy: s.yaml\nmode: live\nbroker: sim\n", "ibkr"),
        ("strategy: s.yaml\nnotify: {webhook_url: 'ftp://x'}\n", "webhook_url"),
        ("strategy: missing.yaml\n", "not found"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=needle):
            load_live_config(bad)


def test_webhook_notifier_posts_json() -> None:
    sent: list = []
    Notifier(
        console=False,
        webhook_url="https://hooks.example/x",
        post=lambda url, body: sent.append((url, body)),
    )("fill", "opened", {"a": 1})
    assert sent and sent[0][0] == "https://hooks.example/x" and b'"kind": "fill"' in sent[0][1]


def test_run_script_offline(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    repo = Path(__file__).resolve().parents[2]
    mod_spec = importlib.util.spec_from_file_location("live_run", repo / "live" / "run.py")
    assert mod_spec and mod_spec.loader
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    rc = mod.main(
        [
            "--config",
            str(repo / "live" / "paper.yaml"),
            "--broker",
            "sim",
            "--date",
            str(DAYS[0]),
            "--store",
            str(store),
            "--journal",
            str(tmp_path / "j.duckdb"),
        ]
    )
    assert rc == 0
    # the evening reconciliation ran: exact parity with the backtester, HTML beside the journal
    assert f"{DAYS[0]} " in capsys.readouterr().out
    html = tmp_path / f"reconcile-j-paper-{DAYS[0]}.html"
    assert html.is_file() and "PARITY" in html.read_text() and "BROKEN" not in html.read_text()
    assert mod.main(["--config", str(repo / "live" / "paper.yaml"), "--date", "2024-03-09"]) == 2


def test_replays_and_broker_sessions_never_share_a_journal(tmp_path: Path) -> None:
    from quantlab.live import journal_path

    sim = journal_path(tmp_path, "SIM", "sim")
    ib = journal_path(tmp_path, "DU1234567", "ibkr")
    assert sim == tmp_path / "live" / "SIM.duckdb" and ib == tmp_path / "live" / "ibkr.duckdb"
    assert "DU1234567" not in str(ib)  # no account id in a file name


# ------------------------------------------------------------------ parity, rule by rule
RULES = st.fixed_dictionaries(
    {
        "times": st.lists(
            st.sampled_from(["10:00", "11:00", "12:30", "14:00", "15:30"]),
            min_size=1,
            max_size=4,
            unique=True,
        ).map(sorted),
        "mode": st.sampled_from(["each", "first_valid"]),
        "dte": st.sampled_from([0, 1, 2]),
        "max_open": st.integers(1, 3),
        "max_new": st.integers(1, 3),
        "no_new_after_stop": st.booleans(),
        "loss_limit": st.sampled_from([None, 50.0, 250.0]),
        "sizing": st.sampled_from(
            [("fixed", 1), ("fixed", 3), ("risk_pct", 5.0), ("risk_pct", 12.5)]
        ),
        "tp": st.sampled_from([None, 25, 50]),
        "sl": st.sampled_from([None, 50, 100, 200]),
        "trigger": st.sampled_from(["mid", "exit_fill"]),
        "exit_time": st.sampled_from([None, "15:00"]),
    }
)


def _rule_spec(r: dict) -> StrategySpec:
    mode, size = r["sizing"]
    sizing = (
        {"mode": "fixed", "contracts": size}
        if mode == "fixed"
        else {"mode": "risk_pct", "risk_pct": size, "capital": 53_500}
    )
    return StrategySpec.from_dict(
        {
            "name": "parity",
            "dte": {"target": r["dte"], "tolerance": 1},
            "entry": {"times": r["times"], "mode": r["mode"]},
            "short_delta": 0.25,
            "width": 25,
            "management": {
                "take_profit_pct": r["tp"],
                "stop_loss_pct": r["sl"],
                "trigger_on": r["trigger"],
                "exit_time": r["exit_time"],
            },
            "risk": {
                "max_open_trades": r["max_open"],
                "max_new_trades_per_day": r["max_new"],
                "no_new_after_stop": r["no_new_after_stop"],
                "daily_loss_limit": r["loss_limit"],
            },
            "sizing": sizing,
        }
    )


_BUSY = {
    "times": ["10:00", "11:00", "12:30", "14:00", "15:30"],
    "mode": "each",
    "dte": 1,
    "max_open": 3,
    "max_new": 3,
    "no_new_after_stop": True,
    "loss_limit": None,
    "sizing": ("fixed", 1),
    "tp": 25,
    "sl": 50,
    "trigger": "mid",
    "exit_time": None,
}


@settings(max_examples=16)
@given(rules=RULES)
@example(rules=_BUSY)  # stopped_today, max_new_trades_per_day
@example(rules=_BUSY | {"no_new_after_stop": False, "loss_limit": 50.0})  # daily_loss_limit
@example(rules=_BUSY | {"no_new_after_stop": False, "sizing": ("risk_pct", 12.5)})  # 2 or 3 lots
@example(rules=_BUSY | {"trigger": "exit_fill", "exit_time": "15:00", "dte": 0})  # time exits
def test_live_equals_the_backtest_for_every_rule(store: Path, rules: dict) -> None:
    """Max open, max new per day, no new after a stop, the daily loss limit, risk-percent
    sizing with compounding, time exits and settlement: a simulated live replay of four days
    decides and trades exactly as the backtest, decision for decision, cent for cent."""
    import tempfile

    spec = _rule_spec(rules)
    bt = backtest(spec, store, start=DAYS[0], end=DAYS[-1], workers=1, report=False).results[0]
    tmp = Path(tempfile.mkdtemp(prefix="parity-"))
    broker = SimulatedBroker(store, DAYS[0], spec.fills, spec.fees)
    run = LiveRunner(
        _cfg(tmp), broker, Journal(tmp / "j.duckdb"), spec=spec, notify=lambda *_: None
    )
    for d in DAYS:
        run.run_day(d)
    cols = ["candidate_id", "entry_ts", "decision", "reason", "expiry", "credit_per_share"]
    live = run.journal.table("decisions", "paper").select(cols).sort("candidate_id")
    assert live.equals(bt.decisions.select(cols).sort("candidate_id"))
    lt = run.journal.table("trades", "paper").sort("trade_id")
    ref = closed_by(bt.trades, DAYS[-1])
    if rules == _BUSY:  # the explicit examples do exercise their rules
        assert {"stopped_today", "max_new_trades_per_day"} <= set(bt.decisions["reason"])
    if rules.get("loss_limit") == 50.0 and rules["times"] == _BUSY["times"]:
        assert "daily_loss_limit" in set(bt.decisions["reason"])
    if rules["sizing"] == ("risk_pct", 12.5) and rules["times"] == _BUSY["times"]:
        assert set(bt.trades["contracts"]) == {2, 3}  # equity compounds across the size step
    assert lt.select(COLS + MONEY).equals(ref.select(COLS + MONEY))
    assert set(run.open) == open_after(bt.trades, DAYS[-1])


def test_a_broker_settlement_is_kept_in_the_store(store: Path, tmp_path: Path) -> None:
    """A broker that reports only a value (IBKR reads the index after the close): the runner
    settles on it and stores it as a ``broker`` settlement row."""
    from quantlab.data import settlements

    class IndexOnly(SimulatedBroker):
        settlement_source = None  # the value only, as a real broker gives it

    copy = copy_store(store, tmp_path / "store")  # the runner writes a settlement row
    spec = StrategySpec.from_dict(
        {
            "name": "0dte",
            "dte": {"target": 0, "tolerance": 0},
            "entry": {"times": ["15:00"]},
            "short_delta": 0.3,
            "width": 25,
            "filters": {"min_credit": 0.0},
            "management": {"take_profit_pct": None, "stop_loss_pct": None},
        }
    )
    broker = IndexOnly(copy, DAYS[0], spec.fills, spec.fees)
    run = LiveRunner(
        _cfg(tmp_path, store=str(copy)),
        broker,
        Journal(tmp_path / "j.duckdb"),
        spec=spec,
        notify=lambda *_: None,
    )
    run.run_day(DAYS[1])
    trades = run.journal.table("trades", "paper")
    assert trades.height == 1 and trades["exit_reason"][0] == "settlement"
    assert trades["settlement_source"][0] == "broker"
    rows = settlements.read(copy).filter(pl.col("source") == "broker")
    assert rows.height == 1 and rows["expiry"][0] == DAYS[1]
    assert rows["value"][0] == trades["settlement_value"][0]
    # the store's most trusted value is still the index's (broker ranks below it)
    assert settlements.lookup(copy, "SPXW", DAYS[1]).source == "index"
