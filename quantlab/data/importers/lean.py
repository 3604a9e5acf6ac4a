"""Import LEAN (QuantConnect) minute data: SPX/SPXW option quotes, open interest, SPX index bars.

Files (one zip per day and kind, one CSV per contract inside)::

    indexoption/usa/minute/{spx,spxw}/YYYYMMDD_quote_european.zip
        YYYYMMDD_spxw_minute_quote_european_call_37000000_20210104.csv
        (root, right, strike x 10,000, expiry in the member name)
        rows: ms since midnight ET, bid open, high, low, close, bid size,
              ask open, high, low, close, ask size; prices x 10,000
    indexoption/usa/minute/{spx,spxw}/YYYYMMDD_openinterest_european.zip   (also ``.zip.zip``)
        rows: ms since midnight ET, open interest
    index/usa/minute/spx/YYYYMMDD_trade.zip  ->  YYYYMMDD_spx_minute_trade.csv
        rows: ms since midnight US/Central, open, high, low, close, volume; NOT scaled

What goes where (underlying ``SPX``; roots from the member name: ``spx`` = SPX AM-settled
monthlies, ``spxw`` = SPXW PM-settled weeklies/dailies):

* ``quotes``: the bar's CLOSE bid/ask and sizes, keyed on the END of the bar: LEAN stamps a bar
  at its start, so ``ts`` = start + 60 s (09:30 ET bar -> 09:31 ET). An empty bid/ask field
  (LEAN's "no bid") is null. Missing minutes stay missing (the 70-minute hole on 2023-06-26 is
  not filled). Rows are checked by :func:`quantlab.data.quality.split_quotes` (the project's
  quarantine rules); crossed bars (close bid > close ask: a stale bid carried into the bar,
  56 in the test files) are kept, as ingest keeps them, and left to snapshot cleaning.
* ``open_interest``: the last row of each contract's file, ``ts`` = its time (no shift).
* ``underlying_bars``: index bars in US/Central shifted to UTC, keyed on the bar end (08:30 CT
  bar = 09:30-09:31 ET -> ``ts`` 09:31 ET). Values are index points as written; a file whose
  prices look scaled (median close above 100,000) is divided by 10,000 and noted.
* ``instruments``: every contract seen in a quote or open-interest file; ids per
  :mod:`quantlab.data.importers._common`.
* ``settlements``: after each day, the parity estimate of each expiry settling that day
  (:func:`quantlab.data.settlements.write_day_estimates`). Index values are not stored: they
  are read off ``underlying_bars`` by :func:`quantlab.data.settlements.lookup`.

Option ``trade`` zips are skipped (the store has no trades table); so are files whose names do
not follow the daily-minute pattern (``daily/spx.zip``, ``hour/...``). Every skip is noted in
the returned :class:`ImportSummary`.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import polars as pl

from quantlab.data.importers._common import (
    UNDERLYING,
    ImportSummary,
    contracts_frame,
    local_to_utc_ns,
    normalize_root,
    record_manifest,
    sha256_files,
    split_quotes,
    with_ids,
    write_day,
)
from quantlab.errors import DataError, InputError

logger = logging.getLogger(__name__)

PRICE_SCALE: Final = 10_000.0
OPTION_TZ: Final = "America/New_York"
INDEX_TZ: Final = "America/Chicago"
BAR_MS: Final = 60_000
SOURCE: Final = "import:lean"

_ZIP_RE = re.compile(
    r"^(?P<date>\d{8})_(?P<kind>quote|openinterest|trade)(?:_(?P<style>european|american))?"
    r"\.zip(?:\.zip)?$",
    re.IGNORECASE,
)
_OPTION_MEMBER_RE = re.compile(
    r"^(?P<date>\d{8})_(?P<root>[a-z]+)_minute_(?P<kind>quote|openinterest|trade)_"
    r"(?P<style>european|american)_(?P<right>call|put)_(?P<strike>\d+)_(?P<expiry>\d{8})\.csv$",
    re.IGNORECASE,
)
_INDEX_MEMBER_RE = re.compile(
    r"^(?P<date>\d{8})_(?P<ticker>[a-z]+)_minute_(?P<kind>trade|quote)\.csv$", re.IGNORECASE
)
_QUOTE_COLS: Final = [
    "ms",
    "bid_open",
    "bid_high",
    "bid_low",
    "bid",
    "bid_size",
    "ask_open",
    "ask_high",
    "ask_low",
    "ask",
    "ask_size",
]
_INDEX_COLS: Final = ["ms", "open", "high", "low", "close", "volume"]

__all__ = ["import_lean", "read_index_bars", "read_open_interest", "read_option_quotes"]


def _ymd(text: str, where: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a YYYYMMDD date.") from None


def _members(zf: zipfile.ZipFile, where: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each CSV member; a zip inside the zip is opened too."""
    for info in zf.infolist():
        if info.is_dir():
            continue
        data = zf.read(info)
        name = Path(info.filename).name
        if name.lower().endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                yield from _members(inner, f"{where}!{name}")
        else:
            yield name, data


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip file ({exc}).") from None


def _csv(data: bytes, columns: list[str], where: str) -> pl.DataFrame:
    if not data.strip():
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.Float64))
    try:
        df = pl.read_csv(
            io.BytesIO(data),
            has_header=False,
            new_columns=columns,
            schema_overrides=dict.fromkeys(columns, pl.Float64),
        )
    except Exception as exc:
        raise DataError(f"{where}: cannot parse as a LEAN minute CSV ({exc}).") from None
    if df.width != len(columns):
        raise DataError(f"{where}: expected {len(columns)} columns, found {df.width}.")
    return df


def _contract(m: re.Match[str], day: dt.date, where: str) -> dict[str, Any]:
    member_day = _ymd(m["date"], where)
    if member_day != day:
        raise DataError(f"{where}: member is dated {member_day} but the zip is for {day}.")
    return {
        "root": normalize_root(m["root"], where=f"{where} root"),
        "expiry": _ymd(m["expiry"], where),
        "right": "C" if m["right"].lower() == "call" else "P",
        "strike": int(m["strike"]) / PRICE_SCALE,
    }


def _zip_day(path: Path) -> tuple[dt.date, str]:
    m = _ZIP_RE.match(path.name)
    if m is None:
        raise InputError(
            f"{path.name!r} is not a LEAN daily minute zip (expected YYYYMMDD_quote_european.zip, "
            "YYYYMMDD_openinterest_european.zip or YYYYMMDD_trade.zip)."
        )
    return _ymd(m["date"], str(path)), m["kind"].lower()


def read_option_quotes(path: Path | str, tz: str = OPTION_TZ) -> pl.DataFrame:
    """Quote bars of every contract in a LEAN ``*_quote_*.zip``, one row per contract-minute.

    Returns columns ``root, expiry, right, strike, ts, bid, ask, bid_size, ask_size`` with
    ``ts`` the bar END in UTC ns, prices in index points (close of the bar), null when absent.
    """
    path = Path(path)
    day, _ = _zip_day(path)
    frames = []
    with _open_zip(path) as zf:
        for name, data in _members(zf, str(path)):
            where = f"{path}!{name}"
            m = _OPTION_MEMBER_RE.match(name)
            if m is None or m["kind"].lower() != "quote":
                raise DataError(f"{where}: not a LEAN option quote member.")
            c = _contract(m, day, where)
            df = _csv(data, _QUOTE_COLS, where)
            frames.append(
                df.select(
                    pl.lit(c["root"]).alias("root"),
                    pl.lit(c["expiry"]).alias("expiry"),
                    pl.lit(c["right"]).alias("right"),
                    pl.lit(c["strike"]).alias("strike"),
                    (
                        local_to_utc_ns(day, pl.col("ms").cast(pl.Int64), tz) + BAR_MS * 1_000_000
                    ).alias("ts"),
                    (pl.col("bid") / PRICE_SCALE).alias("bid"),
                    (pl.col("ask") / PRICE_SCALE).alias("ask"),
                    pl.col("bid_size").fill_null(0).cast(pl.UInt32),
                    pl.col("ask_size").fill_null(0).cast(pl.UInt32),
                )
            )
    if not frames:
        raise DataError(f"{path}: the zip holds no quote files.")
    return pl.concat(frames)


def read_open_interest(path: Path | str, tz: str = OPTION_TZ) -> pl.DataFrame:
    """Open interest per contract in a LEAN ``*_openinterest_*.zip`` (last row of each file).

    Returns columns ``root, expiry, right, strike, ts, open_interest``.
    """
    path = Path(path)
    day, _ = _zip_day(path)
    rows = []
    with _open_zip(path) as zf:
        for name, data in _members(zf, str(path)):
            where = f"{path}!{name}"
            m = _OPTION_MEMBER_RE.match(name)
            if m is None or m["kind"].lower() != "openinterest":
                raise DataError(f"{where}: not a LEAN option open-interest member.")
            c = _contract(m, day, where)
            df = _csv(data, ["ms", "open_interest"], where).drop_nulls()
            if df.height == 0:
                continue
            last = df.sort("ms").row(-1, named=True)
            rows.append({**c, "ms": int(last["ms"]), "open_interest": int(last["open_interest"])})
    if not rows:
        return pl.DataFrame(
            schema={
                "root": pl.Utf8,
                "expiry": pl.Date,
                "right": pl.Utf8,
                "strike": pl.Float64,
                "ts": pl.Int64,
                "open_interest": pl.Int64,
            }
        )
    df = pl.DataFrame(rows, schema_overrides={"open_interest": pl.Int64, "ms": pl.Int64})
    return df.select(
        "root",
        "expiry",
        "right",
        pl.col("strike").cast(pl.Float64),
        local_to_utc_ns(day, pl.col("ms"), tz).alias("ts"),
        "open_interest",
    )


def read_index_bars(path: Path | str, tz: str = INDEX_TZ) -> tuple[pl.DataFrame, list[str]]:
    """SPX index minute bars of a LEAN ``index/.../YYYYMMDD_trade.zip``: (bars, notes).

    ``ts`` is the bar END in UTC ns (the file's ``tz`` wall clock + 60 s); OHLC in index points.
    """
    path = Path(path)
    day, _ = _zip_day(path)
    notes: list[str] = []
    frames = []
    with _open_zip(path) as zf:
        for name, data in _members(zf, str(path)):
            where = f"{path}!{name}"
            m = _INDEX_MEMBER_RE.match(name)
            if m is None:
                raise DataError(f"{where}: not a LEAN index minute member.")
            if m["ticker"].upper() != UNDERLYING:
                raise DataError(f"{where}: index {m['ticker'].upper()!r} is not {UNDERLYING}.")
            if _ymd(m["date"], where) != day:
                raise DataError(f"{where}: member date {m['date']} differs from the zip's {day}.")
            frames.append(_csv(data, _INDEX_COLS, where))
    if not frames:
        raise DataError(f"{path}: the zip holds no index bars.")
    df = pl.concat(frames)
    median = df["close"].median()
    if isinstance(median, int | float) and median > 100_000:
        df = df.with_columns(pl.col(c) / PRICE_SCALE for c in ("open", "high", "low", "close"))
        notes.append(f"{path.name}: prices looked scaled by 10,000 and were divided")
    bars = df.select(
        (local_to_utc_ns(day, pl.col("ms").cast(pl.Int64), tz) + BAR_MS * 1_000_000).alias("ts"),
        "open",
        "high",
        "low",
        "close",
    ).sort("ts")
    if bars.height:
        first = dt.datetime.fromtimestamp(
            (bars["ts"][0] - BAR_MS * 1_000_000) / 1e9, tz=dt.UTC
        ).astimezone(_zone(OPTION_TZ))
        if not dt.time(9, 25) <= first.time() <= dt.time(9, 35):
            notes.append(
                f"{path.name}: first index bar starts {first:%H:%M} ET after reading the file as "
                f"{tz}; expected about 09:30 ET (is the time zone right?)"
            )
    return bars, notes


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _expand(paths: Iterable[Path | str]) -> tuple[list[Path], list[str]]:
    files: dict[Path, None] = {}
    notes = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(".zip")
            )
            for q in found:
                if _ZIP_RE.match(q.name):
                    files[q.resolve()] = None
                else:
                    notes.append(f"skipped {q} (not a daily minute zip)")
        elif p.is_file():
            _zip_day(p)  # raises a clear error for a file that is not a LEAN daily zip
            files[p.resolve()] = None
        else:
            raise InputError(f"LEAN path {str(p)!r} does not exist.")
    return list(files), notes


def _kind(path: Path) -> str:
    """``quote``/``openinterest``/``trade`` for option zips, ``index`` for index bars."""
    _, kind = _zip_day(path)
    with _open_zip(path) as zf:
        names = [Path(n).name for n in zf.namelist()]
    if kind == "trade" and any(_INDEX_MEMBER_RE.match(n) for n in names):
        return "index"
    return kind


def import_lean(
    paths: Iterable[Path | str],
    store: Any,
    *,
    option_tz: str = OPTION_TZ,
    index_tz: str = INDEX_TZ,
) -> ImportSummary:
    """Import LEAN minute zips (or folders of them) into the store, one ET day at a time.

    Parameters
    ----------
    paths
        Zip files and/or folders (searched recursively).
    store
        Data store folder.
    option_tz, index_tz
        Wall-clock time zone of the option files (ET) and of the index files (US/Central).

    Returns
    -------
    ImportSummary
        Rows per day in each written partition, and notes on skipped files.

    Raises
    ------
    InputError
        A path does not exist or is not a LEAN daily zip.
    DataError
        A zip or member is malformed, or a contract appears twice for the same minute.
    """
    paths = [Path(p) for p in paths]
    files, notes = _expand(paths)
    summary = ImportSummary(SOURCE, notes=notes)
    by_day: dict[dt.date, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for f in files:
        kind = _kind(f)
        if kind == "trade":
            summary.notes.append(f"skipped {f.name} (option trade bars are not imported)")
            continue
        by_day[_zip_day(f)[0]][kind].append(f)
    if not by_day:
        shown = [str(p) for p in paths]
        raise InputError(f"no LEAN quote, open-interest or index zips found in {shown}.")
    try:
        for day in sorted(by_day):
            written = _import_day(store, day, by_day[day], option_tz, index_tz, summary)
            _estimates(store, written)
            summary.days.append(written)
    finally:  # days written before a failure are complete: record them
        record_manifest(store, summary.days)
    return summary


def _import_day(
    store: Any,
    day: dt.date,
    kinds: dict[str, list[Path]],
    option_tz: str,
    index_tz: str,
    summary: ImportSummary,
) -> Any:
    quotes = [read_option_quotes(p, option_tz) for p in kinds.get("quote", [])]
    ois = [read_open_interest(p, option_tz) for p in kinds.get("openinterest", [])]
    tables: dict[str, pl.DataFrame | None] = {}
    covered: dict[str, pl.Series] = {}
    contract_cols = ["root", "expiry", "right", "strike"]
    contracts = [q.select(contract_cols) for q in quotes] + [o.select(contract_cols) for o in ois]
    instruments = contracts_frame(day, pl.concat(contracts)) if contracts else None
    tables["instruments"] = instruments
    if quotes and instruments is not None:
        q = with_ids(day, pl.concat(quotes))
        dup = q.select("instrument_id", "ts").is_duplicated()
        if dup.any():
            r = q.filter(dup).row(0, named=True)
            raise DataError(
                f"{day}: contract {r['root']} {r['expiry']} {r['right']} {r['strike']} has two "
                f"bars ending at ts={r['ts']}; is the same contract in two quote zips?"
            )
        covered["quotes"] = q["instrument_id"].unique()
        tables["quotes"], tables["quarantine"] = split_quotes(q, instruments["instrument_id"])
    if ois:
        o = with_ids(day, pl.concat(ois))
        if o["instrument_id"].is_duplicated().any():
            raise DataError(f"{day}: a contract has open interest in two zips.")
        tables["open_interest"] = o.select(
            pl.lit(day).alias("date"), "instrument_id", "open_interest", "ts"
        )
    bars_paths = kinds.get("index", [])
    if bars_paths:
        frames = []
        for p in bars_paths:
            bars, bar_notes = read_index_bars(p, index_tz)
            frames.append(bars)
            summary.notes.extend(bar_notes)
        bars = pl.concat(frames)
        if bars["ts"].is_duplicated().any():
            raise DataError(f"{day}: two index files hold bars for the same minute.")
        tables["underlying_bars"] = bars
    sums = {k: sha256_files(ps) for k, ps in kinds.items()}
    checksums = {
        "instruments": sums.get("quote", []) + sums.get("openinterest", []),
        "quotes": sums.get("quote", []),
        "quarantine": sums.get("quote", []),
        "open_interest": sums.get("openinterest", []),
        "underlying_bars": sums.get("index", []),
    }
    return write_day(store, day, tables, source=SOURCE, checksums=checksums, covered=covered)


def _estimates(store: Any, summary: Any) -> None:
    """Parity estimates of the expiries settling on the day just written (for the manifest,
    their partitions join ``summary.written``)."""
    from quantlab import calendar
    from quantlab.data import settlements

    if not calendar.is_session(summary.day):
        return
    written = settlements.write_day_estimates(store, summary.day, manifest=False)
    for _, p, n, src in written:
        summary.written.append(("settlements", p, n, src, ""))
    summary.settlements = len(written)
