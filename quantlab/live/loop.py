"""The thin live runner: the backtester's decisions and exits, minute by minute, through a broker.

Every rule comes from the decision core the backtester replays (:mod:`quantlab.strategy`): at
each entry time the decision snapshot and the structure (:func:`~quantlab.chain.snapshot.
build_snapshot`, :func:`~quantlab.backtest.select.select_structure`), the entry credit through
the fill model and the entry filters (:func:`quantlab.strategy.rules.entry_filter_reason`), the
risk rules in their order and sizing (:class:`quantlab.strategy.book.DecisionBook`, told about
every entry, cancel and exit), and each minute's exit check (:class:`quantlab.strategy.exits.
ExitRule`), all in integer cents. Limits are the fill-model price;
an unfilled order is re-priced ``reprice_attempts`` times by ``reprice_step`` (an entry is then
cancelled; an exit keeps its largest concession until filled). Take-profit and stop-loss are
checked every minute after entry on the level the strategy's ``management.trigger_on`` names,
exactly as the backtester's exit kernel: the spread mid (``mid``, the default), or the exit fill
price through the fill model (``exit_fill``); the close is then priced with the fill model.
Expiring positions cash-settle at intrinsic value (no fee) on the broker's settlement value.

Meta-labeler gate (``meta_labeler:`` in the config, :class:`MetaGate`): the registered model
``models:/NAME@ALIAS`` is loaded once; at each new candidate, after the structure is chosen and
the ``first_valid`` window check, and before the entry filters, risk rules and sizing (the
place where stage 2 applies ``allowed``), the candidate's point-in-time feature row is computed
with the backtest's feature code (:class:`quantlab.features.live.CandidateFeatures`) and
``p = P(take-profit first)``; ``p < threshold`` is a ``skipped`` decision with reason
``meta_labeler p=0.41<0.55`` (stage 2: ``rejected``/``filtered_by_model``). ``p`` is recorded in
the decision row (``meta_p``). No feature data (e.g. a live broker whose chain is not recorded):
the entry is skipped (``meta_labeler_unavailable``), never traded unfiltered.

Modes: ``paper``/``live`` send orders; ``shadow`` sends none and fills virtually at the
fill-model price, so its decisions and trade records equal paper's on the same quotes.

Intended differences from the backtester: no ``end_of_data`` exit (the runner waits for the
next minute), ``data_checksum`` is ``"live:<mode>"``, and ``instrument_id_exit`` is read from
the chain at the exit minute (0 when not listed, e.g. at an AM settlement).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantlab import calendar
from quantlab.backtest.select import select_structure
from quantlab.brokers.base import TERMINAL, Broker, ComboLeg, Fill
from quantlab.chain.snapshot import build_snapshot
from quantlab.errors import BrokerDisconnected, BrokerError, DataError
from quantlab.execution.fills import net_of_legs
from quantlab.live.config import LiveConfig
from quantlab.live.gate import MetaGate
from quantlab.live.journal import Journal
from quantlab.live.notify import Notifier, Notify
from quantlab.money import (
    CENTS_PER_DOLLAR,
    MILLICENTS_PER_CENT,
    MILLICENTS_PER_DOLLAR,
    NO_NET,
    SHARES_PER_CONTRACT,
    cents,
    to_cents,
)
from quantlab.risk.book import (
    Position,
    book_risk,
    candidate_risk,
    risk_record,
    snapshot_inputs,
)
from quantlab.strategy import ids
from quantlab.strategy.book import DecisionBook
from quantlab.strategy.exits import ExitRule, exit_deadline
from quantlab.strategy.rules import entry_filter_reason
from quantlab.strategy.spec import StrategySpec
from quantlab.strategy.structure import (
    intrinsic_cents,
    payoff_bounds,
    settlement_cost_cents,
    strike_cents,
)
from quantlab.strategy.structure import width as structure_width


def _et(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=calendar.ET)


def _tick_round(price: float) -> float:
    return round(round(price / 0.05) * 0.05, 2)


@dataclass
class _Day:
    """Live-only state of a session (the rules' state is the :class:`DecisionBook`'s)."""

    killed: str = ""
    mtm_start: float | None = None


class LiveRunner:
    """Runs a strategy through a broker, minute by minute; see the module docstring.

    Parameters
    ----------
    config : LiveConfig
    broker : Broker
        A connected-or-not broker (``connect`` is called by :meth:`run_day`). If it has an
        ``advance_to(ts)`` method (the simulated broker) the runner drives its clock; otherwise it
        sleeps until each minute's wall-clock time.
    journal : Journal
    spec : StrategySpec, optional
        Default: ``config.spec()``.
    notify : callable(kind, message, data), optional
        Default: :class:`Notifier` from ``config.notify``.
    gate : MetaGate, optional
        Default: :meth:`MetaGate.load` of ``config.meta_labeler`` when configured (loaded once,
        here, before anything connects). Features come from the broker's ``store`` (the
        simulated broker's) else ``config.store``.
    """

    def __init__(
        self,
        config: LiveConfig,
        broker: Broker,
        journal: Journal,
        *,
        spec: StrategySpec | None = None,
        notify: Notify | None = None,
        gate: MetaGate | None = None,
    ) -> None:
        self.config, self.broker, self.journal = config, broker, journal
        self.spec = spec or config.spec()
        if gate is None and config.meta_labeler is not None:
            gate = MetaGate.load(config.meta_labeler)
        self.gate = gate
        self.features: Any = None
        if gate is not None:
            from quantlab.features.live import CandidateFeatures

            store = getattr(broker, "store", None) or config.store
            self.features = CandidateFeatures(
                store, gate.feature_set, underlying=self.spec.underlying
            )
        self.mode = config.mode
        self.notify = notify or Notifier(config.notify.console, config.notify.webhook_url)
        self.cfg_hash = self.spec.config_hash()
        self.open: dict[str, dict[str, Any]] = journal.open_states(self.mode)
        self.days: dict[dt.date, _Day] = {}
        f = self.spec.filters
        self.events = set(calendar.load_events(f.events_file)) if f.skip_event_days else set()
        self.need_vix = f.vix_min is not None or f.vix_max is not None
        self.rule_key = {t: ids.select_key(t, self.spec) for t in self.spec.entry.times}
        self.book = DecisionBook(self.spec)
        self._restore_book()

    # -- state from the journal (restart) ---------------------------------------------------
    def _restore_book(self) -> None:
        """The decision book as the journal left it: entries taken, trades closed, open ones."""
        dec = self.journal.table("decisions", self.mode)
        closed = self.journal.table("trades", self.mode).sort("exit_ts")
        done = set(closed["trade_id"].to_list())
        for row in dec.filter(dec["decision"] == "taken").iter_rows(named=True):
            tid = ids.trade_id(row["candidate_id"], self.cfg_hash)
            if self.book.first_valid:
                self.book.use_window(row["entry_date"])
            if tid in self.open or tid in done:
                self.book.open_trade(tid, row["entry_date"])
            else:  # taken, never filled (cancelled): it used the day's count, holds no risk
                self.book.open_trade(tid, row["entry_date"])
                self.book.cancel(tid)
        for t in closed.iter_rows(named=True):
            pnl_mc = round(t["pnl"] * MILLICENTS_PER_DOLLAR)
            self.book.close_trade(t["trade_id"], t["exit_ts"], pnl_mc, t["exit_reason"])

    def _realized(self, upto: int) -> tuple[float, dict[dt.date, float]]:
        tr = self.journal.table("trades", self.mode)
        by_day: dict[dt.date, float] = {}
        total = 0.0
        for ts, d, pnl in zip(tr["exit_ts"], tr["exit_date"], tr["pnl"], strict=True):
            if ts <= upto:
                total += pnl
                by_day[d] = by_day.get(d, 0.0) + pnl
        return total, by_day

    # -- the day loop ------------------------------------------------------------------------
    def run_day(self, day: dt.date, *, until: int | None = None) -> None:
        """Trade session ``day`` (resuming after the journal's last processed minute); stop
        after minute ``until`` (UTC ns) when given — used to simulate a crash or a stop."""
        if not calendar.is_session(day):
            return
        self.broker.connect()
        if hasattr(self.broker, "start_day"):
            self.broker.start_day(day)
        done = self.journal.last_ts(self.mode, day)
        if self.gate is not None:  # which model decided today (the reconciliation reads it)
            g = self.gate
            msg = f"{day}: gate {g.name} v{g.version} threshold {g.threshold:.4f}"
            if not self.journal.has_event("meta_labeler", msg, self.mode):
                self._note(
                    calendar.option_open_ns(day),
                    "meta_labeler",
                    msg,
                    {
                        "model": g.name,
                        "version": g.version,
                        "threshold": g.threshold,
                        "feature_set_version": g.feature_set.version,
                    },
                )
        self._reconcile()
        entry_ns = {
            calendar.to_ns(dt.datetime.combine(day, t, tzinfo=calendar.ET)): t
            for t in self.spec.entry.times
        }
        for ts in calendar.quote_minutes_ns(day).tolist():
            if (done is not None and ts <= done) or ts < self.broker.now():
                continue  # checkpointed, or past (a restart resumes at the broker's minute)
            if until is not None and ts > until:
                return
            self._wait_until(ts)
            writes = self.journal.writes
            try:
                self.step(day, ts, entry_ns.get(ts))
            except BrokerError as exc:
                # the broker is down or did not answer (the adapter has already retried with
                # backoff): skip the minute without a checkpoint and read the state again from
                # the broker next minute; open positions stay managed, nothing is sent blind
                self._note(ts, "broker_error", f"{_et(ts):%H:%M} skipped: {exc}", {})
                continue
            # checkpoint after any event and every 15 minutes; a restart replays the minutes
            # after the checkpoint (idempotent: decisions once per candidate, deterministic
            # order refs, open-trade extremes saved with the checkpoint)
            if (
                self.journal.writes != writes
                or (ts - calendar.option_open_ns(day)) % (15 * calendar.NS_PER_MINUTE) == 0
            ):
                for tid, tr in self.open.items():
                    self.journal.save_open(tid, tr, self.mode)
                self.journal.progress(self.mode, day, ts)

    def _wait_until(self, ts: int) -> None:
        adv = getattr(self.broker, "advance_to", None)
        if adv is not None:
            adv(ts)
            return
        while (left := (ts - time.time_ns()) / 1e9) > 0:
            time.sleep(min(left, 1.0))

    def step(self, day: dt.date, ts: int, entry_time: dt.time | None) -> None:
        """One minute: working orders, exits and settlement, kill switch, then entries."""
        self._reconcile()
        self._reprice(ts)
        mtm = 0.0
        for tid in list(self.open):
            mtm += self._manage(tid, ts)
        ds = self.days.setdefault(day, _Day())
        if ds.mtm_start is None:
            ds.mtm_start = mtm
        self._kill_switch(day, ts, ds, mtm)
        if entry_time is not None:
            self._enter(day, ts, entry_time, ds)
        every = self.config.risk_every_min
        if every and self.open and (ts // calendar.NS_PER_MINUTE) % every == 0:
            self._record_risk(ts)

    def _record_risk(self, ts: int, snap: Any = None) -> None:
        """Journal the book's greeks and scenario grid at ``ts`` (event ``book_risk``, read by
        ``quantlab live status``) from the chain snapshot (taken now unless given)."""
        s = self.spec
        if snap is None:
            chain = self.broker.chain_snapshot(s.underlying, ts)
            chain = chain.filter(chain["root"].is_in(list(s.roots)))
            snap = build_snapshot(chain, ts, rate=s.rate, max_age_s=s.filters.max_quote_age_s)
        rec = risk_record(self._positions(), snap, ts, s.rate)
        if rec is not None:
            g = rec["greeks"]
            msg = (
                f"{rec['n_open']} open: delta {g['delta_pct']:,.0f} $/1%, vega "
                f"{g['vega_pt']:,.0f} $/pt, gamma {g['gamma_pct']:,.0f} $/1%^2, theta "
                f"{g['theta_day']:,.0f} $/day; worst scenario {rec['worst']['loss']:,.0f} $"
            )
            self.journal.event(ts, "book_risk", msg, rec, self.mode)

    # -- orders ------------------------------------------------------------------------------
    def _place(
        self, tr: dict[str, Any], purpose: str, legs: tuple[ComboLeg, ...], limit: float, ts: int
    ) -> None:
        """Journal the intent first, then send (idempotent on the deterministic order_ref)."""
        ref = f"{tr['trade_id']}-{purpose}-{tr['attempt']}"
        tr.update(
            order_id=None,
            order_ref=ref,
            placed_ts=ts,
            limit=limit,
            status=purpose,
            order_legs=[[leg.occ, leg.ratio] for leg in legs],
        )
        self.journal.save_open(tr["trade_id"], tr, self.mode)
        self._send(tr)
        if self.mode == "shadow":
            self._shadow_fill(tr, legs, ts)
        elif tr["order_id"] is not None:
            self._poll(tr)

    def _send(self, tr: dict[str, Any]) -> None:
        legs = tuple(ComboLeg(o, r) for o, r in tr["order_legs"])
        ref = tr["order_ref"]
        if self.mode == "shadow":
            oid = f"SHADOW-{ref}"
        else:
            try:
                oid = self.broker.place_combo(legs, tr["contracts"], tr["limit"], ref)
            except BrokerDisconnected as exc:
                # nothing was sent: the intent stays journaled without an order id and
                # _reconcile sends it (same order_ref) once the broker is back
                self._note(tr["placed_ts"], "disconnected", f"{ref} not sent: {exc}", {})
                return
        tr["order_id"] = oid
        self.journal.order(
            ref,
            oid,
            tr["trade_id"],
            tr["status"],
            tr["placed_ts"],
            tr["contracts"],
            tr["limit"],
            legs,
            "submitted",
            self.mode,
        )
        self.journal.save_open(tr["trade_id"], tr, self.mode)

    def _shadow_fill(self, tr: dict[str, Any], legs: tuple[ComboLeg, ...], ts: int) -> None:
        bid, ask = self.broker.quotes([leg.occ for leg in legs])
        ratio = np.array([leg.ratio for leg in legs], dtype=np.float64)
        px = self.spec.fills.leg_prices(bid, ask, ratio < 0)
        if not np.all(np.isfinite(px)):
            return
        net = net_of_legs(ratio, px)
        if net < tr["limit"] - 1e-9:
            return
        fees = self.spec.fees.order_fees(px, ratio * tr["contracts"])
        fill = Fill(
            f"{tr['order_id']}-E1",
            tr["order_id"],
            tr["order_ref"],
            ts,
            legs,
            tr["contracts"],
            net,
            tuple(float(p) for p in px),
            fees,
        )
        self._on_fill(tr, fill)

    def _poll(self, tr: dict[str, Any]) -> None:
        order = self.broker.order_status(tr["order_id"])
        if order.status == "filled":
            fills = [
                f
                for f in self.broker.executions_since(tr["placed_ts"])
                if f.order_id == tr["order_id"]
            ]
            if fills:  # else the execution report is not in yet: the next minute polls again
                self._on_fill(tr, fills[-1])
        elif order.status in TERMINAL:
            self.journal.order_status(tr["order_ref"], order.status)

    def _reconcile(self) -> None:
        """Bring orders placed before now (or before a restart) up to date with the broker."""
        if self.mode == "shadow":
            return
        for tr in list(self.open.values()):
            if tr["status"] in ("opening", "closing"):
                if not tr.get("order_id"):  # crashed or disconnected before sending
                    if tr["status"] == "opening" and Path(self.config.kill_file).exists():
                        self.journal.drop_open(tr["trade_id"])  # killed since: never send it
                        del self.open[tr["trade_id"]]
                        self.book.cancel(tr["trade_id"])
                        continue
                    self._send(tr)
                    if not tr.get("order_id"):
                        continue  # still not sent
                self._poll(tr)

    def _reprice(self, ts: int) -> None:
        every = self.config.reprice_every_min * calendar.NS_PER_MINUTE
        for tr in list(self.open.values()):
            if tr["status"] not in ("opening", "closing") or ts - tr["placed_ts"] < every:
                continue
            if self.mode != "shadow" and tr["order_id"] is None:
                continue  # never reached the broker (disconnected): _reconcile resends it
            if self.mode != "shadow":
                if (
                    tr["status"] == "closing"
                    and self.broker.order_status(tr["order_id"]).filled_quantity > 0
                ):
                    continue  # a partly filled exit keeps working: re-placing would over-close
                self.broker.cancel(tr["order_id"])
                state = self.broker.order_status(tr["order_id"]).status
                if state == "filled":  # filled (or partly, then cancelled) before the cancel
                    self._poll(tr)
                    continue
                if state not in TERMINAL:
                    continue  # the broker has not confirmed the cancel: never send a second order
            self.journal.order_status(tr["order_ref"], "cancelled")
            legs = tuple(ComboLeg(o, r) for o, r in tr["order_legs"])
            if tr["status"] == "opening" and tr["attempt"] >= self.config.reprice_attempts:
                self.journal.drop_open(tr["trade_id"])
                del self.open[tr["trade_id"]]
                self.book.cancel(tr["trade_id"])
                self._note(ts, "entry_unfilled", f"{tr['trade_id']} not filled; cancelled", {})
                continue
            tr["attempt"] += 1
            bid, ask = self.broker.quotes([lg.occ for lg in legs])
            model = self.spec.fills.net_price(bid, ask, [lg.ratio for lg in legs])
            if not math.isfinite(model):
                model = tr["limit"]
            give = min(tr["attempt"], self.config.reprice_attempts) * self.config.reprice_step
            self._place(tr, tr["status"], legs, _tick_round(model - give), ts)

    def record_fill(self, tr: dict[str, Any], fill: Fill) -> None:
        """Journal ``fill`` of open trade ``tr``'s working order: an entry opens the trade, an
        exit closes it with ``tr["exit_reason"]`` (used by :mod:`quantlab.live.flatten`)."""
        self._on_fill(tr, fill)

    def _on_fill(self, tr: dict[str, Any], fill: Fill) -> None:
        self.journal.fill(fill, self.mode)
        self.journal.order_status(tr["order_ref"], "filled")
        if tr["status"] == "opening":
            if 0 < fill.quantity < tr["contracts"]:  # partly filled, the rest cancelled
                self._note(
                    fill.ts,
                    "partial_fill",
                    f"{tr['trade_id']}: {fill.quantity} of "
                    f"{tr['contracts']} filled; managing {fill.quantity}",
                    {"trade_id": tr["trade_id"]},
                )
                tr["contracts"] = fill.quantity
            tr.update(
                status="open",
                credit=fill.price,
                credit_c=cents(fill.price),
                entry_fees=fill.fees,
                entry_prices=list(fill.leg_prices),
                entry_fill_ts=fill.ts,
            )
            self.journal.save_open(tr["trade_id"], tr, self.mode)
            self._note(
                fill.ts,
                "fill",
                f"opened {tr['trade_id']} x{tr['contracts']} for a credit of {fill.price:.2f}",
                {"trade_id": tr["trade_id"]},
            )
        elif tr["status"] == "closing":
            self._finish(
                tr, fill.ts, -fill.price, list(fill.leg_prices), fill.fees, tr["exit_reason"]
            )

    # -- exits ------------------------------------------------------------------------------
    def _exit_rule(self, tr: dict[str, Any]) -> ExitRule:
        """The trade's exit rule on the credit filled (:class:`~quantlab.strategy.exits.
        ExitRule`, the backtester's)."""
        return ExitRule(
            self.spec, int(tr["credit_c"]), int(tr["lo_c"]), int(tr["hi_c"]), int(tr["deadline"])
        )

    def _manage(self, tid: str, ts: int) -> float:
        """Check one trade's exits at minute ``ts``; returns its mark-to-market P&L (dollars)."""
        tr = self.open[tid]
        if tr["status"] != "open" or ts <= tr["entry_ts"]:
            return 0.0
        legs = tr["legs"]
        qty = [lg["quantity"] for lg in legs]
        bid, ask = self.broker.quotes([lg["occ"] for lg in legs])
        chk = self._exit_rule(tr).check(ts, to_cents(bid), to_cents(ask), qty)
        mtm = 0.0
        if chk.usable and ts <= tr["close_ns"]:  # the backtester's path ends at the close
            pnl2 = 2 * int(tr["credit_c"]) - chk.mid2  # half-cents per share
            tr["mae"] = min(tr["mae"], pnl2 / (2 * CENTS_PER_DOLLAR))
            tr["mfe"] = max(tr["mfe"], pnl2 / (2 * CENTS_PER_DOLLAR))
            mtm = pnl2 / 2 * tr["contracts"] * SHARES_PER_CONTRACT / CENTS_PER_DOLLAR
            if chk.reason:
                tr["exit_reason"] = chk.reason
                tr["attempt"] = 0
                close = tuple(ComboLeg(lg["occ"], -lg["quantity"]) for lg in legs)
                self._place(tr, "closing", close, -chk.fill / CENTS_PER_DOLLAR, ts)
                return mtm
        if ts >= tr["close_ns"]:  # still open at the close: held to cash settlement
            self._settle(tr, ts)
        return mtm

    def _settle(self, tr: dict[str, Any], ts: int) -> None:
        value = self.broker.settlement_value(tr["root"], dt.date.fromisoformat(tr["expiry"]))
        if not math.isfinite(value):
            return
        legs = tr["legs"]
        settle_c = cents(value)
        strikes = strike_cents([lg["strike"] for lg in legs])
        calls = [lg["right"] == "C" for lg in legs]
        qty = [lg["quantity"] for lg in legs]
        px = intrinsic_cents(settle_c, strikes, calls) / CENTS_PER_DOLLAR
        cost = settlement_cost_cents(settle_c, qty, strikes, calls) / CENTS_PER_DOLLAR
        src = getattr(self.broker, "settlement_source", None)
        source = src(tr["root"], tr["expiry"]) if src else "broker"
        tr["settlement"] = {"source": source, "value": float(value)}
        if source == "broker":
            self._record_settlement(tr["root"], tr["expiry"], float(value), ts)
        self._finish(
            tr, calendar.settlement_ns(tr["root"], tr["expiry"]), cost, list(px), 0.0, "settlement"
        )

    def _record_settlement(self, root: str, expiry: str, value: float, ts: int) -> None:
        """Keep the broker's settlement value in the store (source ``broker``), so the backtest
        and the reconciliation of this day settle on the value the runner used; a store that
        cannot take it is noted, never fatal."""
        from quantlab.data import settlements

        e = dt.date.fromisoformat(expiry)
        s = settlements.Settlement(
            root=root,
            expiry=e,
            style=settlements.style_of(root),
            value=value,
            source="broker",
            std_error=math.nan,
            n_pairs=0,
            asof_ts=ts,
        )
        try:
            settlements.write(
                self.config.store,
                settlements.to_frame([s], ["live runner"]),
                underlying=self.spec.underlying,
            )
        except Exception as exc:  # the trade settles regardless; the store is a record
            self._note(ts, "settlement_not_stored", f"{root} {expiry}: {exc}", {})

    def _finish(
        self,
        tr: dict[str, Any],
        exit_ts: int,
        exit_cost: float,
        exit_px: list[float],
        exit_fees: float,
        reason: str,
    ) -> None:
        n = tr["contracts"]
        fees_mc = round(tr["entry_fees"] * MILLICENTS_PER_DOLLAR) + round(
            exit_fees * MILLICENTS_PER_DOLLAR
        )
        per_share_c = int(tr["credit_c"]) - round(exit_cost * CENTS_PER_DOLLAR)
        pnl_mc = per_share_c * n * SHARES_PER_CONTRACT * MILLICENTS_PER_CENT - fees_mc
        fees, pnl = fees_mc / MILLICENTS_PER_DOLLAR, pnl_mc / MILLICENTS_PER_DOLLAR
        settle = tr.get("settlement") or {}
        ids = self._instrument_ids([lg["occ"] for lg in tr["legs"]], exit_ts)
        d = dt.date.fromisoformat
        row = {
            "trade_id": tr["trade_id"],
            "candidate_id": tr["candidate_id"],
            "strategy": self.spec.name,
            "config_hash": self.cfg_hash,
            "entry_ts": tr["entry_ts"],
            "exit_ts": exit_ts,
            "entry_date": d(tr["entry_date"]),
            "exit_date": _et(exit_ts).date(),
            "entry_time": tr["entry_time"],
            "root": tr["root"],
            "expiry": d(tr["expiry"]),
            "dte": tr["dte"],
            "structure": self.spec.structure,
            "delta_target": self.spec.short_delta,
            "short_delta": tr["short_delta"],
            "width": tr["width"],
            "forward": tr["forward"],
            "legs": [
                {
                    "occ": lg["occ"],
                    "root": tr["root"],
                    "expiry": d(tr["expiry"]),
                    "right": lg["right"],
                    "strike": lg["strike"],
                    "quantity": lg["quantity"],
                    "instrument_id_entry": lg["instrument_id_entry"],
                    "instrument_id_exit": ids.get(lg["occ"], 0),
                    "entry_price": tr["entry_prices"][j],
                    "exit_price": float(exit_px[j]),
                }
                for j, lg in enumerate(tr["legs"])
            ],
            "contracts": n,
            "credit_per_share": tr["credit"],
            "exit_cost_per_share": exit_cost,
            "max_loss_per_share": tr["max_loss_ps"],
            "max_loss": round(tr["max_loss_ps"] * CENTS_PER_DOLLAR)
            * n
            * SHARES_PER_CONTRACT
            / CENTS_PER_DOLLAR,
            "fees": fees,
            "pnl": pnl,
            "exit_reason": reason,
            "mae_per_share": tr["mae"],
            "mfe_per_share": tr["mfe"],
            "settlement_source": settle.get("source"),
            "settlement_value": settle.get("value"),
            "settlement_std_error": None,
            "data_checksum": f"live:{self.mode}",
        }
        self.journal.close_trade(row, self.mode)
        del self.open[tr["trade_id"]]
        self.book.close_trade(tr["trade_id"], exit_ts, pnl_mc, reason)
        kind = "stop" if reason == "stop_loss" else "exit"
        self._note(
            exit_ts,
            kind,
            f"closed {tr['trade_id']} ({reason}) P&L {pnl:,.2f}",
            {"trade_id": tr["trade_id"], "pnl": pnl},
        )
        total, _ = self._realized(exit_ts)
        equity = self.spec.sizing.capital + total
        for mult in self.config.equity_milestones:
            msg = f"equity reached {mult:g}x capital"
            if equity >= mult * self.spec.sizing.capital and not self.journal.has_event(
                "milestone", msg, self.mode
            ):
                self._note(exit_ts, "milestone", msg, {"equity": equity})

    def _instrument_ids(self, occs: list[str], ts: int) -> dict[str, int]:
        """The broker's instrument ids of ``occs`` at ``ts``: its cheap ``instrument_ids`` when it
        has one (IBKR: cached conIds), else read from a chain snapshot (the simulated broker)."""
        lookup = getattr(self.broker, "instrument_ids", None)
        try:
            if lookup is not None:
                return dict(lookup(occs, ts))
            chain = self.broker.chain_snapshot(self.spec.underlying, min(ts, self.broker.now()))
        except Exception:  # ids are informative only; never fail a close on them
            return {}
        hit = chain.filter(chain["raw_symbol"].is_in(occs))
        return dict(zip(hit["raw_symbol"].to_list(), hit["instrument_id"].to_list(), strict=True))

    # -- kill switch and notifications ------------------------------------------------------
    def _kill_switch(self, day: dt.date, ts: int, ds: _Day, mtm: float) -> None:
        if ds.killed:
            return
        reason = ""
        if Path(self.config.kill_file).exists():
            reason = f"kill file {self.config.kill_file} present"
        elif self.config.max_daily_loss is not None:
            _, by_day = self._realized(ts)
            day_pnl = by_day.get(day, 0.0) + mtm - (ds.mtm_start or 0.0)
            if day_pnl <= -self.config.max_daily_loss:
                reason = f"daily loss {day_pnl:,.2f} beyond {self.config.max_daily_loss:,.2f}"
        if not reason:
            return
        ds.killed = reason
        for tr in list(self.open.values()):
            if tr["status"] == "opening":
                if self.mode != "shadow" and tr["order_id"] is not None:
                    self.broker.cancel(tr["order_id"])
                    state = self.broker.order_status(tr["order_id"]).status
                    if state == "filled":
                        self._poll(tr)  # filled before the cancel: a position to manage
                        continue
                    if state not in TERMINAL:
                        continue  # cancel not confirmed yet: polled again next minute
                self.journal.order_status(tr["order_ref"], "cancelled")
                self.journal.drop_open(tr["trade_id"])
                del self.open[tr["trade_id"]]
                self.book.cancel(tr["trade_id"])
        self._note(ts, "kill_switch", reason + ": no new entries today", {})

    def _note(self, ts: int, kind: str, message: str, data: dict[str, Any]) -> None:
        self.journal.event(ts, kind, message, data, self.mode)
        self.notify(kind, message, data)

    # -- entries ----------------------------------------------------------------------------
    def _decide(self, row: dict[str, Any], decision: str, reason: str) -> None:
        self.journal.decision(row | {"decision": decision, "reason": reason}, self.mode)

    def _enter(self, day: dt.date, ts: int, t: dt.time, ds: _Day) -> None:
        s = self.spec
        chain = self.broker.chain_snapshot(s.underlying, ts)
        vix = math.nan
        if self.need_vix:
            from quantlab.volatility import vix_from_chain

            vix = vix_from_chain(chain, ts, s.rate)
        chain = chain.filter(chain["root"].is_in(list(s.roots)))
        snap = build_snapshot(chain, ts, rate=s.rate, max_age_s=s.filters.max_quote_age_s)
        sel = select_structure(
            snap.chain, snap.expiries, day, s.dte, s.roots, s.leg_specs(), s.delta_match
        )
        key = self.rule_key[t]
        base: dict[str, Any] = {
            "strategy": s.name,
            "config_hash": self.cfg_hash,
            "entry_ts": ts,
            "entry_date": day,
            "entry_time": t.strftime("%H:%M"),
        }
        if not sel.ok:
            self._decide(
                base
                | {
                    "candidate_id": ids.rejection_id(key, ts),
                    "expiry": None,
                    "dte": None,
                    "credit_per_share": None,
                },
                "rejected",
                sel.reason,
            )
            return
        assert sel.expiry is not None
        cid = ids.candidate_id(ts, sel.root, sel.expiry, ((lg.occ, lg.quantity) for lg in sel.legs))
        qty = np.array([lg.quantity for lg in sel.legs], dtype=np.int64)
        eb = to_cents([lg.bid for lg in sel.legs])
        ea = to_cents([lg.ask for lg in sel.legs])
        credit_c = s.fills.net_cents(eb, ea, qty)
        strikes = strike_cents([lg.strike for lg in sel.legs])
        lo_c, hi_c = payoff_bounds(qty, strikes, [lg.right == "C" for lg in sel.legs])
        credit = None if credit_c == NO_NET else credit_c / CENTS_PER_DOLLAR
        row = base | {
            "candidate_id": cid,
            "expiry": sel.expiry,
            "dte": sel.dte,
            "credit_per_share": credit,
        }
        trade_id = ids.trade_id(cid, self.cfg_hash)
        prior = self.journal.decision_of(cid, self.mode)
        if prior is not None:  # a restart re-running a decided minute
            if (
                prior != "taken"
                or trade_id in self.open
                or self.journal.has_trade(trade_id, self.mode)
            ):
                return None
            # taken, then the process died before the order was journaled: place it now
            p = self._gate_p(row, sel, ts, cid)
            contracts = self.book.size(hi_c - credit_c, p)
            self.book.open_trade(trade_id, day, count=False)
        else:
            gate = self._gate(row, sel, ts, cid) if self.gate is not None else ""
            reason = entry_filter_reason(s, day, credit_c, eb, ea, qty, hi_c, vix, self.events)
            greeks, scen = (
                self._book_risk(snap, ts, sel) if self.book.has_greek_limit else (None, None)
            )
            d = self.book.decide(
                ts,
                day,
                filter_reason=reason,
                gate_reason=gate,
                max_loss_c=hi_c - credit_c,
                probability=row.get("meta_p"),
                halted=bool(ds.killed),
                greeks=greeks,
                scenarios=scen,
            )
            self._decide(row, d.kind, d.reason)
            if not d.taken:
                return None
            contracts = d.contracts
            self.book.open_trade(trade_id, day)
        close_ns = calendar.contract_close_ns(
            sel.root, sel.expiry, calendar.last_trade_day(sel.root, sel.expiry)
        )
        tr: dict[str, Any] = {
            "trade_id": trade_id,
            "candidate_id": cid,
            "entry_ts": ts,
            "entry_date": day.isoformat(),
            "entry_time": t.strftime("%H:%M"),
            "root": sel.root,
            "expiry": sel.expiry.isoformat(),
            "dte": sel.dte,
            "forward": sel.forward,
            "width": structure_width([lg.strike for lg in sel.legs], [lg.right for lg in sel.legs]),
            "short_delta": next((abs(lg.delta) for lg in sel.legs if lg.quantity < 0), math.nan),
            "legs": [
                {
                    "occ": lg.occ,
                    "right": lg.right,
                    "strike": lg.strike,
                    "quantity": lg.quantity,
                    "instrument_id_entry": lg.instrument_id,
                    "iv": lg.iv,
                }
                for lg in sel.legs
            ],
            "contracts": contracts,
            "max_loss_ps": (hi_c - credit_c) / CENTS_PER_DOLLAR,
            "lo_c": lo_c,
            "hi_c": hi_c,
            "close_ns": close_ns,
            "deadline": exit_deadline(s.management, sel.root, sel.expiry),
            "mae": 0.0,
            "mfe": 0.0,
            "attempt": 0,
            "status": "opening",
            "credit": math.nan,
            "credit_c": credit_c,
            "entry_fees": 0.0,
        }
        self.open[trade_id] = tr
        open_legs = tuple(ComboLeg(lg.occ, lg.quantity) for lg in sel.legs)
        self._place(tr, "opening", open_legs, credit_c / CENTS_PER_DOLLAR, ts)
        return None

    def _positions(self) -> list[Position]:
        """The open trades (entered, not yet closed) as :mod:`quantlab.risk` positions."""
        return [
            Position.from_legs(
                tr["root"],
                dt.date.fromisoformat(tr["expiry"]),
                tr["legs"],
                tr["contracts"],
                tr["forward"],
            )
            for tr in self.open.values()
        ]

    def _book_risk(self, snap: Any, ts: int, sel: Any) -> tuple[tuple, tuple | None]:
        """The greeks (and scenarios, with a scenario limit) of the open trades at ``ts`` from
        the decision snapshot, and of one contract of the candidate ``sel``: what the book's
        greek limits read (:func:`quantlab.risk.book.book_risk`)."""
        quotes, fwd = snapshot_inputs(snap)
        want = self.book.has_scenario_limit
        s = self.spec
        port, pscen = book_risk(self._positions(), quotes, fwd, ts, s.rate, scenarios=want)
        legs = [
            {
                "occ": lg.occ,
                "quantity": lg.quantity,
                "strike": lg.strike,
                "right": lg.right,
                "iv": lg.iv,
            }
            for lg in sel.legs
        ]
        cand = Position.from_legs(sel.root, sel.expiry, legs, 1, sel.forward)
        ck, cscen = candidate_risk(cand, ts, s.rate, scenarios=want)
        return (port, ck), ((pscen, cscen) if want else None)

    def _gate_p(self, row: dict[str, Any], sel: Any, ts: int, cid: str) -> float | None:
        """The meta-label probability of a candidate (None without a gate or features)."""
        if self.gate is None:
            return None
        self._gate(row, sel, ts, cid)
        return row.get("meta_p")

    def _gate(self, row: dict[str, Any], sel: Any, ts: int, cid: str) -> str:
        """The meta-labeler at an entry: sets ``row["meta_p"]``; returns the skip reason."""
        assert self.gate is not None
        try:
            feats = self.features.from_selection(sel, ts, cid)
        except DataError as exc:
            self._note(ts, "meta_labeler", f"{cid}: no features ({exc}); entry skipped", {})
            return "meta_labeler_unavailable"
        p = float(self.gate.proba(feats)[0])
        row["meta_p"] = p
        return self.gate.reason(p)
