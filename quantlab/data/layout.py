"""Where everything lives inside a data store (one folder, default ``data/``).

This module is the single source of truth for paths; every reader and writer goes through it.

```
<store>/
  raw/OPRA.PILLAR/<UNDERLYING>/<YYYY-MM-DD>/<schema>.dbn.zst   one file per ET session and schema
                                                              (schema: definition, cbbo-1m, statistics)
  raw/synth/<UNDERLYING>/<YYYY-MM-DD>/truth.parquet             synthetic market truth (forward path, surface)
  parquet/instruments/underlying=<U>/date=<YYYY-MM-DD>/part-0.parquet
  parquet/quotes/underlying=<U>/date=<YYYY-MM-DD>/part-0.parquet
  parquet/open_interest/underlying=<U>/date=<YYYY-MM-DD>/part-0.parquet
  parquet/underlying_bars/underlying=<U>/date=<YYYY-MM-DD>/part-0.parquet   index minute bars (importers, synth)
  parquet/settlements/underlying=<U>/date=<expiry>/part-0.parquet          settlement values by source
  quarantine/underlying=<U>/date=<YYYY-MM-DD>/part-0.parquet               rows set aside, with reason
  manifest.duckdb ... (see quantlab.data.store)
  locks/<table>.<UNDERLYING>.lock                               advisory locks of read-merge-write tables
```
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

DATASET = "OPRA.PILLAR"
RAW_SCHEMAS = ("definition", "cbbo-1m", "statistics")
TABLES = (
    "instruments",
    "quotes",
    "open_interest",
    "underlying_bars",
    "quarantine",
    "settlements",
)


def as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def raw_day_dir(store: Path | str, underlying: str, day: dt.date | str) -> Path:
    return Path(store) / "raw" / DATASET / underlying.upper() / as_date(day).isoformat()


def raw_file(store: Path | str, underlying: str, day: dt.date | str, schema: str) -> Path:
    return raw_day_dir(store, underlying, day) / f"{schema}.dbn.zst"


def truth_file(store: Path | str, underlying: str, day: dt.date | str) -> Path:
    return (
        Path(store)
        / "raw"
        / "synth"
        / underlying.upper()
        / as_date(day).isoformat()
        / "truth.parquet"
    )


def table_dir(store: Path | str, table: str) -> Path:
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES} (got {table!r}).")
    if table == "quarantine":
        return Path(store) / "quarantine"
    return Path(store) / "parquet" / table


def partition_dir(store: Path | str, table: str, underlying: str, day: dt.date | str) -> Path:
    return (
        table_dir(store, table)
        / f"underlying={underlying.upper()}"
        / f"date={as_date(day).isoformat()}"
    )


def partition_file(store: Path | str, table: str, underlying: str, day: dt.date | str) -> Path:
    return partition_dir(store, table, underlying, day) / "part-0.parquet"


def raw_receipt_file(store: Path | str, underlying: str, day: dt.date | str, schema: str) -> Path:
    """Receipt ``<schema>.dbn.zst.ok.json`` written by ``quantlab data fetch`` after a verified
    download (size, sha256, record count); a raw file without it is not known to be complete."""
    path = raw_file(store, underlying, day, schema)
    return path.with_name(path.name + ".ok.json")


def lock_file(store: Path | str, table: str, underlying: str) -> Path:
    """Advisory lock file serialising read-merge-write updates of ``table`` for ``underlying``
    (``settlements``: several writers merge rows into the same partitions)."""
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES} (got {table!r}).")
    return Path(store) / "locks" / f"{table}.{underlying.upper()}.lock"
