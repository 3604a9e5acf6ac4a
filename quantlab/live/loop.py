"""The thin live runner: the backtester's decisions and exits, minute by minute, through a broker.

At each entry time the decision snapshot and the structure come from exactly the backtester's
code (:func:`~quantlab.chain.snapshot.build_snapshot`, :func:`~quantlab.backtest.select.
select_structure`, the entry credit and exit kernels of :mod:`quantlab.backtest._exit_kernels`,
:func:`~quantlab.backtest.stage2.max_loss_per_share`, its deadline rule and
:func:`~quantlab.backtest.stage2.entry_filter_reason`); the risk rules, which stage 2 applies
inline over its own state, are replicated in :meth:`LiveRunner._risk_reason` in the same order
(the parity test checks they give the backtester's decisions). Limits are the fill-model price;
an unfilled order is re-priced ``reprice_attempts`` times by ``reprice_step`` (an entry is then
cancelled; an exit keeps its largest concession until filled). Take-profit and stop-loss are
checked every minute after entry on the level the strategy's ``management.trigger_on`` names,
exactly as the backtester's exit kernel: the spread mid (``mid``, the default), or the exit fill
price through the fill model (``exit_fill``); the close is then priced with the fill model.
Expiring positions cash-settle (no fee).

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
import hashlib
import json
import math
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantlab import calendar
from quantlab.backtest import _exit_kernels as ek
from quantlab.backtest.select import select_structure
from quantlab.backtest.stage1 import SelectRule
from quantlab.backtest.stage2 import _deadline, entry_filter_reason, max_loss_per_share
from quantlab.brokers.base import TERMINAL, Broker, ComboLeg, Fill
from quantlab.brokers.simulated import _net
from quantlab.chain.snapshot import build_snapshot
from quantlab.errors import BrokerDisconnected, BrokerError, ConfigError, DataError
from quantlab.live.config import LiveConfig, MetaLabelerConfig
from quantlab.live.journal import Journal
from quantlab.strategy.spec import StrategySpec

Notify = Callable[[str, str, dict[str, Any]], None]


class Notifier:
    """Console lines and, if configured, a JSON webhook POST per notification."""

    def __init__(self, console: bool = True, webhook_url: str | None = None,
                 post: Callable[[str, bytes], None] | None = None) -> None:  # fmt: skip
        self.console, self.webhook_url = console, webhook_url
        self.post = post or _post_json

    def __call__(self, kind: str, message: str, data: dict[str, Any]) -> None:
        if self.console:
            print(f"[quantlab live] {kind}: {message}", file=sys.stderr)
        if self.webhook_url:
            body = json.dumps({"kind": kind, "message": message, "data": data}, default=str)
            try:
                self.post(self.webhook_url, body.encode())
            except OSError as exc:  # a notification failure never stops trading
                print(f"[quantlab live] webhook failed: {exc}", file=sys.stderr)


def _post_json(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5):
        pass


def _et(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=calendar.ET)


def _tick_round(price: float) -> float:
    return round(round(price / 0.05) * 0.05, 2)


class MetaGate:
    """A registered meta-labeler with its threshold and feature set, as live applies it.

    Parameters
    ----------
    model : mlflow.pyfunc.PyFuncModel or object with ``predict(pandas.DataFrame)``
        Returns P(take) per row (:class:`quantlab.ml.train.ProbaModel`).
    threshold : float
        Candidates with ``p < threshold`` are skipped.
    feature_set : FeatureSet
        The set the model was trained on.
    columns : list of str, optional
        The model's input columns (default: the feature set's).
    name, version, run_id : str
        Where it came from (for records and messages).
    """

    def __init__(self, model: Any, threshold: float, feature_set: Any,
                 columns: list[str] | None = None, *, name: str = "", version: str = "",
                 run_id: str = "") -> None:  # fmt: skip
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"meta_labeler threshold must be in [0, 1] (got {threshold!r}).")
        self.model, self.threshold, self.feature_set = model, float(threshold), feature_set
        self.columns = list(columns or feature_set.columns)
        self.name, self.version, self.run_id = name, version, run_id

    @classmethod
    def load(cls, cfg: MetaLabelerConfig) -> MetaGate:
        """Resolve ``models:/MODEL@ALIAS`` in the registry, load that version, and read the
        threshold (unless ``cfg.threshold``) and feature set its training run logged."""
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from quantlab.features import FeatureSet
        from quantlab.tracking import tracking_uri

        uri = cfg.tracking_uri or tracking_uri()
        client = MlflowClient(uri)
        where = f"models:/{cfg.model}@{cfg.alias} (registry {uri})"
        try:
            mv = client.get_model_version_by_alias(cfg.model, cfg.alias)
            if not mv.run_id:
                raise ConfigError(f"meta_labeler: {where} has no training run to read the "
                                  "threshold and feature set from; register it with quantlab train")  # fmt: skip
            run = client.get_run(mv.run_id)
        except MlflowException as exc:
            raise ConfigError(
                f"meta_labeler: cannot resolve {where}: {exc.message}. Train and register one "
                "with `quantlab train CONFIG`, or fix meta_labeler.model / alias / tracking_uri."
            ) from exc
        params, tags = run.data.params, run.data.tags
        if cfg.threshold is not None:
            thr = cfg.threshold
        elif "threshold" in params:
            thr = float(params["threshold"])
        else:
            raise ConfigError(
                f"meta_labeler: the training run {mv.run_id} of {where} logged no 'threshold'; "
                "set meta_labeler.threshold."
            )
        fs = FeatureSet(params.get("feature_set", "core"))
        logged = params.get("feature_set_version") or tags.get("quantlab.feature_set_version")
        if logged and logged != fs.version:
            raise ConfigError(
                f"meta_labeler: {where} was trained on feature set {fs.name!r} version {logged}, "
                f"but this code computes version {fs.version} (definitions, parameters or the "
                "event calendar changed): retrain the model."
            )
        prev = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:  # the version the alias resolved to above, not whatever it points to now
            model = mlflow.pyfunc.load_model(f"models:/{cfg.model}/{mv.version}")
        finally:
            mlflow.set_tracking_uri(prev)
        schema = model.metadata.get_input_schema()
        columns = schema.input_names() if schema is not None else None
        return cls(model, thr, fs, columns, name=cfg.model, version=str(mv.version),
                   run_id=str(mv.run_id))  # fmt: skip

    def proba(self, rows: Any) -> np.ndarray:
        """P(take) of feature rows (a polars frame of :func:`quantlab.features.build_features`
        columns), float64."""
        from quantlab.features.live import matrix

        if rows.height == 0:
            return np.empty(0)
        return np.asarray(self.model.predict(matrix(rows, self.columns)), dtype=np.float64)

    def reason(self, p: float) -> str:
        """Empty when ``p`` passes, else ``meta_labeler p=0.41<0.55`` (digits enough to differ)."""
        if p >= self.threshold:
            return ""
        d = 2
        while d < 6 and round(p, d) >= round(self.threshold, d):
            d += 1
        return f"meta_labeler p={p:.{d}f}<{self.threshold:.{d}f}"


@dataclass
class _Day:
    new: int = 0
    stopped_at: int | None = None
    window_used: bool = False
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

    def __init__(self, config: LiveConfig, broker: Broker, journal: Journal, *,
                 spec: StrategySpec | None = None, notify: Notify | None = None,
                 gate: MetaGate | None = None) -> None:  # fmt: skip
        self.config, self.broker, self.journal = config, broker, journal
        self.spec = spec or config.spec()
        if gate is None and config.meta_labeler is not None:
            gate = MetaGate.load(config.meta_labeler)
        self.gate = gate
        self.features: Any = None
        if gate is not None:
            from quantlab.features.live import CandidateFeatures

            store = getattr(broker, "store", None) or config.store
            self.features = CandidateFeatures(store, gate.feature_set,
                                              underlying=self.spec.underlying)  # fmt: skip
        self.mode = config.mode
        self.notify = notify or Notifier(config.notify.console, config.notify.webhook_url)
        self.cfg_hash = self.spec.config_hash()
        self.open: dict[str, dict[str, Any]] = journal.open_states(self.mode)
        self.days: dict[dt.date, _Day] = {}
        f = self.spec.filters
        self.events = set(calendar.load_events(f.events_file)) if f.skip_event_days else set()
        self.need_vix = f.vix_min is not None or f.vix_max is not None
        self.rule_key = {t: SelectRule(t, self.spec).key for t in self.spec.entry.times}
        self._restore_day_state()

    # -- state from the journal (restart) ---------------------------------------------------
    def _restore_day_state(self) -> None:
        dec = self.journal.table("decisions", self.mode)
        for row in dec.filter(dec["decision"] == "taken").iter_rows(named=True):
            ds = self.days.setdefault(row["entry_date"], _Day())
            ds.new += 1
            ds.window_used = True
        for t in self.journal.table("trades", self.mode).iter_rows(named=True):
            if t["exit_reason"] == "stop_loss":
                ds = self.days.setdefault(t["exit_date"], _Day())
                if ds.stopped_at is None or t["exit_ts"] < ds.stopped_at:
                    ds.stopped_at = t["exit_ts"]

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
                self._note(calendar.option_open_ns(day), "meta_labeler", msg,
                           {"model": g.name, "version": g.version, "threshold": g.threshold,
                            "feature_set_version": g.feature_set.version})  # fmt: skip
        self._reconcile()
        entry_ns = {calendar.to_ns(dt.datetime.combine(day, t, tzinfo=calendar.ET)): t
                    for t in self.spec.entry.times}  # fmt: skip
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

    # -- orders ------------------------------------------------------------------------------
    def _place(self, tr: dict[str, Any], purpose: str, legs: tuple[ComboLeg, ...], limit: float,
               ts: int) -> None:  # fmt: skip
        """Journal the intent first, then send (idempotent on the deterministic order_ref)."""
        ref = f"{tr['trade_id']}-{purpose}-{tr['attempt']}"
        tr.update(order_id=None, order_ref=ref, placed_ts=ts, limit=limit, status=purpose,
                  order_legs=[[leg.occ, leg.ratio] for leg in legs])  # fmt: skip
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
        self.journal.order(ref, oid, tr["trade_id"], tr["status"], tr["placed_ts"],
                           tr["contracts"], tr["limit"], legs, "submitted", self.mode)  # fmt: skip
        self.journal.save_open(tr["trade_id"], tr, self.mode)

    def _shadow_fill(self, tr: dict[str, Any], legs: tuple[ComboLeg, ...], ts: int) -> None:
        bid, ask = self.broker.quotes([leg.occ for leg in legs])
        ratio = np.array([leg.ratio for leg in legs], dtype=np.float64)
        px = self.spec.fills.leg_prices(bid, ask, ratio < 0)
        if not np.all(np.isfinite(px)):
            return
        net = _net(ratio, px)
        if net < tr["limit"] - 1e-9:
            return
        fees = self.spec.fees.order_fees(px, ratio * tr["contracts"])
        fill = Fill(f"{tr['order_id']}-E1", tr["order_id"], tr["order_ref"], ts, legs,
                    tr["contracts"], net, tuple(float(p) for p in px), fees)  # fmt: skip
        self._on_fill(tr, fill)

    def _poll(self, tr: dict[str, Any]) -> None:
        order = self.broker.order_status(tr["order_id"])
        if order.status == "filled":
            fills = [f for f in self.broker.executions_since(tr["placed_ts"])
                     if f.order_id == tr["order_id"]]  # fmt: skip
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
                self._note(ts, "entry_unfilled", f"{tr['trade_id']} not filled; cancelled", {})
                continue
            tr["attempt"] += 1
            bid, ask = self.broker.quotes([lg.occ for lg in legs])
            model = self.spec.fills.net_price(bid, ask, [lg.ratio for lg in legs])
            if not math.isfinite(model):
                model = tr["limit"]
            give = min(tr["attempt"], self.config.reprice_attempts) * self.config.reprice_step
            self._place(tr, tr["status"], legs, _tick_round(model - give), ts)

    def _on_fill(self, tr: dict[str, Any], fill: Fill) -> None:
        self.journal.fill(fill, self.mode)
        self.journal.order_status(tr["order_ref"], "filled")
        if tr["status"] == "opening":
            if 0 < fill.quantity < tr["contracts"]:  # partly filled, the rest cancelled
                self._note(fill.ts, "partial_fill", f"{tr['trade_id']}: {fill.quantity} of "
                           f"{tr['contracts']} filled; managing {fill.quantity}",
                           {"trade_id": tr["trade_id"]})  # fmt: skip
                tr["contracts"] = fill.quantity
            tr.update(status="open", credit=fill.price, entry_fees=fill.fees,
                      entry_prices=list(fill.leg_prices), entry_fill_ts=fill.ts)  # fmt: skip
            m = self.spec.management
            c = fill.price
            tr["tp"] = (1.0 - m.take_profit_pct / 100.0) * c if m.take_profit_pct else -math.inf
            tr["sl"] = (1.0 + m.stop_loss_pct / 100.0) * c if m.stop_loss_pct else math.inf
            self.journal.save_open(tr["trade_id"], tr, self.mode)
            self._note(fill.ts, "fill", f"opened {tr['trade_id']} x{tr['contracts']} for a credit "
                       f"of {fill.price:.2f}", {"trade_id": tr["trade_id"]})  # fmt: skip
        elif tr["status"] == "closing":
            self._finish(tr, fill.ts, -fill.price, list(fill.leg_prices), fill.fees,
                         tr["exit_reason"])  # fmt: skip

    # -- exits ------------------------------------------------------------------------------
    def _manage(self, tid: str, ts: int) -> float:
        """Check one trade's exits at minute ``ts``; returns its mark-to-market P&L (dollars).

        TP/SL trigger on ``management.trigger_on`` (the spread mid by default, else the exit
        fill price), as :func:`quantlab.backtest._exit_kernels.scan_exit` does."""
        tr = self.open[tid]
        if tr["status"] != "open" or ts <= tr["entry_ts"]:
            return 0.0
        legs = tr["legs"]
        n = len(legs)
        qty = np.array([lg["quantity"] for lg in legs], dtype=np.int32)
        bid, ask = self.broker.quotes([lg["occ"] for lg in legs])
        fm = self.spec.fills
        mid, fill = ek.close_costs(np.array(bid, np.float64), np.array(ask, np.float64), qty, n,
                                   fm.kind_code, fm.k, fm.tick_small, fm.tick_large,
                                   fm.tick_threshold)  # fmt: skip
        credit = tr["credit"]
        mtm = 0.0
        if mid == mid and ts <= tr["close_ns"]:  # the backtester's path ends at the close
            pnl = credit - mid
            tr["mae"], tr["mfe"] = min(tr["mae"], pnl), max(tr["mfe"], pnl)
            mtm = pnl * 100.0 * tr["contracts"]
            m = self.spec.management
            trig = fill if m.trigger_on == "exit_fill" else mid
            reason = ""
            if ts >= tr["deadline"]:
                reason = "time_exit"
            elif m.stop_loss_pct is not None and trig >= tr["sl"]:
                reason = "stop_loss"
            elif m.take_profit_pct is not None and trig <= tr["tp"]:
                reason = "take_profit"
            if reason:
                tr["exit_reason"] = reason
                tr["attempt"] = 0
                close = tuple(ComboLeg(lg["occ"], -lg["quantity"]) for lg in legs)
                self._place(tr, "closing", close, -float(fill), ts)
                return mtm
        if ts >= tr["close_ns"] and self.spec.management.hold_to_settlement:
            self._settle(tr, ts)
        return mtm

    def _settle(self, tr: dict[str, Any], ts: int) -> None:
        value = self.broker.settlement_value(tr["root"], dt.date.fromisoformat(tr["expiry"]))
        if not math.isfinite(value):
            return
        legs = tr["legs"]
        px = [max(value - lg["strike"], 0.0) if lg["right"] == "C" else max(lg["strike"] - value,
              0.0) for lg in legs]  # fmt: skip
        cost = float(sum(-lg["quantity"] * p for lg, p in zip(legs, px, strict=True)))
        self._finish(tr, calendar.settlement_ns(tr["root"], tr["expiry"]), cost, px, 0.0,
                     "settlement")  # fmt: skip

    def _finish(self, tr: dict[str, Any], exit_ts: int, exit_cost: float, exit_px: list[float],
                exit_fees: float, reason: str) -> None:  # fmt: skip
        n = tr["contracts"]
        fees = tr["entry_fees"] + exit_fees
        pnl = (tr["credit"] - exit_cost) * 100.0 * n - fees
        ids = self._instrument_ids([lg["occ"] for lg in tr["legs"]], exit_ts)
        d = dt.date.fromisoformat
        row = {
            "trade_id": tr["trade_id"], "candidate_id": tr["candidate_id"], "strategy": self.spec.name,
            "config_hash": self.cfg_hash, "entry_ts": tr["entry_ts"], "exit_ts": exit_ts,
            "entry_date": d(tr["entry_date"]), "exit_date": _et(exit_ts).date(),
            "entry_time": tr["entry_time"], "root": tr["root"], "expiry": d(tr["expiry"]),
            "dte": tr["dte"], "structure": self.spec.structure, "delta_target": self.spec.short_delta,
            "short_delta": tr["short_delta"], "width": tr["width"], "forward": tr["forward"],
            "legs": [{"occ": lg["occ"], "root": tr["root"], "expiry": d(tr["expiry"]),
                      "right": lg["right"], "strike": lg["strike"], "quantity": lg["quantity"],
                      "instrument_id_entry": lg["instrument_id_entry"],
                      "instrument_id_exit": ids.get(lg["occ"], 0),
                      "entry_price": tr["entry_prices"][j], "exit_price": float(exit_px[j])}
                     for j, lg in enumerate(tr["legs"])],
            "contracts": n, "credit_per_share": tr["credit"], "exit_cost_per_share": exit_cost,
            "max_loss_per_share": tr["max_loss_ps"], "max_loss": tr["max_loss_ps"] * 100.0 * n,
            "fees": fees, "pnl": pnl, "exit_reason": reason, "mae_per_share": tr["mae"],
            "mfe_per_share": tr["mfe"], "data_checksum": f"live:{self.mode}",
        }  # fmt: skip
        self.journal.close_trade(row, self.mode)
        del self.open[tr["trade_id"]]
        if reason == "stop_loss":
            ds = self.days.setdefault(_et(exit_ts).date(), _Day())
            if ds.stopped_at is None or exit_ts < ds.stopped_at:
                ds.stopped_at = exit_ts
        kind = "stop" if reason == "stop_loss" else "exit"
        self._note(exit_ts, kind, f"closed {tr['trade_id']} ({reason}) P&L {pnl:,.2f}",
                   {"trade_id": tr["trade_id"], "pnl": pnl})  # fmt: skip
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
        sel = select_structure(snap.chain, snap.expiries, day, s.dte, s.roots, s.leg_specs(),
                               s.delta_match)  # fmt: skip
        key = self.rule_key[t]
        base: dict[str, Any] = {"strategy": s.name, "config_hash": self.cfg_hash, "entry_ts": ts,
                                "entry_date": day, "entry_time": t.strftime("%H:%M")}  # fmt: skip
        if not sel.ok:
            cid = hashlib.sha1(f"{key}|{ts}".encode()).hexdigest()[:16]
            self._decide(base | {"candidate_id": cid, "expiry": None, "dte": None,
                                 "credit_per_share": None}, "rejected", sel.reason)  # fmt: skip
            return
        assert sel.expiry is not None
        legs = f"{','.join(f'{lg.occ}:{lg.quantity}' for lg in sel.legs)}"
        cid = hashlib.sha1(f"{ts}|{sel.root}|{sel.expiry}|{legs}".encode()).hexdigest()[:16]
        n = len(sel.legs)
        qty = np.array([lg.quantity for lg in sel.legs], dtype=np.int32)
        eb = np.array([lg.bid for lg in sel.legs])
        ea = np.array([lg.ask for lg in sel.legs])
        fm = s.fills
        credit = float(ek.entry_credit(eb, ea, qty, n, fm.kind_code, fm.k, fm.tick_small,
                                       fm.tick_large, fm.tick_threshold))  # fmt: skip
        row = base | {"candidate_id": cid, "expiry": sel.expiry, "dte": sel.dte,
                      "credit_per_share": credit}  # fmt: skip
        trade_id = f"{cid}-{self.cfg_hash[:6]}"
        prior = self.journal.decision_of(cid, self.mode)
        if prior is not None and (prior != "taken" or trade_id in self.open
                                  or self.journal.has_trade(trade_id, self.mode)):  # fmt: skip
            return None  # a restart re-running a decided minute
        strike = np.array([lg.strike for lg in sel.legs])
        is_call = np.array([lg.right == "C" for lg in sel.legs])
        ml = max_loss_per_share(qty, strike, is_call, n, credit)
        if prior is None:
            if s.entry.mode == "first_valid" and ds.window_used:
                return self._decide(row, "skipped", "later_window")
            if self.gate is not None:  # where stage 2 applies ``allowed``
                why = self._gate(row, sel, ts, cid)
                if why:
                    return self._decide(row, "skipped", why)
            reason = entry_filter_reason(s, day, credit, eb, ea, qty, vix, self.events)
            if reason:
                return self._decide(row, "rejected", reason)
            if s.entry.mode == "first_valid":
                ds.window_used = True
            skip = self._risk_reason(day, ts, ds, ml)
            if skip:
                return self._decide(
                    row, "rejected" if skip == "undefined_risk" else "skipped", skip
                )
        total, _ = self._realized(ts)
        sz = s.sizing
        equity = sz.capital + total
        contracts = (sz.contracts if sz.mode == "fixed"
                     else int(equity * sz.risk_pct / 100.0 // max(ml * 100.0, 1e-9)))  # fmt: skip
        if contracts < 1:
            return self._decide(row, "skipped", "size_zero")
        if prior is None:
            self._decide(row, "taken", "")
            ds.new += 1
        close_ns = calendar.contract_close_ns(
            sel.root, sel.expiry, calendar.last_trade_day(sel.root, sel.expiry)
        )
        width = max((max(ks) - min(ks) for ks in (
            [lg.strike for lg in sel.legs if lg.right == r] for r in ("P", "C")) if len(ks) > 1),
            default=0.0)  # fmt: skip
        tr: dict[str, Any] = {
            "trade_id": trade_id, "candidate_id": cid, "entry_ts": ts, "entry_date": day.isoformat(),
            "entry_time": t.strftime("%H:%M"), "root": sel.root, "expiry": sel.expiry.isoformat(),
            "dte": sel.dte, "forward": sel.forward, "width": float(width),
            "short_delta": next((abs(lg.delta) for lg in sel.legs if lg.quantity < 0), math.nan),
            "legs": [{"occ": lg.occ, "right": lg.right, "strike": lg.strike, "quantity": lg.quantity,
                      "instrument_id_entry": lg.instrument_id} for lg in sel.legs],
            "contracts": contracts, "max_loss_ps": ml, "close_ns": close_ns,
            "deadline": _deadline(s, sel.expiry, sel.root, close_ns), "mae": 0.0, "mfe": 0.0,
            "attempt": 0, "status": "opening", "credit": math.nan, "entry_fees": 0.0,
        }  # fmt: skip
        self.open[trade_id] = tr
        open_legs = tuple(ComboLeg(lg.occ, lg.quantity) for lg in sel.legs)
        self._place(tr, "opening", open_legs, credit, ts)
        return None

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

    def _risk_reason(self, day: dt.date, ts: int, ds: _Day, ml: float) -> str:
        """Stage 2's risk rules at an entry, in its order ("" = allowed), plus the kill switch."""
        r = self.spec.risk
        if ds.killed:
            return "kill_switch"
        _, by_day = self._realized(ts)
        if len(self.open) >= r.max_open_trades:
            return "max_open_trades"
        if ds.new >= r.max_new_trades_per_day:
            return "max_new_trades_per_day"
        if r.no_new_after_stop and ds.stopped_at is not None and ds.stopped_at <= ts:
            return "stopped_today"
        if r.daily_loss_limit is not None and by_day.get(day, 0.0) <= -r.daily_loss_limit:
            return "daily_loss_limit"
        if not math.isfinite(ml):
            return "undefined_risk"
        return ""
