"""Fast point-in-time reads of the quote store: chain snapshots and per-instrument minute series.

Used by the backtester, the feature store and the live replay. One ET session of one underlying
is loaded once into a :class:`DayQuotes` (numpy arrays sorted by ``(instrument_id, ts)`` with a
row range per instrument) and kept in a small LRU cache; a snapshot is then one numba binary
search per instrument plus a gather.

Point-in-time rule: a quote stamped ``ts`` (the END of its minute, Databento ``ts_recv``) is
usable at any time ``>= ts`` and never before. :func:`chain_at` and :func:`quotes_between`
never return a row stamped after the requested time.

Times are int64 UTC nanoseconds, timezone-aware ``datetime`` objects or ``numpy.datetime64``
(taken as UTC); a naive ``datetime`` is rejected (its zone would be a guess).

Examples
--------
>>> from quantlab.data import read
>>> snap = read.chain_at("data", "SPX", "2024-01-02T15:00:00-05:00", roots=["SPXW"])  # doctest: +SKIP
>>> day = read.load_day("data", "SPX", "2024-01-02")  # doctest: +SKIP
>>> arrs = day.snapshot_arrays(day.minutes()[30])  # numpy only, for tight loops  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from quantlab.data import daycache, layout
from quantlab.data import store as st
from quantlab.data._read_kernels import grid_indices_nb, last_at_or_before_nb
from quantlab.errors import DataError, InputError

NS = 1_000_000_000
META_COLUMNS = daycache.META_COLUMNS
QUOTE_COLUMNS = ("bid", "ask", "bid_size", "ask_size", "quote_ts", "age_s")


# --------------------------------------------------------------------------- time helpers


def to_ns(value: Any, name: str = "ts") -> int:
    """A point in time as int64 UTC nanoseconds.

    Accepts ints (already UTC ns), timezone-aware ``datetime``, ``numpy.datetime64`` (UTC) and
    ISO strings with an offset (``"2024-01-02T15:00:00-05:00"``).
    """
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be a time (got {value!r}).")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InputError(
                f"{name} must be an ISO time with offset like '2024-01-02T15:00:00-05:00' "
                f"(got {value!r})."
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InputError(
                f"{name} must be timezone-aware (got naive {value!r}); e.g. "
                "datetime(2024, 1, 2, 15, 0, tzinfo=ZoneInfo('America/New_York'))."
            )
        delta = value.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000
    raise InputError(f"{name} must be int ns, an aware datetime or datetime64 (got {value!r}).")


def session_date(ts_ns: int) -> dt.date:
    """ET calendar date of a UTC nanosecond stamp (:func:`quantlab.calendar.et_date`)."""
    from quantlab.calendar import et_date

    return et_date(ts_ns)


def warm_kernels() -> None:
    """Load the compiled read kernels (a spawned worker's first call pays numba's start-up)."""
    out = np.empty(1, np.int64)
    one = np.ones(1, np.int64)
    last_at_or_before_nb(one, one - 1, one, one - 1, np.int64(1), out)


# --------------------------------------------------------------------------- day cache


class DayQuotes:
    """One ET session of one underlying in memory, ready for point-in-time lookups.

    Attributes
    ----------
    underlying : str
    day : datetime.date
    instruments : polars.DataFrame
        Instrument metadata in chain order (expiry, root, strike, right); row ``k`` is
        instrument position ``k`` in every array below.
    ts, bid, ask : numpy arrays [n_rows]
        Quotes sorted by ``(instrument_id, ts)``; undefined prices are NaN.
    bid_size, ask_size : uint32 [n_rows]
        Read on first use when the day was loaded from the store (the decision snapshot and
        the backtester's paths need prices only).
    lo, hi : int64 [n_instruments]
        Row range of each instrument's quotes (empty when it never quoted).
    """

    __slots__ = (
        "_ask",
        "_ask_size",
        "_bid",
        "_bid_size",
        "_by_id",
        "_derived",
        "_frame",
        "_meta_cache",
        "_quotes",
        "_raw_symbols",
        "_sizes_loader",
        "_symbols",
        "_ts",
        "day",
        "expiry",
        "hi",
        "instrument_id",
        "is_call",
        "lo",
        "multiplier",
        "n_rows",
        "root",
        "strike",
        "underlying",
    )

    def __init__(
        self,
        underlying: str,
        day: dt.date,
        instruments: pl.DataFrame,
        quotes: pl.DataFrame,
        *,
        sizes: Callable[[np.ndarray | None], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        """``quotes`` holds ``ts, instrument_id, bid, ask`` and either ``bid_size, ask_size``
        or, with ``sizes``, not: then ``sizes(order)`` reads them on first use (``order``: the
        permutation that sorted the rows, or None)."""
        ia, frame = daycache.instrument_arrays(instruments)
        qa, order, sorted_quotes = daycache.quote_arrays(quotes)
        if "bid_size" in sorted_quotes.columns or sizes is None:
            sizes_now = (
                sorted_quotes.get_column("bid_size").to_numpy().astype(np.uint32),
                sorted_quotes.get_column("ask_size").to_numpy().astype(np.uint32),
            )
            sizes = lambda _order: sizes_now  # noqa: E731
        self._setup(underlying, day, daycache.DayParts(ia, qa, frame, sizes, order))

    def _setup(self, underlying: str, day: dt.date, parts: daycache.DayParts) -> None:
        self.underlying = underlying
        self.day = day
        ia, qa = parts.instruments, parts.quotes
        self.instrument_id = ia.instrument_id
        self.strike = ia.strike
        self.is_call = ia.is_call
        self.expiry = ia.expiry
        self.root = ia.root
        self.multiplier = ia.multiplier
        self._raw_symbols = ia.raw_symbol
        self._symbols: list[str] | None = None
        self._frame = parts.frame
        self._quotes = qa
        self.n_rows = int(qa.ts.size)
        self._ts: np.ndarray | None = None
        self._bid: np.ndarray | None = None
        self._ask: np.ndarray | None = None
        if qa.scale == 1 and not qa.cents:
            self._ts, self._bid, self._ask = qa.ts, qa.bid, qa.ask
        # rows of instrument k: from the first row of its id to the first row of the next id
        ids, starts = qa.ids, qa.starts
        j = np.searchsorted(ids, self.instrument_id)
        hit = (
            (j < ids.size) & (ids[np.minimum(j, ids.size - 1)] == self.instrument_id)
            if ids.size
            else np.zeros(j.size, bool)
        )
        self.lo = starts[j].astype(np.int64)
        self.hi = np.where(hit, starts[np.minimum(j + 1, ids.size)], self.lo).astype(np.int64)
        self._bid_size: np.ndarray | None = None
        self._ask_size: np.ndarray | None = None
        loader, order = parts.sizes, parts.order
        self._sizes_loader: Callable[[], tuple[np.ndarray, np.ndarray]] | None = (
            None if loader is None else (lambda: loader(order))
        )
        by_id = np.argsort(self.instrument_id, kind="stable")
        self._by_id = (self.instrument_id[by_id], by_id.astype(np.int64))
        self._meta_cache: dict[Any, tuple[np.ndarray, pl.DataFrame]] = {}
        self._derived: dict[Any, Any] = {}

    @property
    def instruments(self) -> pl.DataFrame:
        """Instrument metadata in chain order (read on first use when the day came from the
        store's day cache)."""
        if callable(self._frame):
            frame = self._frame()
            if not np.array_equal(
                frame.get_column("instrument_id").to_numpy().astype(np.uint32), self.instrument_id
            ):
                raise DataError(
                    f"the {self.underlying} instruments of {self.day} changed since they were "
                    "loaded; load the day again."
                )
            self._frame = frame
        return self._frame

    # -- quote rows -----------------------------------------------------------------------
    def _decode(self) -> None:
        self._ts, self._bid, self._ask = daycache.decode(self._quotes)

    @property
    def ts(self) -> np.ndarray:
        if self._ts is None:
            self._decode()
        return self._ts  # type: ignore[return-value]

    @property
    def bid(self) -> np.ndarray:
        if self._bid is None:
            self._decode()
        return self._bid  # type: ignore[return-value]

    @property
    def ask(self) -> np.ndarray:
        if self._ask is None:
            self._decode()
        return self._ask  # type: ignore[return-value]

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ts, bid, ask)`` of quote rows ``idx`` (valid row numbers), decoded only for them
        when the day came from the day cache."""
        q = self._quotes
        if self._ts is not None:
            return self._ts[idx], self._bid[idx], self._ask[idx]  # type: ignore[index]
        ts = q.ts[idx].astype(np.int64) * np.int64(q.scale)
        if q.cents:
            return ts, daycache.decode_cents(q.bid[idx]), daycache.decode_cents(q.ask[idx])
        return ts, q.bid[idx], q.ask[idx]

    def kernel_arrays(self) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, bool]:
        """The quote rows as kernels read them: ``(t, scale, bid, ask, cents)``; a row's stamp
        is ``t * scale`` (so ``stamp <= x`` is ``t <= x // scale``) and, with ``cents``, its
        prices are int32 cents (:data:`quantlab.data.daycache.NO_CENTS` = none)."""
        q = self._quotes
        return q.ts, q.scale, q.bid, q.ask, q.cents

    @property
    def bid_size(self) -> np.ndarray:
        if self._bid_size is None:
            self._load_sizes()
        return self._bid_size  # type: ignore[return-value]

    @property
    def ask_size(self) -> np.ndarray:
        if self._ask_size is None:
            self._load_sizes()
        return self._ask_size  # type: ignore[return-value]

    def _load_sizes(self) -> None:
        if self._sizes_loader is None:
            raise DataError(f"no quote sizes for {self.underlying} on {self.day}.")
        bsz, asz = self._sizes_loader()
        if bsz.shape != (self.n_rows,) or asz.shape != (self.n_rows,):
            raise DataError(
                f"the {self.underlying} quotes of {self.day} changed since they were loaded "
                f"({bsz.shape[0]} size rows for {self.n_rows} quotes); load the day again."
            )
        self._bid_size, self._ask_size = bsz, asz
        self._sizes_loader = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def load(cls, store: st.StoreLike, underlying: str, day: dt.date | str) -> DayQuotes:
        """Read a day's ``instruments`` and ``quotes`` partitions (no in-memory cache).

        The arrays come from the store's day cache (:mod:`quantlab.data.daycache`) when it
        holds a copy of both partitions as they are now, else from the Parquet files (and a
        copy is written for the next read). Quote sizes and the instruments frame are read on
        first use (from the same files: a rewrite in between raises :class:`DataError`).
        """
        u = underlying.upper()
        d = layout.as_date(day)
        dq = cls.__new__(cls)
        dq._setup(u, d, daycache.day_parts(store, u, d))
        return dq

    def __len__(self) -> int:
        return int(self.instrument_id.size)

    def __repr__(self) -> str:
        return (
            f"DayQuotes({self.underlying}, {self.day}, instruments={len(self)}, "
            f"quotes={self.n_rows})"
        )

    # -- selection ------------------------------------------------------------------------
    def select(
        self,
        expirations: Iterable[dt.date | str] | None = None,
        roots: Iterable[str] | None = None,
        instrument_ids: Iterable[int] | None = None,
    ) -> npt.NDArray[np.int64]:
        """Instrument positions matching the filters (all when every filter is None)."""
        mask = np.ones(len(self), dtype=bool)
        if expirations is not None:
            exp = np.array(
                [
                    np.datetime64(layout.as_date(e), "D")
                    for e in _as_list(expirations, "expirations")
                ],
                dtype="datetime64[D]",
            )
            mask &= np.isin(self.expiry, exp)
        if roots is not None:
            mask &= np.isin(self.root, [str(r).upper() for r in _as_list(roots, "roots")])
        if instrument_ids is not None:
            mask &= np.isin(self.instrument_id, np.asarray(list(instrument_ids), np.int64))
        return np.flatnonzero(mask).astype(np.int64)

    def positions(self, instrument_ids: Sequence[int] | npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Instrument positions of ``instrument_ids`` in the given order.

        Raises
        ------
        DataError
            If an id is not listed that day.
        """
        ids = np.asarray(instrument_ids, dtype=np.int64).reshape(-1)
        sorted_ids, order = self._by_id
        pos = np.searchsorted(sorted_ids, ids)
        pos_c = np.minimum(pos, max(sorted_ids.size - 1, 0))
        ok = (
            (pos < sorted_ids.size) & (sorted_ids[pos_c] == ids)
            if sorted_ids.size
            else (np.zeros(ids.size, bool))
        )
        if not ok.all():
            bad = int(ids[~ok][0])
            raise DataError(
                f"instrument_id {bad} is not listed for {self.underlying} on {self.day} "
                "(ids are unique within a day only; key on the OCC symbol across days)."
            )
        return order[pos_c]

    def derived(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()`` computed once per day and kept with it (derived per-day lookups such as
        symbol maps or expiry groups, shared by every decision of the session)."""
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = make()
            return value

    def symbols(self) -> list[str]:
        """OCC symbols (``raw_symbol``) in instrument-position order (cached)."""
        if self._symbols is None:
            self._symbols = self._raw_symbols.tolist()
        return self._symbols

    def symbol_positions(self) -> dict[str, int]:
        """``{OCC symbol: instrument position}`` of this day (cached)."""
        return self.derived(
            "symbol_positions", lambda: {s: i for i, s in enumerate(self.symbols())}
        )

    # -- numpy views ----------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The raw arrays (no copies): quote columns plus per-instrument ``lo``/``hi`` and
        metadata (``instrument_id``, ``strike``, ``is_call``, ``expiry``, ``root``,
        ``multiplier``) in instrument-position order."""
        return {
            "ts": self.ts,
            "bid": self.bid,
            "ask": self.ask,
            "bid_size": self.bid_size,
            "ask_size": self.ask_size,
            "lo": self.lo,
            "hi": self.hi,
            "instrument_id": self.instrument_id,
            "strike": self.strike,
            "is_call": self.is_call,
            "expiry": self.expiry,
            "root": self.root,
            "multiplier": self.multiplier,
        }

    def snapshot_index(
        self,
        ts: Any,
        sel: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.int64]:
        """Row of each selected instrument's last quote at or before ``ts`` (-1 = none)."""
        t = np.int64(to_ns(ts))
        sel = np.arange(len(self), dtype=np.int64) if sel is None else np.asarray(sel, np.int64)
        out = np.empty(sel.size, dtype=np.int64)
        q = self._quotes
        last_at_or_before_nb(q.ts, self.lo, self.hi, sel, np.int64(t // q.scale), out)
        return out

    def snapshot_arrays(
        self,
        ts: Any,
        sel: npt.NDArray[np.int64] | None = None,
    ) -> dict[str, np.ndarray]:
        """Forward-filled quotes at ``ts`` as numpy arrays aligned with ``sel`` (default: all).

        Returns ``position``, ``bid``, ``ask`` (NaN when no quote or undefined), ``bid_size``,
        ``ask_size`` (0 when none), ``quote_ts`` (-1 when none) and ``age_s`` (NaN when none).
        """
        t = to_ns(ts)
        sel = np.arange(len(self), dtype=np.int64) if sel is None else np.asarray(sel, np.int64)
        idx = self.snapshot_index(t, sel)
        return self._gather(idx, sel, np.int64(t))

    def _gather(self, idx: np.ndarray, sel: np.ndarray, t: Any) -> dict[str, np.ndarray]:
        has = idx >= 0
        j = np.where(has, idx, 0)
        if self.n_rows == 0:
            j = np.zeros_like(idx)
            bid = ask = np.full(idx.shape, np.nan)
            bsz = asz = np.zeros(idx.shape, np.uint32)
            qts = np.full(idx.shape, -1, np.int64)
        else:
            r_ts, r_bid, r_ask = self.rows(j)
            bid = np.where(has, r_bid, np.nan)
            ask = np.where(has, r_ask, np.nan)
            bsz = np.where(has, self.bid_size[j], 0).astype(np.uint32)
            asz = np.where(has, self.ask_size[j], 0).astype(np.uint32)
            qts = np.where(has, r_ts, -1)
        age = np.where(has, (np.asarray(t, np.int64) - qts) / NS, np.nan)
        return {
            "position": sel,
            "bid": bid,
            "ask": ask,
            "bid_size": bsz,
            "ask_size": asz,
            "quote_ts": qts,
            "age_s": age,
        }

    def grid_index(
        self,
        times: npt.ArrayLike,
        sel: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.int64]:
        """``out[i, j]`` = row of instrument ``sel[j]``'s last quote at or before ``times[i]``
        (ascending int64 UTC ns), -1 when none. Many snapshots in one kernel call."""
        grid = np.ascontiguousarray(times, dtype=np.int64).reshape(-1)
        if grid.size > 1 and np.any(grid[1:] < grid[:-1]):
            raise InputError("times must be ascending.")
        sel = np.arange(len(self), dtype=np.int64) if sel is None else np.asarray(sel, np.int64)
        out = np.empty((grid.size, sel.size), dtype=np.int64)
        q = self._quotes
        grid_indices_nb(q.ts, self.lo, self.hi, sel, grid // np.int64(q.scale), out)
        return out

    def minutes(self, expiring: bool = False) -> npt.NDArray[np.int64]:
        """Minute-end stamps of this session (see :func:`quantlab.calendar.quote_minutes_ns`)."""
        from quantlab.calendar import quote_minutes_ns

        return quote_minutes_ns(self.day, expiring=expiring)

    # -- polars views ---------------------------------------------------------------------
    def _meta(self, sel: np.ndarray, key: Any) -> pl.DataFrame:
        hit = self._meta_cache.get(key)
        if hit is not None and hit[0].shape == sel.shape and np.array_equal(hit[0], sel):
            return hit[1]
        meta = self.instruments if sel.size == len(self) else self.instruments[sel]
        if len(self._meta_cache) > 32:
            self._meta_cache.clear()
        self._meta_cache[key] = (sel.copy(), meta)
        return meta

    def snapshot(
        self, ts: Any, sel: npt.NDArray[np.int64] | None = None, *, _key: Any = None
    ) -> pl.DataFrame:
        """:meth:`snapshot_arrays` joined with instrument metadata as a polars frame."""
        sel = np.arange(len(self), dtype=np.int64) if sel is None else np.asarray(sel, np.int64)
        a = self.snapshot_arrays(ts, sel)
        meta = self._meta(sel, _key if _key is not None else ("sel", sel.size))
        has = a["quote_ts"] >= 0
        cols = [
            pl.Series("bid", a["bid"], nan_to_null=True),
            pl.Series("ask", a["ask"], nan_to_null=True),
            pl.Series("bid_size", a["bid_size"]),
            pl.Series("ask_size", a["ask_size"]),
            _nullable_ts("quote_ts", a["quote_ts"], has),
            pl.Series("age_s", a["age_s"], nan_to_null=True),
        ]
        return meta.hstack(cols)


def _nullable_ts(name: str, values: np.ndarray, has: np.ndarray) -> pl.Series:
    """Int64 series with nulls where ``has`` is False."""
    s = pl.Series(name, values, dtype=pl.Int64)
    if has.all():
        return s
    return s.to_frame().select(pl.when(pl.Series(has)).then(pl.col(name))).to_series()


def _as_list(value: Any, name: str) -> list[Any]:
    if isinstance(value, (str, dt.date)):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise InputError(f"{name} must be a value or a list of values (got {value!r}).") from None


class _DayCache:
    """LRU of :class:`DayQuotes` keyed by (store, underlying, day); a rewritten partition
    (new mtime/size) is reloaded."""

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str, dt.date], tuple[tuple[Any, ...], DayQuotes]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    @staticmethod
    def _stamp(root: Path, u: str, d: dt.date) -> tuple[Any, ...]:
        out: list[Any] = []
        for table in ("quotes", "instruments"):
            try:
                s = layout.partition_file(root, table, u, d).stat()
                out += [s.st_mtime_ns, s.st_size, s.st_ino]
            except FileNotFoundError:
                out += [None]
        return tuple(out)

    def get(self, store: st.StoreLike, underlying: str, day: dt.date | str) -> DayQuotes:
        root = st.store_root(store).resolve()
        u, d = underlying.upper(), layout.as_date(day)
        key = (str(root), u, d)
        stamp = self._stamp(root, u, d)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == stamp:
                self._items.move_to_end(key)
                return hit[1]
        dq = DayQuotes.load(root, u, d)
        with self._lock:
            self._items[key] = (stamp, dq)
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return dq

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = _DayCache()


def load_day(store: st.StoreLike, underlying: str, day: dt.date | str) -> DayQuotes:
    """The cached :class:`DayQuotes` of one session (loaded on first use)."""
    return _CACHE.get(store, underlying, day)


def set_cache_size(n: int) -> None:
    """How many (underlying, day) sessions the LRU keeps in memory (default 4)."""
    if not isinstance(n, int) or n < 1:
        raise InputError(f"cache size must be a positive int (got {n!r}).")
    _CACHE.maxsize = n


def clear_cache() -> None:
    """Drop every cached day."""
    _CACHE.clear()


# --------------------------------------------------------------------------- public API


def chain_at(
    store: st.StoreLike,
    underlying: str,
    ts: Any,
    expirations: Iterable[dt.date | str] | dt.date | str | None = None,
    roots: Iterable[str] | str | None = None,
) -> pl.DataFrame:
    """The option chain as known at ``ts``: each instrument's last quote stamped ``<= ts``.

    Parameters
    ----------
    store : Store or path
    underlying : str
        E.g. ``"SPX"`` (both SPX and SPXW roots live under it).
    ts : int ns, aware datetime, datetime64 or ISO string with offset
        Decision time. The ET session date of ``ts`` picks the day.
    expirations : date or list of dates, optional
        Keep only these expiries.
    roots : str or list of str, optional
        Keep only these roots (``"SPXW"``, ``"SPX"``).

    Returns
    -------
    polars.DataFrame
        One row per listed instrument (chain order: expiry, root, strike, right) with
        ``instrument_id, raw_symbol, root, expiry, settlement, strike, right, multiplier,
        bid, ask, bid_size, ask_size, quote_ts, age_s``. ``quote_ts`` / ``age_s`` (seconds
        since the quote) are null, and prices null, for an instrument not quoted yet.
        Quotes are forward-filled: cbbo-1m writes no record for a minute without change.

    Raises
    ------
    DataError
        If the session has no ``instruments`` or ``quotes`` partition.
    """
    t = to_ns(ts)
    day = load_day(store, underlying, session_date(t))
    if expirations is None and roots is None:
        return day.snapshot(t, np.arange(len(day), dtype=np.int64), _key="all")
    exp = None if expirations is None else _as_list(expirations, "expirations")
    rts = None if roots is None else _as_list(roots, "roots")
    sel = day.select(exp, rts)
    key = (tuple(map(str, exp)) if exp else None, tuple(map(str, rts)) if rts else None)
    return day.snapshot(t, sel, _key=key)


def quotes_between(
    store: st.StoreLike,
    instrument_ids: Sequence[int] | int,
    start: Any,
    end: Any,
    day: dt.date | str | None = None,
    *,
    underlying: str | None = None,
    ffill: bool = False,
) -> pl.DataFrame:
    """Minute quotes of a few instruments between ``start`` and ``end`` (both inclusive).

    Parameters
    ----------
    store : Store or path
    instrument_ids : int or list of int
        Databento ids of that day.
    start, end : time
        Window (int ns, aware datetime, datetime64 or ISO string with offset).
    day : date, optional
        ET session; default the session date of ``start``.
    underlying : str, optional
        The partition to read; default: the one whose instruments list the ids that day.
    ffill : bool
        False: the raw records in the window (cbbo-1m skips minutes without change).
        True: one row per instrument per session minute in the window (minute-end stamps
        from :func:`quantlab.calendar.quote_minutes_ns`), forward-filled from the last quote
        at or before each minute (also from before ``start``), with ``quote_ts`` / ``age_s``.

    Returns
    -------
    polars.DataFrame
        ``instrument_id, ts, bid, ask, bid_size, ask_size`` (+ ``quote_ts, age_s`` when
        ``ffill``), sorted by instrument (in the order given), then ``ts``.
    """
    ids = (
        [int(instrument_ids)]
        if isinstance(instrument_ids, (int, np.integer))
        else [int(i) for i in instrument_ids]
    )
    t0, t1 = to_ns(start, "start"), to_ns(end, "end")
    if t1 < t0:
        raise InputError(f"end must not be before start (got start={t0}, end={t1} ns).")
    d = layout.as_date(day) if day is not None else session_date(t0)
    u = underlying.upper() if underlying else _find_underlying(store, d, ids)
    dq = load_day(store, u, d)
    pos = dq.positions(ids)
    return _ffill_quotes(dq, pos, t0, t1) if ffill else _raw_quotes(dq, pos, t0, t1)


def _ffill_quotes(dq: DayQuotes, pos: np.ndarray, t0: int, t1: int) -> pl.DataFrame:
    """:func:`quotes_between` with ``ffill``: instruments ``pos`` of ``dq`` at each session
    minute in ``[t0, t1]``, forward-filled."""
    grid = dq.minutes()
    grid = grid[(grid >= t0) & (grid <= t1)]
    idx = dq.grid_index(grid, pos)  # [n_minutes, n_ids]
    n_t, n_i = idx.shape
    flat = idx.T.reshape(-1)
    times = np.tile(grid, n_i)
    a = dq._gather(flat, np.repeat(pos, n_t), times)
    has = a["quote_ts"] >= 0
    return pl.DataFrame(
        {
            "instrument_id": pl.Series(np.repeat(dq.instrument_id[pos], n_t), dtype=pl.UInt32),
            "ts": pl.Series(times, dtype=pl.Int64),
            "bid": pl.Series(a["bid"], nan_to_null=True),
            "ask": pl.Series(a["ask"], nan_to_null=True),
            "bid_size": pl.Series(a["bid_size"], dtype=pl.UInt32),
            "ask_size": pl.Series(a["ask_size"], dtype=pl.UInt32),
            "quote_ts": _nullable_ts("quote_ts", a["quote_ts"], has),
            "age_s": pl.Series(a["age_s"], nan_to_null=True),
        }
    )


def _raw_quotes(dq: DayQuotes, pos: np.ndarray, t0: int, t1: int) -> pl.DataFrame:
    """:func:`quotes_between` without ``ffill``: the records of instruments ``pos`` of ``dq``
    stamped in ``[t0, t1]``."""
    rows = []
    for p in pos:
        lo, hi = int(dq.lo[p]), int(dq.hi[p])
        first = lo + int(np.searchsorted(dq.ts[lo:hi], t0, side="left"))
        stop = lo + int(np.searchsorted(dq.ts[lo:hi], t1, side="right"))
        rows.append(np.arange(first, stop, dtype=np.int64))
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    return pl.DataFrame(
        {
            "instrument_id": pl.Series(
                np.repeat(dq.instrument_id[pos], [len(x) for x in rows]), dtype=pl.UInt32
            ),
            "ts": pl.Series(dq.ts[r], dtype=pl.Int64),
            "bid": pl.Series(dq.bid[r], nan_to_null=True),
            "ask": pl.Series(dq.ask[r], nan_to_null=True),
            "bid_size": pl.Series(dq.bid_size[r], dtype=pl.UInt32),
            "ask_size": pl.Series(dq.ask_size[r], dtype=pl.UInt32),
        }
    )


def _find_underlying(store: st.StoreLike, day: dt.date, ids: list[int]) -> str:
    cands = st.list_underlyings(store, "instruments")
    if len(cands) == 1:
        return cands[0]
    for u in cands:
        inst = st.read_partition(store, "instruments", u, day, columns=["instrument_id"])
        if inst is not None and ids and inst.get_column("instrument_id").is_in(ids[:1]).any():
            return u
    raise DataError(
        f"instrument_id {ids[0] if ids else None} is not listed on {day} for any underlying in "
        f"{st.store_root(store)} ({cands}); pass underlying= explicitly."
    )


__all__ = [
    "DayQuotes",
    "chain_at",
    "clear_cache",
    "load_day",
    "quotes_between",
    "session_date",
    "set_cache_size",
    "to_ns",
    "warm_kernels",
]
