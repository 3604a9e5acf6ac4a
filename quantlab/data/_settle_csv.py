"""Parsing and checking of official settlement CSVs (:func:`quantlab.data.settlements.import_csv`).

Columns (header names, case-insensitive, surrounding blanks and a BOM ignored): ``root`` (SPX or
SPXW), ``expiry`` (YYYY-MM-DD, a session), ``value`` (index points, > 0); optional ``style``
(AM/PM; default AM for SPX, PM for SPXW) and ``note``. Any other column is refused; blank
lines are skipped. Errors name the row (data rows count from 1 after the header) and its file
line (the header is line 1), the column and the value.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any, Final

import polars as pl

from quantlab import calendar
from quantlab.data.store import SETTLEMENTS_SCHEMA
from quantlab.errors import DataError, InputError

CSV_REQUIRED: Final = ("root", "expiry", "value")
CSV_OPTIONAL: Final = ("style", "note")
_ROOTS: Final = {"SPX": "AM", "SPXW": "PM"}


def parse_csv(path: Path) -> pl.DataFrame:
    """Parse and check an official-settlements CSV; errors name the row, file line and column."""
    try:
        raw = pl.read_csv(path, infer_schema_length=0, encoding="utf8-lossy")
    except Exception as exc:
        raise DataError(f"{path}: cannot read as CSV ({exc}).") from None
    raw = raw.rename({c: c.lstrip("\ufeff").strip().lower() for c in raw.columns})
    allowed = CSV_REQUIRED + CSV_OPTIONAL
    for c in CSV_REQUIRED:
        if c not in raw.columns:
            raise DataError(
                f"{path}: missing column {c!r} (found {raw.columns}); required columns "
                f"{list(CSV_REQUIRED)}, optional {list(CSV_OPTIONAL)}."
            )
    extra = [c for c in raw.columns if c not in allowed]
    if extra:
        raise DataError(f"{path}: unknown column {extra[0]!r}; allowed columns {list(allowed)}.")
    if raw.height == 0:
        raise DataError(f"{path}: no rows (expected one row per root and expiry).")
    rows = []
    seen: dict[tuple[str, dt.date], int] = {}
    for i, rec in enumerate(raw.iter_rows(named=True), start=1):
        if all(v is None or not v.strip() for v in rec.values()):
            continue  # a blank line
        row = _csv_row(path, i, rec)
        key = (row["root"], row["expiry"])
        if key in seen:
            raise DataError(
                f"{path}: {_where(i)} repeats {key[0]} {key[1]} (first on {_where(seen[key])})."
            )
        seen[key] = i
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows (expected one row per root and expiry).")
    return pl.DataFrame(rows, schema=SETTLEMENTS_SCHEMA)


def _where(row: int) -> str:
    """``row 3 (line 4)``: the data row (1 = first after the header) and its file line."""
    return f"row {row} (line {row + 1})"


def _csv_row(path: Path, row: int, rec: dict[str, Any]) -> dict[str, Any]:
    def bad(col: str, expected: str) -> DataError:
        return DataError(
            f"{path}: {_where(row)}: column {col!r} has {rec.get(col)!r}; expected {expected}."
        )

    root = (rec.get("root") or "").strip().upper()
    if root not in _ROOTS:
        raise bad("root", "SPX (AM monthlies) or SPXW (PM)")
    try:
        expiry = dt.date.fromisoformat((rec.get("expiry") or "").strip())
        session = calendar.is_session(expiry)
    except (ValueError, InputError):
        raise bad("expiry", "a date like 2024-03-15 (YYYY-MM-DD)") from None
    if not session:
        raise bad("expiry", "a trading session (the expiry date of the contract)")
    try:
        value = float((rec.get("value") or "").strip())
    except ValueError:
        raise bad("value", "a positive index level like 5117.09") from None
    if not (math.isfinite(value) and value > 0):
        raise bad("value", "a positive index level like 5117.09")
    style = (rec.get("style") or "").strip().upper() or _ROOTS[root]
    if style not in ("AM", "PM"):
        raise bad("style", "AM or PM (default AM for SPX, PM for SPXW)")
    note = (rec.get("note") or "").strip() or None
    return {
        "root": root,
        "expiry": expiry,
        "style": style,
        "value": value,
        "source": "official",
        "std_error": None,
        "n_pairs": None,
        "asof_ts": None,
        "note": note,
    }
