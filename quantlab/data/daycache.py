"""A session's arrays for :class:`~quantlab.data.read.DayQuotes`, and their cache under the store.

:func:`day_parts` turns a session's ``instruments`` and ``quotes`` partitions into the arrays
:class:`~quantlab.data.read.DayQuotes` works on. Decoding the Parquet files (ZSTD pages,
dictionary-encoded columns, polars frames) is the largest cost of a backtest day once the
decisions are arrays, so a copy of those arrays is kept beside the store and read back instead::

    <store>/cache/day_quotes/underlying=<U>/date=<YYYY-MM-DD>/<key>/
        meta.json  ts.npy bid.npy ask.npy ids.npy starts.npy           quote rows
        instrument_id.npy strike.npy is_call.npy expiry.npy root.npy
        multiplier.npy raw_symbol.npy                                   instruments, chain order

Rules
-----
- Derived, never authoritative: ``key`` hashes the cache format and, for both partitions, the
  file's identity (``mtime_ns``, size, inode: :func:`quantlab.data.store.write_partition`
  replaces files, so any rewrite changes it) and its recorded ``quantlab.checksum`` (the
  manifest's checksum of its inputs). A rewritten or re-ingested partition has another key, so
  a stale copy is never read; it is removed when the new one is written.
- Exact: stamps are stored as int32 minutes and prices as int32 cents only when decoding gives
  back every value bit for bit (checked when writing); otherwise as int64 / float64.
- Safe with concurrent workers: a copy is written to a private temporary folder and renamed into
  place in one step; readers open complete folders only, and any error while reading falls back
  to the Parquet files. A store that cannot be written to is read without a copy.
- Sizes (``bid_size``/``ask_size``) and the instruments frame are not cached: DayQuotes reads
  them from the partitions on first use, checking that the files did not change.
- ``QUANTLAB_DAY_CACHE=0`` turns the cache off; :func:`clear` deletes every copy of a store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.data import layout
from quantlab.data import store as st
from quantlab.data._read_kernels import decode_quotes_nb, encode_quotes_nb
from quantlab.errors import DataError

FORMAT = 1
CACHE_DIR = ("cache", "day_quotes")
NO_CENTS = np.iinfo(np.int32).min  # int32 cents sentinel of a missing price
NS_PER_MIN = calendar.NS_PER_MINUTE
CHAIN_ORDER = ["expiry", "root", "strike", "right", "instrument_id"]
META_COLUMNS = (
    "instrument_id",
    "raw_symbol",
    "root",
    "expiry",
    "settlement",
    "strike",
    "right",
    "multiplier",
)
PRICE_COLUMNS = ["ts", "instrument_id", "bid", "ask"]
_QUOTE_FILES = ("ts", "bid", "ask", "ids", "starts")
_INST_FILES = ("instrument_id", "strike", "is_call", "expiry", "root", "multiplier", "raw_symbol")


@dataclass(frozen=True)
class QuoteArrays:
    """A day's quote rows sorted by ``(instrument_id, ts)``: stamps, prices, and per distinct
    instrument id (ascending) its first row (``starts`` has one more entry: the row count).

    Either decoded (``ts`` int64 UTC ns, ``bid``/``ask`` float64 with NaN = none; ``scale`` 1,
    ``cents`` False) or, from the cache, as stored: ``ts`` int32 minutes (``scale`` =
    ns per minute: the stamp is ``ts * scale``) and ``bid``/``ask`` int32 cents (``cents``
    True: the price is ``c / 100``, :data:`NO_CENTS` = none), memory-mapped.
    """

    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    ids: np.ndarray  # uint32, ascending, distinct
    starts: np.ndarray  # int64 [ids.size + 1]
    scale: int = 1
    cents: bool = False


@dataclass(frozen=True)
class InstrumentArrays:
    """A day's instruments in chain order (expiry, root, strike, right, instrument_id)."""

    instrument_id: np.ndarray  # uint32
    strike: np.ndarray  # float64
    is_call: np.ndarray  # bool
    expiry: np.ndarray  # datetime64[D]
    root: np.ndarray  # str
    multiplier: np.ndarray  # int32
    raw_symbol: np.ndarray  # str (OCC)


@dataclass
class DayParts:
    """What :class:`~quantlab.data.read.DayQuotes` is built from: the arrays, the instruments
    frame (or how to read it), how to read the quote sizes (given the row permutation that
    sorted the quotes, None when they were stored sorted), and whether the cache served it."""

    instruments: InstrumentArrays
    quotes: QuoteArrays
    frame: pl.DataFrame | Callable[[], pl.DataFrame]
    sizes: Callable[[np.ndarray | None], tuple[np.ndarray, np.ndarray]] | None
    order: np.ndarray | None = None
    cached: bool = False


# --------------------------------------------------------------------------- frames -> arrays


def instrument_arrays(instruments: pl.DataFrame) -> tuple[InstrumentArrays, pl.DataFrame]:
    """Chain-ordered arrays of an ``instruments`` frame, and the frame (sorted, metadata only)."""
    inst = instruments.sort(CHAIN_ORDER)
    frame = inst.select([c for c in META_COLUMNS if c in inst.columns])
    arrays = InstrumentArrays(
        instrument_id=inst.get_column("instrument_id").to_numpy().astype(np.uint32),
        strike=inst.get_column("strike").to_numpy().astype(np.float64),
        is_call=(inst.get_column("right") == "C").to_numpy(),
        expiry=inst.get_column("expiry").to_numpy().astype("datetime64[D]"),
        root=inst.get_column("root").to_numpy().astype(str),
        multiplier=inst.get_column("multiplier").to_numpy().astype(np.int32),
        raw_symbol=inst.get_column("raw_symbol").to_numpy().astype(str),
    )
    return arrays, frame


def _prices(col: pl.Series) -> np.ndarray:
    """A float64 price column as a contiguous numpy array, NaN where null."""
    if col.null_count():
        col = col.fill_null(np.nan)
    return np.ascontiguousarray(col.to_numpy(), dtype=np.float64)


def quote_arrays(quotes: pl.DataFrame) -> tuple[QuoteArrays, np.ndarray | None, pl.DataFrame]:
    """Arrays of a ``quotes`` frame sorted by ``(instrument_id, ts)``; the permutation that
    sorted it (None when it already was, as :func:`~quantlab.data.store.write_partition` writes
    it) and the sorted frame."""
    q_ids = quotes.get_column("instrument_id").to_numpy()
    order: np.ndarray | None = None
    if q_ids.size > 1 and np.any(q_ids[1:] < q_ids[:-1]):
        order = np.lexsort((quotes.get_column("ts").to_numpy(), q_ids))
        quotes = quotes[order]
        q_ids = quotes.get_column("instrument_id").to_numpy()
    n = q_ids.size
    first = np.flatnonzero(q_ids[1:] != q_ids[:-1]) + 1 if n else np.empty(0, np.int64)
    first = np.concatenate([[0], first]).astype(np.int64) if n else first.astype(np.int64)
    arrays = QuoteArrays(
        ts=np.ascontiguousarray(quotes.get_column("ts").to_numpy(), dtype=np.int64),
        bid=_prices(quotes.get_column("bid")),
        ask=_prices(quotes.get_column("ask")),
        ids=q_ids[first].astype(np.uint32),
        starts=np.concatenate([first, [n]]).astype(np.int64),
    )
    return arrays, order, quotes


# --------------------------------------------------------------------------- loading a day


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """``(mtime_ns, size, inode)`` of a file (None when it does not exist)."""
    try:
        s = path.stat()
    except FileNotFoundError:
        return None
    return (s.st_mtime_ns, s.st_size, s.st_ino)


_CHECKSUMS: dict[tuple[str, tuple[int, int, int] | None], str] = {}


def partition_checksum(path: Path) -> str:
    """The ``quantlab.checksum`` recorded in a partition file's metadata ("" when none),
    remembered per file state (path, mtime, size, inode)."""
    key = (str(path), file_stamp(path))
    hit = _CHECKSUMS.get(key)
    if hit is None:
        if len(_CHECKSUMS) > 4096:
            _CHECKSUMS.clear()
        hit = _CHECKSUMS[key] = st.partition_metadata(path).get("quantlab.checksum", "")
    return hit


def day_parts(store: st.StoreLike, underlying: str, day: dt.date | str) -> DayParts:
    """The arrays of one session: from the cache when it holds a copy of both partitions as
    they are now, else from the Parquet files (then a copy is written when the cache is on).

    Raises
    ------
    DataError
        When a partition is missing or changes while it is read.
    """
    d = layout.as_date(day)
    u = underlying.upper()
    root = st.store_root(store)
    qpath = layout.partition_file(root, "quotes", u, d)
    ipath = layout.partition_file(root, "instruments", u, d)
    stamps = (file_stamp(qpath), file_stamp(ipath))
    if stamps[1] is None or stamps[0] is None:
        which = "instruments" if stamps[1] is None else "quotes"
        days = st.list_days(store, "quotes", u)
        hint = f"{len(days)} from {days[0]} to {days[-1]}" if days else "none"
        raise DataError(
            f"no {which} partition for {u} on {d} in store {root} (not a session, or not "
            f"ingested yet; days with quotes: {hint})."
        )

    def unchanged() -> bool:
        return (file_stamp(qpath), file_stamp(ipath)) == stamps

    def sizes(order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if file_stamp(qpath) != stamps[0]:
            raise DataError(f"{qpath} was rewritten after the day was loaded; load it again.")
        df = st.read_partition(store, "quotes", u, d, columns=["bid_size", "ask_size"])
        if df is None:
            raise DataError(f"{qpath} disappeared after the day was loaded.")
        if order is not None:
            df = df[order]
        return (
            df.get_column("bid_size").to_numpy().astype(np.uint32),
            df.get_column("ask_size").to_numpy().astype(np.uint32),
        )

    folder = None
    if enabled():
        key = _key([(qpath, stamps[0]), (ipath, stamps[1])])
        folder = day_dir(root, u, d) / key
        cached = load(folder) if folder.is_dir() else None
        if cached is not None and unchanged():
            ia, qa = cached

            def frame() -> pl.DataFrame:
                if file_stamp(ipath) != stamps[1]:
                    raise DataError(f"{ipath} was rewritten after the day was loaded.")
                df = st.read_partition(store, "instruments", u, d)
                if df is None:
                    raise DataError(f"{ipath} disappeared after the day was loaded.")
                return instrument_arrays(df)[1]

            return DayParts(ia, qa, frame, sizes, None, cached=True)
    inst = st.read_partition(store, "instruments", u, d)
    quotes = st.read_partition(store, "quotes", u, d, columns=PRICE_COLUMNS)
    if inst is None or quotes is None:
        raise DataError(f"a partition of {u} on {d} in store {root} disappeared while read.")
    ia, frame_df = instrument_arrays(inst)
    qa, order, _ = quote_arrays(quotes)
    if folder is not None and order is None and unchanged():
        save(folder, ia, qa)
    return DayParts(ia, qa, frame_df, sizes, order)


# --------------------------------------------------------------------------- the cache


def enabled() -> bool:
    """Whether readers use the cache (environment variable ``QUANTLAB_DAY_CACHE``, default on)."""
    return os.environ.get("QUANTLAB_DAY_CACHE", "1").strip().lower() not in ("0", "false", "off")


def root_dir(store: st.StoreLike) -> Path:
    """The cache folder of a store."""
    return st.store_root(store).joinpath(*CACHE_DIR)


def day_dir(store: st.StoreLike, underlying: str, day: dt.date | str) -> Path:
    """Folder holding the copies of one session (one subfolder per key)."""
    return (
        root_dir(store)
        / f"underlying={underlying.upper()}"
        / f"date={layout.as_date(day).isoformat()}"
    )


def is_cached(store: st.StoreLike, underlying: str, day: dt.date | str) -> bool:
    """Whether the cache holds a copy of the session's partitions as they are now."""
    root = st.store_root(store)
    u, d = underlying.upper(), layout.as_date(day)
    paths = [layout.partition_file(root, t, u, d) for t in ("quotes", "instruments")]
    stamps = [file_stamp(p) for p in paths]
    if None in stamps:
        return False
    key = _key(list(zip(paths, stamps, strict=True)))
    return (day_dir(root, u, d) / key / "meta.json").is_file()


def _key(sources: list[tuple[Path, tuple[int, int, int] | None]]) -> str:
    parts = [str(FORMAT)]
    for path, stamp in sources:
        parts.append(f"{path.parent.parent.parent.name}:{stamp}:{partition_checksum(path)}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def load(folder: Path) -> tuple[InstrumentArrays, QuoteArrays] | None:
    """The arrays of one cached copy; None when absent, incomplete or unreadable. Quote rows
    stored as minutes and cents are memory-mapped as they are (see :class:`QuoteArrays`)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            return None
        compact = meta.get("ts") == "minutes" and meta.get("prices") == "cents"
        raw = {
            name: np.load(folder / f"{name}.npy", mmap_mode="r" if compact else None)
            for name in ("ts", "bid", "ask")
        }
        raw |= {name: np.load(folder / f"{name}.npy") for name in _QUOTE_FILES[3:] + _INST_FILES}
    except (OSError, ValueError):
        return None
    n = int(meta.get("rows", -1))
    ids, starts = raw["ids"], raw["starts"]
    if any(raw[k].shape != (n,) for k in ("ts", "bid", "ask")) or starts.shape != (ids.size + 1,):
        return None
    inst = InstrumentArrays(*(raw[name] for name in _INST_FILES))
    if compact:  # the usual case: kept as stored, decoded row by row where used
        ts, bid, ask = (raw[k].view(np.ndarray) for k in ("ts", "bid", "ask"))
        return inst, QuoteArrays(ts, bid, ask, ids, starts, NS_PER_MIN, cents=True)
    ts = raw["ts"] * np.int64(NS_PER_MIN) if meta.get("ts") == "minutes" else raw["ts"]
    bid, ask = raw["bid"], raw["ask"]
    if meta.get("prices") == "cents":
        bid, ask = decode_cents(bid), decode_cents(ask)
    return inst, QuoteArrays(ts.astype(np.int64, copy=False), bid, ask, ids, starts)


def decode_cents(cents: np.ndarray) -> np.ndarray:
    """int32 cents to float64 prices (NaN for :data:`NO_CENTS`), bit for bit as encoded."""
    return np.where(cents == NO_CENTS, np.nan, cents / 100.0)


def decode(quotes: QuoteArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ts int64 ns, bid, ask float64)`` of every row of ``quotes``."""
    if not quotes.cents and quotes.scale == 1:
        return quotes.ts, quotes.bid, quotes.ask
    n = quotes.ts.size
    ts = np.empty(n, np.int64)
    bid = np.empty(n, np.float64)
    ask = np.empty(n, np.float64)
    decode_quotes_nb(quotes.ts, quotes.bid, quotes.ask, NO_CENTS, ts, bid, ask)
    return ts, bid, ask


def _encode(q: QuoteArrays) -> tuple[str, np.ndarray, str, np.ndarray, np.ndarray]:
    """``(ts encoding, ts, price encoding, bid, ask)``: int32 minutes / cents where exact."""
    n = q.ts.size
    minutes = np.empty(n, np.int32)
    bid_c = np.empty(n, np.int32)
    ask_c = np.empty(n, np.int32)
    ts_ok, px_ok = encode_quotes_nb(q.ts, q.bid, q.ask, NO_CENTS, minutes, bid_c, ask_c)
    ts_enc, ts = ("minutes", minutes) if ts_ok else ("ns", q.ts)
    if px_ok:
        return ts_enc, ts, "cents", bid_c, ask_c
    return ts_enc, ts, "float", q.bid, q.ask


def save(folder: Path, inst: InstrumentArrays, quotes: QuoteArrays) -> bool:
    """Write one copy as ``folder`` (atomically; stale siblings are removed). False when the
    store cannot be written to or another process wrote the same copy first."""
    ts_enc, ts, px_enc, bid, ask = _encode(quotes)
    arrays = {"ts": ts, "bid": bid, "ask": ask, "ids": quotes.ids, "starts": quotes.starts}
    arrays |= {name: getattr(inst, name) for name in _INST_FILES}
    tmp = folder.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        for name, a in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)
        meta = {"format": FORMAT, "rows": int(quotes.ts.size), "ts": ts_enc, "prices": px_enc}
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    for old in folder.parent.iterdir():  # copies of earlier versions of the partitions
        if old.name == folder.name:
            continue
        if not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)
        else:  # a writer that died an hour ago or more
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime > 3600:
                    shutil.rmtree(old, ignore_errors=True)
    return True


def clear(store: st.StoreLike) -> None:
    """Delete every cached copy of a store."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(root_dir(store))


__all__ = [
    "FORMAT",
    "DayParts",
    "InstrumentArrays",
    "QuoteArrays",
    "clear",
    "day_dir",
    "day_parts",
    "decode",
    "decode_cents",
    "enabled",
    "instrument_arrays",
    "is_cached",
    "load",
    "partition_checksum",
    "quote_arrays",
    "root_dir",
    "save",
]
