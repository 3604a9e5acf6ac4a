"""The IBKR adapter: the real ib_async client over a real socket against the loopback TWS stub."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantlab import calendar
from quantlab.brokers import Broker, ComboLeg
from quantlab.brokers.ibkr import BrokerDisconnected, BrokerError, IBKRBroker, Pacer
from quantlab.chain.snapshot import build_snapshot
from quantlab.data import read
from quantlab.data.store import INSTRUMENTS_SCHEMA
from quantlab.errors import ConfigError, InputError
from quantlab.strategy.spec import DTESpec
from tests.live.tws_stub import INDEX_CONID, MarketModel, TWSStub

DAY = dt.date(2024, 3, 4)
SHORT, LONG = "SPXW  240305P04950000", "SPXW  240305P04925000"
VERTICAL = (ComboLeg(SHORT, -1), ComboLeg(LONG, 1))


@pytest.fixture
def stub() -> Iterator[TWSStub]:
    with TWSStub(MarketModel(DAY)) as s:
        yield s


def _broker(stub: TWSStub, **kw: object) -> IBKRBroker:
    args: dict = {
        "port": stub.port,
        "client_id": 5,
        "timeout": 3.0,
        "request_timeout": 5.0,
        "quote_timeout": 2.0,
        "backoff_s": 0.05,
        "reconnect_attempts": 3,
        "clock": lambda: stub.model.now_ns,
        "dte": DTESpec(target=1, tolerance=1),
        "strike_window": 100.0,
    } | kw
    return IBKRBroker(**args)


@pytest.fixture
def broker(stub: TWSStub) -> Iterator[IBKRBroker]:
    b = _broker(stub)
    b.connect()
    yield b
    b.disconnect()


def _until(b: IBKRBroker, cond: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        b.ib.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_handshake_and_startup_sync(stub: TWSStub, broker: IBKRBroker) -> None:
    assert isinstance(broker, Broker)
    assert broker.ib.client.serverVersion() == 176 and stub.handshakes == 1
    assert broker.account == "DU1234567" and stub.connected_clients() == {5}
    start = stub.messages(71)[0]
    assert start[2] == "5"  # startApi carries the client id
    # ib_async's start-up sync: positions, open + completed orders, account updates (single and
    # multi), executions; then the adapter's all-clients open orders
    got = {int(f[0]) for f in (r.fields for r in stub.received)}
    assert {61, 5, 99, 6, 76, 7, 16} <= got and not stub.unhandled and not stub.failures
    acct = broker.account_summary()
    assert (acct.equity, acct.cash) == (100_000.0, 100_000.0) and broker.positions() == []


def test_qualify_index_and_option_params(stub: TWSStub, broker: IBKRBroker) -> None:
    assert broker.index_contract().conId == INDEX_CONID
    params = broker.option_params()
    assert set(params) == {"SPX", "SPXW"}
    for root in ("SPX", "SPXW"):
        want = sorted(e for r, e, _ in stub.model.expiries if r == root)
        assert params[root][0] == want
        assert params[root][1] == stub.model.strikes
    req = stub.messages(78)[0]
    assert req[2:6] == ["SPX", "", "IND", str(INDEX_CONID)]


def test_chain_snapshot_equals_the_stub_model(stub: TWSStub, broker: IBKRBroker) -> None:
    m = stub.model
    chain = broker.chain_snapshot("SPX", m.now_ns)
    assert chain.columns == list(read.META_COLUMNS + read.QUOTE_COLUMNS)
    for col in read.META_COLUMNS:
        assert chain.schema[col] == INSTRUMENTS_SCHEMA[col], col
    # DTE 1 +- 1, two expiries preferred: 2024-03-05 (1 day), then 2024-03-04 (0, shorter)
    assert sorted(set(chain["expiry"])) == [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    assert set(chain["root"]) == {"SPXW"} and set(chain["settlement"]) == {"PM"}
    assert chain["strike"].min() >= m.spot - 100 and chain["strike"].max() <= m.spot + 100
    assert chain.height == 2 * 9 * 2  # expiries x strikes in the window x rights
    for row in chain.iter_rows(named=True):
        k = m.contracts[row["instrument_id"]]
        assert row["raw_symbol"] == k.local_symbol and row["strike"] == k.strike
        bid, ask, bsz, asz = m.quote(k.con_id)
        assert (row["bid"], row["ask"], row["bid_size"], row["ask_size"]) == (bid, ask, bsz, asz)
        assert row["quote_ts"] == m.now_ns and row["age_s"] == 0.0
    # the trade record's ids come from the conId cache, equal to the snapshot's
    some = chain["raw_symbol"].to_list()[:3]
    want = dict(zip(some, chain["instrument_id"].to_list()[:3], strict=True))
    assert broker.instrument_ids(some, m.now_ns) == want
    # the backtester's snapshot code recovers the model's forward from it
    snap = build_snapshot(chain, m.now_ns, rate=m.rate)
    t = (calendar.settlement_ns("SPXW", DAY + dt.timedelta(days=1)) - m.now_ns) / (365 * 86400e9)
    fwd = snap.expiries.filter(snap.expiries["expiry"] == dt.date(2024, 3, 5))["forward"][0]
    assert fwd == pytest.approx(m.spot * math.exp(m.rate * t), abs=0.5)
    n = len(stub.messages(1))
    assert broker.chain_snapshot("SPX", m.now_ns) is chain and len(stub.messages(1)) == n


def test_credit_vertical_is_a_bag_buy_at_a_negative_limit(
    stub: TWSStub, broker: IBKRBroker
) -> None:
    stub.auto_fill = False
    oid = broker.place_combo(VERTICAL, 2, 1.10, "t1-opening-0")
    (o,) = stub.orders
    f = o.fields
    assert (f[3], f[4], f[9], f[11]) == ("SPX", "BAG", "SMART", "USD")  # BAG contract
    assert (o.action, o.quantity, o.order_type, o.lmt, o.tif) == ("BUY", 2, "LMT", -1.10, "DAY")
    assert o.order_ref == "t1-opening-0" and o.transmit and o.account == "DU1234567"
    con = {occ: stub.model.by_occ(occ).con_id for occ in (SHORT, LONG)}
    assert o.legs == [(con[SHORT], 1, "SELL", "SMART"), (con[LONG], 1, "BUY", "SMART")]
    assert oid == str(o.perm_id)
    order = broker.order_status(oid)
    assert (order.status, order.limit_price, order.quantity, order.legs) == (
        "submitted",
        1.10,
        2,
        VERTICAL,
    )
    assert [x.order_id for x in broker.open_orders()] == [oid]


def test_fill_with_exec_details_and_commissions(stub: TWSStub, broker: IBKRBroker) -> None:
    m = stub.model
    mid = m.mid(m.by_occ(SHORT).con_id) - m.mid(m.by_occ(LONG).con_id)
    oid = broker.place_combo(VERTICAL, 2, round(mid - 0.30, 2), "t2-opening-0")
    _until(broker, lambda: broker.order_status(oid).status == "filled")
    (o,) = stub.orders
    legs_px = {e.contract.local_symbol: e.price for e in o.execs if e.contract}
    (fill,) = broker.executions_since(m.now_ns)
    assert (fill.order_id, fill.order_ref, fill.quantity, fill.legs) == (
        oid,
        "t2-opening-0",
        2,
        VERTICAL,
    )
    assert fill.leg_prices == (legs_px[SHORT], legs_px[LONG])
    assert fill.price == pytest.approx(round(mid - 0.30, 2))  # + credit, rebuilt from the legs
    assert fill.fees == pytest.approx(2 * 2 * stub.commission)  # commission report per leg
    assert fill.ts == m.now_ns
    assert broker.order_status(oid).fill_price == fill.price
    assert {(p.occ, p.quantity) for p in broker.positions()} == {(SHORT, -2), (LONG, 2)}
    assert broker.executions_since(m.now_ns + 60 * 10**9) == []


def test_order_ref_is_idempotent_across_sessions_and_clients(stub: TWSStub) -> None:
    stub.auto_fill = False
    a = _broker(stub)
    a.connect()
    oid = a.place_combo(VERTICAL, 1, 1.00, "ref-A")
    assert a.place_combo(VERTICAL, 1, 1.00, "ref-A") == oid  # same session
    a.disconnect()
    b = _broker(stub)  # a new client after a reconnect (same client id)
    b.connect()
    assert b.place_combo(VERTICAL, 1, 1.00, "ref-A") == oid
    assert b.order_status(oid).status == "submitted"
    stub.set_auto_fill(True)  # fills while b is connected
    _until(b, lambda: b.order_status(oid).status == "filled")
    b.disconnect()
    c = _broker(stub, client_id=9)  # another client id: filled order known from the sync
    c.connect()
    assert c.place_combo(VERTICAL, 1, 1.00, "ref-A") == oid
    assert c.order_status(oid).status == "filled"
    c.disconnect()
    assert len(stub.orders_with_ref("ref-A")) == 1 and len(stub.messages(3)) == 1


def test_cancel_a_working_order(stub: TWSStub, broker: IBKRBroker) -> None:
    stub.fill_edge = math.inf
    oid = broker.place_combo(VERTICAL, 1, 5.00, "t3-opening-0")
    assert broker.order_status(oid).status == "submitted"
    broker.cancel(oid)  # waits for TWS to confirm
    assert broker.order_status(oid).status == "cancelled" and stub.orders[0].status == "Cancelled"
    broker.cancel(oid)  # terminal: no-op
    assert len(stub.messages(4)) == 1 and broker.open_orders() == []


@pytest.mark.parametrize("reply", ["status+202", "202 only", "PendingCancel, later Cancelled"])
def test_cancel_returns_as_soon_as_tws_confirms(
    stub: TWSStub, monkeypatch: pytest.MonkeyPatch, reply: str
) -> None:
    """Regression: cancel() used ``while not done: ib.waitOnUpdate()``. waitOnUpdate subscribes
    to updateEvent only once the event loop runs, and in that same loop iteration the socket
    callback may handle the confirmation that is already buffered: the one update is missed
    and cancel() sat out its whole request_timeout although the order was Cancelled. Here the
    confirmation is made to be in the socket (unread) before cancel() starts waiting."""
    b = _broker(stub, request_timeout=15.0)
    b.connect()
    stub.fill_edge = math.inf
    oid = b.place_combo(VERTICAL, 1, 5.00, "t9-opening-0")
    assert b.order_status(oid).status == "submitted"
    order = stub.orders[0]
    send_status = stub._send_status
    if reply == "202 only":  # some TWS versions confirm with error 202 and no orderStatus
        monkeypatch.setattr(
            stub,
            "_send_status",
            lambda c, o: None if o.status == "Cancelled" else send_status(c, o),
        )
    elif reply == "PendingCancel, later Cancelled":

        def confirm_later(c: object, f: list[str]) -> None:
            order.status = "PendingCancel"
            send_status(c, order)  # type: ignore[arg-type]

            def confirm() -> None:
                with stub.lock:
                    order.status = "Cancelled"
                    send_status(c, order)  # type: ignore[arg-type]
                    stub._error(c, order.order_id, 202, "Order Canceled - reason:")  # type: ignore[arg-type]

            threading.Timer(0.3, confirm).start()

        monkeypatch.setattr(stub, "_cancel_order", confirm_later)
    first = "PendingCancel" if reply.startswith("Pending") else "Cancelled"
    send_cancel = b.ib.client.cancelOrder

    def cancel_and_let_tws_answer(*args: object) -> None:
        send_cancel(*args)
        assert stub.wait_for(lambda: order.status == first)
        time.sleep(0.05)  # TWS's answer is in the socket before the adapter starts waiting

    monkeypatch.setattr(b.ib.client, "cancelOrder", cancel_and_let_tws_answer)
    t0 = time.monotonic()
    b.cancel(oid)
    took = time.monotonic() - t0
    assert took < 5.0, f"cancel took {took:.1f} s: the confirmation was missed"  # 15 s before
    assert order.status == "Cancelled" and b.order_status(oid).status == "cancelled"
    assert len(stub.messages(4)) == 1 and b.open_orders() == [] and not stub.failures
    b.disconnect()


def test_rejected_order_reads_rejected(stub: TWSStub, broker: IBKRBroker) -> None:
    stub.reject = "margin"
    oid = broker.place_combo(VERTICAL, 1, 1.0, "t4-opening-0")
    assert oid == "ref:t4-opening-0" and not stub.orders  # no permId: TWS never took it
    assert broker.order_status(oid).status == "rejected"
    assert broker.place_combo(VERTICAL, 1, 1.0, "t4-opening-0") == oid  # still idempotent


def test_error_200_is_a_clear_error(stub: TWSStub, broker: IBKRBroker) -> None:
    bogus = "SPXW  240119P04700000"
    with pytest.raises(
        BrokerError,
        match=r"no security definition for option 'SPXW  240119P04700000'"
        r".*IB error 200",
    ):
        broker.quotes([bogus])
    with pytest.raises(BrokerError, match="200"):
        broker.place_combo((ComboLeg(bogus, -1), ComboLeg(LONG, 1)), 1, 1.0, "bad")
    assert stub.messages(3) == []  # nothing was sent


def test_falls_back_to_delayed_data(stub: TWSStub) -> None:
    stub.live_data = False
    b = _broker(stub)
    b.connect()
    try:
        chain = b.chain_snapshot("SPX", stub.model.now_ns)
        assert b.market_data_type == 3
        assert [f[2] for f in stub.messages(59)] == ["3"]  # reqMarketDataType(3)
        assert {code for _, code, _, _ in b.errors} >= {354, 10167}
        assert chain["bid"].null_count() == 0 and chain["ask"].null_count() == 0
        # delayed quotes are stamped as 15 minutes old, so max_quote_age_s refuses to trade them
        assert set(chain["age_s"]) == {900.0}
        assert (chain["quote_ts"] == chain["quote_ts"].max()).all()
        bid, ask = b.quotes([SHORT])
        assert (bid[0], ask[0]) == stub.model.quote(stub.model.by_occ(SHORT).con_id)[:2]
    finally:
        b.disconnect()


def test_streaming_quotes_for_held_legs_only(stub: TWSStub, broker: IBKRBroker) -> None:
    m = stub.model
    bid, ask = broker.quotes([SHORT, LONG])
    assert (bid[0], ask[0]) == m.quote(m.by_occ(SHORT).con_id)[:2]
    assert broker.streaming() == [SHORT, LONG] and len(stub.conns[0].subs) == 2
    m.spot += 40.0  # puts cheapen; the stub pushes new ticks to the streams
    stub.publish()
    want = m.quote(m.by_occ(SHORT).con_id)[:2]
    _until(broker, lambda: tuple(x[0] for x in broker.quotes([SHORT, LONG])) == want)
    broker.quotes([SHORT])  # LONG is neither requested nor held: its line is released
    assert broker.streaming() == [SHORT]
    assert stub.wait_for(lambda: len(stub.messages(2)) == 1)  # cancelMktData
    broker.release()
    _until(broker, lambda: not stub.conns[0].subs)


def test_dropped_connection_reconnects_with_backoff_and_no_orders(stub: TWSStub) -> None:
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        if len(waits) == 2:
            stub.start_listening()  # the gateway comes back after two refused attempts

    b = _broker(stub, sleep=sleep, reconnect_attempts=4)
    b.connect()
    stub.auto_fill = False
    oid = b.place_combo(VERTICAL, 1, 1.0, "before-drop")
    stub.stop_listening()
    stub.drop_connections()
    with pytest.raises(BrokerDisconnected, match="NOT sent"):
        b.place_combo(VERTICAL, 1, 1.0, "while-down")
    assert len(stub.messages(3)) == 1
    assert b.order_status(oid).status == "submitted"  # reconnects (backoff), then answers
    assert waits == [0.05, 0.1] and b.reconnects == 1 and stub.handshakes == 2
    assert b.place_combo(VERTICAL, 1, 1.0, "before-drop") == oid
    b.place_combo(VERTICAL, 1, 1.0, "while-down")  # sent once the session is back
    assert [o.order_ref for o in stub.orders] == ["before-drop", "while-down"]
    b.disconnect()
    stub.stop_listening()
    b2 = _broker(stub, sleep=lambda s: None, reconnect_attempts=2)
    with pytest.raises(BrokerDisconnected, match="after 2 attempts"):
        b2.connect()


def test_live_account_refused_without_live_flag() -> None:
    with pytest.raises(ConfigError, match="does not look like a paper account") as err:
        IBKRBroker(account="U7654321")
    assert "7654321" not in str(err.value)  # the id is never echoed whole
    IBKRBroker(account="U7654321", live=True)
    IBKRBroker(account="DU7654321")
    with TWSStub(MarketModel(DAY), accounts=("U7654321",)) as s:
        b = _broker(s)
        with pytest.raises(ConfigError, match="paper account"):
            b.connect()
        assert not b.ib.isConnected() and s.messages(3) == []
        ok = _broker(s, live=True)
        ok.connect()
        assert ok.account == "U7654321"
        ok.disconnect()


def test_pacing_keeps_messages_within_the_limit(stub: TWSStub) -> None:
    b = _broker(stub, pacing_per_s=20, strike_window=150.0)
    b.connect()
    try:
        b.chain_snapshot("SPX", stub.model.now_ns)
        b.quotes([SHORT, LONG])
    finally:
        b.disconnect()
    assert len(stub.received) > 3 * 20  # the limit was binding: several seconds of requests
    assert stub.max_per_window(1.0) <= 20
    assert b._pacer.waited > 0


@given(
    st.lists(st.integers(1, 60), min_size=1, max_size=40), st.integers(1, 50), st.floats(0.0, 0.2)
)
def test_pacer_never_exceeds_the_rate_in_any_second(
    sizes: list[int], rate: int, gap: float
) -> None:
    now, log = [0.0], []

    class Logged(deque):  # type: ignore[type-arg]
        def extend(self, items):  # type: ignore[no-untyped-def]
            items = list(items)
            log.extend(items)
            super().extend(items)

    p = Pacer(rate, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    p.sent = Logged()
    for n in sizes:
        p.acquire(n)
        now[0] += gap
    stamps = np.array(log)
    assert len(stamps) == sum(sizes)  # every message got a token ...
    for t in stamps:  # ... and no second ever holds more than the rate
        assert np.sum((stamps > t - 1.0) & (stamps <= t)) <= rate


def test_settlement_value_pm_from_the_index_am_unknown(stub: TWSStub, broker: IBKRBroker) -> None:
    m = stub.model
    assert math.isnan(broker.settlement_value("SPXW", DAY))  # 10:00: not settled yet
    m.now_ns = calendar.settlement_ns("SPXW", DAY) + 20 * calendar.NS_PER_MINUTE
    assert broker.settlement_value("SPXW", DAY) == m.spot
    monthly = next(e for r, e, _ in m.expiries if r == "SPX")
    m.now_ns = calendar.settlement_ns("SPX", monthly) + calendar.NS_PER_MINUTE
    assert math.isnan(broker.settlement_value("SPX", monthly))  # SOQ: not in the feed
    broker.set_settlement("SPX", monthly, 5012.5)
    assert broker.settlement_value("SPX", monthly) == 5012.5


def test_start_day_is_today_only(broker: IBKRBroker) -> None:
    broker.start_day(DAY)
    with pytest.raises(InputError, match="current session only"):
        broker.start_day(dt.date(2024, 3, 5))
