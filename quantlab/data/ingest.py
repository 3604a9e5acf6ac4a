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
* **Settlement estimates**: once a day's partitions are written, the put-call-parity estimate
  of each expiry settling that day (SPXW on every session, the SPX monthly on its expiry day)
  is written to ``settlements`` as a ``parity_estimate`` row
  (:func:`quantlab.data.settlements.write_day_estimates`).

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

from quantlab.calendar import et_dates
from quantlab.data import layout, settlements
from quantlab.data import store as st
from quantlab.data._dbn_frames import (
    UNDEF_TS,
    DayInputs,
    build_day,
)
from quantlab.errors import DataError, InputError

SUPPORTED_SCHEMAS = ("definition", "cbbo-1m", "statistics")
SOURCE = "ingest:dbn"
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


# --------------------------------------------------------------------------- record -> day


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
    store : path
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
    raws = _plan(discover(paths, store), store, force, report)
    by_day, superseded = _days(store, raws)
    remaining = {r.sha256: len(r.days) for r in raws}
    file_parts: dict[str, list[tuple[str, str, dt.date, int]]] = defaultdict(list)
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    days = sorted(by_day)
    iterator: Iterable[dt.date] = days
    if progress:
        from tqdm import tqdm

        iterator = tqdm(days, unit="day", desc="ingest")
    with st.open_manifest(store) as con:
        for day in iterator:
            frames = build_day(day, _day_inputs(day, by_day[day], cache), store)
            covered = {r.sha256 for r in by_day[day]} | superseded
            for (table, u), df in sorted(frames.items()):
                parts = _write_frame(con, store, table, u, day, df, by_day[day], covered, report)
                for raw in by_day[day]:
                    if raw.sha256 in remaining and _feeds(raw.schema, table):
                        file_parts[raw.sha256].append(parts)
            _drop_stale(store, day, frames, covered)
            for u in sorted({u for t, u in frames if t == "quotes"}):
                for _, _, n, _ in settlements.write_day_estimates(
                    store, day, underlying=u, con=con
                ):
                    report.partitions.append(("settlements", u, day, n))
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


def _plan(
    files: list[Path], store: st.StoreLike, force: bool, report: IngestReport
) -> list[RawFile]:
    """Probe the files, skip those already ingested, decode the rest once (validating every
    file before any write) and find the session days each one feeds."""
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
    return raws


def _days(
    store: st.StoreLike, raws: list[RawFile]
) -> tuple[dict[dt.date, list[RawFile]], set[str]]:
    """The raw files feeding each day, and the superseded sha256s.

    Files already ingested that also feed these days join them: the day is rebuilt from all of
    them. A listed file whose path now holds other bytes is superseded (its old rows go); one
    that vanished keeps its rows through the existing partition (see :func:`_merge_orphans`).
    """
    by_day: dict[dt.date, list[RawFile]] = defaultdict(list)
    for raw in raws:
        for d in raw.days:
            by_day[d].append(raw)
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
    return by_day, superseded


def _day_inputs(
    day: dt.date, raws: list[RawFile], cache: dict[str, tuple[np.ndarray, np.ndarray]]
) -> DayInputs:
    """The records of ``day`` from each raw file (decoded once, kept while still needed)."""
    inputs = DayInputs()
    for raw in raws:
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
    return inputs


def _write_frame(
    con: Any,
    store: st.StoreLike,
    table: str,
    u: str,
    day: dt.date,
    df: pl.DataFrame,
    raws: list[RawFile],
    covered: set[str],
    report: IngestReport,
) -> tuple[str, str, dt.date, int]:
    """Write one partition of the day (orphan rows merged) and record it."""
    df = _merge_orphans(store, table, u, day, df, covered)
    sha = ",".join(sorted(r.sha256 for r in raws))
    path = st.write_partition(store, table, u, day, df, source=SOURCE, checksum=sha, manifest=False)
    st.record_partition(con, table, u, day, path, df.height, SOURCE, sha)
    report.partitions.append((table, u, day, df.height))
    if table == "quarantine":
        for r, n in df.group_by("reason").len().iter_rows():
            report.quarantined[r] = report.quarantined.get(r, 0) + n
    return (table, u, day, df.height)


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
    "ingest",
    "probe",
]
