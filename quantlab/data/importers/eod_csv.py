"""Import end-of-day SPX/SPXW chain CSVs into the store: one quote per contract and day.

Layouts (``format``; ``auto`` picks from the header)
-----------------------------------------------------
``hod``
    HistoricalOptionData: ``underlying, underlying_last, exchange, optionroot, optionext, type,
    expiration (MM/DD/YYYY), quotedate, strike, last, bid, ask, volume, openinterest,
    impliedvol, ...``; many days per file; may start with a UTF-8 BOM and have header names
    with leading spaces (``" exchange"``), both tolerated. Root = letters of ``optionroot``.
    Snapshot: **16:00 ET** (the vendor's end of day). Sizes are not given: stored as 0.
``datashop``
    Cboe DataShop option EOD summary: ``quote_date, expiration, strike, option_type,
    bid_size_1545, bid_1545, ask_size_1545, ask_1545, ..., open_interest`` (and ``root`` in the
    full product). Snapshot: the time in the column names (``_1545`` -> **15:45 ET**).
``wide``
    One row per strike with both rights: ``Date, ExpDate, Strike, CallBid, CallAsk, CallPrice,
    CallVolume, CallOI, PutBid, PutAsk, PutPrice, PutVolume, PutOI``. No time in the file:
    **16:00 ET assumed**. ``CallPrice``/``PutPrice`` are last trades (often stale) and ignored.
    Such files also come labelled as Cboe chains: asking for ``datashop`` on one reads it as
    ``wide`` (with a note); any other mismatch between ``format`` and the header is an error.

For ``datashop`` without a ``root`` column and for ``wide``, the root comes from ``root=`` or
from the file name (``spxw...`` -> SPXW, ``spx...`` -> SPX).

Values
------
``ts`` = the snapshot time (UTC ns). These files write 0 for a missing side: an ask of 0 (no
offer) is stored as null, and a 0 bid beside it too; a 0 bid under a real ask stays 0.0 (the
"zero bid" state ingest also keeps). Rows then go through the project's quarantine rules
(:func:`quantlab.data.quality.split_quotes`; crossed/locked quotes are kept). Open interest is
stored with the same ``ts``. Volume, last and vendor greeks are not imported.

Settlement values
-----------------
The file's underlying price (``hod``: ``underlying_last``; ``datashop``: the mid of
``underlying_bid_HHMM``/``underlying_ask_HHMM``; ``wide`` has none) is not synchronous with the
option quotes on ordinary days (20 points off on 2018-02-05, see shared/data/README.md) and is
not stored as a quote; on a quote date that is the expiry of PM-settled contracts in the file
(SPXW), it is kept as that expiry's ``vendor_underlying`` settlement value (``asof_ts`` = the
snapshot time; a DataShop 15:45 snapshot is 15 minutes before the close, the note says so).
AM monthlies settle at the next morning's opening quotation, which an end-of-day price does not
show. After each day the parity estimate of each expiry settling that day is written too
(:func:`quantlab.data.settlements.write_day_estimates`).

Repeated contracts
------------------
A file can list the same contract twice with different prices (``spxw.csv`` 2025-09-03 holds
the 2025-09-10 strike block twice; the second block is most likely 2025-09-11, the CPI-day
expiry, mislabelled). ``duplicates="quarantine"`` (default) keeps the first row and sends each
later one to ``quarantine`` with reason ``duplicate_block`` (the summary notes name the file
lines); ``duplicates="relabel"`` moves
the second block to the next session that is not already an expiry in the file (a guess,
noted in the summary), later repeats still go to quarantine.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Final

import polars as pl

from quantlab.data.importers._common import (
    ET,
    ImportSummary,
    at_time_ns,
    contracts_frame,
    no_offer_to_null,
    normalize_root,
    quarantine_rows,
    record_manifest,
    sha256_files,
    split_quotes,
    with_ids,
    write_day,
)
from quantlab.errors import DataError, InputError

FORMATS: Final = ("hod", "datashop", "wide")
DUPLICATE_POLICIES: Final = ("quarantine", "relabel")
DEFAULT_EOD_TIME: Final = dt.time(16, 0)
DUPLICATE_REASON: Final = "duplicate_block"
_KEY: Final = ["day", "root", "expiry", "right", "strike"]
_SNAP_RE = re.compile(r"^bid_(\d{4})$")

__all__ = ["DEFAULT_EOD_TIME", "FORMATS", "detect_format", "import_eod", "read_eod"]


def detect_format(columns: list[str]) -> str:
    """``hod``, ``datashop`` or ``wide`` from a header (names already stripped)."""
    cols = set(columns)
    if {"optionroot", "quotedate", "expiration", "strike", "bid", "ask"} <= cols:
        return "hod"
    if {"quote_date", "expiration", "strike", "option_type"} <= cols:
        return "datashop"
    if {"Date", "ExpDate", "Strike", "CallBid", "CallAsk", "PutBid", "PutAsk"} <= cols:
        return "wide"
    raise InputError(
        f"cannot tell the layout of an end-of-day CSV with columns {columns[:8]}...; pass "
        f"format= one of {FORMATS}."
    )


def _num(df: pl.DataFrame, col: str, dtype: Any, where: str) -> pl.Expr:
    """Strictly parse a text column (empty -> null); raise naming the first bad value."""
    text = pl.col(col).str.strip_chars()
    parsed = pl.when(text == "").then(None).otherwise(text).cast(dtype, strict=False)
    bad = (
        df.select(text.alias("t"), parsed.alias("v"))
        .with_row_index()
        .filter(pl.col("v").is_null() & pl.col("t").is_not_null() & (pl.col("t") != ""))
    )
    if bad.height:
        r = bad.row(0, named=True)
        raise DataError(
            f"{where}: column {col!r} has {r['t']!r} on line {r['index'] + 2}; expected a number."
        )
    return parsed


def _date(df: pl.DataFrame, col: str, fmt: str, where: str) -> pl.Expr:
    text = pl.col(col).str.strip_chars()
    parsed = text.str.strptime(pl.Date, fmt, strict=False)
    bad = df.with_row_index().filter(parsed.is_null())
    if bad.height:
        r = bad.row(0, named=True)
        raise DataError(
            f"{where}: column {col!r} has {r[col]!r} on line {r['index'] + 2}; expected a date "
            f"like {dt.date(2018, 1, 31).strftime(fmt)}."
        )
    return parsed


def _root_from(root: str | None, path: Path) -> str:
    if root:
        return normalize_root(root)
    m = re.match(r"^(spxw|spx)(?![a-z])", path.stem, re.IGNORECASE)
    if m is None:
        raise InputError(
            f"{path.name}: the file has no root column and its name does not start with spx/spxw; "
            "pass root='SPXW' (or --root)."
        )
    return normalize_root(m[1])


def _read_hod(df: pl.DataFrame, where: str) -> tuple[pl.DataFrame, dt.time]:
    out = df.select(
        "row",
        _date(df, "quotedate", "%m/%d/%Y", where).alias("day"),
        pl.col("optionroot")
        .str.strip_chars()
        .str.extract(r"^([A-Za-z]+)")
        .str.to_uppercase()
        .alias("root"),
        _date(df, "expiration", "%m/%d/%Y", where).alias("expiry"),
        pl.col("type")
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict({"call": "C", "put": "P", "c": "C", "p": "P"}, default=None)
        .alias("right"),
        _num(df, "strike", pl.Float64, where).alias("strike"),
        _num(df, "bid", pl.Float64, where).alias("bid"),
        _num(df, "ask", pl.Float64, where).alias("ask"),
        pl.lit(0, dtype=pl.UInt32).alias("bid_size"),
        pl.lit(0, dtype=pl.UInt32).alias("ask_size"),
        _num(df, "openinterest", pl.Int64, where).alias("open_interest"),
        (
            _num(df, "underlying_last", pl.Float64, where)
            if "underlying_last" in df.columns
            else pl.lit(None, dtype=pl.Float64)
        ).alias("underlying_price"),
    )
    return out, DEFAULT_EOD_TIME


def _read_datashop(
    df: pl.DataFrame, where: str, root: str | None, path: Path
) -> tuple[pl.DataFrame, dt.time]:
    snaps = sorted({m[1] for c in df.columns if (m := _SNAP_RE.match(c))})
    if len(snaps) != 1:
        raise DataError(
            f"{where}: expected exactly one bid_HHMM column (e.g. bid_1545), found {snaps or 'none'}."
        )
    hhmm = snaps[0]
    when = dt.time(int(hhmm[:2]), int(hhmm[2:]))
    need = [f"bid_{hhmm}", f"ask_{hhmm}", f"bid_size_{hhmm}", f"ask_size_{hhmm}"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{where}: DataShop file lacks column {missing[0]!r}.")
    root_expr = (
        pl.col("root").str.strip_chars().str.to_uppercase()
        if "root" in df.columns
        else pl.lit(_root_from(root, path))
    )
    oi = (
        _num(df, "open_interest", pl.Int64, where)
        if "open_interest" in df.columns
        else pl.lit(None, dtype=pl.Int64)
    )
    ub, ua = f"underlying_bid_{hhmm}", f"underlying_ask_{hhmm}"
    under = (
        (_num(df, ub, pl.Float64, where) + _num(df, ua, pl.Float64, where)) / 2
        if ub in df.columns and ua in df.columns
        else pl.lit(None, dtype=pl.Float64)
    )
    out = df.select(
        "row",
        _date(df, "quote_date", "%Y-%m-%d", where).alias("day"),
        root_expr.alias("root"),
        _date(df, "expiration", "%Y-%m-%d", where).alias("expiry"),
        pl.col("option_type").str.strip_chars().str.to_uppercase().str.slice(0, 1).alias("right"),
        _num(df, "strike", pl.Float64, where).alias("strike"),
        _num(df, f"bid_{hhmm}", pl.Float64, where).alias("bid"),
        _num(df, f"ask_{hhmm}", pl.Float64, where).alias("ask"),
        _num(df, f"bid_size_{hhmm}", pl.Int64, where)
        .fill_null(0)
        .cast(pl.UInt32)
        .alias("bid_size"),
        _num(df, f"ask_size_{hhmm}", pl.Int64, where)
        .fill_null(0)
        .cast(pl.UInt32)
        .alias("ask_size"),
        oi.alias("open_interest"),
        under.alias("underlying_price"),
    )
    return out, when


def _read_wide(
    df: pl.DataFrame, where: str, root: str | None, path: Path
) -> tuple[pl.DataFrame, dt.time]:
    r = _root_from(root, path)
    base: list[str | pl.Expr] = [
        "row",
        _date(df, "Date", "%Y-%m-%d", where).alias("day"),
        pl.lit(r).alias("root"),
        _date(df, "ExpDate", "%Y-%m-%d", where).alias("expiry"),
        _num(df, "Strike", pl.Float64, where).alias("strike"),
    ]
    sides = []
    for right, side in (("C", "Call"), ("P", "Put")):
        oi_col = f"{side}OI"
        oi = _num(df, oi_col, pl.Int64, where) if oi_col in df.columns else pl.lit(None, pl.Int64)
        sides.append(
            df.select(
                *base,
                pl.lit(right).alias("right"),
                _num(df, f"{side}Bid", pl.Float64, where).alias("bid"),
                _num(df, f"{side}Ask", pl.Float64, where).alias("ask"),
                pl.lit(0, dtype=pl.UInt32).alias("bid_size"),
                pl.lit(0, dtype=pl.UInt32).alias("ask_size"),
                oi.alias("open_interest"),
                pl.lit(None, dtype=pl.Float64).alias("underlying_price"),
            )
        )
    return pl.concat(sides).sort("row", "right"), DEFAULT_EOD_TIME


def read_eod(
    path: Path | str,
    *,
    format: str = "auto",
    root: str | None = None,
) -> tuple[pl.DataFrame, dt.time, str, list[str]]:
    """Parse an end-of-day chain CSV into one long frame (one row per contract and day).

    Returns
    -------
    (frame, snapshot, format, notes)
        ``frame`` has ``row`` (file line), ``day, root, expiry, right, strike, bid, ask,
        bid_size, ask_size, open_interest, underlying_price`` (prices as written: zeros not yet
        nulled; ``underlying_price`` null when the layout has none);
        ``snapshot`` is the ET wall-clock time of the quotes; ``format`` the layout used.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError(f"end-of-day file {where!r} does not exist.")
    try:
        raw = pl.read_csv(path, infer_schema_length=0, encoding="utf8-lossy")
    except Exception as exc:
        raise DataError(f"{where}: cannot read as CSV ({exc}).") from None
    raw = raw.rename({c: c.lstrip("\ufeff").strip() for c in raw.columns})
    if format != "auto" and format not in FORMATS:
        raise InputError(f"format must be 'auto' or one of {FORMATS} (got {format!r}).")
    notes = []
    fmt = detect_format(raw.columns)
    if format not in ("auto", fmt):
        if {format, fmt} != {"datashop", "wide"}:
            raise InputError(f"{path.name} looks like the {fmt!r} layout, not {format!r}.")
        # Both are sold as Cboe end-of-day chains; the header decides how to read them.
        notes.append(f"{path.name} has the {fmt!r} layout (asked for {format!r}); read as {fmt!r}")
    raw = raw.with_row_index("row", offset=2).with_columns(pl.col("row").cast(pl.Int64))
    if fmt == "hod":
        df, snap = _read_hod(raw, where)
    elif fmt == "datashop":
        df, snap = _read_datashop(raw, where, root, path)
    else:
        df, snap = _read_wide(raw, where, root, path)
    bad_right = df.filter(pl.col("right").is_null() | ~pl.col("right").is_in(["C", "P"]))
    if bad_right.height:
        raise DataError(f"{where}: line {bad_right['row'][0]} has an option type that is not C/P.")
    other = df.filter(~pl.col("root").is_in(["SPX", "SPXW"]))
    if other.height:
        roots = sorted(set(other["root"].drop_nulls().to_list()))
        notes.append(f"skipped {other.height} row(s) with roots {roots} (only SPX/SPXW imported)")
        df = df.filter(pl.col("root").is_in(["SPX", "SPXW"]))
    return df, snap, fmt, notes


def _mark_duplicates(df: pl.DataFrame, policy: str, notes: list[str]) -> pl.DataFrame:
    """Add ``occurrence`` (0 = first row of a contract) after applying ``policy``."""
    from quantlab import calendar

    df = df.sort("row", "right").with_columns(
        pl.int_range(pl.len()).over(_KEY).alias("occurrence"),
        pl.col("row").first().over(_KEY).alias("first_row"),
    )
    if policy == "relabel" and (df["occurrence"] == 1).any():
        groups = df.filter(pl.col("occurrence") == 1).select("day", "root", "expiry").unique()
        for g in groups.sort("day", "root", "expiry").iter_rows(named=True):
            taken = set(
                df.filter((pl.col("day") == g["day"]) & (pl.col("root") == g["root"]))[
                    "expiry"
                ].to_list()
            )
            new = calendar.next_session(g["expiry"])
            while new in taken:
                new = calendar.next_session(new)
            sel = (
                (pl.col("day") == g["day"])
                & (pl.col("root") == g["root"])
                & (pl.col("expiry") == g["expiry"])
                & (pl.col("occurrence") == 1)
            )
            n = df.filter(sel).height
            df = df.with_columns(
                pl.when(sel).then(pl.lit(new)).otherwise(pl.col("expiry")).alias("expiry"),
                pl.when(sel).then(0).otherwise(pl.col("occurrence")).alias("occurrence"),
            )
            notes.append(
                f"{g['day']}: relabelled {n} repeated {g['root']} {g['expiry']} rows as expiry "
                f"{new} (a guess: the file repeats that block with different prices)"
            )
        df = df.with_columns(
            pl.int_range(pl.len()).over(_KEY).alias("occurrence"),
            pl.col("row").first().over(_KEY).alias("first_row"),
        )
    dups = df.filter(pl.col("occurrence") > 0)
    if dups.height:
        counts = (
            dups.group_by("day", "root", "expiry")
            .agg(pl.len(), pl.col("row").min().alias("lo"), pl.col("row").max().alias("hi"))
            .sort("day", "root", "expiry")
        )
        for day, root, expiry, n, lo, hi in counts.rows():
            notes.append(
                f"{day}: quarantined {n} repeated {root} {expiry} contract rows (file lines "
                f"{lo}-{hi}, reason {DUPLICATE_REASON!r}); the first row of each contract is kept"
            )
    return df


def import_eod(
    path: Path | str,
    store: Any,
    *,
    format: str = "auto",
    root: str | None = None,
    duplicates: str = "quarantine",
) -> ImportSummary:
    """Import an end-of-day chain CSV into the store (see the module docstring).

    Parameters
    ----------
    path
        The CSV file.
    store
        Data store folder.
    format
        ``auto`` (from the header), ``hod``, ``datashop`` or ``wide``.
    root
        ``SPX`` or ``SPXW`` for files without a root column (default: from the file name).
    duplicates
        ``quarantine`` (default) or ``relabel``, for contracts listed twice on one day.

    Returns
    -------
    ImportSummary
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise InputError(f"duplicates must be one of {DUPLICATE_POLICIES} (got {duplicates!r}).")
    path = Path(path)
    df, snap, fmt, notes = read_eod(path, format=format, root=root)
    if df.height == 0:
        raise DataError(f"{path}: no SPX/SPXW rows to import.")
    source = f"import:eod:{fmt}"
    summary = ImportSummary(source, notes=notes)
    summary.notes.append(f"quotes stamped {snap:%H:%M} ET (snapshot time of the {fmt} layout)")
    df = _mark_duplicates(df, duplicates, summary.notes)
    checksums = sha256_files([path])
    try:
        for (day,), part in df.partition_by("day", as_dict=True, maintain_order=True).items():
            written = _import_day(store, day, part, snap, source, checksums)
            _settlements(store, written, part, snap, f"{fmt} file {path.name}")
            summary.days.append(written)
    finally:  # days written before a failure are complete: record them
        record_manifest(store, summary.days)
    summary.days.sort(key=lambda d: d.day)
    return summary


def _import_day(
    store: Any,
    day: dt.date,
    part: pl.DataFrame,
    snap: dt.time,
    source: str,
    checksums: list[str],
) -> Any:
    ts = at_time_ns(day, snap, ET)
    part = with_ids(day, part).with_columns(pl.lit(ts, dtype=pl.Int64).alias("ts"))
    kept = part.filter(pl.col("occurrence") == 0)
    dups = part.filter(pl.col("occurrence") > 0)
    instruments = contracts_frame(day, kept)
    quotes, bad = split_quotes(no_offer_to_null(kept), instruments["instrument_id"])
    dup_q = quarantine_rows(no_offer_to_null(dups), DUPLICATE_REASON)
    oi = kept.filter(pl.col("open_interest").is_not_null()).select(
        pl.lit(day).alias("date"), "instrument_id", "open_interest", "ts"
    )
    tables: dict[str, pl.DataFrame | None] = {
        "instruments": instruments,
        "quotes": quotes,
        "open_interest": oi,
        "quarantine": pl.concat([bad, dup_q]),
    }
    return write_day(
        store,
        day,
        tables,
        source=source,
        checksums=checksums,
        covered={"quotes": kept["instrument_id"], "open_interest": kept["instrument_id"]},
    )


def _settlements(store: Any, summary: Any, part: pl.DataFrame, snap: dt.time, what: str) -> None:
    """``vendor_underlying`` rows of the PM expiries settling on the day, then the day's parity
    estimates (see the module notes); partitions are added to ``summary`` for the manifest."""
    from quantlab import calendar
    from quantlab.data import settlements

    day = summary.day
    if not calendar.is_session(day):
        return
    prices = part.get_column("underlying_price").drop_nulls()
    roots = part.filter(pl.col("expiry") == day).get_column("root").unique().to_list()
    pm = sorted(r for r in roots if r in calendar.PM_ROOTS)
    written = []
    if prices.len() and pm:
        price = float(prices.mode().sort()[0])  # the file repeats it on every row of the day
        ts = at_time_ns(day, snap, ET)
        before = (calendar.settlement_ns("SPXW", day) - ts) // calendar.NS_PER_MINUTE
        note = f"{what}: underlying at {snap:%H:%M} ET" + (
            f", {before} min before the close" if before > 0 else ""
        )
        found = [
            settlements.Settlement(r, day, "PM", price, "vendor_underlying", asof_ts=ts) for r in pm
        ]
        rows = settlements.to_frame(found, [note] * len(pm))
        written += settlements.merge(store, rows, manifest=False)
    written += settlements.write_day_estimates(store, day, manifest=False)
    for _, p, n, src in written:
        summary.written.append(("settlements", p, n, src, ""))
    summary.settlements = len(written)
