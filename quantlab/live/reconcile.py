"""The evening reconciliation: a day of the live journal against the backtester on the same data.

:func:`reconcile_day` re-runs the backtester (stage 1 and stage 2, with the champion's filter
when the runner had one) over the journal's sessions up to the day, so the portfolio state
(open trades, stops, realized P&L) entering the day is the runner's, and compares the day with
what the runner recorded:

* **decisions**: every candidate proposed that day, taken / skipped / rejected and why, live vs
  backtest. The gate's ``skipped``/``meta_labeler p=...`` is stage 2's
  ``rejected``/``filtered_by_model``; any other difference is a break (a kill switch, a missed
  minute, a different quote).
* **trades** entered or closed that day: entry and exit time, credit, exit reason, contracts and
  P&L, live vs backtest, and the differences. A trade still open live is consistent when the
  backtest closes it after the last minute the runner processed (or the data ends first).
* **fills**: each fill's slippage versus the fill model, ``(live fill price - fill-model price at
  the fill minute) x 100 x quantity`` dollars (prices net per share, + credit / - debit; so a
  POSITIVE slippage is a BETTER fill than the model, negative a worse one), per order and total.
  The fill-model price uses the store's quotes at the fill minute (the last quote at or before
  it, carried from the previous session when a contract has not quoted yet that day, as the
  simulated broker does).

The verdict is parity when nothing differs beyond ``tol_usd`` dollars. With the simulated
broker replaying the store it is exact. :meth:`ReconcileReport.to_html` writes the report;
:meth:`ReconcileReport.print` shows it as rich tables (``quantlab live reconcile``).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import DataError, InputError
from quantlab.execution.fills import net_of_legs
from quantlab.live.journal import Journal
from quantlab.strategy.spec import StrategySpec

GATE_PREFIX = "meta_labeler p="
_DEC_SCHEMA: dict[str, Any] = {
    "candidate_id": pl.Utf8,
    "entry_ts": pl.Int64,
    "entry_time": pl.Utf8,
    "live_decision": pl.Utf8,
    "live_reason": pl.Utf8,
    "meta_p": pl.Float64,
    "bt_decision": pl.Utf8,
    "bt_reason": pl.Utf8,
    "match": pl.Boolean,
}
_TRADE_SCHEMA: dict[str, Any] = {
    "trade_id": pl.Utf8,
    "status": pl.Utf8,
    "live_entry_ts": pl.Int64,
    "bt_entry_ts": pl.Int64,
    "live_exit_ts": pl.Int64,
    "bt_exit_ts": pl.Int64,
    "live_credit": pl.Float64,
    "bt_credit": pl.Float64,
    "live_exit_reason": pl.Utf8,
    "bt_exit_reason": pl.Utf8,
    "contracts": pl.Int32,
    "live_pnl": pl.Float64,
    "bt_pnl": pl.Float64,
    "pnl_diff": pl.Float64,
    "match": pl.Boolean,
}
_FILL_SCHEMA: dict[str, Any] = {
    "order_ref": pl.Utf8,
    "trade_id": pl.Utf8,
    "purpose": pl.Utf8,
    "ts": pl.Int64,
    "quantity": pl.Int32,
    "fill_price": pl.Float64,
    "model_price": pl.Float64,
    "slippage_per_share": pl.Float64,
    "slippage_usd": pl.Float64,
}


@dataclass
class ReconcileReport:
    """One day's reconciliation; ``breaks`` lists every difference (empty = parity)."""

    day: dt.date
    mode: str
    decisions: pl.DataFrame
    trades: pl.DataFrame
    fills: pl.DataFrame
    breaks: list[str]
    tol_usd: float
    notes: list[str] = field(default_factory=list)

    @property
    def parity(self) -> bool:
        return not self.breaks

    @property
    def total_slippage_usd(self) -> float:
        return float(self.fills["slippage_usd"].fill_nan(0.0).sum()) if self.fills.height else 0.0

    def summary(self) -> str:
        verdict = "PARITY" if self.parity else f"PARITY BROKEN ({len(self.breaks)} differences)"
        d, t = self.decisions, self.trades
        return (
            f"{self.day} [{self.mode}] {verdict}: {d.height} decisions "
            f"({int((~d['match']).sum()) if d.height else 0} differ), {t.height} trades "
            f"({int((~t['match']).sum()) if t.height else 0} differ), {self.fills.height} "
            f"fills, slippage vs the fill model {self.total_slippage_usd:+,.2f} $"
        )

    # -- rendering ---------------------------------------------------------------------------
    def _sections(self) -> list[tuple[str, list[str], list[list[str]], list[bool]]]:
        dec = [
            [
                _hm(r["entry_ts"]),
                r["candidate_id"],
                _s(r["live_decision"]),
                _s(r["live_reason"]),
                _f(r["meta_p"], 3),
                _s(r["bt_decision"]),
                _s(r["bt_reason"]),
            ]
            for r in self.decisions.iter_rows(named=True)
        ]
        tr = [
            [
                r["trade_id"],
                r["status"],
                _hm(r["live_entry_ts"]),
                _hm(r["bt_entry_ts"]),
                _hm(r["live_exit_ts"]),
                _hm(r["bt_exit_ts"]),
                _f(r["live_credit"]),
                _f(r["bt_credit"]),
                _s(r["live_exit_reason"]),
                _s(r["bt_exit_reason"]),
                _f(r["live_pnl"]),
                _f(r["bt_pnl"]),
                _f(r["pnl_diff"]),
            ]
            for r in self.trades.iter_rows(named=True)
        ]
        fi = [
            [
                r["order_ref"],
                r["purpose"],
                _hm(r["ts"]),
                str(r["quantity"]),
                _f(r["fill_price"]),
                _f(r["model_price"]),
                _f(r["slippage_per_share"]),
                _f(r["slippage_usd"]),
            ]
            for r in self.fills.iter_rows(named=True)
        ]
        return [
            (
                "Decisions",
                ["time", "candidate", "live", "live reason", "p", "backtest", "backtest reason"],
                dec,
                self.decisions["match"].to_list(),
            ),
            (
                "Trades",
                [
                    "trade",
                    "status",
                    "entry live",
                    "entry bt",
                    "exit live",
                    "exit bt",
                    "credit live",
                    "credit bt",
                    "exit live",
                    "exit bt",
                    "P&L live",
                    "P&L bt",
                    "P&L diff",
                ],
                tr,
                self.trades["match"].to_list(),
            ),
            (
                "Fills vs the fill model ($, + = better than the model)",
                ["order", "purpose", "time", "qty", "fill", "model", "slip/share", "slip $"],
                fi,
                [abs(x) <= self.tol_usd for x in self.fills["slippage_usd"].fill_nan(0.0)],
            ),
        ]

    def tables(self) -> list[Any]:
        """The report as compact :class:`rich.table.Table` objects: one value where live and
        backtest agree, ``live | bt value`` where they differ (rows that differ in red)."""
        from rich.table import Table

        def pair(a: str, b: str) -> str:
            return a if a == b else f"{a or '-'} | bt {b or '-'}"

        hm = self._hm
        dec = [
            [
                hm(r["entry_ts"]),
                r["candidate_id"][:8],
                pair(_s(r["live_decision"]), _s(r["bt_decision"])),
                pair(_s(r["live_reason"]), _s(r["bt_reason"])),
                _f(r["meta_p"], 3),
            ]
            for r in self.decisions.iter_rows(named=True)
        ]
        tr = [
            [
                r["trade_id"][:8],
                r["status"],
                pair(hm(r["live_entry_ts"]), hm(r["bt_entry_ts"])),
                pair(hm(r["live_exit_ts"]), hm(r["bt_exit_ts"])),
                pair(_s(r["live_exit_reason"]), _s(r["bt_exit_reason"])),
                pair(_f(r["live_credit"]), _f(r["bt_credit"])),
                _s(r["contracts"]),
                _f(r["live_pnl"]),
                _f(r["bt_pnl"]),
                _f(r["pnl_diff"]),
            ]
            for r in self.trades.iter_rows(named=True)
        ]
        fi = [
            [
                r["trade_id"][:8],
                r["purpose"],
                hm(r["ts"]),
                _s(r["quantity"]),
                _f(r["fill_price"]),
                _f(r["model_price"]),
                _f(r["slippage_usd"]),
            ]
            for r in self.fills.iter_rows(named=True)
        ]
        ok_fill = [abs(x) <= self.tol_usd for x in self.fills["slippage_usd"].fill_nan(0.0)]
        out = []
        for title, header, rows, ok in (
            (
                "Decisions",
                ["time", "cand.", "decision", "reason", "p"],
                dec,
                self.decisions["match"].to_list(),
            ),
            (
                "Trades",
                [
                    "trade",
                    "status",
                    "entry",
                    "exit",
                    "exit reason",
                    "credit",
                    "n",
                    "P&L live",
                    "P&L bt",
                    "diff",
                ],
                tr,
                self.trades["match"].to_list(),
            ),
            (
                "Fills vs the fill model",
                ["trade", "order", "time", "n", "fill", "model", "slip $"],
                fi,
                ok_fill,
            ),
        ):
            t = Table(title=title, header_style="bold")
            for h in header:
                t.add_column(h, no_wrap=h in ("time", "entry", "exit"))
            for row, good in zip(rows, ok, strict=True):
                t.add_row(*row, style=None if good else "red")
            out.append(t)
        return out

    def _hm(self, ns: int | None) -> str:
        """``HH:MM`` ET on the report's day, ``MM-DD HH:MM`` on another."""
        if ns is None:
            return ""
        t = dt.datetime.fromtimestamp(ns / 1e9, tz=calendar.ET)
        return t.strftime("%H:%M" if t.date() == self.day else "%m-%d %H:%M")

    def print(self, console: Any = None) -> None:
        """Print the verdict, the differences and the tables (rich)."""
        from rich.console import Console

        con = console or Console()
        con.print(self.summary(), style="bold green" if self.parity else "bold red", markup=False)
        for b in self.breaks:
            con.print(f"  - {b}", style="red", markup=False)
        for n in self.notes:
            con.print(f"  note: {n}", style="yellow", markup=False)
        for t in self.tables():
            con.print(t)

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML report (differences highlighted); returns the path."""
        e = html.escape
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>quantlab reconciliation {self.day}</title><style>",
            "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;"
            "margin-bottom:2em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
            "text-align:right}th{background:#eee}tr.bad td{background:#fdd}"
            ".ok{color:#060}.bad{color:#b00}</style></head><body>",
            f"<h1>Live vs backtest: {self.day} ({e(self.mode)})</h1>",
            f"<p class='{'ok' if self.parity else 'bad'}'><b>{e(self.summary())}</b></p>",
        ]
        if self.breaks:
            parts.append("<ul>" + "".join(f"<li>{e(b)}</li>" for b in self.breaks) + "</ul>")
        if self.notes:
            parts.append("<p>" + "<br>".join(f"note: {e(n)}" for n in self.notes) + "</p>")
        for title, header, rows, ok in self._sections():
            parts.append(f"<h2>{e(title)}</h2><table><tr>")
            parts.append("".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            for row, good in zip(rows, ok, strict=True):
                cells = "".join(f"<td>{e(c)}</td>" for c in row)
                parts.append(f"<tr{'' if good else ' class=bad'}>{cells}</tr>")
            parts.append("</table>")
        parts.append("</body></html>")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(parts))
        return out


def _hm(ns: int | None) -> str:
    if ns is None:
        return ""
    return dt.datetime.fromtimestamp(ns / 1e9, tz=calendar.ET).strftime("%m-%d %H:%M")


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def _f(v: float | None, digits: int = 2) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


# --------------------------------------------------------------------------- the comparison


def _live_equivalent(decision: str | None, reason: str | None) -> tuple[str | None, str | None]:
    """What stage 2 records for a live decision (the gate's skip is its model filter)."""
    if reason is not None and reason.startswith(GATE_PREFIX):
        return "rejected", "filtered_by_model"
    return decision, reason


def _decisions(live: pl.DataFrame, bt: pl.DataFrame, breaks: list[str]) -> pl.DataFrame:
    lv = {r["candidate_id"]: r for r in live.iter_rows(named=True)}
    bv = {r["candidate_id"]: r for r in bt.iter_rows(named=True)}
    rows = []
    for cid in set(lv) | set(bv):
        a, b = lv.get(cid), bv.get(cid)
        any_row = a or b
        assert any_row is not None
        ld, lr = (a["decision"], a["reason"]) if a else (None, None)
        bd, br = (b["decision"], b["reason"]) if b else (None, None)
        ok = a is not None and b is not None and _live_equivalent(ld, lr) == (bd, br)
        when = f"{any_row['entry_time']} candidate {cid}"
        if a is None:
            breaks.append(f"decision {when}: backtest only ({bd} {br!r}), no live decision")
        elif b is None:
            breaks.append(f"decision {when}: live only ({ld} {lr!r}), not in the backtest")
        elif not ok:
            breaks.append(f"decision {when}: live {ld} {lr!r} vs backtest {bd} {br!r}")
        rows.append(
            {
                "candidate_id": cid,
                "entry_ts": any_row["entry_ts"],
                "entry_time": any_row["entry_time"],
                "live_decision": ld,
                "live_reason": lr,
                "meta_p": a.get("meta_p") if a else None,
                "bt_decision": bd,
                "bt_reason": br,
                "match": ok,
            }
        )
    return pl.DataFrame(rows, schema=_DEC_SCHEMA).sort(["entry_ts", "candidate_id"])


def _trades(
    live: pl.DataFrame,
    open_live: dict[str, dict[str, Any]],
    bt: pl.DataFrame,
    day: dt.date,
    horizon: int | None,
    tol: float,
    breaks: list[str],
) -> pl.DataFrame:
    def on_day(r: dict[str, Any]) -> bool:
        return r["entry_date"] == day or r["exit_date"] == day

    lv = {r["trade_id"]: r for r in live.iter_rows(named=True) if on_day(r)}
    op = {t: s for t, s in open_live.items() if dt.date.fromisoformat(s["entry_date"]) == day}
    bv = {r["trade_id"]: r for r in bt.iter_rows(named=True) if on_day(r) or r["trade_id"] in op}
    rows = []
    for tid in sorted(set(lv) | set(op) | set(bv)):
        a, o, b = lv.get(tid), op.get(tid), bv.get(tid)
        row: dict[str, Any] = {"trade_id": tid, "status": "closed"}
        if a is not None:
            row |= {
                "live_entry_ts": a["entry_ts"],
                "live_exit_ts": a["exit_ts"],
                "live_credit": a["credit_per_share"],
                "live_exit_reason": a["exit_reason"],
                "contracts": a["contracts"],
                "live_pnl": a["pnl"],
            }
        elif o is not None:
            credit = o.get("credit")
            row |= {
                "status": "open",
                "live_entry_ts": o["entry_ts"],
                "contracts": o["contracts"],
                "live_credit": None if credit is None or credit != credit else credit,
            }
        if b is not None:
            row |= {
                "bt_entry_ts": b["entry_ts"],
                "bt_exit_ts": b["exit_ts"],
                "bt_credit": b["credit_per_share"],
                "bt_exit_reason": b["exit_reason"],
                "bt_pnl": b["pnl"],
            }
            row.setdefault("contracts", b["contracts"])
        why = _trade_difference(a, o, b, horizon, tol)
        if why:
            breaks.append(f"trade {tid}: {why}")
        if a is not None and b is not None:
            row["pnl_diff"] = a["pnl"] - b["pnl"]
        rows.append(row | {"match": not why})
    return pl.DataFrame(rows, schema=_TRADE_SCHEMA)


def _trade_difference(
    a: dict | None, o: dict | None, b: dict | None, horizon: int | None, tol: float
) -> str:
    if b is None:
        return "live only, not traded by the backtest"
    if a is None and o is None:
        return f"backtest only ({b['exit_reason']}, P&L {b['pnl']:,.2f}), not traded live"
    if o is not None:  # still open live
        if b["exit_reason"] == "end_of_data" or horizon is None or b["exit_ts"] > horizon:
            c = o.get("credit")
            if (
                c is not None
                and c == c
                and abs(c - b["credit_per_share"]) * 100 * o["contracts"] > tol
            ):
                return f"entry credit {c:.2f} live vs {b['credit_per_share']:.2f} backtest"
            return ""
        return f"open live, but the backtest closed it at {_hm(b['exit_ts'])} ({b['exit_reason']})"
    assert a is not None
    out = []
    for k in ("entry_ts", "exit_ts"):
        if a[k] != b[k]:
            out.append(f"{k} {_hm(a[k])} live vs {_hm(b[k])} backtest")
    for k in ("exit_reason", "contracts"):
        if a[k] != b[k]:
            out.append(f"{k} {a[k]} live vs {b[k]} backtest")
    n = a["contracts"]
    for k in ("credit_per_share", "exit_cost_per_share"):
        if abs(a[k] - b[k]) * 100 * n > tol:
            out.append(f"{k} {a[k]:.2f} live vs {b[k]:.2f} backtest")
    if abs(a["pnl"] - b["pnl"]) > tol:
        out.append(
            f"P&L {a['pnl']:,.2f} live vs {b['pnl']:,.2f} backtest ({a['pnl'] - b['pnl']:+,.2f})"
        )
    return "; ".join(out)


def quotes_at(
    store: st.StoreLike, underlying: str, occs: list[str], ts: int
) -> tuple[list[float], list[float]]:
    """Each contract's last quote at or before ``ts`` that session, else the previous
    session's last (the simulated broker's carry)."""
    day = read.session_date(ts)
    bid, ask = [math.nan] * len(occs), [math.nan] * len(occs)
    todo = list(range(len(occs)))
    for d, at in ((day, ts), (calendar.previous_session(day), None)):
        if not todo or d not in set(st.list_days(store, "quotes", underlying)):
            continue
        dq = read.load_day(store, underlying, d)
        at = int(dq.minutes()[-1]) if at is None else at
        sym = {s: i for i, s in enumerate(dq.instruments["raw_symbol"].to_list())}
        have = [i for i in todo if occs[i] in sym]
        if not have:
            continue
        a = dq.snapshot_arrays(at, np.array([sym[occs[i]] for i in have], np.int64))
        for k, i in enumerate(have):
            if a["quote_ts"][k] >= 0:
                bid[i], ask[i] = float(a["bid"][k]), float(a["ask"][k])
        todo = [i for i in todo if math.isnan(ask[i])]
    return bid, ask


def _fills(
    journal: Journal,
    mode: str,
    day: dt.date,
    store: st.StoreLike,
    spec: StrategySpec,
    tol: float,
    breaks: list[str],
) -> pl.DataFrame:
    fills = journal.table("fills", mode)
    orders = {r["order_ref"]: r for r in journal.table("orders", mode).iter_rows(named=True)}
    rows = []
    for f in fills.sort("ts").iter_rows(named=True):
        if read.session_date(f["ts"]) != day:
            continue
        o = orders.get(f["order_ref"], {})
        legs = json.loads(o["legs"]) if o else []
        model = math.nan
        if legs:
            bid, ask = quotes_at(store, spec.underlying, [occ for occ, _ in legs], f["ts"])
            ratio = np.array([r for _, r in legs], dtype=np.float64)
            px = spec.fills.leg_prices(bid, ask, ratio < 0)
            if np.all(np.isfinite(px)):
                model = net_of_legs(ratio, px)
        slip = f["price"] - model
        usd = slip * 100.0 * f["quantity"]
        tid = o.get("trade_id", "")
        if not math.isfinite(usd):
            breaks.append(
                f"fill {f['order_ref']} of trade {tid}: no fill-model price at "
                f"{_hm(f['ts'])} (quotes missing from the store)"
            )
        elif abs(usd) > tol:
            breaks.append(
                f"fill {f['order_ref']} of trade {tid}: {f['price']:.2f} vs the fill "
                f"model's {model:.2f} at {_hm(f['ts'])}, slippage {usd:+,.2f} $"
            )
        rows.append(
            {
                "order_ref": f["order_ref"],
                "trade_id": tid,
                "purpose": o.get("purpose", ""),
                "ts": f["ts"],
                "quantity": f["quantity"],
                "fill_price": f["price"],
                "model_price": model,
                "slippage_per_share": slip,
                "slippage_usd": usd,
            }
        )
    return pl.DataFrame(rows, schema=_FILL_SCHEMA)


def _gate_notes(journal: Journal, mode: str, day: dt.date, gate: Any) -> list[str]:
    """Which model the runner gated with that day (its ``meta_labeler`` event) vs ``gate``."""
    ev = journal.table("events", mode).filter(
        (pl.col("kind") == "meta_labeler") & pl.col("message").str.starts_with(f"{day}:")
    )
    used = [json.loads(d) for d in ev["data"].to_list()]
    if gate is None:
        return [
            f"the runner gated entries with {u['model']} v{u['version']}, the backtest did "
            "not: pass its meta_labeler"
            for u in used
        ]
    return [
        f"the runner used {u['model']} v{u['version']} threshold {u['threshold']:.4f}; the "
        f"backtest {gate.name} v{gate.version} threshold {gate.threshold:.4f}"
        for u in used
        if (u["model"], str(u["version"])) != (gate.name, gate.version)
        or abs(u["threshold"] - gate.threshold) > 1e-12
    ]


def report_path(journal: str | Path, mode: str, day: dt.date | str) -> Path:
    """Where the evening report of ``day`` goes: ``reconcile-<journal>-<mode>-<day>.html``
    beside the journal (the CLI and ``live/run.py`` both write it there)."""
    jp = Path(journal)
    return jp.parent / f"reconcile-{jp.stem}-{mode}-{day}.html"


def reconcile_day(
    journal: Journal | str | Path,
    store: st.StoreLike,
    spec: StrategySpec,
    day: dt.date | str,
    mode: str = "paper",
    *,
    gate: Any = None,
    since: dt.date | None = None,
    tol_usd: float = 0.01,
    workers: int | None = 1,
) -> ReconcileReport:
    """Compare one day of a live journal with the backtester on the same data and config.

    Parameters
    ----------
    journal : Journal or path
        The runner's DuckDB journal (a path must exist).
    store : Store or path
        The quote store holding the day (and the sessions after it the backtest may read).
    spec : StrategySpec
        The strategy the runner traded.
    day : date or ISO string
        The session to reconcile.
    mode : {'shadow', 'paper', 'live'}
        Which of the journal's records.
    gate : MetaGate, optional
        The runner's meta-labeler; stage 2 then runs with ``allowed = {p >= threshold}``.
    since : date, optional
        First session of the backtest (default: the journal's first decision in ``mode``), so
        the state entering ``day`` is the runner's.
    tol_usd : float
        Differences up to this many dollars (per trade P&L, per fill, price x 100 x contracts)
        count as equal.
    workers : int, optional
        Stage-1 processes (None: the backtester's default).

    Returns
    -------
    ReconcileReport
    """
    from quantlab.backtest.engine import stage1
    from quantlab.backtest.stage2 import run_stage2

    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    if mode not in ("shadow", "paper", "live"):
        raise InputError(f"mode must be shadow, paper or live (got {mode!r}).")
    if not calendar.is_session(day):
        raise InputError(f"{day} is not a trading session.")
    own = not isinstance(journal, Journal)
    if own:
        if not Path(journal).is_file():  # type: ignore[arg-type]
            raise DataError(f"no live journal at {journal}; run the live runner first.")
        journal = Journal(journal)  # type: ignore[arg-type]
    assert isinstance(journal, Journal)
    try:
        dec = journal.table("decisions", mode)
        first = dec["entry_date"].min() if dec.height else None
        start = since or (first if isinstance(first, dt.date) and first <= day else day)
        s1 = stage1(store, [spec], start, day, underlying=spec.underlying, workers=workers)
        allowed = None
        notes: list[str] = []
        if gate is not None:
            from quantlab.features import build_features

            feats = build_features(store, s1, gate.feature_set, underlying=spec.underlying)
            p = gate.proba(feats)
            allowed = {
                c
                for c, q in zip(feats["candidate_id"].to_list(), p.tolist(), strict=True)
                if q >= gate.threshold
            }
            notes.append(
                f"backtest filtered by {gate.name} v{gate.version} at threshold "
                f"{gate.threshold:.4f}"
            )
        notes += _gate_notes(journal, mode, day, gate)
        bt = run_stage2(s1, spec, allowed=allowed)
        breaks: list[str] = []
        decisions = _decisions(
            dec.filter(pl.col("entry_date") == day),
            bt.decisions.filter(pl.col("entry_date") == day),
            breaks,
        )
        prog = journal.table("progress", mode)
        horizon = int(prog["last_ts"].max()) if prog.height else None  # type: ignore[arg-type]
        trades = _trades(
            journal.table("trades", mode),
            journal.open_states(mode),
            bt.trades,
            day,
            horizon,
            tol_usd,
            breaks,
        )
        fills = _fills(journal, mode, day, store, spec, tol_usd, breaks)
        return ReconcileReport(day, mode, decisions, trades, fills, breaks, tol_usd, notes)
    finally:
        if own:
            journal.close()


__all__ = ["ReconcileReport", "quotes_at", "reconcile_day", "report_path"]
