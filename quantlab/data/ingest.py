"""Ingest Databento OPRA DBN files (definition, cbbo-1m, statistics) into the Parquet store.

Files are read with databento's own reader (``databento.DBNStore.from_file(...).to_ndarray()``,
DBN v1-v3, ``.dbn`` or ``.dbn.zst``) and written with :func:`quantlab.data.store.write_partition`,
one partition per (table, underlying, ET session date). Measured on the 2-core dev box, the
structured ndarray path is several times faster than ``to_df`` (no pandas, no per-column
formatting), so it is the only path used.

Rules
-----
* **Session date** of a record: the ET calendar date of its ``ts_recv``. Definition files at a
  layout path (``raw/OPRA.PILLAR/<U>/<YYYY-MM-DD>/definition.dbn.zst``) belong to the path's date.
* **Time**: a cbbo-1m record's ``ts_recv`` is the END of its minute and becomes the quote's
  ``ts``. ``ts_event`` is the time of the last trade, not of the quote, and is not stored:
  keying on it would use a quote up to a minute before it existed.
* **Prices**: fixed-point int64 with scale 1e-9; ``UNDEF_PRICE`` (i64::MAX) becomes null.
* **Instruments**: root, expiry, right and strike are parsed from the OCC raw symbol
  (``SPXW  240119P04700000``); ``underlying`` from the definition (else from the root, SPXW ->
  SPX); settlement ``AM`` for roots in :data:`quantlab.calendar.AM_ROOTS` (SPX monthlies), else
  ``PM``; multiplier from the definition, 100 when undefined. An instrument defined several
  times in a day keeps its last definition (by ``ts_recv``).
* **Open interest**: statistics with ``stat_type == OPEN_INTEREST``. OPRA repeats the value once
  per venue publisher; one row per instrument is kept: the latest ``ts_recv``, ties broken by
  the largest quantity.
* **Quarantine** (never silently dropped): quotes follow
  :func:`quantlab.data.quality.split_quotes` (``no_definition`` for an ``instrument_id`` not
  defined that day, ``negative_price``, ``undefined_ts``, ``duplicate`` for a repeated
  ``(instrument_id, ts)``, the last record being kept); statistics for undefined instruments
  (``no_definition``) or with an undefined quantity (``undefined_open_interest``); definitions
  that are not an OCC option symbol (``bad_symbol``). Rows without a known underlying go to the
  layout folder's underlying (else ``UNKNOWN``). Crossed, locked and zero-bid quotes are kept;
  the quality report counts them.
* **Several runs, one day**: a day is rebuilt from every raw file feeding it (definitions
  ingested yesterday are used for quotes ingested today). A file the manifest lists for the
  day whose path now holds different bytes is superseded: its old rows go. A file that vanished
  (moved or deleted to save space) keeps the rows it produced in the existing partition, unless
  the new input has the same key.

Atomicity and idempotence
-------------------------
Every file is probed (metadata, sha256) and fully decoded once before anything is written, so
a corrupt or truncated file raises :class:`DataError` naming it and leaves the store unchanged.
Each day is then rebuilt from every raw file that contributes to it (the new ones plus those the
manifest already lists for that date), all of the day's frames are built in memory, and only
then are its partitions replaced, one atomic ``os.replace`` each. The manifest records a raw
file only after all of its days are written, so a run killed midway leaves whole partitions
and a rerun redoes the unfinished files. A file whose sha256 is already in the manifest is
skipped (``force=True`` re-ingests it; the Parquet output is byte-identical).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab.data import layout
from quantlab.data import store as st
from quantlab.data.quality import split_quotes
from quantlab.errors import DataError, InputError

UNDEF_PRICE = np.iinfo(np.int64).max
UNDEF_TS = np.iinfo(np.uint64).max
PRICE_SCALE = 1e9
STAT_OPEN_INTEREST = 9
SUPPORTED_SCHEMAS = ("definition", "cbbo-1m", "statistics")
SOURCE = "ingest:dbn"
_TEST_SLEEP_ENV = "QUANTLAB_INGEST_TEST_SLEEP"  # test hook: seconds to sleep after each partition
_OCC_RE = r"^[A-Z0-9 ]{6}[0-9]{6}[CP][0-9]{8}$"
_LAYOUT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class RawFile:
    """One DBN input file, after probing and decoding once."""

    path: Path
    sha256: str
    size: int
    schema: str
    dataset: str
    version: int
    layout_key: tuple[str, dt.date] | None
    records: int = 0
    start_ts: int = 0
    end_ts: int = 0
    days: list[dt.date] = field(default_factory=list)


@dataclass
class IngestReport:
    """What an :func:`ingest` run did.

    Attributes
    ----------
    ingested, skipped : list of Path
        Files read, and files skipped because the manifest already holds their sha256.
    ignored : list of (Path, str)
        Files not ingested and why (an unsupported schema such as ``tbbo``).
    records : dict
        Records read per schema.
    partitions : list of (table, underlying, date, rows)
        Partitions written.
    quarantined : dict
        Rows quarantined per reason.
    seconds : float
        Wall time of the run.
    """

    ingested: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    partitions: list[tuple[str, str, dt.date, int]] = field(default_factory=list)
    quarantined: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def days(self) -> list[dt.date]:
        """ET session dates that were (re)written."""
        return sorted({p[2] for p in self.partitions})

    def rows(self, table: str) -> int:
        """Rows written to ``table`` across all partitions."""
        return sum(p[3] for p in self.partitions if p[0] == table)

    def summary(self) -> str:
        """A few lines for the command line."""
        lines = [
            f"ingested {len(self.ingested)} file(s), skipped {len(self.skipped)} already "
            f"ingested, ignored {len(self.ignored)} in {self.seconds:.1f}s",
            "records read: "
            + (", ".join(f"{k}={v:,}" for k, v in sorted(self.records.items())) or "none"),
            f"partitions written: {len(self.partitions)} over {len(self.days)} day(s); rows: "
            + ", ".join(f"{t}={self.rows(t):,}" for t in st.SCHEMAS if self.rows(t)),
        ]
        if self.quarantined:
            lines.append(
                "quarantined: "
                + ", ".join(f"{k}={v:,}" for k, v in sorted(self.quarantined.items()))
            )
        lines.extend(f"ignored {p}: {why}" for p, why in self.ignored)
        return "\n".join(lines)


# --------------------------------------------------------------------------- discovery / probing


def _is_dbn(path: Path) -> bool:
    return path.name.endswith(".dbn") or path.name.endswith(".dbn.zst")


def discover(paths: Sequence[Path | str] | Path | str | None, store: st.StoreLike) -> list[Path]:
    """DBN files named by ``paths`` (files or folders, searched recursively); default
    ``<store>/raw/``. Sorted, without duplicates."""
    if paths is None:
        paths = [st.store_root(store) / "raw"]
    elif isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found.update(q.resolve() for q in p.rglob("*") if q.is_file() and _is_dbn(q))
        elif p.is_file():
            if not _is_dbn(p):
                raise InputError(f"{p} is not a DBN file (expected a .dbn or .dbn.zst name).")
            found.add(p.resolve())
        elif p == st.store_root(store) / "raw":
            continue
        else:
            raise InputError(f"{p} does not exist.")
    return sorted(found)


def _layout_key(path: Path) -> tuple[str, dt.date] | None:
    """(underlying, date) for a file at ``raw/OPRA.PILLAR/<U>/<YYYY-MM-DD>/<schema>.dbn[.zst]``."""
    parts = path.parts
    if len(parts) >= 4 and parts[-4] == layout.DATASET and _LAYOUT_RE.match(parts[-2]):
        try:
            return parts[-3].upper(), dt.date.fromisoformat(parts[-2])
        except ValueError:
            return None
    return None


def _open(path: Path) -> Any:
    import databento as db

    try:
        return db.DBNStore.from_file(path)
    except Exception as exc:
        raise DataError(f"{path} is not a readable DBN file: {exc}") from exc


def probe(path: Path | str) -> RawFile:
    """Read a file's DBN metadata and sha256 (raises :class:`DataError` if unreadable)."""
    path = Path(path)
    dbn = _open(path)
    schema = str(dbn.schema) if dbn.schema is not None else ""
    return RawFile(
        path=path,
        sha256=st.sha256_file(path),
        size=path.stat().st_size,
        schema=schema,
        dataset=str(dbn.metadata.dataset or ""),
        version=int(dbn.metadata.version),
        layout_key=_layout_key(path),
    )


def decode(raw: RawFile | Path | str) -> np.ndarray:
    """All records of a file as databento's structured ndarray.

    Raises
    ------
    DataError
        Naming the file if it is truncated, not zstd-decodable, or holds records of another
        type than its schema.
    """
    import databento_dbn as dbn_lib
    from databento.common.error import BentoWarning

    path = raw.path if isinstance(raw, RawFile) else Path(raw)
    store = _open(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", BentoWarning)
            arr = store.to_ndarray()
    except BentoWarning as exc:
        raise DataError(f"{path} is truncated or ends in an incomplete record ({exc}).") from exc
    except Exception as exc:
        raise DataError(f"{path} could not be decoded: {type(exc).__name__}: {exc}") from exc
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.size and store.schema is not None:
        rtype = int(dbn_lib.RType.from_schema(store.schema))
        bad = (arr["rtype"] != rtype) | (arr["length"].astype(np.int64) * 4 != arr.dtype.itemsize)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path} record {i} has rtype {int(arr['rtype'][i])} / length "
                f"{int(arr['length'][i]) * 4} bytes; a {store.schema} file holds rtype {rtype} "
                f"records of {arr.dtype.itemsize} bytes. The file is corrupt."
            )
    return arr


# --------------------------------------------------------------------------- record -> frame


def et_dates(ts_ns: np.ndarray) -> np.ndarray:
    """ET calendar dates (``datetime64[D]``) of int64/uint64 UTC nanosecond stamps."""
    ts = np.asarray(ts_ns).astype(np.int64, copy=False)
    if ts.size == 0:
        return np.empty(0, dtype="datetime64[D]")
    # Convert each distinct UTC hour once: stamps of a day share a handful of hours.
    hours, inv = np.unique(ts // 3_600_000_000_000, return_inverse=True)
    s = (
        pl.Series(hours * 3_600_000_000_000)
        .cast(pl.Datetime("ns", "UTC"))
        .dt.convert_time_zone("America/New_York")
        .dt.date()
    )
    return s.to_numpy().astype("datetime64[D]")[inv]


def _px(values: np.ndarray) -> np.ndarray:
    """Fixed-point prices to float (NaN where undefined)."""
    v = np.asarray(values, dtype=np.int64)
    out = v / PRICE_SCALE
    out[v == UNDEF_PRICE] = np.nan
    return out


def _text(values: np.ndarray) -> pl.Series:
    return pl.Series(np.char.decode(np.asarray(values), "ascii", "replace")).str.strip_chars("\x00")


def _file_days(raw: RawFile, arr: np.ndarray) -> np.ndarray:
    """Session date of each record of ``arr`` (see module rules)."""
    if raw.schema == "definition" and raw.layout_key is not None:
        return np.full(arr.size, np.datetime64(raw.layout_key[1], "D"))
    ts = arr["ts_recv"]
    days = et_dates(ts)
    undef = ts == UNDEF_TS
    if undef.any():
        good = days[~undef]
        if raw.layout_key is not None:
            fill = np.datetime64(raw.layout_key[1], "D")
        elif good.size:
            vals, counts = np.unique(good, return_counts=True)
            fill = vals[np.argmax(counts)]
        else:
            fill = np.datetime64("1970-01-01", "D")
        days[undef] = fill
    return days


def _q_rows(
    table: str,
    ts: Any,
    iid: Any,
    reason: str,
    bid: Any = None,
    ask: Any = None,
) -> pl.DataFrame:
    n = len(iid)
    return pl.DataFrame(
        {
            "table": pl.Series([table] * n, dtype=pl.Utf8),
            "ts": pl.Series(np.asarray(ts, dtype=np.int64), dtype=pl.Int64),
            "instrument_id": pl.Series(np.asarray(iid, dtype=np.uint32), dtype=pl.UInt32),
            "reason": pl.Series([reason] * n, dtype=pl.Utf8),
            "bid": pl.Series(
                np.full(n, np.nan) if bid is None else np.asarray(bid, np.float64), nan_to_null=True
            ),
            "ask": pl.Series(
                np.full(n, np.nan) if ask is None else np.asarray(ask, np.float64), nan_to_null=True
            ),
        }
    )


def _instruments(defs: np.ndarray, day: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Definitions of one day -> (instruments frame, quarantine rows)."""
    from quantlab.calendar import AM_ROOTS

    if defs.size == 0:
        return pl.DataFrame(schema=st.INSTRUMENTS_SCHEMA), _q_rows("instruments", [], [], "")
    order = np.lexsort((defs["ts_recv"], defs["instrument_id"]))
    defs = defs[order]
    last = np.r_[defs["instrument_id"][1:] != defs["instrument_id"][:-1], True]
    defs = defs[last]
    mult = defs["contract_multiplier"].astype(np.int64)
    mult = np.where((mult <= 0) | (mult == np.iinfo(np.int32).max), 100, mult)
    df = pl.DataFrame(
        {
            "instrument_id": pl.Series(defs["instrument_id"].astype(np.uint32)),
            "raw_symbol": _text(defs["raw_symbol"]),
            "def_underlying": _text(defs["underlying"]).str.strip_chars(),
            "multiplier": pl.Series(mult.astype(np.int32)),
            "ts": pl.Series(defs["ts_recv"].astype(np.int64)),
        }
    )
    ok = df.get_column("raw_symbol").str.contains(_OCC_RE)
    bad = df.filter(~ok)
    quarantine = _q_rows(
        "instruments", bad.get_column("ts"), bad.get_column("instrument_id"), "bad_symbol"
    )
    sym = pl.col("raw_symbol")
    root = sym.str.slice(0, 6).str.strip_chars()
    out = (
        df.filter(ok)
        .with_columns(
            root=root,
            expiry=(pl.lit("20") + sym.str.slice(6, 6)).str.to_date("%Y%m%d", strict=False),
            right=sym.str.slice(12, 1),
            strike=sym.str.slice(13, 8).cast(pl.Int64) / 1000.0,
        )
        .with_columns(
            underlying=pl.when(pl.col("def_underlying") != "")
            .then(pl.col("def_underlying"))
            .otherwise(pl.col("root").str.replace(r"^SPXW$", "SPX"))
            .str.to_uppercase(),
            settlement=pl.when(pl.col("root").is_in(sorted(AM_ROOTS)))
            .then(pl.lit("AM"))
            .otherwise(pl.lit("PM")),
            date=pl.lit(day, dtype=pl.Date),
        )
    )
    bad_date = out.filter(pl.col("expiry").is_null())
    if bad_date.height:
        quarantine = pl.concat(
            [
                quarantine,
                _q_rows(
                    "instruments",
                    bad_date.get_column("ts"),
                    bad_date.get_column("instrument_id"),
                    "bad_symbol",
                ),
            ]
        )
        out = out.filter(pl.col("expiry").is_not_null())
    return out.select(list(st.INSTRUMENTS_SCHEMA)), quarantine


@dataclass
class _DayInputs:
    defs: list[np.ndarray] = field(default_factory=list)
    cbbo: list[np.ndarray] = field(default_factory=list)
    stats: list[np.ndarray] = field(default_factory=list)
    fallback_underlying: set[str] = field(default_factory=set)


def _concat(parts: list[np.ndarray], fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Concatenate the named fields of structured arrays (their dtypes may differ by version)."""
    return {f: np.concatenate([p[f] for p in parts]) if parts else np.empty(0) for f in fields}


def _build_day(
    day: dt.date, inputs: _DayInputs, store: st.StoreLike
) -> dict[tuple[str, str], pl.DataFrame]:
    """Every partition of one session date, keyed by (table, underlying)."""
    defs: np.ndarray | None = None
    if inputs.defs and len({p.dtype for p in inputs.defs}) > 1:  # mixed DBN versions
        cols = ("instrument_id", "ts_recv", "raw_symbol", "underlying", "contract_multiplier")
        c = _concat(inputs.defs, cols)
        defs = np.empty(c["ts_recv"].size, dtype=[(k, c[k].dtype) for k in cols])
        for k in cols:
            defs[k] = c[k]
    elif inputs.defs:
        defs = np.concatenate(inputs.defs)
    inst, q_inst = _instruments(defs if defs is not None else np.empty(0), day)
    # Instruments already in the store for this date (definitions ingested in an earlier run).
    known = [inst]
    for u in st.list_underlyings(store, "instruments"):
        old = st.read_partition(store, "instruments", u, day)
        if old is not None and old.height:
            known.append(
                old.filter(~pl.col("instrument_id").is_in(inst["instrument_id"].implode()))
            )
    inst_all = pl.concat(known) if len(known) > 1 else inst
    ids_sorted = inst_all.get_column("instrument_id").to_numpy()
    order = np.argsort(ids_sorted, kind="stable")
    ids_sorted = ids_sorted[order]
    # underlyings as small integer codes (-1 = no definition): cheap to carry and partition
    names, und_codes = np.unique(
        inst_all.get_column("underlying").to_numpy()[order].astype(str), return_inverse=True
    )
    und_codes = und_codes.astype(np.int16)
    unknown_u = (
        sorted(inputs.fallback_underlying)[0]
        if len(inputs.fallback_underlying) == 1
        else (str(names[0]) if names.size == 1 else "UNKNOWN")
    )

    def name(code: Any) -> str:
        return unknown_u if int(code) < 0 else str(names[int(code)])

    def lookup(iid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if ids_sorted.size == 0:
            return np.zeros(iid.size, bool), np.full(iid.size, -1, np.int16)
        pos = np.searchsorted(ids_sorted, iid)
        pos_c = np.minimum(pos, ids_sorted.size - 1)
        found = (pos < ids_sorted.size) & (ids_sorted[pos_c] == iid)
        return found, np.where(found, und_codes[pos_c], np.int16(-1))

    out: dict[tuple[str, str], pl.DataFrame] = {}
    quarantine: list[tuple[str, pl.DataFrame]] = []
    for key, g in inst.partition_by("underlying", as_dict=True, maintain_order=True).items():
        out[("instruments", str(key[0]))] = g
    if q_inst.height:
        quarantine.append((unknown_u, q_inst))

    if inputs.cbbo:
        c = _concat(
            inputs.cbbo,
            ("ts_recv", "instrument_id", "bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00"),
        )
        ts = c["ts_recv"]
        iid = c["instrument_id"].astype(np.uint32)
        _, und = lookup(iid)
        qf = pl.DataFrame(
            {
                "ts": pl.Series(ts.astype(np.int64)).set(pl.Series(ts == UNDEF_TS), None),
                "instrument_id": pl.Series(iid),
                "bid": pl.Series(_px(c["bid_px_00"]), nan_to_null=True),
                "ask": pl.Series(_px(c["ask_px_00"]), nan_to_null=True),
                "bid_size": pl.Series(c["bid_sz_00"].astype(np.uint32)),
                "ask_size": pl.Series(c["ask_sz_00"].astype(np.uint32)),
                "_u": pl.Series(und),
            }
        )
        good, bad = split_quotes(qf, ids_sorted)
        for (u,), g in bad.partition_by("_u", as_dict=True).items():
            quarantine.append((name(u), g.select(list(st.QUARANTINE_SCHEMA))))
        if names.size == 1:
            out[("quotes", name(0))] = good.drop("_u")
        else:
            for (u,), g in good.partition_by("_u", as_dict=True).items():
                out[("quotes", name(u))] = g.drop("_u")

    if inputs.stats:
        c = _concat(inputs.stats, ("ts_recv", "instrument_id", "stat_type"))
        # quantity is i4 in DBN v1/v2 and i8 in v3: find "undefined" per part before concat.
        c["undef"] = np.concatenate(
            [p["quantity"] == np.iinfo(p["quantity"].dtype).max for p in inputs.stats]
        )
        c["quantity"] = np.concatenate([p["quantity"].astype(np.int64) for p in inputs.stats])
        oi = c["stat_type"] == STAT_OPEN_INTEREST
        qty = c["quantity"][oi]
        undef_q = c["undef"][oi]
        ts = c["ts_recv"][oi].astype(np.int64)
        iid = c["instrument_id"][oi].astype(np.uint32)
        found, und = lookup(iid)
        bad_mask = ~found | undef_q
        if bad_mask.any():
            why = np.where(~found, "no_definition", "undefined_open_interest")
            for r in np.unique(why[bad_mask]):
                m = bad_mask & (why == r)
                for u in np.unique(und[m]):
                    mm = m & (und == u)
                    quarantine.append((name(u), _q_rows("open_interest", ts[mm], iid[mm], str(r))))
        g = pl.DataFrame(
            {
                "instrument_id": pl.Series(iid[~bad_mask]),
                "open_interest": pl.Series(qty[~bad_mask].astype(np.int64)),
                "ts": pl.Series(ts[~bad_mask]),
                "_u": pl.Series(und[~bad_mask]),
            }
        )
        g = (
            g.sort(["instrument_id", "ts", "open_interest"])
            .unique("instrument_id", keep="last", maintain_order=True)
            .with_columns(date=pl.lit(day, dtype=pl.Date))
        )
        for (u,), gg in g.partition_by("_u", as_dict=True).items():
            out[("open_interest", name(u))] = gg.select(list(st.OPEN_INTEREST_SCHEMA))

    by_u: dict[str, list[pl.DataFrame]] = defaultdict(list)
    for u, frame in quarantine:
        if frame.height:
            by_u[u].append(frame)
    for u, frames in by_u.items():
        out[("quarantine", u)] = pl.concat(frames)
    return out


# --------------------------------------------------------------------------- driver


def _manifest_files_for(
    store: st.StoreLike, days: Iterable[dt.date]
) -> dict[dt.date, list[tuple[str, str]]]:
    """(sha256, path) of already-ingested raw files that produced partitions on each date."""
    root = st.store_root(store)
    if not (root / st.MANIFEST_FILE).is_file():
        return {}
    import duckdb

    con = duckdb.connect(str(root / st.MANIFEST_FILE), read_only=True)
    try:
        rows = con.execute(
            "SELECT DISTINCT p.date, f.sha256, f.path FROM raw_file_partitions p "
            "JOIN raw_files f USING (sha256) ORDER BY 1, 2"
        ).fetchall()
    except duckdb.CatalogException:
        rows = []
    finally:
        con.close()
    wanted = set(days)
    out: dict[dt.date, list[tuple[str, str]]] = defaultdict(list)
    for d, sha, path in rows:
        if d in wanted:
            out[d].append((sha, path))
    return out


def _ingested_checksums(store: st.StoreLike) -> set[str]:
    root = st.store_root(store)
    if not (root / st.MANIFEST_FILE).is_file():
        return set()
    import duckdb

    con = duckdb.connect(str(root / st.MANIFEST_FILE), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT sha256 FROM raw_files").fetchall()}
    except duckdb.CatalogException:
        return set()
    finally:
        con.close()


def ingest(
    paths: Sequence[Path | str] | Path | str | None = None,
    store: st.StoreLike = "data",
    *,
    force: bool = False,
    progress: bool = False,
) -> IngestReport:
    """Ingest DBN files into the store's Parquet tables.

    Parameters
    ----------
    paths : path or list of paths, optional
        DBN files (``.dbn`` / ``.dbn.zst``) or folders searched recursively. Default: everything
        under ``<store>/raw/`` that is not in the manifest yet.
    store : Store or path
        The data store folder.
    force : bool
        Re-ingest files whose sha256 the manifest already holds.
    progress : bool
        Show a progress bar over days.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataError
        A file is corrupt, truncated or not DBN (the message names it); nothing is written.

    Examples
    --------
    >>> report = ingest(["data/raw/OPRA.PILLAR/SPX/2024-01-02"], store="data")  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    report = IngestReport()
    files = discover(paths, store)
    done = set() if force else _ingested_checksums(store)
    raws: list[RawFile] = []
    for path in files:
        raw = probe(path)
        if raw.schema not in SUPPORTED_SCHEMAS:
            report.ignored.append(
                (path, f"schema {raw.schema or 'mixed'!r} is not one of {SUPPORTED_SCHEMAS}")
            )
        elif raw.sha256 in done or raw.sha256 in {r.sha256 for r in raws}:
            report.skipped.append(path)  # already ingested, or a copy of a file in this run
        else:
            raws.append(raw)
    # Pass 1: decode everything once (validates every file before any write) and find days.
    for raw in raws:
        arr = decode(raw)
        raw.records = int(arr.size)
        if arr.size:
            ts = arr["ts_recv"]
            ok = ts != UNDEF_TS
            raw.start_ts = int(ts[ok].min()) if ok.any() else 0
            raw.end_ts = int(ts[ok].max()) if ok.any() else 0
            raw.days = sorted({d.astype(object) for d in np.unique(_file_days(raw, arr))})
        report.records[raw.schema] = report.records.get(raw.schema, 0) + raw.records
        del arr
    by_day: dict[dt.date, list[RawFile]] = defaultdict(list)
    for raw in raws:
        for d in raw.days:
            by_day[d].append(raw)
    # Files already ingested that also feed these days: the day is rebuilt from all of them.
    # A listed file whose path now holds other bytes is superseded (its old rows go); one that
    # vanished keeps its rows through the existing partition (see _merge_orphans).
    known = {r.sha256 for r in raws}
    new_at = {str(r.path): r.sha256 for r in raws}
    superseded: set[str] = set()
    for d, prior in _manifest_files_for(store, by_day).items():
        for sha, p in prior:
            if sha in known or not Path(p).is_file():
                continue
            if p in new_at:
                superseded.add(sha)
                continue
            raw = probe(p)
            if raw.sha256 != sha:
                superseded.add(sha)
                continue
            raw.days = [d]
            by_day[d].append(raw)
    remaining = {r.sha256: len(r.days) for r in raws}
    file_parts: dict[str, list[tuple[str, str, dt.date, int]]] = defaultdict(list)
    sleep_s = float(os.environ.get(_TEST_SLEEP_ENV, "0") or 0)
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    days = sorted(by_day)
    iterator: Iterable[dt.date] = days
    if progress:
        from tqdm import tqdm

        iterator = tqdm(days, unit="day", desc="ingest")
    with st.open_manifest(store) as con:
        for day in iterator:
            inputs = _DayInputs()
            for raw in by_day[day]:
                if raw.sha256 not in cache:
                    arr = decode(raw)
                    cache[raw.sha256] = (arr, _file_days(raw, arr))
                arr, fdays = cache[raw.sha256]
                on_day = fdays == np.datetime64(day, "D")
                part = arr if on_day.all() else arr[on_day]
                {"definition": inputs.defs, "cbbo-1m": inputs.cbbo, "statistics": inputs.stats}[
                    raw.schema
                ].append(part)
                if raw.layout_key is not None:
                    inputs.fallback_underlying.add(raw.layout_key[0])
            frames = _build_day(day, inputs, store)
            for (table, u), df in sorted(frames.items()):
                covered = {r.sha256 for r in by_day[day]} | superseded
                df = _merge_orphans(store, table, u, day, df, covered)
                sha = ",".join(sorted(r.sha256 for r in by_day[day]))
                st.write_partition(
                    store, table, u, day, df, source=SOURCE, checksum=sha, manifest=False
                )
                path = layout.partition_file(st.store_root(store), table, u, day)
                st.record_partition(con, table, u, day, path, df.height, SOURCE, sha)
                report.partitions.append((table, u, day, df.height))
                if table == "quarantine":
                    for r, n in df.group_by("reason").len().iter_rows():
                        report.quarantined[r] = report.quarantined.get(r, 0) + n
                for raw in by_day[day]:
                    if raw.sha256 in remaining and _feeds(raw.schema, table):
                        file_parts[raw.sha256].append((table, u, day, df.height))
                if sleep_s:
                    time.sleep(sleep_s)
            _drop_stale(store, day, frames, {r.sha256 for r in by_day[day]} | superseded)
            for raw in by_day[day]:
                if raw.sha256 in remaining:
                    remaining[raw.sha256] -= 1
                    if remaining[raw.sha256] == 0:
                        _record_raw(con, raw, file_parts[raw.sha256])
                        report.ingested.append(raw.path)
                        del remaining[raw.sha256]
                if raw.sha256 in cache and (raw.sha256 not in remaining):
                    del cache[raw.sha256]
        for raw in raws:  # files with no records still count as ingested
            if raw.sha256 in remaining and not raw.days:
                _record_raw(con, raw, [])
                report.ingested.append(raw.path)
    report.seconds = time.perf_counter() - t0
    return report


def _feeds(schema: str, table: str) -> bool:
    return {
        "definition": ("instruments", "quarantine"),
        "cbbo-1m": ("quotes", "quarantine"),
        "statistics": ("open_interest", "quarantine"),
    }[schema].__contains__(table)


def _drop_stale(
    store: st.StoreLike, day: dt.date, frames: dict[tuple[str, str], pl.DataFrame], shas: set[str]
) -> None:
    """Delete partitions of ``day`` that a full rebuild from the same inputs no longer produces
    (e.g. a quarantine partition once every bad row is gone)."""
    root = st.store_root(store)
    for table in ("instruments", "quotes", "open_interest", "quarantine"):
        for u in st.list_underlyings(store, table):
            path = layout.partition_file(root, table, u, day)
            if (table, u) in frames or not path.is_file():
                continue
            old = set(st.partition_metadata(path).get("quantlab.checksum", "").split(","))
            old.discard("")
            if old and old <= shas and st.partition_metadata(path).get("quantlab.source") == SOURCE:
                path.unlink()


def _merge_orphans(
    store: st.StoreLike, table: str, u: str, day: dt.date, df: pl.DataFrame, covered: set[str]
) -> pl.DataFrame:
    """Keep rows of an existing partition whose raw file is no longer available.

    A day is rebuilt from every raw file the manifest lists for it; when one of those files was
    moved or changed, the rows it produced survive only in the existing partition, so rows of
    that partition not produced by this run (by key) are kept.
    """
    path = layout.partition_file(st.store_root(store), table, u, day)
    if not path.is_file():
        return df
    old_sha = set(st.partition_metadata(path).get("quantlab.checksum", "").split(","))
    old_sha.discard("")
    if old_sha <= covered:
        return df  # every input of the old partition is part of this rebuild
    old = pl.read_parquet(path)
    key = {
        "instruments": ["instrument_id"],
        "quotes": ["instrument_id", "ts"],
        "open_interest": ["instrument_id"],
        "underlying_bars": ["ts"],
    }.get(table)
    df = df.select([pl.col(c).cast(t) for c, t in st.SCHEMAS[table].items()])
    if key is None:
        return pl.concat([old, df]).unique(maintain_order=True)
    return pl.concat([old.join(df.select(key), on=key, how="anti"), df])


def _record_raw(con: Any, raw: RawFile, parts: list[tuple[str, str, dt.date, int]]) -> None:
    con.execute("DELETE FROM raw_file_partitions WHERE sha256 = ?", [raw.sha256])
    con.execute(
        "INSERT OR REPLACE INTO raw_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            raw.sha256,
            str(raw.path),
            raw.size,
            raw.dataset,
            raw.schema,
            raw.version,
            raw.records,
            sum(p[3] for p in parts if p[0] == "quarantine"),
            raw.start_ts,
            raw.end_ts,
        ],
    )
    if parts:
        con.executemany(
            "INSERT INTO raw_file_partitions VALUES (?, ?, ?, ?, ?)",
            [(raw.sha256, t, u, d, n) for t, u, d, n in parts],
        )


__all__ = [
    "IngestReport",
    "RawFile",
    "decode",
    "discover",
    "et_dates",
    "ingest",
    "probe",
]
