"""Settlement values of SPX/SPXW expiries: data with a source, stored in the ``settlements`` table.

Every expiry settles at one number: SPXW (PM) at the SPX closing value of the expiry day, an SPX
monthly (AM) at the special opening quotation (SOQ) of its expiry morning. That number reaches
the store from several places, each a *source*; :data:`SOURCES` ranks them, most trusted first,
and is the one place this order lives:

=====================  ======================================================================
source                 written by
=====================  ======================================================================
``official``           ``quantlab data import-settlements FILE.csv`` (:func:`import_csv`)
``index``              the synthetic market (it knows its own index path); derived on the fly
                       from ``underlying_bars`` by :func:`lookup` (LEAN index bars)
``vendor_underlying``  the end-of-day importer (the file's underlying price at its quote time)
``broker``             the live runner, through :func:`write`
``parity_estimate``    ingest and the importers after each day (:func:`parity_estimate`)
=====================  ======================================================================

Storage: table ``settlements`` (:data:`SETTLEMENTS_SCHEMA`), partitioned by underlying and
expiry date like every other table (``parquet/settlements/underlying=SPX/date=<expiry>/``), one
row per ``(root, source)``. :func:`write` merges under a file lock and replaces a partition
atomically; :func:`read` returns every row; :func:`lookup` returns the most trusted value;
:func:`missing` lists what has no official or index value.

Index values from bars (:func:`index_settlement`)
-------------------------------------------------
``underlying_bars`` are keyed on the END of their minute. PM: the bar ending at the settlement
time (16:00 ET, 13:00 on early closes) must exist (a hole there means no index value); the value
is the close of the last bar ending within :data:`POST_CLOSE_MINUTES` after it. Feeds that carry
bars after the close print the official closing value there: the LEAN SPX files of 2021-01-04
and 2021-01-14 close the 16:00 bar at 3701.38 / 3796.24 and print 3700.65 / 3795.54, the
official closes, from 16:01 on. AM: the opening value of the day's first bar, which must start
at 09:30 ET; the first index print approximates the SOQ (both are built from opening prints).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.data import layout
from quantlab.data import store as st
from quantlab.data._settle_csv import CSV_OPTIONAL, CSV_REQUIRED, parse_csv
from quantlab.data._settle_parity import (
    CLOSE_REL_ERROR,
    DEFAULT_MINUTE_VOL,
    LOOKBACK_MINUTES,
    MIN_PAIRS,
    RATE,
    SOQ_REL_ERROR,
    Settlement,
    parity_estimate,
)
from quantlab.data.daycache import file_stamp
from quantlab.errors import DataError, InputError

if TYPE_CHECKING:
    import duckdb

    from quantlab.data.read import DayQuotes

MISSING_SCHEMA: Final = {
    "root": pl.Utf8,
    "expiry": pl.Date,
    "style": pl.Utf8,
    "best_source": pl.Utf8,
    "value": pl.Float64,
    "std_error": pl.Float64,
    "n_pairs": pl.Int32,
}
"""Columns of :func:`missing`: the expiries without an official or index value."""
SOURCES: Final = ("official", "index", "vendor_underlying", "broker", "parity_estimate")
"""Sources of a settlement value, most trusted first (the one place this order lives)."""
SETTLEMENTS_SCHEMA: Final = st.SETTLEMENTS_SCHEMA
ROOTS: Final = ("SPX", "SPXW")
POST_CLOSE_MINUTES: Final = 15
_NS_MIN: Final = calendar.NS_PER_MINUTE
_RANK: Final = {s: i for i, s in enumerate(SOURCES)}

__all__ = [
    "CLOSE_REL_ERROR",
    "CSV_OPTIONAL",
    "CSV_REQUIRED",
    "DEFAULT_MINUTE_VOL",
    "LOOKBACK_MINUTES",
    "MIN_PAIRS",
    "MISSING_SCHEMA",
    "RATE",
    "SETTLEMENTS_SCHEMA",
    "SOQ_REL_ERROR",
    "SOURCES",
    "CsvImport",
    "Settlement",
    "day_estimates",
    "import_csv",
    "index_settlement",
    "lookup",
    "merge",
    "missing",
    "parity_estimate",
    "read",
    "settling_on",
    "style_of",
    "to_frame",
    "write",
    "write_day_estimates",
]


# --------------------------------------------------------------------------- small helpers


def style_of(root: str) -> str:
    """``"PM"`` for SPXW, ``"AM"`` for SPX (monthlies settle at the opening quotation)."""
    return "PM" if _root(root) in calendar.PM_ROOTS else "AM"


def _root(root: Any) -> str:
    r = str(root).strip().upper()
    if r not in ROOTS:
        raise InputError(
            f"root must be SPX or SPXW (got {root!r}). SPX = AM-settled monthlies, "
            "SPXW = PM-settled weeklies/dailies."
        )
    return r


def _expiry(expiry: Any) -> dt.date:
    try:
        e = layout.as_date(expiry)
    except (TypeError, ValueError):
        raise InputError(f"expiry must be a date or 'YYYY-MM-DD' (got {expiry!r}).") from None
    if not calendar.is_session(e):
        raise InputError(
            f"expiry {e} is not a trading session; SPX/SPXW expiries settle on sessions "
            "(a holiday moves a monthly to the session before)."
        )
    return e


def _underlying(underlying: str) -> str:
    if not isinstance(underlying, str) or not underlying.strip():
        raise InputError(f"underlying must be a non-empty string like 'SPX' (got {underlying!r}).")
    return underlying.strip().upper()


def settling_on(day: dt.date) -> list[tuple[str, str]]:
    """``(root, style)`` of the expiries settling on session ``day``: SPXW (PM) every session,
    SPX (AM) when ``day`` is the standard monthly expiry."""
    out = [("SPXW", "PM")]
    if calendar.monthly_expiry(day.year, day.month) == day:
        out.append(("SPX", "AM"))
    return out


def to_frame(
    items: Iterable[Settlement], notes: Iterable[str | None] | None = None
) -> pl.DataFrame:
    """Rows in :data:`SETTLEMENTS_SCHEMA` for :class:`Settlement` objects (estimate fields are
    null for non-estimates; ``notes`` aligned with ``items``)."""
    items = list(items)
    note_list = list(notes) if notes is not None else [None] * len(items)
    rows = []
    for s, note in zip(items, note_list, strict=True):
        est = s.source == "parity_estimate"
        rows.append(
            {
                "root": s.root,
                "expiry": s.expiry,
                "style": s.style,
                "value": float(s.value),
                "source": s.source,
                "std_error": float(s.std_error) if est and math.isfinite(s.std_error) else None,
                "n_pairs": int(s.n_pairs) if est else None,
                "asof_ts": s.asof_ts,
                "note": note,
            }
        )
    return pl.DataFrame(rows, schema=SETTLEMENTS_SCHEMA)


def _from_row(r: dict[str, Any]) -> Settlement:
    se = r.get("std_error")
    return Settlement(
        root=r["root"],
        expiry=r["expiry"],
        style=r["style"],
        value=float(r["value"]),
        source=r["source"],
        std_error=math.nan if se is None else float(se),
        n_pairs=int(r.get("n_pairs") or 0),
        asof_ts=r.get("asof_ts"),
    )


# --------------------------------------------------------------------------- validation


def _bad(i: int, col: str, value: Any, expected: str) -> DataError:
    return DataError(f"settlement row {i}: column {col!r} has {value!r}; expected {expected}.")


def _cast(df: pl.DataFrame, col: str, dtype: pl.DataType, expected: str) -> pl.Series:
    s = df.get_column(col)
    if s.dtype == dtype:
        return s
    out = s.cast(dtype, strict=False)
    bad = (out.is_null() & s.is_not_null()).arg_true()
    if bad.len():
        i = int(bad[0])
        raise _bad(i, col, s[i], expected)
    return out


def _validate(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows cast to :data:`SETTLEMENTS_SCHEMA`, every value checked (errors name row/column)."""
    if not isinstance(rows, pl.DataFrame):
        raise InputError(f"rows must be a polars DataFrame (got {type(rows).__name__}).")
    need = ("root", "expiry", "value", "source")
    for c in need:
        if c not in rows.columns:
            raise DataError(
                f"settlement rows lack column {c!r} (got {rows.columns}); required {list(need)}, "
                f"optional {[c for c in SETTLEMENTS_SCHEMA if c not in need]}."
            )
    extra = [c for c in rows.columns if c not in SETTLEMENTS_SCHEMA]
    if extra:
        raise DataError(
            f"settlement rows have unexpected column {extra[0]!r}; allowed {list(SETTLEMENTS_SCHEMA)}."
        )
    expected = {
        "root": "SPX or SPXW",
        "expiry": "a date",
        "style": "AM or PM",
        "value": "a positive index level",
        "source": f"one of {SOURCES}",
        "std_error": "a non-negative number or null",
        "n_pairs": "a non-negative integer or null",
        "asof_ts": "int64 UTC nanoseconds or null",
        "note": "text or null",
    }
    cols = {}
    for c, dtype in SETTLEMENTS_SCHEMA.items():
        if c in rows.columns:
            cols[c] = _cast(rows, c, dtype, expected[c]).alias(c)
        else:
            cols[c] = pl.Series(c, [None] * rows.height, dtype=dtype)
    df = pl.DataFrame(list(cols.values()))
    for i, r in enumerate(df.iter_rows(named=True)):
        _check_row(i, r, expected)
    if df.height and df.get_column("style").null_count():
        df = df.with_columns(
            pl.when(pl.col("style").is_null())
            .then(pl.col("root").replace_strict({"SPX": "AM", "SPXW": "PM"}))
            .otherwise(pl.col("style"))
            .alias("style")
        )
    dup = df.select("root", "expiry", "source").is_duplicated()
    if dup.any():
        i, j = (int(x) for x in dup.arg_true()[:2])
        r = df.row(i, named=True)
        raise DataError(
            f"settlement rows {i} and {j} both hold {r['root']} {r['expiry']} from "
            f"{r['source']!r}; one value per (root, expiry, source)."
        )
    return df


def _check_row(i: int, r: dict[str, Any], expected: dict[str, str]) -> None:
    for c in ("root", "expiry", "value", "source"):
        if r[c] is None:
            raise _bad(i, c, None, expected[c])
    if r["root"] not in ROOTS:
        raise _bad(i, "root", r["root"], expected["root"])
    if r["style"] is not None and r["style"] not in ("AM", "PM"):
        raise _bad(i, "style", r["style"], expected["style"])
    if r["source"] not in _RANK:
        raise _bad(i, "source", r["source"], expected["source"])
    if not (math.isfinite(r["value"]) and r["value"] > 0):
        raise _bad(i, "value", r["value"], expected["value"])
    se = r["std_error"]
    if se is not None and not (math.isfinite(se) and se >= 0):
        raise _bad(i, "std_error", se, expected["std_error"])
    if r["n_pairs"] is not None and r["n_pairs"] < 0:
        raise _bad(i, "n_pairs", r["n_pairs"], expected["n_pairs"])
    try:
        ok = calendar.is_session(r["expiry"])
    except InputError:
        ok = False
    if not ok:
        raise _bad(i, "expiry", r["expiry"].isoformat(), "a trading session")


# --------------------------------------------------------------------------- write / read


@contextlib.contextmanager
def _locked(store: st.StoreLike, underlying: str) -> Iterator[None]:
    """Exclusive advisory lock (``fcntl.flock``, POSIX) of the settlements table of
    ``underlying``; blocks until free and is released when the holder dies."""
    import fcntl

    path = layout.lock_file(st.store_root(store), "settlements", underlying)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write(store: st.StoreLike, rows: pl.DataFrame, *, underlying: str = "SPX") -> int:
    """Merge settlement rows into the store.

    Rows replace stored rows with the same ``(root, expiry, source)``; every other row is kept.
    All rows are validated before anything is written; each expiry's partition is replaced
    atomically (:func:`quantlab.data.store.write_partition`) under an exclusive file lock, so
    concurrent writers (ingest, importers, the live runner) never lose each other's rows.

    Parameters
    ----------
    store : path
    rows : polars.DataFrame
        Columns of :data:`SETTLEMENTS_SCHEMA`; ``root``, ``expiry``, ``value`` and ``source`` are
        required, ``style`` defaults to AM for SPX and PM for SPXW, the rest to null.
    underlying : str
        Partition underlying (``"SPX"``).

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    DataError
        Naming the row number, column and value of the first bad row (unknown root or source,
        a value that is not a positive number, an expiry that is not a session, a duplicate).

    Examples
    --------
    >>> import datetime as dt, tempfile
    >>> import polars as pl
    >>> store = tempfile.mkdtemp()
    >>> rows = pl.DataFrame({"root": ["SPXW"], "expiry": [dt.date(2024, 3, 15)],
    ...                      "value": [5117.09], "source": ["broker"]})
    >>> write(store, rows)
    1
    >>> lookup(store, "SPXW", "2024-03-15").value
    5117.09
    """
    merge(store, rows, underlying=underlying)
    return rows.height


Written = tuple[dt.date, Path, int, str]
"""A settlements partition written: ``(expiry, path, rows in the partition, source label)``."""


def merge(
    store: st.StoreLike,
    rows: pl.DataFrame,
    *,
    underlying: str = "SPX",
    drop: Iterable[tuple[str, dt.date, str]] = (),
    con: duckdb.DuckDBPyConnection | None = None,
    manifest: bool = True,
) -> list[Written]:
    """:func:`write` for the store's own writers: also deletes the ``(root, expiry, source)``
    keys in ``drop``, and records the partitions in the caller's manifest connection ``con``
    (ingest), in a new one (``manifest=True``), or not at all (the caller records the returned
    partitions, as the importers do in one connection per import)."""
    df = _validate(rows)
    u = _underlying(underlying)
    drops = pl.DataFrame(
        list(drop), schema={"root": pl.Utf8, "expiry": pl.Date, "source": pl.Utf8}, orient="row"
    )
    days = sorted(set(df.get_column("expiry").to_list()) | set(drops.get_column("expiry")))
    written = []
    with _locked(store, u):
        for day in days:
            new = df.filter(pl.col("expiry") == day)
            gone = pl.concat([new.select(drops.columns), drops.filter(pl.col("expiry") == day)])
            old = st.read_partition(store, "settlements", u, day)
            if old is not None:
                new = pl.concat([old.join(gone, on=["root", "expiry", "source"], how="anti"), new])
            elif new.height == 0:
                continue
            src = "+".join(sorted(set(new.get_column("source")))) or "settlements"
            path = st.write_partition(store, "settlements", u, day, new, source=src, manifest=False)
            written.append((day, path, new.height, src))
    if not written or (con is None and not manifest):
        return written
    if con is not None:
        for day, path, n, src in written:
            st.record_partition(con, "settlements", u, day, path, n, src, None)
    else:  # outside the lock: a writer holding the manifest may be waiting for the lock
        with st.open_manifest(store) as c:
            for day, path, n, src in written:
                st.record_partition(c, "settlements", u, day, path, n, src, None)
    return written


def read(
    store: st.StoreLike,
    *,
    underlying: str = "SPX",
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> pl.DataFrame:
    """Every stored settlement row (all sources) with expiry in ``[start, end]``, sorted by
    expiry, root and source rank (:data:`SOURCES` order)."""
    u = _underlying(underlying)
    lo = layout.as_date(start) if start is not None else dt.date.min
    hi = layout.as_date(end) if end is not None else dt.date.max
    root = st.store_root(store)
    paths = [
        layout.partition_file(root, "settlements", u, d)
        for d in st.list_days(store, "settlements", u)
        if lo <= d <= hi
    ]
    if not paths:
        return pl.DataFrame(schema=SETTLEMENTS_SCHEMA)
    df = pl.concat([pl.read_parquet(p) for p in paths])
    rank = pl.col("source").replace_strict(_RANK, default=len(SOURCES), return_dtype=pl.Int32)
    return df.sort([pl.col("expiry"), pl.col("root"), rank])


# --------------------------------------------------------------------------- index values


def index_settlement(bars: pl.DataFrame | None, root: str, expiry: Any) -> Settlement | None:
    """The ``index`` settlement value of ``(root, expiry)`` from that day's index minute bars.

    PM: the close of the last bar ending within :data:`POST_CLOSE_MINUTES` after the
    settlement time, provided the bar ending at the settlement time exists; AM: the opening
    value of the day's first bar, which must be the bar starting at 09:30 ET (see the module
    notes). None when the bars do not show it (a hole at the close or the open).
    """
    r, e = _root(root), _expiry(expiry)
    if bars is None or bars.height == 0:
        return None
    b = bars.filter(pl.col("ts").is_not_null()).sort("ts")
    ts = b.get_column("ts").to_numpy()
    settle = calendar.settlement_ns(r, e)
    if style_of(r) == "AM":
        if ts[0] != calendar.option_open_ns(e) + _NS_MIN:
            return None
        value = b.get_column("open")[0]
        asof = settle
    else:
        at = np.flatnonzero(ts == settle)
        if at.size == 0 or b.get_column("close")[int(at[0])] is None:
            return None
        post = np.flatnonzero((ts >= settle) & (ts <= settle + POST_CLOSE_MINUTES * _NS_MIN))
        closes = b.get_column("close").to_numpy()[post]
        keep = post[np.isfinite(closes)]
        value = b.get_column("close")[int(keep[-1])]
        asof = int(ts[int(keep[-1])])
    if value is None or not (math.isfinite(value) and value > 0):
        return None
    return Settlement(r, e, style_of(r), float(value), "index", asof_ts=asof)


# --------------------------------------------------------------------------- lookup


class _Cache:
    """Per-process LRU of values keyed by a stamp of the files they were read from."""

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, stamp: Any, make: Any) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == stamp:
                self._items.move_to_end(key)
                return hit[1]
        value = make()
        with self._lock:
            self._items[key] = (stamp, value)
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value


_STORED = _Cache()
_DERIVED = _Cache()


def _stored(root_dir: Path, u: str, e: dt.date) -> list[Settlement]:
    """Stored rows of one expiry partition, most trusted first (cached per file state)."""
    path = layout.partition_file(root_dir, "settlements", u, e)

    def make() -> list[Settlement]:
        df = st.read_partition(root_dir, "settlements", u, e)
        if df is None:
            return []
        out = [_from_row(r) for r in df.iter_rows(named=True) if r["source"] in _RANK]
        return sorted(out, key=lambda s: (_RANK[s.source], s.root))

    return list(_STORED.get((str(root_dir), u, e), file_stamp(path), make))


def expiry_day_quotes(store: st.StoreLike, underlying: str, day: dt.date) -> DayQuotes | None:
    """The stored quotes of the contracts expiring on ``day`` (SPX and SPXW), read on ``day``
    as a :class:`~quantlab.data.read.DayQuotes` (None without instruments or quotes)."""
    from quantlab.data.read import DayQuotes

    inst = st.read_partition(store, "instruments", underlying, day)
    qpath = layout.partition_file(st.store_root(store), "quotes", underlying.upper(), day)
    if inst is None or not qpath.is_file():
        return None
    inst = inst.filter((pl.col("expiry") == day) & pl.col("root").is_in(list(ROOTS)))
    if inst.height == 0:
        return None
    ids = inst.get_column("instrument_id").implode()
    quotes = pl.scan_parquet(qpath).filter(pl.col("instrument_id").is_in(ids)).collect()
    return DayQuotes(underlying.upper(), day, inst, quotes)


def _derive(root_dir: Path, u: str, r: str, e: dt.date, source: str) -> Settlement | None:
    """A value derived from the expiry day's own data (cached per state of those files)."""
    tables = ("underlying_bars",) if source == "index" else ("instruments", "quotes")
    stamp = tuple(file_stamp(layout.partition_file(root_dir, t, u, e)) for t in tables)

    def make() -> Settlement | None:
        if source == "index":
            return index_settlement(st.read_partition(root_dir, "underlying_bars", u, e), r, e)
        dq = expiry_day_quotes(root_dir, u, e)
        return None if dq is None else parity_estimate(dq, r, e)

    return _DERIVED.get((str(root_dir), u, r, e, source), stamp, make)


def lookup(
    store: st.StoreLike, root: str, expiry: Any, *, underlying: str = "SPX"
) -> Settlement | None:
    """The most trusted settlement value of ``(root, expiry)``.

    Stored rows are ranked by :data:`SOURCES`. When no stored row beats them, a value is derived
    on the fly from the expiry day's own data with the same functions the writers use: ``index``
    from ``underlying_bars`` (:func:`index_settlement`), then ``parity_estimate`` from the
    stored quotes (:func:`parity_estimate`). The answer depends only on the store's files
    (never on what else the caller read); reads are cached per process and invalidated when a
    partition file changes.

    Parameters
    ----------
    store : path
    root : str
        ``"SPXW"`` (PM) or ``"SPX"`` (AM monthly).
    expiry : date or 'YYYY-MM-DD'
        A session.
    underlying : str
        Partition underlying (``"SPX"``).

    Returns
    -------
    Settlement or None
        None when the store holds nothing usable for that day (e.g. it ends before the expiry).

    Raises
    ------
    InputError
        Unknown root, or an expiry that is not a session.
    """
    r, e, u = _root(root), _expiry(expiry), _underlying(underlying)
    root_dir = st.store_root(store).resolve()
    stored = [s for s in _stored(root_dir, u, e) if s.root == r]
    best = _RANK[stored[0].source] if stored else len(SOURCES)
    for source in ("index", "parity_estimate"):
        if _RANK[source] < best:
            found = _derive(root_dir, u, r, e, source)
            if found is not None:
                return found
    return stored[0] if stored else None


# --------------------------------------------------------------------------- writers' helpers


def day_estimates(dq: DayQuotes) -> dict[tuple[str, dt.date], Settlement | None]:
    """Parity estimates of every expiry settling on ``dq.day`` (:func:`settling_on`)."""
    return {(r, dq.day): parity_estimate(dq, r, dq.day) for r, _ in settling_on(dq.day)}


def _estimate_note(s: Settlement) -> str:
    when = dt.datetime.fromtimestamp((s.asof_ts or 0) / 1e9, tz=calendar.ET)
    series = "SPXW" if s.style == "AM" else s.root
    gap = abs(calendar.settlement_ns(s.root, s.expiry) - (s.asof_ts or 0)) / _NS_MIN
    what = "the open (SOQ approximated)" if s.style == "AM" else "the settlement time"
    return f"parity forward of {series} {s.expiry} at {when:%H:%M} ET, {gap:.0f} min from {what}"


def write_day_estimates(
    store: st.StoreLike,
    day: dt.date,
    *,
    underlying: str = "SPX",
    con: duckdb.DuckDBPyConnection | None = None,
    manifest: bool = True,
) -> list[Written]:
    """Write the ``parity_estimate`` rows of the expiries settling on ``day`` from the stored
    quotes of that day (ingest and the importers call it after writing a day); an estimate the
    data no longer gives is removed. Returns the partitions written (see :func:`merge`)."""
    u = _underlying(underlying)
    dq = expiry_day_quotes(store, u, day)
    found = day_estimates(dq) if dq is not None else {}
    have = [s for s in found.values() if s is not None]
    drop = [(r, e, "parity_estimate") for (r, e), s in found.items() if s is None]
    if dq is None:
        drop = [(r, day, "parity_estimate") for r, _ in settling_on(day)]
    stored = st.read_partition(store, "settlements", u, day)
    if stored is not None:
        keys = set(zip(stored["root"], stored["source"], strict=True))
        drop = [d for d in drop if (d[0], d[2]) in keys]
    if not have and not drop:
        return []
    rows = to_frame(have, [_estimate_note(s) for s in have])
    return merge(store, rows, underlying=u, drop=drop, con=con, manifest=manifest)


# --------------------------------------------------------------------------- official CSV


@dataclasses.dataclass(frozen=True)
class CsvImport:
    """What :func:`import_csv` wrote."""

    path: Path
    rows: int
    first: dt.date | None
    last: dt.date | None
    new: int
    changed: int
    unchanged: int

    def lines(self) -> list[str]:
        span = f"{self.first} .. {self.last}" if self.first else "no expiries"
        return [
            f"{self.path.name}: {self.rows} official settlement value(s), {span} "
            f"({self.new} new, {self.changed} changed, {self.unchanged} unchanged)"
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def import_csv(store: st.StoreLike, path: Path | str, *, underlying: str = "SPX") -> CsvImport:
    """Import official settlement values from a CSV (source ``official``).

    Columns (header names, case-insensitive): ``root`` (SPX or SPXW), ``expiry`` (YYYY-MM-DD, a
    session), ``value`` (index points, > 0); optional ``style`` (AM/PM, default AM for SPX and
    PM for SPXW) and ``note``. Other columns are refused. Every row is checked before anything
    is written, so a bad file changes nothing; importing the same file again rewrites the same
    bytes. Official values override every other source in :func:`lookup`.

    Raises
    ------
    InputError
        The file does not exist.
    DataError
        Naming the row (and its file line), column and value of the first bad row, or a
        missing column.

    Examples
    --------
    ``settlements.csv``::

        root,expiry,value,note
        SPXW,2018-01-31,2823.81,Cboe SPX close
        SPX,2018-02-16,2727.25,SET
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"settlements file {str(p)!r} does not exist.")
    u = _underlying(underlying)
    rows = parse_csv(p)
    old = read(store, underlying=u).filter(pl.col("source") == "official")
    before = {(r["root"], r["expiry"]): r["value"] for r in old.iter_rows(named=True)}
    new = changed = 0
    for r in rows.iter_rows(named=True):
        prev = before.get((r["root"], r["expiry"]))
        new += prev is None
        changed += prev is not None and prev != r["value"]
    merge(store, rows, underlying=u)
    days = sorted(rows.get_column("expiry").to_list())
    return CsvImport(p, rows.height, days[0], days[-1], new, changed, rows.height - new - changed)


# --------------------------------------------------------------------------- missing


def missing(store: st.StoreLike, *, underlying: str = "SPX") -> pl.DataFrame:
    """Expiries without an ``official`` or ``index`` value.

    Every ``(root, expiry)`` listed in the ``instruments`` table or holding stored settlement
    rows (an SPX monthly is no longer listed on its expiry day) whose expiry date the store
    reaches (on or before its last day of quotes or index bars) and for which :func:`lookup`
    finds neither source, with the best source it does find (null when none), that value and
    its standard error.

    Returns
    -------
    polars.DataFrame
        ``root, expiry, style, best_source, value, std_error, n_pairs``, sorted by expiry, root.
    """
    u = _underlying(underlying)
    schema = MISSING_SCHEMA
    base = layout.table_dir(st.store_root(store), "instruments") / f"underlying={u}"
    files = sorted(base.glob("date=*/part-0.parquet"))
    last = max(
        [d for t in ("quotes", "underlying_bars") for d in st.list_days(store, t, u)[-1:]],
        default=None,
    )
    if not files or last is None:
        return pl.DataFrame(schema=schema)
    listed = (
        pl.concat(
            [
                pl.scan_parquet(files).select("root", "expiry"),
                read(store, underlying=u).lazy().select("root", "expiry"),
            ]
        )
        .filter(pl.col("root").is_in(list(ROOTS)) & (pl.col("expiry") <= last))
        .unique()
        .sort("expiry", "root")
        .collect()
    )
    rows = []
    for r, e in listed.iter_rows():
        try:
            s = lookup(store, r, e, underlying=u)
        except InputError:  # an expiry that is not a session (old Saturday-dated monthlies)
            s = None
        if s is not None and s.source in ("official", "index"):
            continue
        rows.append(
            {
                "root": r,
                "expiry": e,
                "style": style_of(r),
                "best_source": None if s is None else s.source,
                "value": None if s is None else s.value,
                "std_error": None if s is None or math.isnan(s.std_error) else s.std_error,
                "n_pairs": None if s is None or s.source != "parity_estimate" else s.n_pairs,
            }
        )
    return pl.DataFrame(rows, schema=schema)
