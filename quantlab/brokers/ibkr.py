"""Interactive Brokers through ``ib_async`` (TWS or IB Gateway): the live runner's real broker.

:class:`IBKRBroker` implements :class:`quantlab.brokers.base.Broker` over ``ib_async.IB``'s
blocking API.

* **Session.** :meth:`IBKRBroker.connect` connects (``ib_async`` syncs positions, open and
  completed orders, account values and today's executions), checks the account and asks for all
  clients' open orders. A lost connection is re-established with exponential backoff by the
  next call that needs it; :meth:`IBKRBroker.place_combo` never reconnects or sends while
  disconnected (or while TWS reports its link to IB down, error 1100): it raises
  :class:`BrokerDisconnected`, and the runner's restart/resend path sends the order once the
  session is back (idempotently, see below).
* **Account.** The id comes from the config or the environment, never from code, and is
  never logged (ib_async's records are redacted). An id that does not start with ``D`` (IB
  paper accounts are ``DU...``) is refused with a :class:`~quantlab.errors.ConfigError`
  unless ``live=True``.
* **Orders.** A combo is a BAG (symbol SPX, SMART, USD) with one leg per OCC symbol (by conId,
  BUY for ratio > 0, SELL for < 0) and a ``LimitOrder`` BUY whose ``lmtPrice`` is MINUS the
  protocol's net price: IB prices a credit BAG negatively. ``orderRef`` carries the runner's
  ``order_ref``; placing a ref that TWS already knows (open or completed orders, executions
  of the day, this session's trades, also after a restart or from another client id) returns
  the existing order's id and sends nothing. Order ids are IB ``permId`` strings.
  :meth:`IBKRBroker.cancel` waits for TWS to confirm a terminal state, so a re-price never
  races a fill.
* **Fills.** The per-leg executions of an order (and its BAG line) make one
  :class:`~quantlab.brokers.base.Fill`: leg prices are the legs' average execution prices, the
  net price is rebuilt from them (+ credit), fees are the sum of the commission reports. An
  order reads ``filled`` only once those executions are in.
* **Pacing.** Every request goes through a token bucket (:class:`Pacer`): never more than
  ``pacing_per_s`` messages (IB's limit is 50) in any second; ``ib_async``'s own throttle is
  set to the same budget as a backstop.
* **Market data** (chain snapshots, streamed quotes of held legs, delayed fallback,
  settlement values): :mod:`quantlab.brokers._ibkr_market`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quantlab import calendar
from quantlab.brokers._ibkr_market import MarketDataMixin, _et_day
from quantlab.brokers._ibkr_util import (
    DELAYED_NOTICE,
    LINK_LOST,
    LINK_RESTORED,
    MARKET_DATA_DENIED,
    REDACTOR,
    Pacer,
    bag_legs,
    check_account,
    exec_ns,
    mask_account,
    reject_reason,
    trade_status,
)
from quantlab.brokers.base import TERMINAL, AccountSummary, ComboLeg, Fill, Order, Position
from quantlab.errors import BrokerDisconnected, BrokerError, ConfigError, InputError
from quantlab.strategy.occ import parse_occ

if TYPE_CHECKING:
    from quantlab.brokers.ibkr_config import IBKRConfig
    from quantlab.strategy.spec import DTESpec, StrategySpec

log = logging.getLogger("quantlab.brokers.ibkr")
EXEC_GRACE_NS = 2_000_000_000  # executions carry whole seconds of TWS's clock


@dataclass
class _Rec:
    """What this process placed under an order_ref."""

    legs: tuple[ComboLeg, ...]
    quantity: int
    limit: float
    placed_ts: int
    perm_id: int = 0


class IBKRBroker(MarketDataMixin):
    """The Broker protocol over ``ib_async.IB``; see the module docstring.

    Parameters
    ----------
    host, port, client_id, timeout
        The TWS / IB Gateway API socket (7497 TWS paper, 4002 IB Gateway paper) and the
        connect timeout in seconds.
    account : str, optional
        The IB account to trade (default: the gateway's only managed account).
    live : bool
        Allow an account that does not look like a paper account.
    roots, dte, max_expiries, strike_window
        What :meth:`chain_snapshot` scans: trading classes, the strategy's DTE rule (default:
        expiries 0-7 days out), how many expiries (the preferred first) and the strike window
        in index points around the index.
    market_data_type : int
        1 live, 2 frozen, 3 delayed, 4 delayed-frozen (live falls back to delayed when IB
        reports no subscription).
    pacing_per_s : float
        Outgoing messages per second (<= 50).
    max_lines : int
        Market-data lines the adapter may hold (streams + snapshot batch).
    request_timeout, quote_timeout : float
        Seconds to wait for a blocking request / the first ticks of a new stream.
    reconnect_attempts, backoff_s, backoff_max_s
        Connection attempts per :meth:`connect` and the exponential backoff between them.
    clock : callable () -> int ns, optional
        The broker clock (default wall clock; tests inject one).
    sleep : callable (seconds), optional
        How to wait between reconnect attempts (default ``time.sleep``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        timeout: float = 10.0,
        *,
        account: str | None = None,
        live: bool = False,
        roots: Iterable[str] = ("SPXW",),
        dte: DTESpec | None = None,
        max_expiries: int = 2,
        strike_window: float = 200.0,
        market_data_type: int = 1,
        pacing_per_s: float = 45.0,
        max_lines: int = 90,
        request_timeout: float = 15.0,
        quote_timeout: float = 3.0,
        stream_idle_s: float = 300.0,
        reconnect_attempts: int = 6,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        clock: Callable[[], int] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        from ib_async import IB

        if market_data_type not in (1, 2, 3, 4):
            raise ConfigError(f"market_data_type must be 1, 2, 3 or 4 (got {market_data_type!r}).")
        if not 1 <= pacing_per_s <= 50:
            raise ConfigError(f"pacing_per_s must be in [1, 50] messages/s (got {pacing_per_s!r}).")
        bad_roots = [r for r in roots if r not in ("SPX", "SPXW")]
        if bad_roots:
            raise ConfigError(f"roots must be SPX and/or SPXW (got {bad_roots}).")
        if reconnect_attempts < 1 or backoff_s <= 0 or backoff_max_s < backoff_s:
            raise ConfigError(
                "reconnect_attempts must be >= 1 and 0 < backoff_s <= backoff_max_s "
                f"(got {reconnect_attempts}, {backoff_s}, {backoff_max_s})."
            )
        if account is not None:
            check_account(account, live)
        self.host, self.port = host, int(port)
        self.client_id, self.timeout = int(client_id), float(timeout)
        self.account, self.live = account, live
        self.roots, self.dte, self.max_expiries = tuple(roots), dte, int(max_expiries)
        self.strike_window, self.market_data_type = float(strike_window), int(market_data_type)
        self.max_lines, self.request_timeout = int(max_lines), float(request_timeout)
        self.quote_timeout, self.stream_idle_s = float(quote_timeout), float(stream_idle_s)
        self.reconnect_attempts, self.backoff_s = int(reconnect_attempts), float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self._clock, self._sleep = clock, sleep or time.sleep
        self.ib = IB()
        self.ib.RequestTimeout = self.request_timeout
        self.ib.RaiseRequestErrors = False
        self._pacer = Pacer(pacing_per_s, sleep=self._wait)
        self.ib.client.MaxRequests = self._pacer.capacity
        self.ib.client.RequestsInterval = self._pacer.window
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected
        REDACTOR.install()
        if account:
            REDACTOR.add([account])
        self.errors: deque[tuple[int, int, str, Any]] = deque(maxlen=200)
        self._denied: set[int] = set()
        self._link_down = False
        self._ever_connected = False
        self._closing = False
        self.reconnects = 0
        self._recs: dict[str, _Rec] = {}
        self._fees_waited: set[str] = set()
        self._index = None
        self._params = None
        self._by_occ: dict[str, Any] = {}
        self._by_expiry: dict[tuple[str, str, str], dict[float, Any]] = {}
        self._streams: dict[str, list[Any]] = {}
        self._chain_cache = None
        self._settlements: dict[tuple[str, dt.date], float] = {}

    @classmethod
    def from_config(
        cls,
        cfg: IBKRConfig,
        *,
        account: str | None = None,
        live: bool = False,
        spec: StrategySpec | None = None,
        clock: Callable[[], int] | None = None,
    ) -> IBKRBroker:
        """Build from the ``ibkr:`` config section. The account is ``account`` when given,
        else the environment variable ``cfg.account_env``, else the gateway's only account;
        roots and DTE rule come from the strategy ``spec``."""
        acct = account or os.environ.get(cfg.account_env) or None
        return cls(
            cfg.host,
            cfg.port,
            cfg.client_id,
            cfg.connect_timeout,
            account=acct,
            live=live,
            roots=spec.roots if spec else ("SPXW",),
            dte=spec.dte if spec else None,
            max_expiries=cfg.max_expiries,
            strike_window=cfg.strike_window,
            market_data_type=cfg.market_data_type,
            pacing_per_s=cfg.pacing_per_s,
            max_lines=cfg.max_market_data_lines,
            request_timeout=cfg.request_timeout,
            reconnect_attempts=cfg.reconnect_attempts,
            backoff_s=cfg.reconnect_backoff_s,
            backoff_max_s=cfg.reconnect_backoff_max_s,
            clock=clock,
        )

    # -- plumbing ---------------------------------------------------------------------------
    def _wait(self, seconds: float) -> None:
        if self.ib.isConnected():
            self.ib.sleep(seconds)
        else:
            time.sleep(seconds)

    def _pace(self, n: int = 1) -> None:
        self._pacer.acquire(n)

    def _pump(self) -> None:
        """Let ib_async read what the socket has (events are handled only while it runs)."""
        self.ib.sleep(0)
        self.ib.sleep(0)

    def _wait_until(self, cond: Callable[[], bool], timeout: float) -> bool:
        """Run ib_async's event loop until ``cond()`` holds (True), ``timeout`` seconds pass or
        the connection drops (False: ``cond()`` still false).

        Not ``while not cond(): ib.waitOnUpdate()``: that misses updates. waitOnUpdate awaits
        ``updateEvent`` through a task that subscribes only once the loop runs, and in that
        same loop iteration the socket callback may already handle a reply that is waiting in
        the socket (TWS answers a cancel or an order at once) and emit ``updateEvent`` with
        nobody listening; the wait then lasts until the next, unrelated update or the timeout.
        Here the wake-up is subscribed before the loop runs and ``cond()`` is checked after
        every update."""
        from ib_async import util

        end = time.monotonic() + timeout
        loop = util.getLoop()
        pending: list[asyncio.Future[None]] = []

        def wake(*_: Any) -> None:
            for fut in pending:
                if not fut.done():
                    fut.set_result(None)

        self.ib.updateEvent += wake
        self.ib.disconnectedEvent += wake
        try:
            while not cond():
                left = end - time.monotonic()
                if left <= 0 or not self.ib.isConnected():
                    return False
                pending[:] = [loop.create_future()]
                try:
                    util.run(asyncio.wait_for(pending[0], left))
                except TimeoutError:
                    pass
            return True
        finally:
            self.ib.updateEvent -= wake
            self.ib.disconnectedEvent -= wake

    def _req(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except TimeoutError:
            raise BrokerError(
                f"IB did not answer {what} within {self.request_timeout:g} s."
            ) from None
        except ConnectionError as exc:
            raise BrokerDisconnected(f"connection to IB lost during {what}: {exc}") from None

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        self.errors.append((req_id, code, message, contract))
        if code in MARKET_DATA_DENIED and contract is not None and contract.conId:
            self._denied.add(contract.conId)
        elif code == DELAYED_NOTICE:
            log.info("IB: live market data not subscribed; delayed data shown (10167)")
        elif code == LINK_LOST:
            self._link_down = True
            log.warning("IB: TWS lost its connection to IB (1100): no new orders until restored")
        elif code in LINK_RESTORED:
            self._link_down = False

    def _on_disconnected(self) -> None:
        if self._ever_connected and not self._closing:
            log.warning("IB: disconnected from %s:%s", self.host, self.port)
        for occ in self._streams:
            self._streams[occ][1] = None

    def _recent_error(self, contract: Any) -> str:
        for _, code, msg, c in reversed(self.errors):
            if c is contract:
                return f" (IB error {code}: {msg})"
        return ""

    def now(self) -> int:
        return self._clock() if self._clock is not None else time.time_ns()

    # -- session ----------------------------------------------------------------------------
    def connected(self) -> bool:
        """True when the API session is up (after reading what the socket has)."""
        self._pump()
        return self.ib.isConnected()

    def connect(self) -> None:
        """Connect (idempotent), retrying with exponential backoff; BrokerDisconnected when
        every attempt fails. ConfigError (bad account) is raised at once."""
        if self.connected():
            return
        delay, last = self.backoff_s, None
        for attempt in range(1, self.reconnect_attempts + 1):
            try:
                self._open()
                if self._ever_connected:
                    self.reconnects += 1
                    log.warning(
                        "IB: reconnected to %s:%s (attempt %d)", self.host, self.port, attempt
                    )
                self._ever_connected = True
                return
            except (TimeoutError, OSError, BrokerDisconnected) as exc:
                last = exc
                self.ib.disconnect()
            if attempt < self.reconnect_attempts:
                log.warning(
                    "IB: connect to %s:%s failed (%s); retrying in %.2f s",
                    self.host,
                    self.port,
                    type(last).__name__,
                    delay,
                )
                self._sleep(delay)
                delay = min(delay * 2.0, self.backoff_max_s)
        raise BrokerDisconnected(
            f"cannot connect to TWS/IB Gateway at {self.host}:{self.port} (client id "
            f"{self.client_id}) after {self.reconnect_attempts} attempts: {last!r}. Is the API "
            "enabled and the port right (7497 TWS paper, 4002 IB Gateway paper)?"
        )

    def _open(self) -> None:
        self._pace(8)  # startApi and the start-up sync requests
        # raiseSyncErrors: a start-up sync that timed out (open/completed orders, executions)
        # fails the connection; with an incomplete list a restart could re-send an order
        self.ib.connect(
            self.host,
            self.port,
            clientId=self.client_id,
            timeout=self.timeout,
            account=self.account or "",
            raiseSyncErrors=True,
        )
        accounts = self.ib.managedAccounts()
        REDACTOR.add(accounts)
        try:
            if self.account is None:
                if len(accounts) != 1:
                    raise ConfigError(
                        f"the gateway manages {len(accounts)} accounts: set the "
                        "account (config 'account' or the environment)."
                    )
                check_account(accounts[0], self.live)
                self.account = accounts[0]
            elif self.account not in accounts:
                raise ConfigError(
                    f"account {mask_account(self.account)} is not managed by the "
                    f"gateway at {self.host}:{self.port}."
                )
        except ConfigError:
            self.ib.disconnect()
            raise
        self._pace(1)
        self._req("reqAllOpenOrders", self.ib.reqAllOpenOrders)  # other clients' working orders
        if self.market_data_type != 1:
            self._pace(1)
            self.ib.reqMarketDataType(self.market_data_type)
        streams, self._streams = self._streams, {}
        for occ, (c, _, stamp) in streams.items():  # a new session: subscribe again
            self._subscribe(occ, c, stamp)
        if streams:
            self._await_ticks(list(streams))
        self._link_down = False

    def _ensure(self) -> None:
        if not self.connected():
            self.connect()

    def disconnect(self) -> None:
        """Cancel the streams and close the session (idempotent)."""
        self._closing = True
        try:
            self.release()
            self.ib.disconnect()
        finally:
            self._closing = False

    def start_day(self, day: dt.date) -> None:
        """IBKR trades the current session only: ``day`` must be today (ET, broker clock)."""
        today = _et_day(self.now())
        if day != today:
            raise InputError(
                f"the IBKR broker trades the current session only: asked for {day}, "
                f"today is {today}."
            )

    # -- account ----------------------------------------------------------------------------
    def account_summary(self) -> AccountSummary:
        """NetLiquidation and TotalCashValue (USD) of the account."""
        self._ensure()
        acct = self.account or ""
        vals = {(v.tag, v.currency): v.value for v in self.ib.accountValues(acct)}
        if ("NetLiquidation", "USD") not in vals:
            self._pace(1)
            got = self._req("account summary", self.ib.accountSummary, acct)
            vals.update({(v.tag, v.currency): v.value for v in got})

        def val(tag: str) -> float:
            for cur in ("USD", "BASE"):
                if (tag, cur) in vals:
                    return float(vals[(tag, cur)])
            raise BrokerError(f"IB sent no {tag} for the account.")

        return AccountSummary(acct, val("NetLiquidation"), val("TotalCashValue"))

    def positions(self) -> list[Position]:
        """Open SPX/SPXW option positions (average price per share)."""
        self._ensure()
        out = []
        for p in self.ib.positions(self.account or ""):
            c = p.contract
            if c.secType == "OPT" and c.symbol == "SPX" and p.position:
                occ = c.localSymbol if len(c.localSymbol or "") == 21 else self._occ_of(c.conId)
                out.append(Position(occ, int(p.position), float(p.avgCost) / 100.0))
        return out

    def _held_occs(self) -> set[str]:
        held = {p.contract.localSymbol for p in self.ib.positions(self.account or "") if p.position}
        for t in self.ib.openTrades():
            held.update(self._occ_of(leg.conId) for leg in t.contract.comboLegs or [])
        return held

    def _occ_of(self, con_id: int) -> str:
        for occ, c in self._by_occ.items():
            if c.conId == con_id:
                return occ
        for f in self.ib.fills():
            if f.contract.conId == con_id and f.contract.localSymbol:
                return f.contract.localSymbol
        from ib_async import Contract as IBContract

        q = IBContract(conId=int(con_id))
        self._pace(1)
        got = self._req(f"qualify conId {con_id}", self.ib.qualifyContracts, q)
        if not got or got[0] is None:
            raise BrokerError(f"IB has no contract with conId {con_id}{self._recent_error(q)}")
        self._by_occ[q.localSymbol] = q
        return q.localSymbol

    # -- orders -----------------------------------------------------------------------------
    def place_combo(
        self, legs: tuple[ComboLeg, ...], quantity: int, limit_price: float, order_ref: str
    ) -> str:
        """Send a BAG limit order (IB price = -limit_price); idempotent on ``order_ref``."""
        if not legs or any(leg.ratio == 0 for leg in legs):
            raise InputError(f"a combo needs legs with nonzero ratios (got {legs!r}).")
        for leg in legs:
            parse_occ(leg.occ)
        if int(quantity) < 1:
            raise InputError(f"quantity must be >= 1 combo unit (got {quantity!r}).")
        if not math.isfinite(limit_price):
            raise InputError(f"limit_price must be finite (got {limit_price!r}).")
        if not order_ref:
            raise InputError("order_ref must be a non-empty string (the idempotency key).")
        if not self.connected() or self._link_down:
            raise BrokerDisconnected(
                f"not connected to IB ({self.host}:{self.port}): order {order_ref!r} NOT sent. "
                "No new orders while disconnected; it is sent once the session is back."
            )
        known = self._id_of_ref(order_ref)
        if known is not None:
            return known
        con_ids = [self.contract_for(leg.occ).conId for leg in legs]
        from ib_async import Contract as IBContract
        from ib_async import LimitOrder

        bag = IBContract(
            secType="BAG",
            symbol="SPX",
            exchange="SMART",
            currency="USD",
            comboLegs=bag_legs(legs, con_ids),
        )
        px = round(-float(limit_price), 2) + 0.0  # IB: a credit is a negative BUY price
        order = LimitOrder(
            "BUY",
            int(quantity),
            px,
            orderRef=order_ref,
            transmit=True,
            tif="DAY",
            account=self.account or "",
        )
        rec = _Rec(tuple(legs), int(quantity), float(limit_price), self.now())
        self._recs[order_ref] = rec
        self._pace(1)
        trade = self.ib.placeOrder(bag, order)
        if (
            not self._wait_until(
                lambda: bool(trade.order.permId) or trade.isDone(), self.request_timeout
            )
            and not self.ib.isConnected()
        ):
            raise BrokerDisconnected(
                f"connection to IB lost while sending order {order_ref!r}: it may or may not "
                "have reached IB; the next session reconciles it by orderRef."
            )
        if trade.order.permId:
            rec.perm_id = trade.order.permId
            return str(trade.order.permId)
        if trade.isDone():
            log.warning("IB rejected order %s: %s", order_ref, reject_reason(trade))
            return f"ref:{order_ref}"
        raise BrokerError(
            f"order {order_ref!r} was sent but IB did not acknowledge it within "
            f"{self.request_timeout:g} s; a restart reconciles it by orderRef."
        )

    def _trade_of(self, ref: str) -> Any:
        hits = [t for t in self.ib.trades() if t.order.orderRef == ref]
        hits.sort(key=lambda t: (t.order.permId != 0, not t.isDone()))
        return hits[-1] if hits else None

    def _fills_of(self, ref: str) -> list[Any]:
        return [f for f in self.ib.fills() if f.execution.orderRef == ref]

    def _id_of_ref(self, ref: str) -> str | None:
        """The id of an order TWS already knows under ``ref`` (None when it knows none)."""
        trade, fills = self._trade_of(ref), self._fills_of(ref)
        perm = (trade.order.permId if trade is not None else 0) or next(
            (f.execution.permId for f in fills if f.execution.permId), 0
        )
        if perm:
            return str(perm)
        if trade is not None:
            return f"ref:{ref}"
        return None

    def _ref_of(self, order_id: str) -> str:
        if order_id.startswith("ref:"):
            return order_id[4:]
        for ref, rec in self._recs.items():
            if str(rec.perm_id) == order_id:
                return ref
        for t in self.ib.trades():
            if str(t.order.permId) == order_id and t.order.orderRef:
                return str(t.order.orderRef)
        for f in self.ib.fills():
            if str(f.execution.permId) == order_id and f.execution.orderRef:
                return str(f.execution.orderRef)
        raise InputError(
            f"unknown order id {order_id!r}: not among this gateway's open or "
            "completed orders nor today's executions."
        )

    def _legs_of(self, ref: str, trade: Any, fills: list[Any]) -> tuple[ComboLeg, ...]:
        if ref in self._recs:
            return self._recs[ref].legs
        if trade is not None and trade.contract.comboLegs:
            sign = 1 if trade.order.action == "BUY" else -1
            return tuple(
                ComboLeg(
                    self._occ_of(leg.conId), sign * leg.ratio * (1 if leg.action == "BUY" else -1)
                )
                for leg in trade.contract.comboLegs
            )
        bag = sum(f.execution.shares for f in fills if f.contract.secType == "BAG") or 1.0
        return tuple(
            ComboLeg(
                f.contract.localSymbol,
                round(f.execution.shares / bag) * (1 if f.execution.side == "BOT" else -1),
            )
            for f in fills
            if f.contract.secType == "OPT"
        )

    def _combo_fill(self, ref: str, trade: Any, wait: bool = True) -> Fill | None:
        """The whole-combo fill of ``ref`` once all its leg executions are in (None before)."""
        fills = self._fills_of(ref)
        legs = self._legs_of(ref, trade, fills)
        qty = trade.orderStatus.filled if trade is not None and trade.orderStatus.filled else 0
        if not qty:
            qty = sum(f.execution.shares for f in fills if f.contract.secType == "BAG")
        if trade is not None and not trade.isDone() and qty < trade.order.totalQuantity:
            return None  # partly filled and still working: not a fill of the order yet
        by_occ: dict[str, list[Any]] = {}
        for f in fills:
            if f.contract.secType == "OPT":
                by_occ.setdefault(f.contract.localSymbol, []).append(f)
        if not qty or any(
            sum(f.execution.shares for f in by_occ.get(leg.occ, [])) < qty * abs(leg.ratio) - 1e-9
            for leg in legs
        ):
            return None
        if wait and ref not in self._fees_waited:  # commission reports trail the executions
            self._fees_waited.add(ref)
            if not self._wait_until(
                lambda: all(f.commissionReport.execId for fs in by_occ.values() for f in fs),
                self.request_timeout,
            ):
                log.warning("IB: commission reports missing for order %s: fees incomplete", ref)
        px = []
        for leg in legs:
            fs = by_occ[leg.occ]
            px.append(
                sum(f.execution.shares * f.execution.price for f in fs)
                / sum(f.execution.shares for f in fs)
            )
        net = 0.0
        for leg, p in zip(legs, px, strict=True):
            net += -leg.ratio * p
        bag = [f for f in fills if f.contract.secType == "BAG"]
        last = max(fills, key=exec_ns)
        perm = next((f.execution.permId for f in fills if f.execution.permId), 0)
        return Fill(
            (bag[-1] if bag else last).execution.execId,
            str(perm) if perm else f"ref:{ref}",
            ref,
            exec_ns(last),
            legs,
            int(qty),
            round(net, 6),
            tuple(px),
            round(sum(f.commissionReport.commission for f in fills), 6),
        )

    def order_status(self, order_id: str) -> Order:
        """The order's state; ``filled`` once its executions are in."""
        self._ensure()
        ref = self._ref_of(order_id)
        trade = self._trade_of(ref)
        fill = self._combo_fill(ref, trade)
        status = trade_status(trade) if trade is not None else "submitted"
        if fill is not None:
            status = "filled"  # whole, or partly filled and then cancelled (fill.quantity)
        elif status == "filled":
            pass  # TWS said Filled and the executions are not in yet: the runner polls again
        elif trade is None and not self._fills_of(ref):
            raise InputError(f"unknown order id {order_id!r}.")
        rec = self._recs.get(ref)
        legs = rec.legs if rec else self._legs_of(ref, trade, self._fills_of(ref))
        qty = rec.quantity if rec else int(trade.order.totalQuantity if trade else fill.quantity)  # type: ignore[union-attr]
        limit = rec.limit if rec else (-float(trade.order.lmtPrice) if trade else math.nan)
        placed = (
            rec.placed_ts
            if rec
            else (calendar.to_ns(trade.log[0].time) if trade is not None and trade.log else 0)
        )
        done = int(trade.orderStatus.filled) if trade is not None else 0
        return Order(
            order_id,
            ref,
            legs,
            qty,
            limit,
            placed,
            status,  # type: ignore[arg-type]
            fill.ts if fill else None,
            fill.price if fill else None,
            max(done, fill.quantity if fill else 0),
        )

    def cancel(self, order_id: str) -> None:
        """Cancel a working order and wait until TWS confirms a terminal state (BrokerError
        when it does not within ``request_timeout``); no-op when already terminal."""
        self._ensure()
        trade = self._trade_of(self._ref_of(order_id))
        if trade is None or trade.isDone():
            return
        self._pace(1)
        self.ib.cancelOrder(trade.order)  # PendingCancel until TWS confirms
        # done: orderStatus Cancelled / ApiCancelled (or Filled first), or error 202 alone
        # (ib_async marks the trade Cancelled on it)
        if not self._wait_until(trade.isDone, self.request_timeout):
            if not self.ib.isConnected():
                raise BrokerDisconnected(
                    f"connection to IB lost while cancelling order {order_id} (status "
                    f"{trade.orderStatus.status}); the next session reconciles it by orderRef."
                )
            raise BrokerError(
                f"IB did not confirm the cancel of order {order_id} within "
                f"{self.request_timeout:g} s (status {trade.orderStatus.status})."
            )

    def executions_since(self, ts: int) -> list[Fill]:
        """Whole-combo fills of orders with an orderRef executed at or after ``ts``, in time
        order. TWS stamps whole seconds of its own clock: executions up to two seconds earlier
        count, and so do all executions of orders this process placed at or after ``ts``."""
        self._ensure()
        mine = {ref for ref, rec in self._recs.items() if rec.placed_ts >= ts}
        refs = {
            f.execution.orderRef
            for f in self.ib.fills()
            if f.execution.orderRef
            and (f.execution.orderRef in mine or exec_ns(f) >= ts - EXEC_GRACE_NS)
        }
        out = [self._combo_fill(ref, self._trade_of(ref)) for ref in sorted(refs)]
        return sorted((f for f in out if f is not None), key=lambda f: f.ts)

    def open_orders(self) -> list[Order]:
        """Orders with an orderRef that are not terminal yet."""
        self._ensure()
        out = []
        for t in self.ib.openTrades():
            if t.order.orderRef:
                o = self.order_status(
                    str(t.order.permId) if t.order.permId else f"ref:{t.order.orderRef}"
                )
                if o.status not in TERMINAL:
                    out.append(o)
        return out


__all__ = ["BrokerDisconnected", "BrokerError", "IBKRBroker", "Pacer"]
