"""Stage 1: every candidate the strategies propose, with its quote path to settlement.

One pass over the sessions in date order loads each day's quotes once (as arrays, from the
store's day cache when it has them: :mod:`quantlab.data.daycache`). At each entry time the
decision snapshot is built from quotes stamped at or before that time
(:class:`~quantlab.chain.snapshot.ChainView`: the numbers of
:func:`~quantlab.chain.snapshot.build_snapshot`, priced only for the expiries the rules look
at), every distinct selection rule picks its structure (or records why it could not), and each
new candidate's legs are then followed minute by minute — keyed on the OCC symbol, because
Databento's instrument ids change from day to day — until the contract stops trading
(:class:`~quantlab.backtest.paths.PathBook`: one numba call per session for every open
candidate, written straight into the CSR paths), and its settlement value is recorded.

The output is shared by every config that proposes the same candidate: take-profit, stop,
time-exit, fill-model and risk-rule variants are all read off these paths in stage 2.
"""

from __future__ import annotations

import datetime as dt
import functools
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
from quantlab.backtest._path_kernels import from_cents_2d
from quantlab.backtest.paths import PathBook
from quantlab.backtest.select import Selection, select_from_view
from quantlab.chain.snapshot import ChainView
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
    if cents.ndim == 2 and cents.dtype == np.int32:  # a path slice: one pass in numba
        out = np.empty(cents.shape, np.float64)
        from_cents_2d(cents, out)
        return out
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


def _candidate_id(entry_ns: int, sel: Selection) -> str:
    legs = ",".join(f"{leg.occ}:{leg.quantity}" for leg in sel.legs)
    return hashlib.sha1(f"{entry_ns}|{sel.root}|{sel.expiry}|{legs}".encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def _close_ns(root: str, expiry: dt.date) -> int:
    """When a contract of ``root`` expiring on ``expiry`` stops trading (UTC ns)."""
    return calendar.contract_close_ns(root, expiry, calendar.last_trade_day(root, expiry))


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
    # the chain at ``at`` (each strike's last quotes), calls and puts paired by strike
    idx = dq.snapshot_index(at, sel)
    has = idx >= 0
    if dq.n_rows:
        _, r_bid, r_ask = dq.rows(np.where(has, idx, 0))
        bid, ask = np.where(has, r_bid, np.nan), np.where(has, r_ask, np.nan)
    else:
        bid = ask = np.full(sel.size, np.nan)
    strike, call = dq.strike[sel], dq.is_call[sel]
    calls = np.flatnonzero(call)
    puts = np.flatnonzero(~call)
    calls = calls[np.argsort(strike[calls], kind="stable")]
    puts = puts[np.argsort(strike[puts], kind="stable")]
    ks = np.intersect1d(strike[calls], strike[puts])
    if ks.size == 0:
        return math.nan
    ci = calls[np.searchsorted(strike[calls], ks)]
    pi = puts[np.searchsorted(strike[puts], ks)]
    T = max((calendar.settlement_ns("SPXW", expiry) - at) / NS_PER_MIN, 1.0) / 525_600
    fit = implied_forward(ks, bid[ci], ask[ci], bid[pi], ask[pi], T, r=rate)
    return fit.forward


def data_checksum(store: st.StoreLike, underlying: str, days: Sequence[dt.date]) -> str:
    """Checksum of the quote and instrument partitions read (their recorded input checksums)."""
    from quantlab.data import layout
    from quantlab.data.daycache import partition_checksum

    h = hashlib.sha256()
    root = st.store_root(store)
    for d in days:
        for table in ("instruments", "quotes"):
            path = layout.partition_file(root, table, underlying, d)
            if not path.is_file():
                continue
            # the footer's checksum, read once per file state (the day cache keys on it too)
            h.update(f"{table}/{d}:{partition_checksum(path) or path.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _path_bound(book: PathBook, entry_days: Sequence[dt.date], by_time: dict) -> int:
    """Sum over the decisions to come of the longest path each could open."""
    total = 0
    for day in entry_days:
        close = calendar.option_close_ns(day)
        for t, t_rules in by_time.items():
            ts = _et_ns(day, t)
            if ts > close:
                continue
            for _, rule, _ in t_rules:
                d = rule.spec.dte
                total += book.bound(day, ts, day + dt.timedelta(days=d.target + d.tolerance))
    return total


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
    Decisions use :class:`~quantlab.chain.snapshot.ChainView` (the decision snapshot of
    :func:`~quantlab.chain.snapshot.build_snapshot`, computed only for the expiries the rules
    look at) and :func:`~quantlab.backtest.select.select_from_view`.
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
    first_rule = next(iter(rules.values()))
    need_vix = any(
        r.spec.filters.vix_min is not None or r.spec.filters.vix_max is not None
        for r in rules.values()
    )
    # per entry time: (key, rule, legs), legs expanded once
    by_time: dict[dt.time, list[tuple[str, SelectRule, tuple]]] = {}
    for key, rule in rules.items():
        by_time.setdefault(rule.entry_time, []).append((key, rule, rule.spec.leg_specs()))
    width = max(len(legs) for v in by_time.values() for _, _, legs in v)
    book = PathBook(days, width)
    # reserve the most path rows the decisions can need at once (address space, not memory)
    book.allocate(_path_bound(book, entry_days, by_time))

    cand_rows: list[dict] = []
    rej_rows: list[dict] = []
    legs_meta: list[tuple] = []
    settle_cache: dict[tuple[str, dt.date], float] = {}
    settle_value: list[float] = []
    settle_due: dict[dt.date, list[tuple[int, str]]] = {}  # expiry -> (candidate row, root)
    days_read: list[dt.date] = []

    for day in days:
        if day not in entry_set and not book.n_open:
            continue
        dq = read.load_day(store, underlying, day)
        days_read.append(day)
        sym_pos = dq.symbol_positions()
        # -- new candidates at each entry time ------------------------------------------
        if day in entry_set:
            for t, t_rules in sorted(by_time.items()):
                ts = _et_ns(day, t)
                if ts > calendar.option_close_ns(day):
                    continue
                # the 30-day index at ts, for entry filters on it (whole chain, quotes <= ts)
                vix = math.nan
                if need_vix:
                    vix = vix_from_chain(dq.snapshot(ts, _key="all"), ts, first_rule.spec.rate)
                entry_time = t.strftime("%H:%M")
                views: dict[tuple, ChainView] = {}  # one decision snapshot per rate, age, roots
                for key, rule, legs in t_rules:
                    s = rule.spec
                    skey = (s.rate, s.filters.max_quote_age_s, tuple(s.roots))
                    view = views.get(skey)
                    if view is None:
                        roots = tuple(s.roots)
                        sel_pos = dq.derived(
                            ("roots", roots), functools.partial(dq.select, roots=list(roots))
                        )
                        view = views[skey] = ChainView(
                            dq, ts, sel_pos, rate=s.rate, max_age_s=s.filters.max_quote_age_s
                        )
                    sel = select_from_view(view, day, s.dte, s.roots, legs, s.delta_match)
                    base = {"select_key": key, "entry_ts": ts, "entry_date": day,
                            "entry_time": entry_time}  # fmt: skip
                    if not sel.ok:
                        rej_rows.append(base | {"reason": sel.reason})
                        continue
                    assert sel.expiry is not None
                    row = len(cand_rows)
                    close_ns = _close_ns(sel.root, sel.expiry)
                    cand_rows.append(base | {
                        "candidate_id": _candidate_id(ts, sel), "root": sel.root, "expiry": sel.expiry,
                        "dte": sel.dte, "forward": sel.forward, "n_legs": len(sel.legs),
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
                    book.add(row, day, tuple(leg.occ for leg in sel.legs), ts, close_ns, nb, na)
                    settle_value.append(math.nan)
                    settle_due.setdefault(sel.expiry, []).append((row, sel.root))
        # -- extend every open candidate's path with this day's minutes -------------------
        if book.n_open:
            book.extend(day, dq, sym_pos)
        # -- settlement values of expiries that settle today ------------------------------
        for row, root in settle_due.pop(day, []):
            k = (root, day)
            if k not in settle_cache:
                v = _settlement_from_bars(store, underlying, root, day)
                if math.isnan(v):
                    v = _settlement_from_parity(dq, root, day, first_rule.spec.rate)
                settle_cache[k] = v
            settle_value[row] = settle_cache[k]
        if progress is not None:
            progress(day)
    n = len(cand_rows)
    width = max((len(legs) for legs in legs_meta), default=1)
    offsets, path_ts, path_bid, path_ask = book.arrays(width)
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
        path_ts=path_ts,
        path_bid=path_bid,
        path_ask=path_ask,
        qty=qty,
        strike=strike,
        is_call=is_call,
        entry_bid=eb,
        entry_ask=ea,
        settle_value=np.array(settle_value, dtype=np.float64),
        day_ids=book.day_ids,
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


def _pack_day_ids(day_ids: list[list[tuple[int, np.ndarray]]]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``day_ids`` as arrays: segments per candidate, each segment's path position, its ids."""
    counts = np.array([len(segs) for segs in day_ids], np.int64)
    pos = np.array([p for segs in day_ids for p, _ in segs], np.int64)
    ids = np.zeros((pos.size, MAX_LEGS), np.uint32)
    k = 0
    for segs in day_ids:
        for _, a in segs:
            ids[k, : a.size] = a
            k += 1
    return counts, pos, ids


def _unpack_day_ids(counts: np.ndarray, pos: np.ndarray, ids: np.ndarray
                    ) -> list[list[tuple[int, np.ndarray]]]:  # fmt: skip
    """Inverse of :func:`_pack_day_ids`."""
    plist = pos.tolist()
    out: list[list[tuple[int, np.ndarray]]] = []
    k = 0
    for n in counts.tolist():
        out.append([(plist[j], ids[j]) for j in range(k, k + n)])
        k += n
    return out


def save_stage1(res: Stage1Result, folder: Path | str, *, written: Iterable[str] = ()) -> Path:
    """Write a stage-1 result: Parquet tables plus raw ``.npy`` arrays (memory-mappable).

    ``written`` names arrays already written as ``.npy`` files in ``<folder>.tmp`` (the folder
    the result is assembled in before it is renamed into place), e.g. memory-mapped arrays a
    merge filled in place.
    """
    import pickle
    import shutil

    out = Path(folder)
    tmp = out.with_name(out.name + ".tmp")
    done = set(written)
    if tmp.exists() and not done:
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True, exist_ok=bool(done))
    res.candidates.write_parquet(tmp / "candidates.parquet")
    res.rejections.write_parquet(tmp / "rejections.parquet")
    for name in _ARRAYS:
        if name not in done:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(res, name)))
    with open(tmp / "meta.pkl", "wb") as fh:
        meta = {"day_ids_packed": _pack_day_ids(res.day_ids), "data_checksum": res.data_checksum,
                "days": res.days}  # fmt: skip
        pickle.dump(meta, fh, protocol=pickle.HIGHEST_PROTOCOL)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # a folder that exists is complete
    return out


def load_stage1(folder: Path | str, *, mmap: bool = True) -> Stage1Result:
    """Read :func:`save_stage1` output; arrays are memory-mapped (shared between processes).

    Memory-mapped arrays are handed out as plain (read-only) ``ndarray`` views of the mapping:
    the ``np.memmap`` subclass makes every operation on a slice of it pay Python overhead.
    """
    import pickle

    src = Path(folder)
    if not (src / "meta.pkl").is_file():
        raise DataError(f"no stage-1 result in {src}")
    arrays = {
        name: np.load(src / f"{name}.npy", mmap_mode="r" if mmap else None) for name in _ARRAYS
    }
    if mmap:
        arrays = {name: a.view(np.ndarray) for name, a in arrays.items()}
    with open(src / "meta.pkl", "rb") as fh:
        meta = pickle.load(fh)
    packed = meta.get("day_ids_packed")
    return Stage1Result(
        candidates=pl.read_parquet(src / "candidates.parquet"),
        rejections=pl.read_parquet(src / "rejections.parquet"),
        day_ids=_unpack_day_ids(*packed) if packed is not None else meta["day_ids"],
        data_checksum=meta["data_checksum"],
        days=meta["days"],
        **arrays,
    )
