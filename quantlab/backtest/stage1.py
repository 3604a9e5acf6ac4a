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
from quantlab.errors import ConfigError, DataError
from quantlab.strategy import ids
from quantlab.strategy.book import book_limits
from quantlab.strategy.spec import StrategySpec
from quantlab.volatility import vix_from_chain

MAX_LEGS = 4
STAGE1_FORMAT = 4  # bump when the stored stage-1 layout changes (sweep caches key on it)


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
        return ids.select_key(self.entry_time, self.spec)


def needs_forwards(specs: Iterable[StrategySpec]) -> bool:
    """Whether stage 2 of any of ``specs`` reads the path forwards (a greek limit does)."""
    return any(bool(np.isfinite(book_limits(s)).any()) for s in specs)


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
    path_fwd: np.ndarray  # float64 [rows]: the expiry's parity forward at each path minute
    # (empty when stage 1 ran with forwards=False: no greeks from it)
    qty: np.ndarray  # int32 [n, MAX_LEGS], signed, 0 = no leg
    strike: np.ndarray  # float64 [n, MAX_LEGS]
    is_call: np.ndarray  # bool [n, MAX_LEGS]
    entry_bid: np.ndarray  # float64 [n, MAX_LEGS]
    entry_ask: np.ndarray
    settle_value: np.ndarray  # float64 [n], NaN when the data ends first
    day_ids: list[list[tuple[int, np.ndarray]]]  # per candidate: (path position, leg ids) per day
    data_checksum: str = ""
    days: list[dt.date] = field(default_factory=list)
    day_sums: dict[dt.date, str] = field(default_factory=dict)  # day -> day_checksum

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

    def require_forwards(self) -> None:
        """Raise unless this stage 1 kept its path forwards (greeks need them)."""
        if self.path_fwd.size != self.path_ts.size:
            raise ConfigError(
                "this stage-1 result has no path forwards (it ran with forwards=False): run "
                "stage 1 with forwards=True for greeks, attribution or greek limits"
            )

    def entry_ivs(self) -> np.ndarray:
        """float64 ``[n, MAX_LEGS]``: each candidate's legs' implied vols in its decision
        snapshot (NaN beyond its legs); built on first use."""
        out = self.__dict__.get("_entry_ivs")
        if out is None:
            legs = self.candidates.get_column("legs")
            n_legs = legs.list.len().to_numpy().astype(np.int64)
            iv = legs.explode().struct.field("iv").to_numpy().astype(np.float64)
            out = np.full((legs.len(), MAX_LEGS), np.nan)
            t = np.repeat(np.arange(n_legs.size), n_legs)
            m = np.arange(t.size) - np.repeat(np.cumsum(n_legs) - n_legs, n_legs)
            out[t, m] = iv[: t.size]
            self.__dict__["_entry_ivs"] = out
        return out

    def rows_for(self, keys: Iterable[str]) -> np.ndarray:
        """Rows of the candidates of the selection rules ``keys``, ascending (an index of the
        ``select_key`` column built on first use)."""
        return _rows_of(self, "candidates", keys)

    def rejections_for(self, keys: Iterable[str]) -> pl.DataFrame:
        """The rejections of the selection rules ``keys``, in stored order."""
        return self.rejections[_rows_of(self, "rejections", keys)]

    def leg_ids_at_many(self, rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """:meth:`leg_ids_at` of candidates ``rows`` at path positions ``positions`` at once:
        uint32 ``[n, MAX_LEGS]`` (0 beyond a candidate's legs)."""
        packed = self.__dict__.get("_packed_ids")
        if packed is None:
            counts, pos, ids = _pack_day_ids(self.day_ids)
            first = np.concatenate([[0], np.cumsum(counts)])
            cand = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
            packed = self.__dict__["_packed_ids"] = (first, (cand << 32) + pos, ids)
        first, keys, ids = packed
        rows = np.asarray(rows, np.int64)
        seg = np.searchsorted(keys, (rows << 32) + np.asarray(positions, np.int64), "right") - 1
        seg = np.maximum(seg, first[rows])  # before a candidate's first segment: its first
        out = np.zeros((rows.size, MAX_LEGS), np.uint32)
        have = first[rows + 1] > first[rows]
        out[have] = ids[seg[have]]
        for j in np.flatnonzero(~have):
            a = self.leg_ids_at(int(rows[j]), int(positions[j]))[:MAX_LEGS]
            out[j, : a.size] = a
        return out

    def leg_ids_at(self, i: int, k: int) -> np.ndarray:
        """Instrument ids of candidate ``i``'s legs on the day of its ``k``-th path minute."""
        segs = self.day_ids[i]
        if not segs:
            return np.asarray(
                self.candidates["legs"][i].struct.field("instrument_id_entry").to_numpy(), np.uint32
            )
        starts = [p for p, _ in segs]
        return segs[max(int(np.searchsorted(starts, k, side="right")) - 1, 0)][1]


def _rows_of(res: Stage1Result, table: str, keys: Iterable[str]) -> np.ndarray:
    """Rows of ``res.<table>`` whose ``select_key`` is in ``keys``, ascending; the index of
    each table is built on first use and kept on the result."""
    index = res.__dict__.get(f"_{table}_rows")
    if index is None:
        df = getattr(res, table)
        index = {}
        if df.height:
            g = (
                df.select(pl.col("select_key"), pl.int_range(pl.len(), dtype=pl.Int64).alias("i"))
                .group_by("select_key")
                .agg("i")
            )
            index = {k: np.asarray(v, np.int64) for k, v in zip(g[:, 0], g[:, 1], strict=True)}
        res.__dict__[f"_{table}_rows"] = index
    parts = [index[k] for k in keys if k in index]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)


def _candidate_id(entry_ns: int, sel: Selection) -> str:
    assert sel.expiry is not None
    return ids.candidate_id(
        entry_ns, sel.root, sel.expiry, ((lg.occ, lg.quantity) for lg in sel.legs)
    )


@functools.lru_cache(maxsize=4096)
def _close_ns(root: str, expiry: dt.date) -> int:
    """When a contract of ``root`` expiring on ``expiry`` stops trading (UTC ns)."""
    return calendar.contract_close_ns(root, expiry, calendar.last_trade_day(root, expiry))


def _et_ns(day: dt.date, t: dt.time) -> int:
    return calendar.to_ns(dt.datetime.combine(day, t, tzinfo=calendar.ET))


def day_checksum(store: st.StoreLike, underlying: str, day: dt.date) -> str:
    """Checksum of one session's quote and instrument partitions (their recorded input
    checksums, read from the Parquet footers once per file state)."""
    from quantlab.data import layout
    from quantlab.data.daycache import partition_checksum

    h = hashlib.sha256()
    root = st.store_root(store)
    for table in ("instruments", "quotes"):
        path = layout.partition_file(root, table, underlying, day)
        if path.is_file():
            h.update(f"{table}:{partition_checksum(path) or path.stat().st_size}".encode())
    return h.hexdigest()[:16]


def combine_checksums(day_sums: dict[dt.date, str], extra: str = "") -> str:
    """One checksum of per-day checksums (in date order) and an ``extra`` text: the same
    whatever process or shard computed the parts."""
    h = hashlib.sha256()
    for d in sorted(day_sums):
        h.update(f"{d}:{day_sums[d]};".encode())
    h.update(extra.encode())
    return h.hexdigest()[:16]


def data_checksum(store: st.StoreLike, underlying: str, days: Sequence[dt.date]) -> str:
    """Checksum of the quote and instrument partitions of ``days``."""
    return combine_checksums({d: day_checksum(store, underlying, d) for d in days})


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
    forwards: bool = True,
) -> Stage1Result:
    """Propose candidates on every session in [start, end] and follow them to settlement.

    Sessions after ``end`` are read (only) to finish the paths of candidates still open.
    With ``forwards`` (the default) each path minute keeps its expiry's parity forward
    (``path_fwd``), which greeks, attribution and greek limits need.
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
    book = PathBook(days, width, forwards=forwards)
    # reserve the most path rows the decisions can need at once (address space, not memory)
    book.allocate(_path_bound(book, entry_days, by_time))

    acc = _Proposals()
    days_read: list[dt.date] = []
    for day in days:
        if day not in entry_set and not book.n_open:
            continue
        dq = read.load_day(store, underlying, day)
        days_read.append(day)
        sym_pos = dq.symbol_positions()
        if day in entry_set:
            for t, t_rules in sorted(by_time.items()):
                _propose(dq, day, t, t_rules, need_vix, first_rule, book, acc)
        # extend every open candidate's path with this day's minutes
        if book.n_open:
            book.extend(day, dq, sym_pos)
        if progress is not None:
            progress(day)
    return _result(store, underlying, acc, book, days, days_read)


@dataclass
class _Proposals:
    """What stage 1 collects while it walks the sessions."""

    cand_rows: list[dict] = field(default_factory=list)
    rej_rows: list[dict] = field(default_factory=list)
    legs: list[tuple] = field(default_factory=list)


def _propose(
    dq: read.DayQuotes,
    day: dt.date,
    t: dt.time,
    t_rules: list[tuple[str, SelectRule, tuple]],
    need_vix: bool,
    first_rule: SelectRule,
    book: PathBook,
    acc: _Proposals,
) -> None:
    """The candidates of every rule deciding at ``t`` on ``day`` (or why there are none)."""
    ts = _et_ns(day, t)
    if ts > calendar.option_close_ns(day):
        return
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
            sel_pos = dq.derived(("roots", roots), functools.partial(dq.select, roots=list(roots)))
            view = views[skey] = ChainView(
                dq, ts, sel_pos, rate=s.rate, max_age_s=s.filters.max_quote_age_s
            )
        sel = select_from_view(view, day, s.dte, s.roots, legs, s.delta_match)
        base = {"select_key": key, "entry_ts": ts, "entry_date": day, "entry_time": entry_time}
        if not sel.ok:
            rid = ids.rejection_id(key, ts)
            acc.rej_rows.append({"candidate_id": rid} | base | {"reason": sel.reason})
            continue
        assert sel.expiry is not None
        row = len(acc.cand_rows)
        close_ns = _close_ns(sel.root, sel.expiry)
        acc.cand_rows.append(
            base
            | {
                "candidate_id": _candidate_id(ts, sel),
                "root": sel.root,
                "expiry": sel.expiry,
                "dte": sel.dte,
                "forward": sel.forward,
                "n_legs": len(sel.legs),
                "short_delta": next(
                    (abs(leg.delta) for leg in sel.legs if leg.quantity < 0), math.nan
                ),
                "legs": [
                    {
                        "occ": leg.occ,
                        "right": leg.right,
                        "strike": leg.strike,
                        "quantity": leg.quantity,
                        "instrument_id_entry": leg.instrument_id,
                        "delta": leg.delta,
                        "iv": leg.iv,
                    }
                    for leg in sel.legs
                ],
                "close_ts": close_ns,
                "vix": vix,
            }
        )
        acc.legs.append(sel.legs)
        nb = np.full(MAX_LEGS, np.nan)
        na = np.full(MAX_LEGS, np.nan)
        for j, leg in enumerate(sel.legs):
            nb[j], na[j] = leg.bid, leg.ask
        fkey = (sel.root, sel.expiry, s.rate, s.filters.max_quote_age_s)
        book.add(row, day, tuple(leg.occ for leg in sel.legs), ts, close_ns, nb, na, fkey)


CAND_SCHEMA: dict[str, Any] = {
    "select_key": pl.Utf8,
    "entry_ts": pl.Int64,
    "entry_date": pl.Date,
    "entry_time": pl.Utf8,
    "candidate_id": pl.Utf8,
    "root": pl.Utf8,
    "expiry": pl.Date,
    "dte": pl.Int32,
    "forward": pl.Float64,
    "n_legs": pl.Int32,
    "short_delta": pl.Float64,
    "legs": pl.List(
        pl.Struct(
            {
                "occ": pl.Utf8,
                "right": pl.Utf8,
                "strike": pl.Float64,
                "quantity": pl.Int32,
                "instrument_id_entry": pl.UInt32,
                "delta": pl.Float64,
                "iv": pl.Float64,
            }
        )
    ),
    "close_ts": pl.Int64,
    "vix": pl.Float64,
}
REJ_SCHEMA: dict[str, Any] = {
    "candidate_id": pl.Utf8,
    "select_key": pl.Utf8,
    "entry_ts": pl.Int64,
    "entry_date": pl.Date,
    "entry_time": pl.Utf8,
    "reason": pl.Utf8,
}


def candidate_settlements(
    store: st.StoreLike, underlying: str, keys: Sequence[tuple[str, dt.date]]
) -> tuple[np.ndarray, list[str | None], np.ndarray]:
    """Settlement value, source and standard error of each ``(root, expiry)``, from the store's
    ``settlements`` (:func:`quantlab.data.settlements.lookup`: the most trusted source, the same
    whatever this run read). NaN / None where the store has nothing for that expiry yet."""
    from quantlab.data import settlements

    found: dict[tuple[str, dt.date], Any] = {}
    for k in set(keys):
        found[k] = settlements.lookup(store, k[0], k[1], underlying=underlying)
    value = np.array([found[k].value if found[k] else math.nan for k in keys], np.float64)
    source = [found[k].source if found[k] else None for k in keys]
    se = np.array(
        [
            (found[k].std_error if found[k] and found[k].std_error is not None else math.nan)
            for k in keys
        ],
        np.float64,
    )
    return value, source, se


def _result(
    store: st.StoreLike,
    underlying: str,
    acc: _Proposals,
    book: PathBook,
    days: list[dt.date],
    days_read: list[dt.date],
) -> Stage1Result:
    """Assemble the stage-1 result: arrays, settlements and each candidate's data checksum."""
    n = len(acc.cand_rows)
    width = max((len(legs) for legs in acc.legs), default=1)
    offsets, path_ts, path_bid, path_ask, path_fwd = book.arrays(width)
    qty = np.zeros((n, MAX_LEGS), np.int32)
    strike = np.full((n, MAX_LEGS), np.nan)
    is_call = np.zeros((n, MAX_LEGS), bool)
    eb = np.full((n, MAX_LEGS), np.nan)
    ea = np.full((n, MAX_LEGS), np.nan)
    for i, legs in enumerate(acc.legs):
        for j, leg in enumerate(legs):
            qty[i, j], strike[i, j], is_call[i, j] = leg.quantity, leg.strike, leg.right == "C"
            eb[i, j], ea[i, j] = leg.bid, leg.ask
    cands = pl.DataFrame(acc.cand_rows, schema=CAND_SCHEMA)
    keys = list(zip(cands["root"].to_list(), cands["expiry"].to_list(), strict=True))
    value, source, se = candidate_settlements(store, underlying, keys)
    day_sums = {d: day_checksum(store, underlying, d) for d in days_read}
    sums = _candidate_checksums(
        cands, offsets, path_ts, days, day_sums, store, underlying, value, source
    )
    cands = cands.with_columns(
        pl.Series("settlement_source", source, pl.Utf8),
        pl.Series("settlement_std_error", se, pl.Float64),
        pl.Series("data_checksum", sums, pl.Utf8),
    )
    return Stage1Result(
        candidates=cands,
        rejections=pl.DataFrame(acc.rej_rows, schema=REJ_SCHEMA),
        offsets=offsets,
        path_ts=path_ts,
        path_bid=path_bid,
        path_ask=path_ask,
        path_fwd=path_fwd,
        qty=qty,
        strike=strike,
        is_call=is_call,
        entry_bid=eb,
        entry_ask=ea,
        settle_value=value,
        day_ids=book.day_ids,
        data_checksum=combine_checksums(day_sums),
        days=days_read,
        day_sums=day_sums,
    )


def _candidate_checksums(
    cands: pl.DataFrame,
    offsets: np.ndarray,
    path_ts: np.ndarray,
    days: list[dt.date],
    day_sums: dict[dt.date, str],
    store: st.StoreLike,
    underlying: str,
    value: np.ndarray,
    source: list[str | None],
) -> list[str]:
    """Per candidate: the checksum of the sessions its life spans (entry day to the last
    minute of its path) and of its settlement value, so a trade's checksum is the same however
    the work was split and whatever range the run covered."""
    import bisect

    out: list[str] = []
    entry = cands["entry_date"].to_list()
    for i in range(cands.height):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        last = calendar.et_date(int(path_ts[hi - 1])) if hi > lo else entry[i]
        a, b = bisect.bisect_left(days, entry[i]), bisect.bisect_right(days, last)
        span = {d: day_sums.get(d) or day_checksum(store, underlying, d) for d in days[a:b]}
        out.append(combine_checksums(span, f"settle:{source[i]}:{value[i]!r}"))
    return out


_ARRAYS = (
    "offsets",
    "path_ts",
    "path_bid",
    "path_ask",
    "path_fwd",
    "qty",
    "strike",
    "is_call",
    "entry_bid",
    "entry_ask",
    "settle_value",
)


def _pack_day_ids(
    day_ids: list[list[tuple[int, np.ndarray]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _unpack_day_ids(
    counts: np.ndarray, pos: np.ndarray, ids: np.ndarray
) -> list[list[tuple[int, np.ndarray]]]:
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
    counts, pos, leg_ids = _pack_day_ids(res.day_ids)
    for name, arr in (("day_counts", counts), ("day_pos", pos), ("day_leg_ids", leg_ids)):
        np.save(tmp / f"{name}.npy", arr)
    meta = {
        "format": STAGE1_FORMAT,
        "data_checksum": res.data_checksum,
        "days": [d.isoformat() for d in res.days],
        "day_sums": {d.isoformat(): v for d, v in sorted(res.day_sums.items())},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # a folder that exists is complete
    return out


def load_stage1(folder: Path | str, *, mmap: bool = True) -> Stage1Result:
    """Read :func:`save_stage1` output; arrays are memory-mapped (shared between processes).

    Memory-mapped arrays are handed out as plain (read-only) ``ndarray`` views of the mapping:
    the ``np.memmap`` subclass makes every operation on a slice of it pay Python overhead.
    """
    src = Path(folder)
    if not (src / "meta.json").is_file():
        raise DataError(f"no stage-1 result in {src}")
    meta = json.loads((src / "meta.json").read_text())
    if meta.get("format") != STAGE1_FORMAT:
        raise DataError(
            f"stage-1 result in {src} has format {meta.get('format')}, this code reads "
            f"{STAGE1_FORMAT}: delete it and run again"
        )
    arrays = {
        name: np.load(src / f"{name}.npy", mmap_mode="r" if mmap else None) for name in _ARRAYS
    }
    if mmap:
        arrays = {name: a.view(np.ndarray) for name, a in arrays.items()}
    packed = [np.load(src / f"{n}.npy") for n in ("day_counts", "day_pos", "day_leg_ids")]
    return Stage1Result(
        candidates=pl.read_parquet(src / "candidates.parquet"),
        rejections=pl.read_parquet(src / "rejections.parquet"),
        day_ids=_unpack_day_ids(*packed),
        data_checksum=meta["data_checksum"],
        days=[dt.date.fromisoformat(d) for d in meta["days"]],
        day_sums={dt.date.fromisoformat(d): v for d, v in meta["day_sums"].items()},
        **arrays,
    )
