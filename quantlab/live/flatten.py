"""``quantlab live flatten``: close every open position of the strategy NOW.

:func:`flatten` works on a connected-or-not broker and the runner's journal (the runner must
not be running: it holds the journal). Its steps:

1. **Working orders.** Every working order of the strategy is cancelled: the entry and exit
   orders of the journal's open trades, then any order at the broker whose ``order_ref`` follows
   the strategy's scheme (:func:`owns_order_ref`; an orphan of a crash). An order that filled
   before its cancel is journaled as the runner does (:meth:`LiveRunner.record_fill`): an entry
   becomes an open trade to close, an exit closes its trade with its own exit reason. An entry
   cancelled unfilled (or never sent) is dropped, as the kill switch drops one. A partly filled
   exit order is left working (re-placing it would over-close) and its trade reported open.
2. **Cross-check.** Each open trade's legs x contracts must be held at the broker (same sign,
   enough contracts; trades take their share in trade id order). A trade that is not held is
   NOT traded (closing a position that is not there would open one) and is reported still
   open; broker positions the journal does not explain are reported and left alone.
3. **Close and re-price.** Each held trade gets one combo limit order closing all its
   contracts (its legs reversed), ``order_ref`` ``<trade id>-flatten-<n>`` (``n`` counts the
   trade's flatten orders in the journal, so a second flatten never reuses a ref). **Price rule**
   (:func:`close_limit`) at attempt ``a`` = 0, 1, ...: the fill model's exit price of the combo
   on fresh quotes (the price the runner sends its exits at: with ``mid_k`` the short leg is
   bought back at ``mid + k x spread`` and the long leg sold at ``mid - k x spread``; ``natural``
   crosses the whole spread), minus ``a x step`` (``step`` = the config's ``reprice_step``, one
   SPX tick by default), rounded down to the 0.05 combo tick (against the trader: a debit only
   grows). Without a usable quote the previous limit minus ``step`` is sent (no previous one:
   the attempt is skipped). All orders of an attempt are sent, then polled for ``wait_s``
   seconds; those not filled are cancelled and re-priced, up to ``attempts`` orders per trade.
   The last unfilled order is cancelled too: its trade is STILL OPEN, back in state ``open`` in
   the journal (the runner manages it again when it restarts).
4. **Journal** (as the runner writes it, so ``status``, P&L, fill k and restarts read it as any
   exit): the intent (``open_trades`` state ``closing``, exit reason ``flatten``) before each
   send, one ``orders`` row per order (purpose ``flatten``) and its cancel, the ``fills``, the
   trade record with ``exit_reason`` ``flatten``, and ``events`` of kind ``flatten``. A flatten
   exit is live only: the day's reconciliation against the backtester reports it as a break.

The simulated broker lives inside its replay process: :func:`open_broker` rebuilds one at the
journal's last processed minute holding the journal's open positions.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quantlab import calendar
from quantlab.brokers.base import TERMINAL, Broker, ComboLeg, Fill, Position
from quantlab.errors import BrokerDisconnected, BrokerError, ConfigError, DataError, InputError
from quantlab.live.journal import Journal
from quantlab.live.loop import LiveRunner
from quantlab.live.notify import Notifier, Notify
from quantlab.money import CENTS_PER_DOLLAR, NO_NET, cents, to_cents

if TYPE_CHECKING:
    from quantlab.brokers.simulated import SimulatedBroker
    from quantlab.execution import FillModel
    from quantlab.live.config import LiveConfig
    from quantlab.strategy.spec import StrategySpec

PURPOSE = "flatten"
COMBO_TICK_C = 5  # SPX complex orders trade in 0.05 increments
_REF = re.compile(r"^[0-9a-f]{16}-(?P<hash>[0-9a-f]{6})-(opening|closing|flatten)-\d+$")


def owns_order_ref(ref: str | None, config_hash: str) -> bool:
    """True when ``ref`` is one of this strategy's order refs: ``<trade id>-<purpose>-<n>``
    where the trade id is ``<candidate id>-<config hash[:6]>`` (:func:`quantlab.strategy.ids.
    trade_id`), as the runner and :func:`flatten` name their orders.

    >>> owns_order_ref("0123456789abcdef-a1b2c3-closing-2", "a1b2c3d4e5f60718")
    True
    >>> owns_order_ref("0123456789abcdef-ffffff-opening-0", "a1b2c3d4e5f60718")
    False
    """
    m = _REF.match(ref or "")
    return m is not None and m["hash"] == config_hash[:6]


def close_limit(fills: FillModel, bid: Any, ask: Any, ratio: Any, concession_c: int = 0) -> float:
    """Limit of a closing combo (net per share, + credit / - debit): the fill model's price of
    the combo with legs ``ratio`` on ``bid``/``ask``, minus ``concession_c`` cents, rounded down
    to the 0.05 combo tick (against the trader). NaN when a leg has no usable quote.

    >>> from quantlab.execution import FillModel
    >>> close_limit(FillModel(kind="natural"), [1.0, 0.4], [1.2, 0.5], [1, -1], 5)
    -0.85
    """
    net_c = fills.net_cents(to_cents(bid), to_cents(ask), ratio)
    if net_c == NO_NET:
        return math.nan
    return (net_c - int(concession_c)) // COMBO_TICK_C * COMBO_TICK_C / CENTS_PER_DOLLAR


# -- the report ---------------------------------------------------------------------------------
@dataclass
class FlattenLine:
    """One trade that was open when the flatten started."""

    trade_id: str
    contracts: int
    legs: str
    closed: bool = False
    exit_reason: str = ""  # "flatten", or the reason of a working exit that filled first
    attempts: int = 0  # flatten orders sent
    limit: float | None = None  # last limit sent (net per share, + credit / - debit)
    price: float | None = None  # fill (net per share)
    pnl: float | None = None
    note: str = ""


@dataclass
class FlattenReport:
    """What :func:`flatten` did: per trade, cancelled working orders, unexplained positions."""

    account: str
    mode: str
    ts: int
    lines: list[FlattenLine] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # refs of working orders found
    unmatched: dict[str, int] = field(default_factory=dict)  # broker minus journal, by OCC

    @property
    def closed(self) -> list[FlattenLine]:
        return [ln for ln in self.lines if ln.closed]

    @property
    def still_open(self) -> list[FlattenLine]:
        return [ln for ln in self.lines if not ln.closed]

    @property
    def ok(self) -> bool:
        """Nothing of the strategy is still open."""
        return not self.still_open

    def print(self, console: Any) -> None:
        """Headline, the closed and the still open trades, orders cancelled, positions the
        journal does not explain (a rich console, e.g. :func:`quantlab.console.wide_console`)."""
        from rich.table import Table

        when = dt.datetime.fromtimestamp(self.ts / 1e9, tz=calendar.ET)
        head = f"[bold]{self.account} [{self.mode}] flatten at {when:%Y-%m-%d %H:%M:%S} ET[/bold]"
        if not self.lines and not self.cancelled:
            console.print(f"{head}: nothing open (no open trade, no working order)")
        else:
            n_open = len(self.still_open)
            tail = f"[red]{n_open} STILL OPEN[/red]" if n_open else "0 still open"
            console.print(f"{head}: {len(self.closed)} closed, {tail}", highlight=False)
        if self.cancelled:
            console.print(f"working orders cancelled: {', '.join(self.cancelled)}")
        cols = ("trade", "n", "legs", "orders", "limit", "fill", "P&L", "note")
        for title, rows in (("Closed", self.closed), ("STILL OPEN", self.still_open)):
            if not rows:
                continue
            t = Table(title=title, header_style="bold")
            for h in cols:
                t.add_column(h)
            for ln in rows:
                t.add_row(
                    ln.trade_id,
                    str(ln.contracts),
                    ln.legs,
                    str(ln.attempts),
                    _num(ln.limit),
                    _num(ln.price),
                    "" if ln.pnl is None else f"{ln.pnl:,.2f}",
                    ln.note or ln.exit_reason,
                )
            console.print(t)
        for occ, q in sorted(self.unmatched.items()):
            console.print(f"[yellow]broker position not in the journal:[/yellow] {q:+d} {occ}")


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


# -- the flatten --------------------------------------------------------------------------------
@dataclass
class _Ctx:
    run: LiveRunner
    wait_s: float
    poll_s: float
    step_c: int
    sleep: Callable[[float], Any]
    report: FlattenReport
    lines: dict[str, FlattenLine] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # next flatten order number per trade

    @property
    def broker(self) -> Broker:
        return self.run.broker

    @property
    def journal(self) -> Journal:
        return self.run.journal

    @property
    def mode(self) -> str:
        return self.run.mode


def flatten(
    config: LiveConfig,
    broker: Broker,
    journal: Journal,
    *,
    spec: StrategySpec | None = None,
    attempts: int = 5,
    wait_s: float = 3.0,
    poll_s: float = 0.2,
    notify: Notify | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> FlattenReport:
    """Close every open position of the strategy now; see the module docstring.

    Parameters
    ----------
    config : LiveConfig
        The runner's config (mode, ``reprice_step``; its meta-labeler is not loaded).
    broker : Broker
        Connected here. The simulated broker is not advanced: its quotes are those of its clock.
    journal : Journal
        The runner's journal (not held by a running runner).
    spec : StrategySpec, optional
        Default: ``config.spec()``; its fill model prices the closes.
    attempts : int
        Orders per trade at most (>= 1): the first and its re-prices.
    wait_s, poll_s : float
        Seconds an order works before it is cancelled and re-priced; seconds between polls.
    notify : callable(kind, message, data), optional
        Default: the config's :class:`Notifier`.
    sleep : callable(seconds)
        How to wait between polls.

    Returns
    -------
    FlattenReport
        ``ok`` is False when anything is still open.
    """
    if not 1 <= int(attempts) <= 50:
        raise InputError(f"attempts must be in [1, 50] (got {attempts!r}). Typical: 3-5.")
    if not (wait_s >= 0 and poll_s > 0):
        raise InputError(f"wait_s must be >= 0 and poll_s > 0 (got {wait_s!r}, {poll_s!r}).")
    if config.mode == "shadow":
        raise InputError("mode 'shadow' sends no orders: there is nothing at a broker to flatten.")
    quiet = config.model_copy(update={"meta_labeler": None})  # no entry is decided here
    run = LiveRunner(quiet, broker, journal, spec=spec, notify=notify)
    broker.connect()
    rep = FlattenReport(config.account, config.mode, broker.now())
    ctx = _Ctx(run, float(wait_s), float(poll_s), cents(config.reprice_step), sleep, rep)
    for tid, tr in sorted(run.open.items()):
        ctx.lines[tid] = FlattenLine(tid, int(tr["contracts"]), _legs_text(tr))
    _note(ctx, f"flatten started: {len(run.open)} open trade(s) in the journal")
    _cancel_working(ctx)
    _close_rounds(ctx, _held_trades(ctx), int(attempts))
    for tid, ln in ctx.lines.items():
        if tid in run.open and not ln.note:
            ln.note = f"not filled after {ln.attempts} order(s)"
    rep.lines = list(ctx.lines.values())
    rep.ts = broker.now()
    msg = f"flatten done: {len(rep.closed)} closed, {len(rep.still_open)} still open"
    _note(ctx, msg, {"still_open": [ln.trade_id for ln in rep.still_open]})
    return rep


def _legs_text(tr: dict[str, Any]) -> str:
    return " ".join(f"{lg['quantity']:+d} {lg['right']}{lg['strike']:g}" for lg in tr["legs"])


def _note(ctx: _Ctx, message: str, data: dict[str, Any] | None = None) -> None:
    ctx.journal.event(ctx.broker.now(), PURPOSE, message, data or {}, ctx.mode)
    ctx.run.notify(PURPOSE, message, data or {})


# -- step 1: working orders ---------------------------------------------------------------------
def _cancel_working(ctx: _Ctx) -> None:
    """Cancel the open trades' working orders, then any other working order of the strategy."""
    for tr in list(ctx.run.open.values()):
        if tr["status"] in ("opening", "closing"):
            _stop_order(ctx, tr)
    kept = {tr["order_ref"] for tr in ctx.run.open.values() if tr["status"] == "closing"}
    for o in ctx.broker.open_orders():  # orphans (a partly filled exit is kept working)
        if owns_order_ref(o.order_ref, ctx.run.cfg_hash) and o.order_ref not in kept:
            ctx.broker.cancel(o.order_id)
            ctx.journal.order_status(o.order_ref, ctx.broker.order_status(o.order_id).status)
            ctx.report.cancelled.append(o.order_ref)
            _note(ctx, f"cancelled working order {o.order_ref} (no open trade in the journal)")


def _stop_order(ctx: _Ctx, tr: dict[str, Any]) -> None:
    """Cancel trade ``tr``'s working entry or exit order and settle what it did."""
    ref, line = tr["order_ref"], ctx.lines[tr["trade_id"]]
    oid = tr.get("order_id") or _find_order(ctx.broker, ref, int(tr["placed_ts"]))
    try:
        order = ctx.broker.order_status(oid) if oid else None
    except InputError:  # not among the broker's orders: it never got there (or a replay died)
        order = None
    if order is None:
        _unwind(ctx, tr, f"{ref} never reached the broker")
        return
    tr["order_id"] = oid
    if order.status not in TERMINAL:
        if tr["status"] == "closing" and order.filled_quantity > 0:
            line.note = f"exit {ref} partly filled ({order.filled_quantity}): left working"
            return
        ctx.broker.cancel(order.order_id)
        ctx.report.cancelled.append(ref)
        order = ctx.broker.order_status(order.order_id)
    if order.status == "filled":
        fill = _fill_of(ctx.broker, order.order_id, int(tr["placed_ts"]))
        if fill is None:
            line.note = f"{ref} filled, execution report not in yet"
        elif tr["status"] == "opening":
            ctx.run.record_fill(tr, fill)  # an entry filled before its cancel: now open
            line.contracts = int(tr["contracts"])
        else:
            _closed(ctx, tr, fill, ref)  # its own exit got there first
        return
    if order.status not in TERMINAL:
        line.note = f"the broker has not confirmed the cancel of {ref}"
        return
    ctx.journal.order_status(ref, order.status)
    _unwind(ctx, tr, f"{ref} {order.status}")


def _find_order(broker: Broker, ref: str, since: int) -> str | None:
    """The broker's id of an order known by its ref only (journaled intent, id not journaled)."""
    for o in broker.open_orders():
        if o.order_ref == ref:
            return o.order_id
    return next((f.order_id for f in broker.executions_since(since) if f.order_ref == ref), None)


def _fill_of(broker: Broker, order_id: str, since: int) -> Fill | None:
    fills = [f for f in broker.executions_since(since) if f.order_id == order_id]
    return fills[-1] if fills else None


def _unwind(ctx: _Ctx, tr: dict[str, Any], why: str) -> None:
    """An order that did nothing: an entry's trade never opened (dropped, as the kill switch
    drops it); an exit's trade is open again."""
    tid = tr["trade_id"]
    if tr["status"] == "opening":
        ctx.journal.drop_open(tid)
        del ctx.run.open[tid]
        ctx.run.book.cancel(tid)
        del ctx.lines[tid]
        _note(ctx, f"entry of {tid} cancelled unfilled ({why})", {"trade_id": tid})
        return
    tr["status"] = "open"
    ctx.journal.save_open(tid, tr, ctx.mode)


# -- step 2: the broker's positions -------------------------------------------------------------
def _need(tr: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for lg in tr["legs"]:
        out[lg["occ"]] = out.get(lg["occ"], 0) + int(lg["quantity"]) * int(tr["contracts"])
    return out


def _held_trades(ctx: _Ctx) -> list[dict[str, Any]]:
    """The open trades whose legs the broker holds (in trade id order); sets the notes of those
    it does not and the report's positions the journal does not explain."""
    held = {p.occ: p.quantity for p in ctx.broker.positions()}
    left = dict(held)
    for tr in ctx.run.open.values():  # what the journal says the broker holds
        for occ, q in _need(tr).items():
            if tr["status"] != "opening":
                left[occ] = left.get(occ, 0) - q
    ctx.report.unmatched = {occ: q for occ, q in sorted(left.items()) if q}
    out = []
    avail = dict(held)
    for tid, tr in sorted(ctx.run.open.items()):
        if tr["status"] != "open":
            continue
        need = _need(tr)
        short = [o for o, q in need.items() if avail.get(o, 0) * q <= 0 or abs(avail[o]) < abs(q)]
        if short:
            ctx.lines[tid].note = f"not held at the broker ({', '.join(short)}): nothing sent"
            continue
        for occ, q in need.items():
            avail[occ] -= q
        out.append(tr)
    return out


# -- step 3: close, wait, cancel, re-price ------------------------------------------------------
def _close_rounds(ctx: _Ctx, trades: list[dict[str, Any]], attempts: int) -> None:
    orders = ctx.journal.table("orders", ctx.mode)["order_ref"].to_list()
    for tr in trades:
        pre = f"{tr['trade_id']}-{PURPOSE}-"
        ctx.seq[tr["trade_id"]] = sum(1 for r in orders if r.startswith(pre))
    pending = list(trades)
    for a in range(attempts):
        sent = [tr for tr in pending if _send_close(ctx, tr, a)]
        _await_fills(ctx, sent)
        for tr in sent:
            if tr["trade_id"] in ctx.run.open and tr["status"] == "closing":
                _cancel_close(ctx, tr)
        pending = [t for t in pending if t["trade_id"] in ctx.run.open and t["status"] == "open"]
        if not pending:
            return


def _send_close(ctx: _Ctx, tr: dict[str, Any], a: int) -> bool:
    """Journal the intent and send attempt ``a``'s closing order; False when none went out."""
    tid, line = tr["trade_id"], ctx.lines[tr["trade_id"]]
    legs = tuple(ComboLeg(lg["occ"], -int(lg["quantity"])) for lg in tr["legs"])
    try:
        bid, ask = ctx.broker.quotes([leg.occ for leg in legs])
    except BrokerError as exc:
        line.note = f"no quotes: {exc}"
        return False
    fills = ctx.run.spec.fills
    limit = close_limit(fills, bid, ask, [leg.ratio for leg in legs], a * ctx.step_c)
    if not math.isfinite(limit):
        if line.limit is None:
            line.note = "no usable quote: nothing sent"
            return False
        limit = (cents(line.limit) - ctx.step_c) // COMBO_TICK_C * COMBO_TICK_C / CENTS_PER_DOLLAR
    ref, ts = f"{tid}-{PURPOSE}-{ctx.seq[tid]}", ctx.broker.now()
    tr.update(
        order_id=None,
        order_ref=ref,
        placed_ts=ts,
        limit=limit,
        status="closing",
        exit_reason=PURPOSE,
        order_legs=[[leg.occ, leg.ratio] for leg in legs],
    )
    ctx.journal.save_open(tid, tr, ctx.mode)
    try:
        oid = ctx.broker.place_combo(legs, int(tr["contracts"]), limit, ref)
    except BrokerDisconnected as exc:  # not sent: the trade is open as before
        tr["status"] = "open"
        ctx.journal.save_open(tid, tr, ctx.mode)
        line.note = f"{ref} not sent: {exc}"
        return False
    except BrokerError as exc:  # sent, not acknowledged: the runner's restart reconciles the ref
        line.note = f"{ref} not acknowledged ({exc}); a restart reconciles it by order_ref"
        return False
    ctx.seq[tid] += 1
    tr["order_id"] = oid
    n = int(tr["contracts"])
    ctx.journal.order(ref, oid, tid, PURPOSE, ts, n, limit, legs, "submitted", ctx.mode)
    ctx.journal.save_open(tid, tr, ctx.mode)
    line.attempts, line.limit = line.attempts + 1, limit
    _note(ctx, f"{ref}: close x{n} at {limit:.2f}", {"trade_id": tid, "limit": limit})
    return True


def _await_fills(ctx: _Ctx, trades: list[dict[str, Any]]) -> None:
    """Poll the orders just sent until all are done or ``wait_s`` has passed."""
    end = time.monotonic() + ctx.wait_s
    waiting = list(trades)
    while waiting:
        waiting = [tr for tr in waiting if not _poll_close(ctx, tr)]
        if not waiting or time.monotonic() >= end:
            return
        ctx.sleep(ctx.poll_s)


def _poll_close(ctx: _Ctx, tr: dict[str, Any]) -> bool:
    """True once trade ``tr``'s closing order is done (filled and journaled, or refused)."""
    ref = tr["order_ref"]
    order = ctx.broker.order_status(tr["order_id"])
    if order.status == "filled":
        fill = _fill_of(ctx.broker, tr["order_id"], int(tr["placed_ts"]))
        if fill is None:
            return False  # the execution report is not in yet
        _closed(ctx, tr, fill, ref)
        return True
    if order.status in TERMINAL:  # rejected (or cancelled by the broker): re-priced next
        ctx.journal.order_status(ref, order.status)
        tr["status"] = "open"
        ctx.journal.save_open(tr["trade_id"], tr, ctx.mode)
        ctx.lines[tr["trade_id"]].note = f"{ref} {order.status}"
        return True
    return False


def _cancel_close(ctx: _Ctx, tr: dict[str, Any]) -> None:
    """Cancel an unfilled closing order; its trade is open again (or closed if it filled)."""
    ref, oid, line = tr["order_ref"], tr["order_id"], ctx.lines[tr["trade_id"]]
    order = ctx.broker.order_status(oid)
    if order.status not in TERMINAL and order.filled_quantity > 0:
        line.note = f"{ref} partly filled ({order.filled_quantity}): left working"
        return
    try:
        ctx.broker.cancel(oid)
    except BrokerError as exc:
        line.note = f"cancel of {ref} not confirmed: {exc}"
        return
    order = ctx.broker.order_status(oid)
    if order.status == "filled":  # filled before the cancel
        if not _poll_close(ctx, tr):
            line.note = f"{ref} filled, execution report not in yet"
        return
    if order.status not in TERMINAL:
        line.note = f"the broker has not confirmed the cancel of {ref}"
        return
    ctx.journal.order_status(ref, order.status)
    tr["status"] = "open"
    ctx.journal.save_open(tr["trade_id"], tr, ctx.mode)
    line.note = ""
    _note(ctx, f"{ref} not filled in {ctx.wait_s:g} s: cancelled", {"trade_id": tr["trade_id"]})


def _closed(ctx: _Ctx, tr: dict[str, Any], fill: Fill, ref: str) -> None:
    """Journal the fill of a closing order: the trade record (the runner's), the report line."""
    tid = tr["trade_id"]
    ctx.run.record_fill(tr, fill)
    row = ctx.journal.con.execute(
        "SELECT pnl, exit_reason FROM trades WHERE trade_id = ? AND mode = ?", [tid, ctx.mode]
    ).fetchone()
    line = ctx.lines[tid]
    line.closed, line.price, line.note = True, fill.price, ""
    line.pnl, line.exit_reason = (float(row[0]), str(row[1])) if row else (None, "")
    if line.exit_reason != PURPOSE:
        line.note = f"its working exit {ref} filled first ({line.exit_reason})"


# -- the command's broker -----------------------------------------------------------------------
def open_broker(
    config: LiveConfig, spec: StrategySpec, journal: Journal, *, live: bool = False
) -> Broker:
    """The config's broker for a flatten: IBKR (connected; mode ``live`` needs ``live=True``), or
    the simulated broker as the journal left it (:func:`replay_broker`)."""
    if (config.mode == "live") != live:
        raise ConfigError(
            "mode 'live' trades real money and needs the explicit --live flag"
            if not live
            else "--live is only for mode live (--mode live)"
        )
    if config.mode == "shadow":
        raise InputError("mode 'shadow' sends no orders: there is nothing at a broker to flatten.")
    if config.broker == "sim":
        return replay_broker(config, spec, journal)
    from quantlab.brokers.ibkr import IBKRBroker

    acct = None if config.account == "SIM" else config.account
    broker = IBKRBroker.from_config(config.ibkr, account=acct, live=live, spec=spec)
    broker.connect()
    return broker


def replay_broker(config: LiveConfig, spec: StrategySpec, journal: Journal) -> SimulatedBroker:
    """A simulated broker at the journal's last processed minute (latest session) holding the
    journal's open positions: the replay's own broker lived in its process only."""
    from quantlab.brokers.simulated import SimulatedBroker

    prog = journal.table("progress", config.mode)
    if prog.height == 0:
        raise DataError(
            f"{journal.path}: no minute processed in mode {config.mode!r}; run the replay "
            "(live/run.py --broker sim) first."
        )
    day, last = prog.sort("day").select("day", "last_ts").row(-1)
    broker = SimulatedBroker(
        config.store,
        day,
        spec.fills,
        spec.fees,
        underlying=spec.underlying,
        capital=spec.sizing.capital,
        account=config.account,
        rate=spec.rate,
    )
    broker.advance_to(int(last))
    held: list[Position] = []
    for tr in journal.open_states(config.mode).values():
        if tr["status"] != "opening":
            px = tr.get("entry_prices") or [0.0] * len(tr["legs"])
            for lg, p in zip(tr["legs"], px, strict=True):
                q = int(lg["quantity"]) * int(tr["contracts"])
                held.append(Position(lg["occ"], q, float(p)))
    broker.restore_positions(held)
    return broker


def run_flatten(
    config: LiveConfig,
    spec: StrategySpec,
    journal: Journal,
    *,
    live: bool = False,
    attempts: int = 5,
    wait_s: float = 3.0,
) -> FlattenReport:
    """``quantlab live flatten``: :func:`open_broker`, :func:`flatten` (notifications to the
    config's webhook only: the command prints its own report), disconnect."""
    broker = open_broker(config, spec, journal, live=live)
    try:
        notify = Notifier(console=False, webhook_url=config.notify.webhook_url)
        return flatten(
            config, broker, journal, spec=spec, attempts=attempts, wait_s=wait_s, notify=notify
        )
    finally:
        broker.disconnect()


__all__ = [
    "FlattenLine",
    "FlattenReport",
    "close_limit",
    "flatten",
    "open_broker",
    "owns_order_ref",
    "replay_broker",
    "run_flatten",
]
