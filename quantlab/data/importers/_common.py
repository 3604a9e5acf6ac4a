"""Shared pieces of the importers: contract identity, time stamps, and the per-day write.

Instrument ids
--------------
Imported data has no Databento ``instrument_id``; the importers derive one from the contract,
so that the same contract gets the same id on a given day whatever files it came from (and a
second import of other files for that day merges cleanly)::

    bit  31      root        0 = SPXW (PM), 1 = SPX (AM)
    bit  30      right       0 = call, 1 = put
    bits 18..29  expiry - session date, in calendar days (0..4095)
    bits  0..17  strike in 1/8 index points (strike < 32768)

Ids are unique within a day (the store's rule) and decodable with :func:`decode_instrument_id`.
They are *not* Databento ids: a partition written by ``quantlab data ingest`` is never merged
with imported rows (:func:`write_day` refuses).

Merging
-------
All tables of one ET day are written together by :func:`write_day`. When a partition already
holds imported rows (source ``import:...``), rows of the contracts in this import replace the old
ones and every other contract is kept; ``source`` and ``checksum`` become the sorted union of the
old and new values. Importing the same files again therefore rewrites byte-identical partitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from quantlab.data import layout
from quantlab.errors import DataError, InputError

UNDERLYING: Final = "SPX"
MULTIPLIER: Final = 100
ROOTS: Final = {"SPX": "AM", "SPXW": "PM"}
SOURCE_PREFIX: Final = "import:"
_STRIKE_SCALE: Final = 8
_MAX_STRIKE_UNITS: Final = (1 << 18) - 1
_MAX_DTE: Final = (1 << 12) - 1
ET: Final = "America/New_York"
NS_PER_S: Final = 1_000_000_000


def normalize_root(root: str, *, where: str = "root") -> str:
    """``'spxw'`` -> ``'SPXW'``; anything but SPX/SPXW raises :class:`InputError`."""
    r = str(root).strip().upper()
    if r not in ROOTS:
        raise InputError(
            f"{where} must be SPX or SPXW (got {root!r}). SPX = AM-settled monthlies, "
            "SPXW = PM-settled weeklies/dailies."
        )
    return r


def occ_symbol(root: str, expiry: dt.date, right: str, strike: float) -> str:
    """OCC option symbol (:func:`quantlab.strategy.occ.occ_symbol`, the one builder), with a
    bad contract in imported data reported as a :class:`~quantlab.errors.DataError`."""
    from quantlab.strategy.occ import occ_symbol as build

    try:
        return build(root, expiry, right, strike)
    except InputError as exc:
        raise DataError(str(exc)) from None


def instrument_ids(
    day: dt.date, root: pl.Series, expiry: pl.Series, right: pl.Series, strike: pl.Series
) -> pl.Series:
    """Structured UInt32 ids (see the module docstring) for contracts listed on ``day``.

    Raises
    ------
    DataError
        If an expiry is before ``day`` or more than 4095 days after it, or a strike is not a
        multiple of 1/8 point or is 32768 or more.
    """
    root_bit = (root == "SPX").cast(pl.UInt32).to_numpy().astype(np.uint64)
    right_bit = (right == "P").cast(pl.UInt32).to_numpy().astype(np.uint64)
    dte = (
        expiry.cast(pl.Date).to_numpy().astype("datetime64[D]") - np.datetime64(day, "D")
    ).astype(np.int64)
    units = strike.to_numpy() * _STRIKE_SCALE
    bad = np.flatnonzero((dte < 0) | (dte > _MAX_DTE))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"expiry {expiry[i]} of {root[i]} {right[i]} {strike[i]} is {int(dte[i])} days from "
            f"the quote date {day}; imported contracts must expire 0..{_MAX_DTE} days later."
        )
    bad = np.flatnonzero((units != np.round(units)) | (units <= 0) | (units > _MAX_STRIKE_UNITS))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"strike {strike[i]!r} ({root[i]} {expiry[i]} {right[i]}) cannot be encoded: strikes "
            "must be positive multiples of 0.125 below 32768."
        )
    ids = (
        (root_bit << 31)
        | (right_bit << 30)
        | (dte.astype(np.uint64) << 18)
        | np.round(units).astype(np.uint64)
    )
    return pl.Series("instrument_id", ids.astype(np.uint32))


def decode_instrument_id(day: dt.date | str, instrument_id: int) -> tuple[str, dt.date, str, float]:
    """``(root, expiry, right, strike)`` of an importer id on ``day`` (inverse of the encoding)."""
    i = int(instrument_id)
    if not 0 <= i < 1 << 32:
        raise InputError(f"instrument_id must fit in 32 bits (got {instrument_id!r}).")
    root = "SPX" if i >> 31 else "SPXW"
    right = "P" if (i >> 30) & 1 else "C"
    expiry = layout.as_date(day) + dt.timedelta(days=(i >> 18) & _MAX_DTE)
    return root, expiry, right, (i & _MAX_STRIKE_UNITS) / _STRIKE_SCALE


def contracts_frame(day: dt.date, df: pl.DataFrame) -> pl.DataFrame:
    """Instruments table rows for the distinct ``root, expiry, right, strike`` in ``df``."""
    c = df.select("root", "expiry", "right", "strike").unique(maintain_order=True)
    c = c.with_columns(
        instrument_ids(day, c["root"], c["expiry"], c["right"], c["strike"]),
        pl.concat_str(
            pl.col("root").str.pad_end(6),
            pl.col("expiry").dt.strftime("%y%m%d"),
            pl.col("right"),
            (pl.col("strike") * 1000).round().cast(pl.Int64).cast(pl.Utf8).str.zfill(8),
        ).alias("raw_symbol"),
    )
    return c.select(
        pl.lit(day).alias("date"),
        "instrument_id",
        "raw_symbol",
        "root",
        pl.lit(UNDERLYING).alias("underlying"),
        "expiry",
        pl.col("root").replace_strict(ROOTS, return_dtype=pl.Utf8).alias("settlement"),
        pl.col("strike").cast(pl.Float64),
        "right",
        pl.lit(MULTIPLIER, dtype=pl.Int32).alias("multiplier"),
    ).sort("instrument_id")


def with_ids(day: dt.date, df: pl.DataFrame) -> pl.DataFrame:
    """``df`` (with root/expiry/right/strike) plus its ``instrument_id`` column."""
    return df.with_columns(instrument_ids(day, df["root"], df["expiry"], df["right"], df["strike"]))


def local_to_utc_ns(day: dt.date, ms: pl.Expr, tz: str) -> pl.Expr:
    """UTC nanoseconds of ``day`` + ``ms`` milliseconds of wall-clock time in ``tz``."""
    return (
        (pl.lit(dt.datetime.combine(day, dt.time(0))) + pl.duration(milliseconds=ms))
        .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="raise")
        .dt.convert_time_zone("UTC")
        .dt.epoch("ns")
    )


def at_time_ns(day: dt.date, when: dt.time, tz: str = ET) -> int:
    """UTC nanoseconds of a wall-clock time on ``day`` in ``tz``."""
    from zoneinfo import ZoneInfo

    aware = dt.datetime.combine(day, when, tzinfo=ZoneInfo(tz))
    return int(aware.timestamp()) * NS_PER_S


def no_offer_to_null(df: pl.DataFrame) -> pl.DataFrame:
    """End-of-day files write 0 for a side with no quote. An ask of 0 is no offer: null (and
    then a 0 bid is no quote either: null). A 0 bid under a real ask is kept as 0.0, the same
    "zero bid" market state ingest keeps from OPRA (see :mod:`quantlab.data.quality`)."""
    ask = pl.when(pl.col("ask") > 0).then(pl.col("ask")).otherwise(None).cast(pl.Float64)
    bid = pl.when(ask.is_null() & (pl.col("bid") == 0)).then(None).otherwise(pl.col("bid"))
    return df.with_columns(bid.cast(pl.Float64).alias("bid"), ask.alias("ask"))


def split_quotes(quotes: pl.DataFrame, known_ids: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The project's quarantine rules (:func:`quantlab.data.quality.split_quotes`): returns the
    quote table rows and the quarantine table rows. Crossed/locked/zero-bid quotes are kept."""
    from quantlab.data import quality
    from quantlab.data.store import QUARANTINE_SCHEMA, QUOTES_SCHEMA

    good, bad = quality.split_quotes(quotes.select(list(QUOTES_SCHEMA)), known_ids.to_numpy())
    return good.select(list(QUOTES_SCHEMA)), bad.select(list(QUARANTINE_SCHEMA))


def quarantine_rows(df: pl.DataFrame, reason: str | pl.Expr) -> pl.DataFrame:
    """Quarantine-table rows for quote rows ``df`` (needs ts, instrument_id, bid, ask)."""
    from quantlab.data.store import QUARANTINE_SCHEMA

    if df.height == 0:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return df.select(
        pl.lit("quotes").alias("table"),
        pl.col("ts").cast(pl.Int64),
        pl.col("instrument_id").cast(pl.UInt32),
        reason_expr.alias("reason"),
        pl.col("bid").cast(pl.Float64),
        pl.col("ask").cast(pl.Float64),
    )


def sha256_files(paths: Iterable[Path]) -> list[str]:
    """Hex sha256 of each file (:func:`quantlab.data.store.sha256_file`)."""
    from quantlab.data.store import sha256_file

    return [sha256_file(p) for p in paths]


@dataclasses.dataclass
class DaySummary:
    """Rows written for one ET day."""

    day: dt.date
    instruments: int = 0
    quotes: int = 0
    open_interest: int = 0
    underlying_bars: int = 0
    quarantined: int = 0
    settlements: int = 0
    written: list[tuple[str, Path, int, str, str]] = dataclasses.field(
        default_factory=list, repr=False
    )


@dataclasses.dataclass
class ImportSummary:
    """What an import wrote (per day), and notes worth reading (skips, guesses, repairs)."""

    source: str
    days: list[DaySummary] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.source}: {len(self.days)} day(s)"]
        for d in self.days:
            out.append(
                f"  {d.day}: {d.instruments} instruments, {d.quotes} quotes, "
                f"{d.open_interest} open interest, {d.underlying_bars} index bars, "
                f"{d.quarantined} quarantined, {d.settlements} settlement partition(s)"
            )
        out += [f"  note: {n}" for n in self.notes]
        return out


_KEYS: Final = {
    "instruments": "instrument_id",
    "quotes": "instrument_id",
    "open_interest": "instrument_id",
    "quarantine": "instrument_id",
    "underlying_bars": "ts",
}


def _merge_meta(old: dict[str, str], source: str, checksums: Sequence[str]) -> tuple[str, str]:
    sources = set(filter(None, old.get("quantlab.source", "").split("+"))) | {source}
    sums = set(filter(None, old.get("quantlab.checksum", "").split(","))) | set(checksums)
    return "+".join(sorted(sources)), ",".join(sorted(sums))


def _covered_keys(
    table: str,
    new: pl.DataFrame,
    tables: dict[str, pl.DataFrame | None],
    covered: dict[str, pl.Series],
) -> pl.Series:
    if table in covered:
        return covered[table]
    if table == "quarantine":
        if "quotes" in covered:
            return covered["quotes"]
        quotes = tables.get("quotes")
        if quotes is not None:
            return quotes.get_column("instrument_id")
    return new.get_column(_KEYS[table])


def write_day(
    store: Any,
    day: dt.date,
    tables: dict[str, pl.DataFrame | None],
    *,
    source: str,
    checksums: Sequence[str] | Mapping[str, Sequence[str]],
    covered: dict[str, pl.Series] | None = None,
) -> DaySummary:
    """Write (merging, see the module docstring) each given table's partition for ``day``.

    ``tables`` maps a table name to its new rows; ``None`` leaves that table alone. Old rows
    whose key (``instrument_id``; ``ts`` for ``underlying_bars``) is *covered* by this import
    are replaced, the rest are kept. ``covered[table]`` defaults to the keys of the new frame;
    for ``quarantine`` it defaults to the contracts covered in ``quotes`` (an import that
    re-reads a contract's quotes also re-decides what of them is quarantined).
    ``checksums`` are the sha256 of the input files, for all tables or per table.
    """
    from quantlab.data import store as st

    if not source.startswith(SOURCE_PREFIX):
        raise InputError(f"source must start with {SOURCE_PREFIX!r} (got {source!r}).")
    summary = DaySummary(day)
    for table, new in tables.items():
        if new is None:
            continue
        key = _KEYS[table]
        path = layout.partition_file(st.store_root(store), table, UNDERLYING, day)
        inputs = checksums.get(table, ()) if isinstance(checksums, Mapping) else checksums
        src, sums = source, ",".join(sorted(set(inputs)))
        if path.is_file():
            meta = st.partition_metadata(path)
            old_source = meta.get("quantlab.source", "")
            if not all(s.startswith(SOURCE_PREFIX) for s in old_source.split("+")):
                raise DataError(
                    f"{path} was written by {old_source!r}, not by an importer; imported rows "
                    "use their own instrument ids and are never merged with it. Import into "
                    "another store, or delete that partition first."
                )
            old = st.read_partition(store, table, UNDERLYING, day)
            if old is not None and old.height:
                keys = _covered_keys(table, new, tables, covered or {}).unique().implode()
                if table == "quarantine":
                    keep = old.filter(
                        pl.col(key).is_null()
                        | ~pl.col(key).is_in(keys)
                        | (pl.col("table") != "quotes")
                    )
                else:
                    keep = old.filter(~pl.col(key).is_in(keys))
                new = pl.concat([keep, new.select(old.columns)], how="vertical_relaxed")
            src, sums = _merge_meta(meta, source, inputs)
        if table == "quarantine":
            new = new.unique(maintain_order=True)
        written = st.write_partition(
            store, table, UNDERLYING, day, new, source=src, checksum=sums, manifest=False
        )
        summary.written.append((table, written, new.height, src, sums))
        setattr(summary, "quarantined" if table == "quarantine" else table, new.height)
    return summary


def record_manifest(store: Any, days: Sequence[DaySummary]) -> None:
    """Record the partitions written by :func:`write_day` in the store manifest, in one
    connection (opening DuckDB per partition costs ~50 ms each)."""
    from quantlab.data import store as st

    rows = [(d.day, w) for d in days for w in d.written]
    if not rows:
        return
    with st.open_manifest(store) as con:
        for day, (table, path, n, src, sums) in rows:
            st.record_partition(con, table, UNDERLYING, day, path, n, src, sums)
