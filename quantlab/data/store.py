"""The normalized Parquet store: table schemas, atomic partition writes, the manifest, DuckDB views.

A store is one folder (default ``data/``); where every file lives is defined in
:mod:`quantlab.data.layout`. Each table is partitioned by underlying and ET session date, one
Parquet file per partition::

    <store>/parquet/<table>/underlying=<U>/date=<YYYY-MM-DD>/part-0.parquet
    <store>/quarantine/underlying=<U>/date=<YYYY-MM-DD>/part-0.parquet
    <store>/manifest.duckdb

Tables (the polars schemas below are the contract; :func:`write_partition` validates them)
-----------------------------------------------------------------------------------------
instruments
    One row per option listed that day: ``date`` (ET session), ``instrument_id`` (Databento id,
    unique within that day only), ``raw_symbol`` (OCC, e.g. ``SPXW  240119P04700000``), ``root``
    (``SPX``/``SPXW``), ``underlying`` (``SPX``), ``expiry``, ``settlement`` (``AM``/``PM``),
    ``strike`` (index points), ``right`` (``C``/``P``), ``multiplier`` (100). Sorted by id.
quotes
    Minute consolidated BBO. ``ts`` is int64 UTC nanoseconds of the END of the minute (Databento
    cbbo-1m ``ts_recv``) and is the time the quote is known. ``bid``/``ask`` are null when
    undefined. Sorted by ``(instrument_id, ts)``; ``(instrument_id, ts)`` is unique. The file's
    key-value metadata ``quantlab.offsets`` holds ``{"ids": [...], "starts": [...]}``: the first
    row of each instrument, so one instrument's rows can be read without scanning the day.
open_interest
    One row per instrument: ``open_interest`` and the ``ts`` of the statistics record kept.
underlying_bars
    Index minute bars, ``ts`` = END of the minute (UTC ns), OHLC in index points.
quarantine
    Rows set aside by ingest/import with the ``reason`` and the raw ``bid``/``ask`` values.
settlements
    Settlement values of expiries, one row per ``(root, source)`` in the partition of the
    expiry date (``date=<expiry>``): ``root`` (``SPX``/``SPXW``), ``expiry``, ``style``
    (``AM``/``PM``), ``value`` (index points), ``source`` (see
    :data:`quantlab.data.settlements.SOURCES`), ``std_error`` and ``n_pairs`` (estimates
    only), ``asof_ts`` (UTC ns of the observation used) and ``note``. Written and read through
    :mod:`quantlab.data.settlements` (merge under a file lock), never by hand.

Writes
------
:func:`write_partition` writes a temporary file in the partition's folder, fsyncs it and
``os.replace``-s it over ``part-0.parquet``: a reader sees the old file or the new one, never
a partial one. Parquet writer options are fixed, so the same frame gives byte-identical files.

Manifest (``<store>/manifest.duckdb``)
--------------------------------------
``partitions(table, underlying, date, path, rows, bytes, file_sha256, source, checksum,
written_at)``: one row per partition, last write wins. ``raw_files(sha256, path, size, dataset,
schema, dbn_version, records, quarantined, start_ts, end_ts, ingested_at)`` and
``raw_file_partitions(sha256, table, underlying, date, rows)``: what ingest read and what each
raw file produced (filled by :mod:`quantlab.data.ingest`). DuckDB takes one writer at a time;
parallel workers can call ``write_partition(..., manifest=False)`` and the parent then calls
:func:`sync_manifest`, which rebuilds ``partitions`` from the files' own metadata.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantlab.data import layout
from quantlab.errors import DataError, InputError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

FORMAT_VERSION = "1"

INSTRUMENTS_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "instrument_id": pl.UInt32(),
    "raw_symbol": pl.Utf8(),
    "root": pl.Utf8(),
    "underlying": pl.Utf8(),
    "expiry": pl.Date(),
    "settlement": pl.Utf8(),
    "strike": pl.Float64(),
    "right": pl.Utf8(),
    "multiplier": pl.Int32(),
}
QUOTES_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "instrument_id": pl.UInt32(),
    "bid": pl.Float64(),
    "ask": pl.Float64(),
    "bid_size": pl.UInt32(),
    "ask_size": pl.UInt32(),
}
OPEN_INTEREST_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "instrument_id": pl.UInt32(),
    "open_interest": pl.Int64(),
    "ts": pl.Int64(),
}
UNDERLYING_BARS_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.Utf8(),
    "ts": pl.Int64(),
    "instrument_id": pl.UInt32(),
    "reason": pl.Utf8(),
    "bid": pl.Float64(),
    "ask": pl.Float64(),
}
SETTLEMENTS_SCHEMA: dict[str, pl.DataType] = {
    "root": pl.Utf8(),
    "expiry": pl.Date(),
    "style": pl.Utf8(),
    "value": pl.Float64(),
    "source": pl.Utf8(),
    "std_error": pl.Float64(),
    "n_pairs": pl.Int32(),
    "asof_ts": pl.Int64(),
    "note": pl.Utf8(),
}

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "instruments": INSTRUMENTS_SCHEMA,
    "quotes": QUOTES_SCHEMA,
    "open_interest": OPEN_INTEREST_SCHEMA,
    "underlying_bars": UNDERLYING_BARS_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "settlements": SETTLEMENTS_SCHEMA,
}

# Columns that may not hold nulls, the sort key (also the uniqueness key where marked).
_NOT_NULL: dict[str, tuple[str, ...]] = {
    "instruments": tuple(INSTRUMENTS_SCHEMA),
    "quotes": ("ts", "instrument_id", "bid_size", "ask_size"),
    "open_interest": tuple(OPEN_INTEREST_SCHEMA),
    "underlying_bars": ("ts",),
    "quarantine": ("table", "reason"),
    "settlements": ("root", "expiry", "style", "value", "source"),
}
_SORT_KEY: dict[str, tuple[str, ...]] = {
    "instruments": ("instrument_id",),
    "quotes": ("instrument_id", "ts"),
    "open_interest": ("instrument_id",),
    "underlying_bars": ("ts",),
    "quarantine": ("table", "ts", "instrument_id", "reason", "bid", "ask"),
    "settlements": ("root", "source"),
}
_UNIQUE: dict[str, tuple[str, ...]] = {
    "instruments": ("instrument_id",),
    "quotes": ("instrument_id", "ts"),
    "open_interest": ("instrument_id",),
    "underlying_bars": ("ts",),
    "settlements": ("root", "source"),
}
# The column holding the partition's date (settlements are partitioned by expiry).
_DAY_COLUMN: dict[str, str] = {"settlements": "expiry"}
_ALLOWED: dict[str, dict[str, frozenset[str]]] = {
    "instruments": {"right": frozenset({"C", "P"}), "settlement": frozenset({"AM", "PM"})},
    "quarantine": {"table": frozenset(layout.TABLES)},
    "settlements": {"root": frozenset({"SPX", "SPXW"}), "style": frozenset({"AM", "PM"})},
}

# Fixed writer options: same frame -> byte-identical file.
QUOTES_ROW_GROUP = 131_072
_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_size": 1 << 20,
}
MANIFEST_FILE = "manifest.duckdb"


StoreLike = Path | str
"""A data store: its folder, as a path or a string (every function here takes one)."""


def store_root(store: StoreLike) -> Path:
    """The folder of ``store`` (a path or string)."""
    if isinstance(store, (str, os.PathLike)):
        return Path(store)
    raise InputError(f"store must be a folder path (got {type(store).__name__}).")


def _check_table(table: str) -> None:
    if table not in SCHEMAS:
        raise InputError(f"table must be one of {tuple(SCHEMAS)} (got {table!r}).")


def _check_underlying(underlying: str) -> str:
    if not isinstance(underlying, str) or not underlying.strip():
        raise InputError(f"underlying must be a non-empty string like 'SPX' (got {underlying!r}).")
    u = underlying.strip().upper()
    if any(c in u for c in "/\\=") or u in (".", ".."):
        raise InputError(f"underlying may not contain '/', '\\\\' or '=' (got {underlying!r}).")
    return u


def _check_day(day: dt.date | str) -> dt.date:
    try:
        return layout.as_date(day)
    except (TypeError, ValueError):
        raise InputError(f"day must be a date or 'YYYY-MM-DD' (got {day!r}).") from None


# --------------------------------------------------------------------------- validation


def validate_frame(table: str, df: pl.DataFrame, day: dt.date | str | None = None) -> pl.DataFrame:
    """Check ``df`` against the table's schema; return it cast, in column order and sorted.

    Columns whose dtype differs are cast when every value converts exactly (e.g. Int64 ids to
    UInt32); anything else raises.

    Raises
    ------
    DataError
        Naming the column: missing, unexpected, wrong type, nulls in a key column, values
        outside the allowed set, a ``date`` column (``expiry`` for settlements) that is not the
        partition's day, or duplicate keys.
    """
    _check_table(table)
    if not isinstance(df, pl.DataFrame):
        raise InputError(f"df must be a polars DataFrame (got {type(df).__name__}).")
    schema = SCHEMAS[table]
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise DataError(
            f"{table} frame is missing column {missing[0]!r} (expected columns {list(schema)})."
        )
    extra = [c for c in df.columns if c not in schema]
    if extra:
        raise DataError(
            f"{table} frame has unexpected column {extra[0]!r} (expected columns {list(schema)})."
        )
    cols = []
    for name, dtype in schema.items():
        s = df.get_column(name)
        if s.dtype != dtype:
            try:
                s = s.cast(dtype, strict=True)
            except Exception:
                bad = s.head(3).to_list()
                raise DataError(
                    f"{table} column {name!r} must be {dtype} (got {s.dtype}, values like {bad} "
                    "do not convert)."
                ) from None
        cols.append(s)
    out = pl.DataFrame(cols)
    for name in _NOT_NULL[table]:
        n_null = out.get_column(name).null_count()
        if n_null:
            raise DataError(f"{table} column {name!r} has {n_null} null value(s); it may not.")
    for name in ("bid", "ask", "strike", "open", "high", "low", "close", "value", "std_error"):
        if name in out.columns:
            n_nan = int(out.get_column(name).is_nan().sum())
            if n_nan:
                raise DataError(
                    f"{table} column {name!r} has {n_nan} NaN value(s); store undefined prices as "
                    "null (quarantine rows that are really bad)."
                )
    for name, allowed in _ALLOWED.get(table, {}).items():
        bad_vals = set(out.get_column(name).drop_nulls().unique().to_list()) - allowed
        if bad_vals:
            raise DataError(
                f"{table} column {name!r} has value {sorted(bad_vals)[0]!r}; allowed: "
                f"{sorted(allowed)}."
            )
    day_col = _DAY_COLUMN.get(table, "date")
    if day is not None and day_col in schema and out.height:
        d = _check_day(day)
        other = out.filter(pl.col(day_col) != d)
        if other.height:
            raise DataError(
                f"{table} column {day_col!r} holds {other.get_column(day_col)[0]} but the "
                f"partition is {d}."
            )
    key = _UNIQUE.get(table)
    if key is None:
        return out.sort(list(_SORT_KEY[table]), nulls_last=False, maintain_order=True)
    # integer keys without nulls: check "sorted and unique" in one numpy pass, sort if needed
    if not _strictly_increasing(out, key):
        out = out.sort(list(key), maintain_order=True)
        if not _strictly_increasing(out, key):
            arrs = [out.get_column(k).to_numpy() for k in key]
            same = np.ones(out.height - 1, dtype=bool)
            for c in arrs:
                same &= c[:-1] == c[1:]
            first = out.row(int(np.flatnonzero(same)[0]), named=True)
            shown = {k: first[k] for k in key}
            raise DataError(
                f"{table} has duplicate key {tuple(key)} = {shown}; each must be unique."
            )
    return out


def _strictly_increasing(df: pl.DataFrame, key: tuple[str, ...]) -> bool:
    """Whether rows are strictly increasing in the lexicographic order of ``key``."""
    if df.height < 2:
        return True
    ok = np.zeros(df.height - 1, dtype=bool)
    tied = np.ones(df.height - 1, dtype=bool)
    for k in key:
        c = df.get_column(k).to_numpy()
        ok |= tied & (c[1:] > c[:-1])
        tied &= c[1:] == c[:-1]
    return bool(ok.all())


# --------------------------------------------------------------------------- arrow / parquet


def _arrow_type(dtype: pl.DataType) -> pa.DataType:
    import pyarrow as pa

    mapping = {
        pl.Date: pa.date32(),
        pl.UInt32: pa.uint32(),
        pl.Utf8: pa.string(),
        pl.Float64: pa.float64(),
        pl.Int32: pa.int32(),
        pl.Int64: pa.int64(),
    }
    for k, v in mapping.items():
        if dtype == k:
            return v
    raise InputError(f"no Arrow type for {dtype}")  # pragma: no cover - schemas are fixed


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema written for ``table``."""
    import pyarrow as pa

    _check_table(table)
    return pa.schema([pa.field(n, _arrow_type(t)) for n, t in SCHEMAS[table].items()])


def instrument_offsets(instrument_id: Any) -> tuple[list[int], list[int]]:
    """First row of each instrument in an array sorted by instrument id: ``(ids, starts)``."""
    import numpy as np

    ids = np.asarray(instrument_id)
    if ids.size == 0:
        return [], []
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return ids[starts].astype(np.int64).tolist(), starts.astype(np.int64).tolist()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows opening a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_parquet_atomic(tbl: pa.Table, path: Path, row_group_size: int | None) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(tbl, fh, row_group_size=row_group_size, **_WRITE_OPTIONS)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_partition(
    store: StoreLike,
    table: str,
    underlying: str,
    day: dt.date | str,
    df: pl.DataFrame,
    *,
    source: str,
    checksum: str | None = None,
    manifest: bool = True,
) -> Path:
    """Validate ``df`` and atomically replace one partition of ``table``.

    Parameters
    ----------
    store : path
        The store folder.
    table : str
        One of ``instruments``, ``quotes``, ``open_interest``, ``underlying_bars``, ``quarantine``,
        ``settlements`` (write settlements through :func:`quantlab.data.settlements.write`).
    underlying : str
        Partition underlying, e.g. ``"SPX"`` (upper-cased).
    day : date or 'YYYY-MM-DD'
        ET session date of the partition.
    df : polars.DataFrame
        Rows in the table's schema (see the module docstring). Castable dtypes are cast; the
        rows are sorted by the table's key before writing.
    source : str
        Where the rows came from (e.g. ``"ingest:dbn"``, ``"lean:zip"``); stored in the file.
    checksum : str, optional
        Checksum of the inputs (e.g. sha256 of the raw file); stored in the file and manifest.
    manifest : bool
        Record the partition in ``manifest.duckdb`` (default). Parallel workers pass False
        and the parent calls :func:`sync_manifest`.

    Returns
    -------
    Path
        The partition file. The write is all-or-nothing (temp file, fsync, ``os.replace``).
        An empty frame writes an empty partition (a day known to hold no rows).

    Raises
    ------
    DataError
        If ``df`` does not fit the schema (the message names the column).
    """
    _check_table(table)
    u = _check_underlying(underlying)
    d = _check_day(day)
    if not isinstance(source, str) or not source:
        raise InputError(f"source must be a non-empty string (got {source!r}).")
    out = validate_frame(table, df, d)
    tbl = out.to_arrow().cast(arrow_schema(table))
    meta = {
        "quantlab.format": FORMAT_VERSION,
        "quantlab.table": table,
        "quantlab.underlying": u,
        "quantlab.date": d.isoformat(),
        "quantlab.source": source,
        "quantlab.checksum": checksum or "",
    }
    row_group = None
    if table == "quotes":
        ids, starts = instrument_offsets(out.get_column("instrument_id").to_numpy())
        meta["quantlab.offsets"] = json.dumps({"ids": ids, "starts": starts}, separators=(",", ":"))
        row_group = QUOTES_ROW_GROUP
    tbl = tbl.replace_schema_metadata(meta)
    path = layout.partition_file(store_root(store), table, u, d)
    _write_parquet_atomic(tbl, path, row_group)
    if manifest:
        with open_manifest(store) as con:
            record_partition(con, table, u, d, path, out.height, source, checksum)
    return path


def read_partition(
    store: StoreLike,
    table: str,
    underlying: str,
    day: dt.date | str,
    columns: list[str] | None = None,
) -> pl.DataFrame | None:
    """Read one partition (``None`` if it was never written)."""
    _check_table(table)
    path = layout.partition_file(
        store_root(store), table, _check_underlying(underlying), _check_day(day)
    )
    if not path.is_file():
        return None
    try:
        return pl.read_parquet(path, columns=columns)
    except Exception as exc:
        raise DataError(f"cannot read partition {path}: {exc}") from exc


def partition_metadata(path: Path | str) -> dict[str, str]:
    """The ``quantlab.*`` key-value metadata of a partition file."""
    import pyarrow.parquet as pq

    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"quantlab.")}


def list_days(store: StoreLike, table: str, underlying: str) -> list[dt.date]:
    """Sorted ET session dates that have a ``table`` partition for ``underlying``."""
    _check_table(table)
    base = (
        layout.table_dir(store_root(store), table) / f"underlying={_check_underlying(underlying)}"
    )
    if not base.is_dir():
        return []
    days = []
    for p in base.iterdir():
        if p.name.startswith("date=") and (p / "part-0.parquet").is_file():
            with contextlib.suppress(ValueError):
                days.append(dt.date.fromisoformat(p.name[5:]))
    return sorted(days)


def list_underlyings(store: StoreLike, table: str = "quotes") -> list[str]:
    """Underlyings that have at least one ``table`` partition."""
    _check_table(table)
    base = layout.table_dir(store_root(store), table)
    if not base.is_dir():
        return []
    return sorted(
        p.name[len("underlying=") :]
        for p in base.iterdir()
        if p.name.startswith("underlying=") and p.is_dir()
    )


# --------------------------------------------------------------------------- manifest

_MANIFEST_DDL = (
    """CREATE TABLE IF NOT EXISTS partitions (
        "table" VARCHAR, underlying VARCHAR, date DATE, path VARCHAR, rows BIGINT,
        bytes BIGINT, file_sha256 VARCHAR, source VARCHAR, checksum VARCHAR,
        written_at TIMESTAMP, PRIMARY KEY ("table", underlying, date))""",
    """CREATE TABLE IF NOT EXISTS raw_files (
        sha256 VARCHAR PRIMARY KEY, path VARCHAR, size BIGINT, dataset VARCHAR,
        schema VARCHAR, dbn_version INTEGER, records BIGINT, quarantined BIGINT,
        start_ts BIGINT, end_ts BIGINT, ingested_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS raw_file_partitions (
        sha256 VARCHAR, "table" VARCHAR, underlying VARCHAR, date DATE, rows BIGINT)""",
)


@contextlib.contextmanager
def open_manifest(store: StoreLike, *, wait_s: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``<store>/manifest.duckdb`` for writing (waits while another process holds it)."""
    import duckdb

    root = store_root(store)
    root.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(str(root / MANIFEST_FILE))
            break
        except duckdb.IOException as exc:
            if time.monotonic() > deadline:
                raise DataError(
                    f"manifest {root / MANIFEST_FILE} is locked by another process: {exc}"
                ) from exc
            time.sleep(0.05)
    try:
        for ddl in _MANIFEST_DDL:
            con.execute(ddl)
        yield con
    finally:
        con.close()


def record_partition(
    con: duckdb.DuckDBPyConnection,
    table: str,
    underlying: str,
    day: dt.date,
    path: Path,
    rows: int,
    source: str,
    checksum: str | None,
) -> None:
    """Record one written partition in the manifest (``con`` from :func:`open_manifest`)."""
    con.execute(
        "INSERT OR REPLACE INTO partitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            table,
            underlying,
            day,
            str(path),
            rows,
            path.stat().st_size,
            sha256_file(path),
            source,
            checksum or "",
        ],
    )


def sync_manifest(store: StoreLike) -> int:
    """Rebuild the manifest's ``partitions`` table from the partition files; return the count."""
    import pyarrow.parquet as pq

    root = store_root(store)
    rows = []
    for table in SCHEMAS:
        base = layout.table_dir(root, table)
        for path in sorted(base.glob("underlying=*/date=*/part-0.parquet")):
            meta = partition_metadata(path)
            rows.append(
                (
                    table,
                    path.parent.parent.name[len("underlying=") :],
                    dt.date.fromisoformat(path.parent.name[len("date=") :]),
                    str(path),
                    pq.ParquetFile(path).metadata.num_rows,
                    path.stat().st_size,
                    sha256_file(path),
                    meta.get("quantlab.source", ""),
                    meta.get("quantlab.checksum", ""),
                )
            )
    with open_manifest(root) as con:
        con.execute("DELETE FROM partitions")
        if rows:
            con.executemany(
                "INSERT INTO partitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())", rows
            )
    return len(rows)


def read_manifest(store: StoreLike, table: str = "partitions") -> pl.DataFrame:
    """One manifest table as a polars frame (empty if the manifest does not exist yet)."""
    import duckdb

    if table not in ("partitions", "raw_files", "raw_file_partitions"):
        raise InputError(
            f"table must be 'partitions', 'raw_files' or 'raw_file_partitions' (got {table!r})."
        )
    path = store_root(store) / MANIFEST_FILE
    if not path.is_file():
        with open_manifest(store) as con:
            return con.sql(f'SELECT * FROM "{table}"').pl()
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(f'SELECT * FROM "{table}" ORDER BY ALL').pl()
    finally:
        con.close()


# --------------------------------------------------------------------------- DuckDB views

_DUCK_TYPES = {
    "Date": "DATE",
    "UInt32": "UINTEGER",
    "String": "VARCHAR",
    "Utf8": "VARCHAR",
    "Float64": "DOUBLE",
    "Int32": "INTEGER",
    "Int64": "BIGINT",
}


def _empty_view_sql(table: str) -> str:
    cols = {**SCHEMAS[table]}
    cols.setdefault("underlying", pl.Utf8())
    cols.setdefault("date", pl.Date())
    parts = [f'CAST(NULL AS {_DUCK_TYPES[str(t)]}) AS "{n}"' for n, t in cols.items()]
    return f"SELECT {', '.join(parts)} WHERE false"


def connect(
    store: StoreLike, database: str = ":memory:", extra_views: Mapping[str, str] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per table over the store's Parquet partitions.

    Views ``instruments``, ``quotes``, ``open_interest``, ``underlying_bars``, ``quarantine``
    and ``settlements`` read ``part-0.parquet`` files with hive partitioning, so ``underlying`` and ``date``
    are columns and filters on them prune partitions. Tables with no partition yet are empty
    views with the right columns.

    Examples
    --------
    >>> con = connect("data")  # doctest: +SKIP
    >>> con.sql("SELECT date, count(*) FROM quotes GROUP BY date ORDER BY date").pl()  # doctest: +SKIP
    """
    import duckdb

    root = store_root(store)
    con = duckdb.connect(database)
    for table in SCHEMAS:
        base = layout.table_dir(root, table)
        if any(base.glob("underlying=*/date=*/part-0.parquet")):
            glob = str(base / "underlying=*" / "date=*" / "part-0.parquet").replace("'", "''")
            sql = (
                f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
                "hive_types = {'underlying': VARCHAR, 'date': DATE})"
            )
        else:
            sql = _empty_view_sql(table)
        con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {sql}')
    for name, sql in (extra_views or {}).items():
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {sql}')
    return con


__all__ = [
    "INSTRUMENTS_SCHEMA",
    "OPEN_INTEREST_SCHEMA",
    "QUARANTINE_SCHEMA",
    "QUOTES_SCHEMA",
    "SCHEMAS",
    "SETTLEMENTS_SCHEMA",
    "UNDERLYING_BARS_SCHEMA",
    "arrow_schema",
    "connect",
    "list_days",
    "list_underlyings",
    "open_manifest",
    "partition_metadata",
    "read_manifest",
    "read_partition",
    "sha256_file",
    "sync_manifest",
    "validate_frame",
    "write_partition",
]
