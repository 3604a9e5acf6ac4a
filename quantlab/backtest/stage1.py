"""Stage 1: every candidate the strategies propose, with its quote path to settlement.

One pass over the sessions in date order loads each day's quotes once. At each entry time the
decision snapshot is built from quotes stamped at or before that time, every distinct selection
rule picks its structure (or records why it could not), and each new candidate's legs are then
followed minute by minute — keyed on the OCC symbol, because Databento's instrument ids change
from day to day — until the contract stops trading, and its settlement value is recorded.

The output is shared by every config that proposes the same candidate: take-profit, stop,
time-exit, fill-model and risk-rule variants are all read off these paths in stage 2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.backtest.select import Selection, select_structure
from quantlab.chain.snapshot import Snapshot, build_snapshot
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import DataError
from quantlab.pricing import implied_forward
from quantlab.strategy.spec import StrategySpec
from quantlab.volatility import vix_from_chain

MAX_LEGS = 4
NS_PER_MIN = 60_000_000_000
NO_PRICE = -1  # int32 cents sentinel for a missing quote
STAGE1_FORMAT = 2  # bump when the stored stage-1 layout changes (sweep caches key on it)


def to_cents(prices: np.ndarray) -> np.ndarray:
    """Quote prices as exact int32 cents (``NO_PRICE`` where missing).

    Paths are stored this way: half the memory of float64 and exact, so tick rounding of fills
    never sees a float32 representation error.
    """
    out = np.full(prices.shape, NO_PRICE, dtype=np.int32)
    ok = np.isfinite(prices) & (prices >= 0)
    out[ok] = np.rint(prices[ok] * 100.0).astype(np.int32)
    return out


def from_cents(cents: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_cents` (NaN where missing)."""
    return np.where(cents >= 0, cents / 100.0, np.nan)


@dataclass(frozen=True)
class SelectRule:
    """What stage 1 needs of a config to propose candidates: one entry time and the selection."""

    entry_time: dt.time
    spec: StrategySpec

    @property
    def key(self) -> str:
        s = self.spec
        blob = json.dumps(
            {
                "t": self.entry_time.strftime("%H:%M"),
                "dte": s.dte.model_dump(),
                "roots": list(s.roots),
                "legs": [leg.model_dump() for leg in s.leg_specs()],
                "match": s.delta_match,
                "rate": s.rate,
                "age": s.filters.max_quote_age_s,
            },
            sort_keys=True,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def rules_for(specs: Iterable[StrategySpec]) -> dict[str, SelectRule]:
    """Distinct selection rules of a set of configs, by key."""
    out: dict[str, SelectRule] = {}
    for spec in specs:
        for t in spec.entry.times:
            rule = SelectRule(t, spec)
            out.setdefault(rule.key, rule)
    return out


@dataclass
class Stage1Result:
    """Candidates (one row each, in entry order), rejections, and the CSR quote paths.

    ``path_ts[off[i]:off[i+1]]`` are candidate ``i``'s minutes after entry; ``path_bid`` /
    ``path_ask`` hold each leg's forward-filled quote then, as int32 cents (``NO_PRICE`` where
    missing or beyond the candidate's legs); :meth:`quotes` gives them as prices.
    """

    candidates: pl.DataFrame
    rejections: pl.DataFrame
    offsets: np.ndarray
    path_ts: np.ndarray
    path_bid: np.ndarray
    path_ask: np.ndarray
    qty: np.ndarray  # int32 [n, MAX_LEGS], signed, 0 = no leg
    strike: np.ndarray  # float64 [n, MAX_LEGS]
    is_call: np.ndarray  # bool [n, MAX_LEGS]
    entry_bid: np.ndarray  # float64 [n, MAX_LEGS]
    entry_ask: np.ndarray
    settle_value: np.ndarray  # float64 [n], NaN when the data ends first
    day_ids: list[list[tuple[int, np.ndarray]]]  # per candidate: (path position, leg ids) per day
    data_checksum: str = ""
    days: list[dt.date] = field(default_factory=list)

    def __len__(self) -> int:
        return self.candidates.height

    def quotes(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate ``i``'s path: minute stamps and per-leg bid and ask prices (NaN = none)."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return (
            self.path_ts[lo:hi],
            from_cents(self.path_bid[lo:hi]),
            from_cents(self.path_ask[lo:hi]),
        )

    def leg_ids_at(self, i: int, k: int) -> np.ndarray:
        """Instrument ids of candidate ``i``'s legs on the day of its ``k``-th path minute."""
        segs = self.day_ids[i]
        if not segs:
            return np.asarray(
                self.candidates["legs"][i].struct.field("instrument_id_entry").to_numpy(), np.uint32
            )
        starts = [p for p, _ in segs]
        return segs[max(int(np.searchsorted(starts, k, side="right")) - 1, 0)][1]


@dataclass
class _Open:
    row: int
    legs: tuple[str, ...]
    close_ns: int  # last tradable minute of the contract
    start_ns: int  # path starts after this
    last_bid: np.ndarray
    last_ask: np.ndarray
    ts: list[np.ndarray] = field(default_factory=list)
    ids: list[tuple[int, np.ndarray]] = field(default_factory=list)
    bid: list[np.ndarray] = field(default_factory=list)
    ask: list[np.ndarray] = field(default_factory=list)


def _candidate_id(entry_ns: int, sel: Selection) -> str:
    legs = ",".join(f"{leg.occ}:{leg.quantity}" for leg in sel.legs)
    return hashlib.sha1(f"{entry_ns}|{sel.root}|{sel.expiry}|{legs}".encode()).hexdigest()[:16]


def _et_ns(day: dt.date, t: dt.time) -> int:
    return calendar.to_ns(dt.datetime.combine(day, t, tzinfo=calendar.ET))


def _settlement_from_bars(
    store: st.StoreLike, underlying: str, root: str, expiry: dt.date
) -> float:
    bars = st.read_partition(store, "underlying_bars", underlying, expiry)
    if bars is None or bars.height == 0:
        return math.nan
    if root == "SPX":  # AM: the opening print approximates the special opening quotation
        first = bars.sort("ts").row(0, named=True)
        return float(first["open"])
    settle = calendar.settlement_ns(root, expiry)
    hit = bars.filter(pl.col("ts") == settle)
    return float(hit["close"][0]) if hit.height else math.nan


def _settlement_from_parity(dq: read.DayQuotes, root: str, expiry: dt.date, rate: float) -> float:
    """Parity forward of the expiring series at its last minute (SPXW PM), or of the same-day
    SPXW at 09:31 for an AM-settled SPX monthly."""
    if root == "SPX":
        at = calendar.option_open_ns(expiry) + NS_PER_MIN
        sel = dq.select([expiry], ["SPXW"])
    else:
        at = calendar.contract_close_ns(root, expiry, expiry)
        sel = dq.select([expiry], [root])
    if sel.size == 0:
        return math.nan
    snap = dq.snapshot(at, sel)
    calls = snap.filter(pl.col("right") == "C").sort("strike")
    puts = snap.filter(pl.col("right") == "P").sort("strike")
    both = calls.join(puts, on="strike", suffix="_p")
    if both.height == 0:
        return math.nan
    T = max((calendar.settlement_ns("SPXW", expiry) - at) / NS_PER_MIN, 1.0) / 525_600
    fit = implied_forward(
        both["strike"], both["bid"].fill_null(np.nan), both["ask"].fill_null(np.nan),
        both["bid_p"].fill_null(np.nan), both["ask_p"].fill_null(np.nan), T, r=rate,
    )  # fmt: skip
    return fit.forward


def data_checksum(store: st.StoreLike, underlying: str, days: Sequence[dt.date]) -> str:
    """Checksum of the quote and instrument partitions read (their recorded input checksums)."""
    h = hashlib.sha256()
    root = st.store_root(store)
    from quantlab.data import layout

    for d in days:
        for table in ("instruments", "quotes"):
            path = layout.partition_file(root, table, underlying, d)
            if not path.is_file():
                continue
            meta = st.partition_metadata(path)
            h.update(f"{table}/{d}:{meta.get('quantlab.checksum') or path.stat().st_size}".encode())
    return h.hexdigest()[:16]


def run_stage1(
    store: st.StoreLike,
    specs: Sequence[StrategySpec],
    start: dt.date,
    end: dt.date,
    *,
    underlying: str = "SPX",
    progress: Callable[[dt.date], None] | None = None,
) -> Stage1Result:
    """Propose candidates on every session in [start, end] and follow them to settlement.

    Sessions after ``end`` are read (only) to finish the paths of candidates still open.
    """
    rules = rules_for(specs)
    if not rules:
        raise DataError("no strategy specs given to stage 1")
    max_dte = max(r.spec.dte.target + r.spec.dte.tolerance for r in rules.values())
    stored = set(st.list_days(store, "quotes", underlying))
    entry_days = [d for d in calendar.sessions(start, end) if d in stored]
    if not entry_days:
        raise DataError(
            f"no stored sessions of {underlying} between {start} and {end} in {st.store_root(store)}"
        )
    horizon = calendar.sessions(entry_days[0], end + dt.timedelta(days=max_dte + 7))
    days = [d for d in horizon if d in stored]
    entry_set = set(entry_days)
    need_vix = any(
        r.spec.filters.vix_min is not None or r.spec.filters.vix_max is not None
        for r in rules.values()
    )
    by_time: dict[dt.time, list[SelectRule]] = {}
    for rule in rules.values():
        by_time.setdefault(rule.entry_time, []).append(rule)

    cand_rows: list[dict] = []
    rej_rows: list[dict] = []
    legs_meta: list[tuple] = []
    opens: list[_Open] = []
    finished: list[_Open] = []
    settle_cache: dict[tuple[str, dt.date], float] = {}
    settle_of: list[tuple[str, dt.date, float]] = []
    days_read: list[dt.date] = []

    for day in days:
        if day not in entry_set and not opens:
            continue
        dq = read.load_day(store, underlying, day)
        days_read.append(day)
        sym_pos = {s: i for i, s in enumerate(dq.instruments["raw_symbol"].to_list())}
        # -- new candidates at each entry time ------------------------------------------
        if day in entry_set:
            snaps: dict[tuple, Snapshot] = {}
            for t, t_rules in sorted(by_time.items()):
                ts = _et_ns(day, t)
                if ts > calendar.option_close_ns(day):
                    continue
                # the 30-day index at ts, for entry filters on it (whole chain, quotes <= ts)
                vix = math.nan
                if need_vix:
                    vix = vix_from_chain(
                        dq.snapshot(ts, _key="all"), ts, next(iter(rules.values())).spec.rate
                    )
                for rule in t_rules:
                    s = rule.spec
                    skey = (t, s.rate, s.filters.max_quote_age_s, tuple(s.roots))
                    if skey not in snaps:
                        sel_pos = dq.select(roots=list(s.roots))
                        chain = dq.snapshot(ts, sel_pos, _key=("roots", tuple(s.roots)))
                        snaps[skey] = build_snapshot(
                            chain, ts, rate=s.rate, max_age_s=s.filters.max_quote_age_s
                        )
                    snap = snaps[skey]
                    sel = select_structure(
                        snap.chain, snap.expiries, day, s.dte, s.roots, s.leg_specs(), s.delta_match
                    )
                    base = {
                        "select_key": rule.key,
                        "entry_ts": ts,
                        "entry_date": day,
                        "entry_time": t.strftime("%H:%M"),
                    }
                    if not sel.ok:
                        rej_rows.append(base | {"reason": sel.reason})
                        continue
                    assert sel.expiry is not None
                    cid = _candidate_id(ts, sel)
                    row = len(cand_rows)
                    close_ns = calendar.contract_close_ns(
                        sel.root, sel.expiry, calendar.last_trade_day(sel.root, sel.expiry)
                    )
                    cand_rows.append(base | {
                        "candidate_id": cid, "root": sel.root, "expiry": sel.expiry, "dte": sel.dte,
                        "forward": sel.forward, "n_legs": len(sel.legs),
                        "short_delta": next((abs(leg.delta) for leg in sel.legs if leg.quantity < 0), math.nan),
                        "legs": [{"occ": leg.occ, "right": leg.right, "strike": leg.strike, "quantity": leg.quantity,
                                  "instrument_id_entry": leg.instrument_id, "delta": leg.delta, "iv": leg.iv}
                                 for leg in sel.legs],
                        "close_ts": close_ns, "vix": vix,
                    })  # fmt: skip
                    legs_meta.append(sel.legs)
                    nb = np.full(MAX_LEGS, np.nan)
                    na = np.full(MAX_LEGS, np.nan)
                    for j, leg in enumerate(sel.legs):
                        nb[j], na[j] = leg.bid, leg.ask
                    opens.append(
                        _Open(row, tuple(leg.occ for leg in sel.legs), close_ns, ts, nb, na)
                    )
                    settle_of.append((sel.root, sel.expiry, math.nan))
        # -- extend every open candidate's path with this day's minutes -------------------
        if opens:
            minutes = calendar.quote_minutes_ns(day)
            need = sorted({occ for o in opens for occ in o.legs if occ in sym_pos})
            pos = np.array([sym_pos[o] for o in need], dtype=np.int64)
            col = {occ: i for i, occ in enumerate(need)}
            grid = (
                dq.grid_index(minutes, pos) if pos.size else np.empty((minutes.size, 0), np.int64)
            )
            bid_all = np.where(
                grid >= 0, dq.bid[np.maximum(grid, 0)] if dq.bid.size else np.nan, np.nan
            )
            ask_all = np.where(
                grid >= 0, dq.ask[np.maximum(grid, 0)] if dq.ask.size else np.nan, np.nan
            )
            still: list[_Open] = []
            for o in opens:
                lo = int(np.searchsorted(minutes, o.start_ns, side="right"))
                hi = int(np.searchsorted(minutes, o.close_ns, side="right"))
                if hi > lo:
                    n = hi - lo
                    ids = np.zeros(MAX_LEGS, np.uint32)
                    b = np.full((n, MAX_LEGS), np.nan)
                    a = np.full((n, MAX_LEGS), np.nan)
                    for j, occ in enumerate(o.legs):
                        c = col.get(occ)
                        if c is None:
                            continue
                        bj, aj = bid_all[lo:hi, c], ask_all[lo:hi, c]
                        seen = grid[lo:hi, c] >= 0
                        # before the day's first quote, carry the last quote seen (yesterday's)
                        first = int(np.argmax(seen)) if seen.any() else n
                        bj = bj.copy()
                        aj = aj.copy()
                        bj[:first] = o.last_bid[j]
                        aj[:first] = o.last_ask[j]
                        b[:, j], a[:, j] = bj, aj
                        ids[j] = dq.instrument_id[pos[c]]
                    o.ids.append((sum(t.size for t in o.ts), ids))
                    o.ts.append(minutes[lo:hi])
                    o.bid.append(to_cents(b[:, : len(o.legs)]))
                    o.ask.append(to_cents(a[:, : len(o.legs)]))
                    o.last_bid, o.last_ask = b[-1].copy(), a[-1].copy()
                    o.start_ns = int(minutes[hi - 1])
                if o.close_ns <= minutes[-1]:
                    finished.append(o)
                else:
                    still.append(o)
            opens = still
        # -- settlement values of expiries that settle today ------------------------------
        for i, (root, expiry, val) in enumerate(settle_of):
            if math.isnan(val) and expiry == day:
                k = (root, expiry)
                if k not in settle_cache:
                    v = _settlement_from_bars(store, underlying, root, expiry)
                    if math.isnan(v):
                        rate = next(iter(rules.values())).spec.rate
                        v = _settlement_from_parity(dq, root, expiry, rate)
                    settle_cache[k] = v
                settle_of[i] = (root, expiry, settle_cache[k])
        if progress is not None:
            progress(day)
    finished.extend(opens)  # data ended first: paths stop where the store stops
    finished.sort(key=lambda o: o.row)
    n = len(cand_rows)
    lens = np.array([sum(t.size for t in o.ts) for o in finished], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lens)
    path_ts = (
        np.concatenate([np.concatenate(o.ts) if o.ts else np.empty(0, np.int64) for o in finished])
        if n
        else np.empty(0, np.int64)
    )
    width = max((len(legs) for legs in legs_meta), default=1)
    path_bid = np.full((int(offsets[-1]), width), NO_PRICE, dtype=np.int32)
    path_ask = np.full((int(offsets[-1]), width), NO_PRICE, dtype=np.int32)
    for i, o in enumerate(finished):
        if o.bid:
            nl = len(o.legs)
            path_bid[offsets[i] : offsets[i + 1], :nl] = np.vstack(o.bid)
            path_ask[offsets[i] : offsets[i + 1], :nl] = np.vstack(o.ask)
    qty = np.zeros((n, MAX_LEGS), np.int32)
    strike = np.full((n, MAX_LEGS), np.nan)
    is_call = np.zeros((n, MAX_LEGS), bool)
    eb = np.full((n, MAX_LEGS), np.nan)
    ea = np.full((n, MAX_LEGS), np.nan)
    for i, legs in enumerate(legs_meta):
        for j, leg in enumerate(legs):
            qty[i, j], strike[i, j], is_call[i, j] = leg.quantity, leg.strike, leg.right == "C"
            eb[i, j], ea[i, j] = leg.bid, leg.ask
    cand_schema: dict[str, Any] = {
        "select_key": pl.Utf8, "entry_ts": pl.Int64, "entry_date": pl.Date, "entry_time": pl.Utf8,
        "candidate_id": pl.Utf8, "root": pl.Utf8, "expiry": pl.Date, "dte": pl.Int32, "forward": pl.Float64,
        "n_legs": pl.Int32, "short_delta": pl.Float64,
        "legs": pl.List(pl.Struct({"occ": pl.Utf8, "right": pl.Utf8, "strike": pl.Float64, "quantity": pl.Int32,
                                   "instrument_id_entry": pl.UInt32, "delta": pl.Float64, "iv": pl.Float64})),
        "close_ts": pl.Int64,
        "vix": pl.Float64,
    }  # fmt: skip
    rej_schema = {
        "select_key": pl.Utf8,
        "entry_ts": pl.Int64,
        "entry_date": pl.Date,
        "entry_time": pl.Utf8,
        "reason": pl.Utf8,
    }
    return Stage1Result(
        candidates=pl.DataFrame(cand_rows, schema=cand_schema),
        rejections=pl.DataFrame(rej_rows, schema=rej_schema),
        offsets=offsets,
        path_ts=path_ts.astype(np.int64),
        path_bid=path_bid,
        path_ask=path_ask,
        qty=qty,
        strike=strike,
        is_call=is_call,
        entry_bid=eb,
        entry_ask=ea,
        settle_value=np.array([v for _, _, v in settle_of], dtype=np.float64),
        day_ids=[o.ids for o in finished],
        data_checksum=data_checksum(store, underlying, days_read),
        days=days_read,
    )


_ARRAYS = (
    "offsets",
    "path_ts",
    "path_bid",
    "path_ask",
    "qty",
    "strike",
    "is_call",
    "entry_bid",
    "entry_ask",
    "settle_value",
)


def save_stage1(res: Stage1Result, folder: Path | str) -> Path:
    """Write a stage-1 result: Parquet tables plus raw ``.npy`` arrays (memory-mappable)."""
    import pickle

    out = Path(folder)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    res.candidates.write_parquet(tmp / "candidates.parquet")
    res.rejections.write_parquet(tmp / "rejections.parquet")
    for name in _ARRAYS:
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(res, name)))
    with open(tmp / "meta.pkl", "wb") as fh:
        pickle.dump(
            {"day_ids": res.day_ids, "data_checksum": res.data_checksum, "days": res.days}, fh
        )
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)  # a folder that exists is complete
    return out


def load_stage1(folder: Path | str, *, mmap: bool = True) -> Stage1Result:
    """Read :func:`save_stage1` output; arrays are memory-mapped (shared between processes)."""
    import pickle

    src = Path(folder)
    if not (src / "meta.pkl").is_file():
        raise DataError(f"no stage-1 result in {src}")
    arrays = {
        name: np.load(src / f"{name}.npy", mmap_mode="r" if mmap else None) for name in _ARRAYS
    }
    with open(src / "meta.pkl", "rb") as fh:
        meta = pickle.load(fh)
    return Stage1Result(
        candidates=pl.read_parquet(src / "candidates.parquet"),
        rejections=pl.read_parquet(src / "rejections.parquet"),
        day_ids=meta["day_ids"],
        data_checksum=meta["data_checksum"],
        days=meta["days"],
        **arrays,
    )
