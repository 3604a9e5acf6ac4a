"""A loopback stand-in for TWS / IB Gateway speaking the TWS API socket protocol (tests only).

The real ``ib_async`` client connects to it over a real TCP socket on 127.0.0.1. Framing is the
TWS API v100+ one: the client opens with ``b"API\\0"`` and a length-prefixed version range
(``v157..178``); every later message, both ways, is a 4-byte big-endian length followed by
NUL-terminated text fields. The stub announces server version :data:`SERVER_VERSION` and
writes every message in exactly the layout ``ib_async.decoder`` reads for that version.

What it models (:class:`MarketModel` + :class:`TWSStub`):

* contracts (:class:`~tests.live.tws_model.MarketModel`): the SPX index (``IND``, CBOE) and
  an option chain around ``spot`` built from a few parameters: SPXW (PM-settled) on the next
  ``n_spxw`` sessions and one SPX (AM-settled) monthly, OCC local symbols; contract details
  (full or partial match; error 200 when nothing matches) and ``reqSecDefOptParams``
  (exchanges SMART and CBOE, trading classes SPX and SPXW);
* market data: Black-Scholes quotes (flat ``vol``, ``rate``) at the stub's clock
  ``model.now_ns``, tick rounded, sent as ``tickPrice`` bid/ask (delayed tick types 66/67 when
  the client asked for delayed data) for snapshots (then ``tickSnapshotEnd``) and streaming
  subscriptions (:meth:`TWSStub.publish` pushes fresh ticks); the index sends last and close.
  With ``live_data=False`` a live request is answered by error 354 (not subscribed) and a
  delayed one by warning 10167 plus delayed ticks;
* orders: ``placeOrder`` -> ``openOrder`` + ``orderStatus`` Submitted; a combo fills when its
  limit crosses the mid-based rule (BUY fills when ``limit >= combo mid + fill_edge``; the IB
  combo price is sum(side x ratio x leg mid), so a credit is negative) at the limit price:
  ``execDetails`` per leg and for the BAG, ``orderStatus`` Filled, ``openOrder`` Filled,
  ``commissionReport`` per leg execution, position and account updates; otherwise it stays
  working (``auto_fill=False`` keeps every order working until :meth:`TWSStub.set_auto_fill`).
  ``cancelOrder`` -> ``orderStatus`` Cancelled + error 202; ``reqOpenOrders``,
  ``reqAllOpenOrders``, ``reqCompletedOrders``, ``reqExecutions`` (+ commission reports),
  ``reqPositions``, ``reqAccountUpdates``/``Multi``, ``reqAccountSummary``;
* the session: handshake, ``nextValidId`` + ``managedAccounts`` after ``startApi``, farm
  status warnings, duplicate client ids refused (error 326), :meth:`TWSStub.drop_connections`,
  :meth:`TWSStub.stop_listening` / :meth:`TWSStub.start_listening` (same port).

Every message received is recorded with its arrival time (``received``) so tests can check
what the client sent and how fast.
"""

from __future__ import annotations

import datetime as dt
import math
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from quantlab import calendar
from tests.live.tws_model import INDEX_CONID, MarketModel, StubContract

__all__ = ["BAG_CONID", "INDEX_CONID", "SERVER_VERSION", "MarketModel", "StubContract", "TWSStub"]

SERVER_VERSION = 176
BAG_CONID = 28812380


# ------------------------------------------------------------------------------- broker state
@dataclass
class StubExec:
    exec_id: str
    order: StubOrder
    contract: StubContract | None  # None = the BAG execution
    side: str  # "BOT" | "SLD"
    shares: float
    price: float
    ts: int
    commission: float | None  # None = no commission report (the BAG line)


@dataclass
class StubOrder:
    perm_id: int
    order_id: int
    client_id: int
    account: str
    action: str
    quantity: float
    order_type: str
    lmt: float
    tif: str
    order_ref: str
    transmit: bool
    sec_type: str
    legs: list[tuple[int, int, str, str]]  # (conId, ratio, action, exchange)
    fields: list[str]  # the placeOrder message as received
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0
    done_ts: int = 0
    execs: list[StubExec] = field(default_factory=list)

    @property
    def working(self) -> bool:
        return self.status in ("PreSubmitted", "Submitted")


@dataclass
class Received:
    t: float  # time.monotonic() at arrival
    conn: int  # connection serial number
    fields: list[str]

    @property
    def msg_id(self) -> int:
        return int(self.fields[0])


class _Conn:
    def __init__(self, sock: socket.socket, serial: int) -> None:
        self.sock, self.serial = sock, serial
        self.client_id: int | None = None
        self.mdt = 1
        self.subs: dict[int, int] = {}  # reqId -> conId (streaming market data)
        self.positions_sub = False
        self.account_sub = False
        self.open = True
        self.wlock = threading.Lock()

    def send(self, *fields: Any) -> None:
        text = "".join(_fmt(f) + "\0" for f in fields).encode()
        with self.wlock:
            if self.open:
                try:
                    self.sock.sendall(struct.pack(">I", len(text)) + text)
                except OSError:
                    self.open = False


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


# ------------------------------------------------------------------------------- the server
class TWSStub:
    """The loopback gateway; see the module docstring. Use as a context manager or
    :meth:`start` / :meth:`close`.

    Parameters
    ----------
    model : MarketModel
    accounts : tuple of str
        ``managedAccounts`` (the first one trades).
    live_data : bool
        False: live market data is "not subscribed" (error 354; delayed data works).
    auto_fill : bool
        False: orders never fill until :meth:`set_auto_fill` (True) re-checks them.
    fill_edge : float
        A BUY combo fills when ``limit >= mid + fill_edge`` (per share, IB sign convention).
    commission : float
        Dollars per option contract, reported per leg execution.
    reject : str, optional
        Reject every new order with error 201 and this reason.
    cash : float
        Starting ``TotalCashValue``.
    """

    def __init__(
        self,
        model: MarketModel,
        *,
        accounts: tuple[str, ...] = ("DU1234567",),
        live_data: bool = True,
        auto_fill: bool = True,
        fill_edge: float = 0.0,
        commission: float = 0.65,
        cash: float = 100_000.0,
        reject: str | None = None,
        server_version: int = SERVER_VERSION,
    ) -> None:
        self.model, self.accounts = model, accounts
        self.live_data, self.auto_fill, self.fill_edge = live_data, auto_fill, fill_edge
        self.commission, self.cash, self.server_version = commission, cash, server_version
        self.reject = reject
        self.lock = threading.RLock()
        self.received: list[Received] = []
        self.orders: list[StubOrder] = []
        self.positions: dict[int, list[float]] = {}  # conId -> [quantity, avg cost per contract]
        self.unhandled: list[list[str]] = []
        self.failures: list[str] = []  # tracebacks of messages the stub could not handle
        self.connections = 0  # accepted sockets
        self.handshakes = 0  # completed startApi
        self.conns: list[_Conn] = []
        self._listener: socket.socket | None = None
        self._next_perm = 1_000_001
        self._next_exec = 1
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> TWSStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> TWSStub:
        self.start_listening()
        return self

    def start_listening(self) -> None:
        """Listen on 127.0.0.1 (a free port the first time, the same port afterwards)."""
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", self.port))
        lsock.listen(16)
        self.port = lsock.getsockname()[1]
        self._listener = lsock
        threading.Thread(target=self._accept, args=(lsock,), daemon=True).start()

    def stop_listening(self) -> None:
        """Refuse new connections (connect() gets ECONNREFUSED) until start_listening()."""
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None

    def drop_connections(self) -> None:
        """Close every client socket (a gateway restart / network cut)."""
        with self.lock:
            for c in list(self.conns):
                c.open = False
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.sock.close()
            self.conns.clear()

    def close(self) -> None:
        self.stop_listening()
        self.drop_connections()

    def _accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                sock, _ = lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                conn = _Conn(sock, self.connections)
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: _Conn) -> None:
        sock = conn.sock
        try:
            if _recv_exact(sock, 4) != b"API\0":
                return
            (n,) = struct.unpack(">I", _recv_exact(sock, 4))
            lo, hi = _recv_exact(sock, n).decode().split()[0].lstrip("v").split("..")
            if not int(lo) <= self.server_version <= int(hi):
                return
            conn.send(self.server_version, "20240304 10:00:00 EST")
            while True:
                (n,) = struct.unpack(">I", _recv_exact(sock, 4))
                fields = _recv_exact(sock, n).decode().split("\0")[:-1]
                with self.lock:
                    self.received.append(Received(time.monotonic(), conn.serial, fields))
                    if conn.open:
                        self._handle(conn, fields)
                if not conn.open:
                    return
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            with self.lock:
                conn.open = False
                if conn in self.conns:
                    self.conns.remove(conn)
            sock.close()

    # -- helpers for tests -------------------------------------------------------------------
    def connected_clients(self) -> set[int]:
        with self.lock:
            return {c.client_id for c in self.conns if c.open and c.client_id is not None}

    def wait_for(self, cond: Callable[[], bool], timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if cond():
                    return True
            time.sleep(0.01)
        return False

    def messages(self, msg_id: int) -> list[list[str]]:
        with self.lock:
            return [r.fields for r in self.received if r.msg_id == msg_id]

    def orders_with_ref(self, ref: str) -> list[StubOrder]:
        with self.lock:
            return [o for o in self.orders if o.order_ref == ref]

    def max_per_window(self, window: float = 1.0, since: float = 0.0) -> int:
        """Most messages received in any sliding ``window`` seconds (arrivals after ``since``)."""
        with self.lock:
            ts = sorted(r.t for r in self.received if r.t >= since)
        best, j = 0, 0
        for i, t in enumerate(ts):
            while ts[j] <= t - window:
                j += 1
            best = max(best, i - j + 1)
        return best

    def set_auto_fill(self, on: bool) -> None:
        """Turn the fill rule on/off; turning it on fills the working orders that cross."""
        with self.lock:
            self.auto_fill = on
            for o in self.orders:
                if o.working:
                    self._try_fill(o)

    def publish(self) -> None:
        """Push current quotes to every streaming subscription (after moving the model)."""
        with self.lock:
            for c in self.conns:
                for req_id, con_id in list(c.subs.items()):
                    self._ticks(c, req_id, self.model.contracts[con_id])

    # -- dispatch ----------------------------------------------------------------------------
    def _handle(self, c: _Conn, f: list[str]) -> None:
        msg = int(f[0])
        handler = {
            71: self._start_api,
            1: self._req_mkt_data,
            2: self._cancel_mkt_data,
            3: self._place_order,
            4: self._cancel_order,
            5: self._req_open_orders,
            6: self._req_account_updates,
            7: self._req_executions,
            8: self._req_ids,
            9: self._req_contract_details,
            15: lambda c, f: None,
            16: self._req_all_open_orders,
            17: lambda c, f: c.send(15, 1, ",".join(self.accounts)),
            49: lambda c, f: c.send(49, 1, self.model.now_ns // 10**9),
            59: self._req_market_data_type,
            61: self._req_positions,
            62: self._req_account_summary,
            63: lambda c, f: None,
            64: lambda c, f: setattr(c, "positions_sub", False),
            76: self._req_account_updates_multi,
            77: lambda c, f: None,
            78: self._req_sec_def_opt_params,
            99: self._req_completed_orders,
        }.get(msg)
        if handler is None:
            self.unhandled.append(f)
            return
        try:
            handler(c, f)
        except Exception:  # a stub bug must show in the test, not as a silent disconnect
            self.failures.append(f"{f[:4]}...: {traceback.format_exc()}")

    def _error(self, c: _Conn, req_id: int, code: int, text: str) -> None:
        c.send(4, 2, req_id, code, text, "")

    def _start_api(self, c: _Conn, f: list[str]) -> None:
        cid = int(f[2])
        if cid in self.connected_clients():
            self._error(
                c,
                -1,
                326,
                "Unable to connect as the client id is already in use. "
                "Retry with a unique client id.",
            )
            c.open = False
            return
        c.client_id = cid
        self.handshakes += 1
        mine = [o.order_id for o in self.orders if o.client_id == cid]
        c.send(9, 1, max(mine, default=0) + 1)
        c.send(15, 1, ",".join(self.accounts))
        for code, farm in ((2104, "usopt"), (2106, "ushmds"), (2158, "secdefil")):
            self._error(c, -1, code, f"Market data farm connection is OK:{farm}")

    def _req_ids(self, c: _Conn, f: list[str]) -> None:
        mine = [o.order_id for o in self.orders if o.client_id == c.client_id]
        c.send(9, 1, max(mine, default=0) + 1)

    # -- contracts ---------------------------------------------------------------------------
    def _match(self, q: list[str]) -> list[StubContract]:
        """Contracts matching the 12 contract fields conId .. tradingClass of a request."""
        con_id, symbol, sec_type, last, strike, right, _mult, exch, _prim, cur, local, tc = q
        if con_id and int(con_id):
            hit = self.model.contracts.get(int(con_id))
            return [hit] if hit else []
        right = {"PUT": "P", "CALL": "C"}.get(right.upper(), right.upper())
        out = []
        for c in self.model.contracts.values():
            if (sec_type and c.sec_type != sec_type) or (symbol and c.symbol != symbol):
                continue
            if (local and c.local_symbol != local) or (tc and c.trading_class != tc):
                continue
            if cur and cur != "USD":
                continue
            if exch and exch not in ("SMART", "CBOE"):
                continue
            if c.sec_type == "OPT":
                occ_day = f"{c.expiry:%Y%m%d}"
                if last and last not in (c.last_trade, occ_day):
                    continue
                if strike and float(strike) and abs(float(strike) - c.strike) > 1e-6:
                    continue
                if right and c.right != right:
                    continue
            out.append(c)
        return out

    def _req_contract_details(self, c: _Conn, f: list[str]) -> None:
        req_id = int(f[2])
        hits = self._match(f[3:15])
        if not hits:
            self._error(c, req_id, 200, "No security definition has been found for the request")
            return
        asked_exch = f[10]
        for k in hits:
            opt = k.sec_type == "OPT"
            exch = asked_exch or k.exchange
            c.send(
                10,
                req_id,
                k.symbol,
                k.sec_type,
                k.last_trade,
                k.strike if opt else 0.0,
                k.right,
                exch,
                "USD",
                k.local_symbol,
                k.trading_class,
                k.trading_class,
                k.con_id,
                0.05 if opt else 0.01,
                k.multiplier,
                "LMT,MKT,STP",
                "SMART,CBOE" if opt else "CBOE",
                1,
                INDEX_CONID if opt else 0,
                "S&P 500 Stock Index",
                "" if opt else "CBOE",
                f"{k.expiry:%Y%m}" if opt else "",
                "",
                "",
                "",
                "US/Central",
                "",
                "",
                "",
                "",
                0,
                "",
                "SPX" if opt else "",
                "IND" if opt else "",
                "",
                f"{k.expiry:%Y%m%d}" if opt else "",
                "",
                1,
                1,
                1,
            )
        c.send(52, 1, req_id)

    def _req_sec_def_opt_params(self, c: _Conn, f: list[str]) -> None:
        req_id = int(f[1])
        symbol, con_id = f[2], int(f[5] or 0)
        if symbol == "SPX" and con_id in (0, INDEX_CONID):
            for exch in ("SMART", "CBOE"):
                for tc in ("SPX", "SPXW"):
                    exps = sorted({f"{e:%Y%m%d}" for r, e, _ in self.model.expiries if r == tc})
                    if exps:
                        c.send(
                            75,
                            req_id,
                            exch,
                            INDEX_CONID,
                            tc,
                            "100",
                            len(exps),
                            *exps,
                            len(self.model.strikes),
                            *self.model.strikes,
                        )
        c.send(76, req_id)

    # -- market data -------------------------------------------------------------------------
    def _req_market_data_type(self, c: _Conn, f: list[str]) -> None:
        c.mdt = int(f[2])

    def _req_mkt_data(self, c: _Conn, f: list[str]) -> None:
        req_id = int(f[2])
        hits = self._match(f[3:15])
        i = 15
        if f[5] == "BAG":
            i += 1 + 4 * int(f[15])
        i += 1 + (3 if f[i] == "1" else 0)
        snapshot = f[i + 1] == "1"
        if len(hits) != 1:
            self._error(c, req_id, 200, "No security definition has been found for the request")
            return
        if c.mdt in (1, 2) and not self.live_data:
            self._error(
                c,
                req_id,
                354,
                "Requested market data is not subscribed. Check API "
                "status by selecting the Account menu then under Management choose "
                "Market Data Subscription Manager and/or Account Settings.",
            )
            return
        delayed = c.mdt in (3, 4) and not self.live_data
        if delayed:
            self._error(
                c,
                req_id,
                10167,
                "Requested market data is not subscribed. Displaying delayed market data.",
            )
        c.send(58, 1, req_id, 3 if delayed else 1)
        if snapshot:
            self._ticks(c, req_id, hits[0], delayed)
            c.send(57, 1, req_id)
        else:
            c.subs[req_id] = hits[0].con_id
            self._ticks(c, req_id, hits[0], delayed)

    def _ticks(self, c: _Conn, req_id: int, k: StubContract, delayed: bool | None = None) -> None:
        if delayed is None:
            delayed = c.mdt in (3, 4) and not self.live_data
        d = 65 if delayed else 0
        if k.sec_type == "IND":
            c.send(1, 6, req_id, 68 if delayed else 4, self.model.spot, 0, 0)
            c.send(1, 6, req_id, 75 if delayed else 9, self.model.prior_close, 0, 0)
            return
        bid, ask, bsz, asz = self.model.quote(k.con_id)
        c.send(1, 6, req_id, 1 + d, bid if bsz else -1.0, bsz, 0)
        c.send(1, 6, req_id, 2 + d, ask if asz else -1.0, asz, 0)

    def _cancel_mkt_data(self, c: _Conn, f: list[str]) -> None:
        c.subs.pop(int(f[2]), None)

    # -- orders ------------------------------------------------------------------------------
    def _client_conns(self, client_id: int) -> list[_Conn]:
        return [c for c in self.conns if c.open and c.client_id == client_id]

    def _place_order(self, c: _Conn, f: list[str]) -> None:
        assert c.client_id is not None
        oid = int(f[1])
        sec_type = f[4]
        legs: list[tuple[int, int, str, str]] = []
        if sec_type == "BAG":
            n = int(f[35])
            for j in range(n):
                g = f[36 + 8 * j : 44 + 8 * j]
                legs.append((int(g[0]), int(g[1]), g[2], g[3]))
        prior = next(
            (o for o in self.orders if o.client_id == c.client_id and o.order_id == oid), None
        )
        if prior is not None:  # a modification of a working order
            if not prior.working:
                self._error(c, oid, 103, f"Duplicate order id {oid}")
                return
            prior.lmt, prior.quantity, prior.fields = float(f[19]), float(f[17]), f
            for conn in self._client_conns(prior.client_id):
                self._send_open_order(conn, prior)
                self._send_status(conn, prior)
            self._try_fill(prior)
            return
        bad = [cid for cid, *_ in legs if cid not in self.model.contracts]
        if sec_type != "BAG" and not self._match(f[2:14]):
            bad = [int(f[2] or 0)]
        if bad:
            self._error(c, oid, 200, "No security definition has been found for the request")
            return
        if self.reject:
            self._error(c, oid, 201, f"Order rejected - reason:{self.reject}")
            return
        if f[18] != "LMT":
            self._error(c, oid, 387, f"Unsupported order type {f[18]!r} (the stub takes LMT)")
            return
        order = StubOrder(
            self._next_perm,
            oid,
            c.client_id,
            f[23] or self.accounts[0],
            f[16],
            float(f[17]),
            f[18],
            float(f[19]),
            f[21],
            f[26],
            f[27] == "1",
            sec_type,
            legs,
            f,
        )
        if sec_type != "BAG":
            order.legs = [(self._match(f[2:14])[0].con_id, 1, "BUY", "SMART")]
        self._next_perm += 1
        self.orders.append(order)
        for conn in self._client_conns(order.client_id):
            self._send_open_order(conn, order)
            self._send_status(conn, order)
        self._try_fill(order)

    def _cancel_order(self, c: _Conn, f: list[str]) -> None:
        oid = int(f[2])
        order = next(
            (o for o in self.orders if o.client_id == c.client_id and o.order_id == oid), None
        )
        if order is None:
            self._error(c, oid, 135, f"Can't find order with id ={oid}")
            return
        if not order.working:
            self._error(
                c,
                oid,
                10148,
                f"OrderId {oid} that needs to be cancelled cannot be "
                f"cancelled, state: {order.status}.",
            )
            return
        order.status, order.done_ts = "Cancelled", self.model.now_ns
        for conn in self._client_conns(order.client_id):
            self._send_status(conn, order)
            self._error(conn, oid, 202, "Order Canceled - reason:")

    def _try_fill(self, o: StubOrder) -> None:
        if not (self.auto_fill and o.working):
            return
        side = [1.0 if a == "BUY" else -1.0 for _, _, a, _ in o.legs]
        mids = [self.model.mid(cid) for cid, *_ in o.legs]
        mid = sum(s * r * m for s, (_, r, _, _), m in zip(side, o.legs, mids, strict=True))
        if o.action == "BUY" and o.lmt < mid + self.fill_edge - 1e-9:
            return
        if o.action == "SELL" and o.lmt > mid - self.fill_edge + 1e-9:
            return
        px = [round(m, 4) for m in mids]  # leg prices: the mids, the first absorbing limit - mid
        px[0] = round(px[0] + (o.lmt - mid) / (side[0] * o.legs[0][1]), 4)
        flip = 1.0 if o.action == "BUY" else -1.0
        ts = self.model.now_ns
        for (cid, ratio, _, _), s, p in zip(o.legs, side, px, strict=True):
            k = self.model.contracts[cid]
            shares = o.quantity * ratio
            buy = s * flip > 0
            fee = round(self.commission * shares, 2)
            o.execs.append(
                StubExec(self._exec_id(o), o, k, "BOT" if buy else "SLD", shares, p, ts, fee)
            )
            q0, c0 = self.positions.get(cid, [0.0, 0.0])
            q1 = q0 + (shares if buy else -shares)
            same = q0 == 0 or (q0 > 0) == buy
            cost = (abs(q0) * c0 + shares * p * 100.0) / abs(q1) if same and q1 else c0
            self.positions[cid] = [q1, cost]
            self.cash += (-1.0 if buy else 1.0) * p * 100.0 * shares - fee
        if o.sec_type == "BAG":
            o.execs.append(
                StubExec(
                    self._exec_id(o),
                    o,
                    None,
                    "BOT" if flip > 0 else "SLD",
                    o.quantity,
                    o.lmt,
                    ts,
                    None,
                )
            )
        o.status, o.filled, o.avg_price, o.done_ts = "Filled", o.quantity, o.lmt, ts
        for conn in self._client_conns(o.client_id):
            for e in o.execs:
                self._send_exec(conn, -1, e)
            self._send_status(conn, o)
            self._send_open_order(conn, o)
            for e in o.execs:
                if e.commission is not None:
                    conn.send(59, 1, e.exec_id, e.commission, "USD", "", "", "")
        for conn in self.conns:
            if conn.positions_sub:
                for cid, *_ in o.legs:
                    self._send_position(conn, cid)
            if conn.account_sub:
                self._send_account(conn, [cid for cid, *_ in o.legs])

    def _exec_id(self, o: StubOrder) -> str:
        self._next_exec += 1
        return f"0000e{o.perm_id:07x}.{self._next_exec:08x}.01.01"

    # -- order messages (layouts of ib_async.decoder for SERVER_VERSION) -----------------------
    def _combo_fields(self, o: StubOrder) -> list[Any]:
        out: list[Any] = [len(o.legs) if o.sec_type == "BAG" else 0]
        if o.sec_type == "BAG":
            for cid, ratio, action, exch in o.legs:
                out += [cid, ratio, action, exch, 0, 0, "", -1]
        return [*out, 0, 0]  # no order combo leg prices, no smart routing params

    def _contract11(self, o: StubOrder) -> list[Any]:
        if o.sec_type == "BAG":
            return [BAG_CONID, "SPX", "BAG", "", 0.0, "", "", "SMART", "USD", "", ""]
        return self.model.contracts[o.legs[0][0]].wire11("SMART")

    def _send_open_order(self, c: _Conn, o: StubOrder) -> None:
        descr = ",".join(f"{cid}|{r if a == 'BUY' else -r}" for cid, r, a, _ in o.legs)
        fa_profile = [""] if self.server_version < 177 else []
        f: list[Any] = [
            5,
            o.order_id,
            *self._contract11(o),
            o.action,
            o.quantity,
            o.order_type,
            o.lmt,
            "",
            o.tif,
            "",
            o.account,
            "",
            0,
            o.order_ref,
            o.client_id,
            o.perm_id,
            0,
            0,
            0.0,
            "",
            "",
            "",
            "",
            "",
            *fa_profile,
        ]
        f += [
            "",
            "",
            "",
            "",
            "",
            0,
            "",
            "",
            0,
            "",
            "",
            "",
            "",
            "",
            0,
            0,
            0,
            0,
            "",
            3,
            0,
            0,
            "",
            0,
            0,
            "",
            0,
            "",
            "",
        ]  # modelCode .. deltaNeutralAuxPrice
        f += [0, 0, "", "", "", "", descr, *self._combo_fields(o)]
        f += ["", "", "", "", "", "", "", 0, 0, ""]  # scale .. algoStrategy
        f += [0, 0, o.status, "", "", "", "", "", "", "", "", "", "", "", "", "", "", 0, 0]
        f += [0]  # no conditions
        f += ["None", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, "", 0]
        f += ["", 0, 0, "", "", "", "", ""]  # duration, postToAts, autoCancelParent, (>=170)
        c.send(*f)

    def _send_completed(self, c: _Conn, o: StubOrder) -> None:
        descr = ",".join(f"{cid}|{r if a == 'BUY' else -r}" for cid, r, a, _ in o.legs)
        fa_profile = [""] if self.server_version < 177 else []
        done = dt.datetime.fromtimestamp(o.done_ts / 1e9, tz=calendar.ET)
        f: list[Any] = [
            101,
            *self._contract11(o),
            o.action,
            o.quantity,
            o.order_type,
            o.lmt,
            "",
            o.tif,
            "",
            o.account,
            "",
            0,
            o.order_ref,
            o.perm_id,
            0,
            0,
            0.0,
            "",
            "",
            "",
            "",
            *fa_profile,
        ]
        f += [
            "",
            "",
            "",
            "",
            "",
            0,
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            0,
            0,
            0,
            "",
            3,
            0,
            "",
            0,
            "",
            "",
        ]  # modelCode .. deltaNeutralAuxPrice
        f += [0, 0, "", "", descr, *self._combo_fields(o)]
        f += ["", "", "", "", "", "", 0, 0, ""]  # scale .. algoStrategy
        f += [0, o.status, 0, 0, 0]  # solicited, status, randomize x2, no conditions
        f += [
            "",
            "",
            "",
            0,
            0,
            "",
            o.filled,
            0,
            0,
            "",
            0,
            0,
            0,
            f"{done:%Y%m%d %H:%M:%S} America/New_York",
            o.status,
        ]
        f += ["", "", "", "", ""]
        c.send(*f)

    def _send_status(self, c: _Conn, o: StubOrder) -> None:
        c.send(
            3,
            o.order_id,
            o.status,
            o.filled,
            o.quantity - o.filled,
            o.avg_price,
            o.perm_id,
            0,
            o.avg_price,
            o.client_id,
            "",
            0.0,
        )

    def _send_exec(self, c: _Conn, req_id: int, e: StubExec) -> None:
        o = e.order
        when = dt.datetime.fromtimestamp(e.ts / 1e9, tz=calendar.ET)
        k12 = (
            e.contract.wire11("CBOE")
            if e.contract
            else [BAG_CONID, "SPX", "BAG", "", 0.0, "", "", "CBOE", "USD", "", ""]
        )
        c.send(
            11,
            req_id,
            o.order_id,
            *k12,
            e.exec_id,
            f"{when:%Y%m%d %H:%M:%S} America/New_York",
            o.account,
            "CBOE",
            e.side,
            e.shares,
            e.price,
            o.perm_id,
            o.client_id,
            0,
            e.shares,
            e.price,
            o.order_ref,
            "",
            "",
            "",
            2,
        )

    def _req_open_orders(self, c: _Conn, f: list[str], everyone: bool = False) -> None:
        for o in self.orders:
            if o.working and (everyone or o.client_id == c.client_id):
                self._send_open_order(c, o)
                self._send_status(c, o)
        c.send(53, 1)

    def _req_all_open_orders(self, c: _Conn, f: list[str]) -> None:
        self._req_open_orders(c, f, everyone=True)

    def _req_completed_orders(self, c: _Conn, f: list[str]) -> None:
        for o in self.orders:
            if not o.working:
                self._send_completed(c, o)
        c.send(102)

    def _req_executions(self, c: _Conn, f: list[str]) -> None:
        req_id, cid, acct, since, symbol, sec_type, _exch, side = f[2:10]
        t0 = 0
        if since:
            day, hms, *tz = since.replace("-", " ").split(" ")
            zone = calendar.ET if not tz else dt.UTC if tz[0] == "UTC" else calendar.ET
            t0 = calendar.to_ns(
                dt.datetime.strptime(day + hms, "%Y%m%d%H:%M:%S").replace(tzinfo=zone)
            )
        sent = []
        for o in self.orders:
            for e in o.execs:
                k = e.contract
                if (cid and int(cid) and o.client_id != int(cid)) or (acct and o.account != acct):
                    continue
                if e.ts < t0 or (side and e.side != side):
                    continue
                if sec_type and (k.sec_type if k else "BAG") != sec_type:
                    continue
                if symbol and symbol != "SPX":
                    continue
                self._send_exec(c, int(req_id), e)
                sent.append(e)
        for e in sent:
            if e.commission is not None:
                c.send(59, 1, e.exec_id, e.commission, "USD", "", "", "")
        c.send(55, 1, int(req_id))

    # -- account -----------------------------------------------------------------------------
    def _values(self) -> dict[str, float]:
        value = sum(q * self.model.mid(cid) * 100.0 for cid, (q, _) in self.positions.items())
        return {
            "NetLiquidation": self.cash + value,
            "TotalCashValue": self.cash,
            "AvailableFunds": self.cash,
            "BuyingPower": 4 * self.cash,
            "EquityWithLoanValue": self.cash + value,
        }

    def _send_position(self, c: _Conn, con_id: int) -> None:
        k = self.model.contracts[con_id]
        q, cost = self.positions.get(con_id, [0.0, 0.0])
        c.send(61, 3, self.accounts[0], *k.wire11(), q, cost)

    def _send_account(self, c: _Conn, con_ids: Iterable[int] | None = None) -> None:
        acct = self.accounts[0]
        for tag, v in self._values().items():
            c.send(6, 2, tag, round(v, 2), "USD", acct)
        c.send(6, 2, "AccountCode", acct, "", acct)
        for cid in con_ids if con_ids is not None else list(self.positions):
            k = self.model.contracts[cid]
            q, cost = self.positions.get(cid, [0.0, 0.0])
            mid = self.model.mid(cid)
            c.send(
                7,
                8,
                cid,
                k.symbol,
                k.sec_type,
                k.last_trade,
                k.strike,
                k.right,
                k.multiplier,
                "CBOE",
                "USD",
                k.local_symbol,
                k.trading_class,
                q,
                mid,
                q * mid * 100.0,
                cost,
                q * mid * 100.0 - q * cost,
                0.0,
                acct,
            )
        when = dt.datetime.fromtimestamp(self.model.now_ns / 1e9, tz=calendar.ET)
        c.send(8, 1, f"{when:%H:%M}")

    def _req_positions(self, c: _Conn, f: list[str]) -> None:
        c.positions_sub = True
        for cid, (q, _) in self.positions.items():
            if q:
                self._send_position(c, cid)
        c.send(62, 1)

    def _req_account_updates(self, c: _Conn, f: list[str]) -> None:
        c.account_sub = f[2] == "1"
        if c.account_sub:
            self._send_account(c, [cid for cid, (q, _) in self.positions.items() if q])
            c.send(54, 1, self.accounts[0])

    def _req_account_updates_multi(self, c: _Conn, f: list[str]) -> None:
        req_id, acct = int(f[2]), f[3] or self.accounts[0]
        for tag, v in self._values().items():
            c.send(73, 1, req_id, acct, "", tag, round(v, 2), "USD")
        c.send(74, 1, req_id)

    def _req_account_summary(self, c: _Conn, f: list[str]) -> None:
        req_id, tags = int(f[2]), set(f[4].split(","))
        for tag, v in self._values().items():
            if tag in tags:
                c.send(63, 1, req_id, self.accounts[0], tag, round(v, 2), "USD")
        c.send(64, 1, req_id)
