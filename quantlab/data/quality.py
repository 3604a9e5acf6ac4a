"""Quarantine rules for incoming quotes and the per-day quality report of the store.

Quarantine rules (:func:`split_quotes`, used by ingest and usable by every importer)
--------------------------------------------------------------------------------------
A quote row is set aside, with its reason, when it cannot be used at all:

==================  ===========================================================================
reason              rule
==================  ===========================================================================
``undefined_ts``    ``ts`` is null or negative (Databento ``UNDEF_TIMESTAMP``)
``no_definition``   ``instrument_id`` is not listed in that day's instruments
``nan_price``       ``bid`` or ``ask`` is NaN (an undefined price is null, not NaN)
``negative_price``  ``bid`` or ``ask`` below zero
``duplicate``       a second row for the same ``(instrument_id, ts)``; the LAST one is kept
==================  ===========================================================================

Rules are applied in that order; each row gets the first reason that matches. Crossed
(bid > ask), locked (bid == ask) and zero-bid quotes are NOT quarantined: they are real market
states and the snapshot cleaning downstream decides; :func:`check_day` counts them.

Quality report (:func:`check_day`, ``quantlab data check``)
-----------------------------------------------------------
Per session: quote rows; crossed, locked, zero-bid, one-sided (exactly one side defined) and
empty (no side defined) rows; NaN prices; stale instruments (no quote change during at least
``stale_minutes`` minutes in which the rest of the chain updated); missing minutes (session
minutes with no record for the whole chain); instruments never quoted; quarantined rows by
reason.

Settlement values (:func:`settlement_gaps`, also in ``quantlab data check``)
----------------------------------------------------------------------------
Every expiry the store reaches (:func:`quantlab.data.settlements.missing`) that has no
``official`` or ``index`` settlement value, with the best value found instead (source, value,
standard error of a parity estimate) and every source stored for it. Close the gaps with
``quantlab data import-settlements FILE.csv``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from quantlab.console import wide_console
from quantlab.data import layout
from quantlab.data import store as st
from quantlab.errors import InputError

REASONS = ("undefined_ts", "no_definition", "nan_price", "negative_price", "duplicate")
STALE_MINUTES = 30


def split_quotes(quotes: pl.DataFrame, known_ids: Any = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the quarantine rules to raw quote rows.

    Parameters
    ----------
    quotes : polars.DataFrame
        At least ``ts, instrument_id, bid, ask`` (nulls = undefined). Other columns are kept
        on both outputs.
    known_ids : array-like, optional
        Instrument ids defined that day; None skips the ``no_definition`` rule.

    Returns
    -------
    (clean, quarantined) : tuple of polars.DataFrame
        ``clean`` keeps the input columns, duplicates resolved, sorted by
        ``(instrument_id, ts)`` (the stored order).
        ``quarantined`` has the :data:`quantlab.data.store.QUARANTINE_SCHEMA` columns
        (``table`` = ``"quotes"``) followed by any extra input columns.
    """
    need = ("ts", "instrument_id", "bid", "ask")
    missing = [c for c in need if c not in quotes.columns]
    if missing:
        raise InputError(f"quotes is missing column {missing[0]!r} (needs {need}).")
    bid, ask = pl.col("bid").cast(pl.Float64), pl.col("ask").cast(pl.Float64)
    reason: Any = pl.when(pl.col("ts").is_null() | (pl.col("ts") < 0)).then(pl.lit("undefined_ts"))
    if known_ids is not None:
        ids = pl.Series(np.asarray(known_ids, dtype=np.int64))
        reason = reason.when(~pl.col("instrument_id").cast(pl.Int64).is_in(ids.implode())).then(
            pl.lit("no_definition")
        )
    reason = (
        reason.when(bid.is_nan() | ask.is_nan())
        .then(pl.lit("nan_price"))
        .when((bid < 0) | (ask < 0))
        .then(pl.lit("negative_price"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    tagged = quotes.with_columns(_reason=reason)
    # stable sort: rows of one (instrument, ts) stay in input order, so the last one is kept
    good = tagged.filter(pl.col("_reason").is_null()).sort(
        ["instrument_id", "ts"], maintain_order=True
    )
    bad = tagged.filter(pl.col("_reason").is_not_null())
    id_arr = good.get_column("instrument_id").to_numpy()
    ts_arr = good.get_column("ts").to_numpy()
    repeated = (id_arr[:-1] == id_arr[1:]) & (ts_arr[:-1] == ts_arr[1:])
    if repeated.any():
        keep = pl.Series(np.r_[~repeated, True])
        bad = pl.concat([bad, good.filter(~keep).with_columns(_reason=pl.lit("duplicate"))])
        good = good.filter(keep)
    extra = [c for c in quotes.columns if c not in st.QUARANTINE_SCHEMA]
    quarantined = bad.select(
        pl.lit("quotes").alias("table"),
        pl.col("ts").cast(pl.Int64),
        pl.col("instrument_id").cast(pl.UInt32),
        pl.col("_reason").alias("reason"),
        pl.col("bid").cast(pl.Float64),
        pl.col("ask").cast(pl.Float64),
        *[pl.col(c) for c in extra],
    )
    return good.drop("_reason"), quarantined


def _session_minutes(day: dt.date) -> np.ndarray | None:
    from quantlab import calendar

    try:
        if not calendar.is_session(day):
            return None
        return calendar.quote_minutes_ns(day)
    except InputError:
        return None


def check_day(
    store: st.StoreLike,
    underlying: str,
    day: dt.date | str,
    *,
    stale_minutes: int = STALE_MINUTES,
) -> dict[str, Any]:
    """Quality figures of one session of one underlying.

    Parameters
    ----------
    store : path
    underlying : str
    day : date or 'YYYY-MM-DD'
    stale_minutes : int
        An instrument is stale when it shows no quote change during at least this many
        minutes in which some other instrument of the chain updated (counting the stretch
        from its last record to the end of the session).

    Returns
    -------
    dict
        ``date, underlying, instruments, quoted_instruments, never_quoted, quote_rows,
        crossed, locked, zero_bid, one_sided, empty, nan_price, stale_instruments,
        session_minutes, missing_minutes, open_interest_rows, quarantined`` (total) and
        ``quarantined_by_reason`` (dict). Counts are rows unless named otherwise;
        ``session_minutes``/``missing_minutes`` are None when ``day`` is not an XNYS session.
    """
    if stale_minutes < 1:
        raise InputError(f"stale_minutes must be >= 1 (got {stale_minutes}).")
    d = layout.as_date(day)
    u = underlying.upper()
    inst = st.read_partition(store, "instruments", u, d, columns=["instrument_id"])
    q = st.read_partition(store, "quotes", u, d)
    oi = st.read_partition(store, "open_interest", u, d, columns=["instrument_id"])
    qr = st.read_partition(store, "quarantine", u, d, columns=["reason"])
    q = q if q is not None else pl.DataFrame(schema=st.QUOTES_SCHEMA)
    n_inst = inst.height if inst is not None else 0
    bid, ask = pl.col("bid"), pl.col("ask")
    both = bid.is_not_null() & ask.is_not_null()
    counts = q.select(
        crossed=(both & (bid > ask)).sum(),
        locked=(both & (bid == ask) & (bid > 0)).sum(),
        zero_bid=(bid == 0).sum(),
        one_sided=(bid.is_null() ^ ask.is_null()).sum(),
        empty=(bid.is_null() & ask.is_null()).sum(),
        nan_price=(bid.is_nan() | ask.is_nan()).sum(),
        quoted=pl.col("instrument_id").n_unique(),
    ).row(0, named=True)
    minutes = _session_minutes(d)
    ts = q.get_column("ts").to_numpy()
    if minutes is not None:
        missing = int(np.count_nonzero(~np.isin(minutes, ts)))
        horizon = minutes
    else:
        missing = None
        horizon = np.unique(ts)
    stale = _stale_count(q, horizon, stale_minutes)
    by_reason: dict[str, int] = {}
    if qr is not None and qr.height:
        by_reason = dict(qr.group_by("reason").len().sort("reason").iter_rows())
    quoted = int(counts.pop("quoted") or 0)
    return {
        "date": d,
        "underlying": u,
        "instruments": n_inst,
        "quoted_instruments": quoted,
        "never_quoted": max(n_inst - quoted, 0),
        "quote_rows": q.height,
        **{k: int(v or 0) for k, v in counts.items()},
        "stale_instruments": stale,
        "session_minutes": None if minutes is None else int(minutes.size),
        "missing_minutes": missing,
        "open_interest_rows": oi.height if oi is not None else 0,
        "quarantined": sum(by_reason.values()),
        "quarantined_by_reason": by_reason,
    }


def _stale_count(q: pl.DataFrame, horizon: np.ndarray, stale_minutes: int) -> int:
    """Instruments with a run of >= ``stale_minutes`` active chain minutes without a record."""
    if q.height == 0 or horizon.size == 0:
        return 0
    ts = q.get_column("ts").to_numpy()
    ids = q.get_column("instrument_id").to_numpy()
    active = np.intersect1d(horizon, ts)  # minutes in which the chain updated
    if active.size == 0:
        return 0
    order = np.lexsort((ts, ids))
    ts, ids = ts[order], ids[order]
    rank = np.searchsorted(active, ts, side="left")  # active minutes before each record
    new = np.r_[True, ids[1:] != ids[:-1]]
    # active minutes strictly between consecutive records of one instrument
    gap = np.where(new, 0, rank - np.r_[0, rank[:-1]] - 1)
    last = np.r_[ids[1:] != ids[:-1], True]
    # a record inside ``active`` occupies its own minute; stretch to the end after the last one
    tail = np.where(last, active.size - np.searchsorted(active, ts, side="right"), 0)
    worst = np.maximum(gap, tail)
    per = np.maximum.reduceat(worst, np.flatnonzero(new))
    return int(np.count_nonzero(per >= stale_minutes))


def check_days(
    store: st.StoreLike,
    underlying: str | None = None,
    days: list[dt.date] | None = None,
    *,
    stale_minutes: int = STALE_MINUTES,
) -> pl.DataFrame:
    """:func:`check_day` for many sessions (default: every quoted day of every underlying),
    one row per (underlying, day); ``quarantined_by_reason`` becomes a string column."""
    unds = [underlying.upper()] if underlying else st.list_underlyings(store, "quotes")
    rows = []
    for u in unds:
        for d in days if days is not None else st.list_days(store, "quotes", u):
            r = check_day(store, u, d, stale_minutes=stale_minutes)
            r["quarantined_by_reason"] = ", ".join(
                f"{k}={v}" for k, v in r["quarantined_by_reason"].items()
            )
            rows.append(r)
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None)


def print_report(report: pl.DataFrame | dict[str, Any], console: Any = None) -> None:
    """Print :func:`check_day` / :func:`check_days` output as a rich table."""
    from rich.table import Table

    console = console or wide_console(160)
    if isinstance(report, dict):
        table = Table(title=f"quality {report['underlying']} {report['date']}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in report.items():
            if k in ("date", "underlying"):
                continue
            if isinstance(v, dict):
                v = ", ".join(f"{a}={b}" for a, b in v.items()) or "-"
            table.add_row(k, "-" if v is None else (f"{v:,}" if isinstance(v, int) else str(v)))
        console.print(table)
        return
    if report.height == 0:
        console.print("no quote partitions in the store")
        return
    table = Table(title="quality report")
    cols = [
        "underlying",
        "date",
        "instruments",
        "quote_rows",
        "crossed",
        "locked",
        "zero_bid",
        "one_sided",
        "empty",
        "stale_instruments",
        "missing_minutes",
        "quarantined",
    ]
    for c in cols:
        table.add_column(c, justify="left" if c in ("underlying", "date") else "right")
    for row in report.select(cols).iter_rows():
        table.add_row(
            *("-" if v is None else (f"{v:,}" if isinstance(v, int) else str(v)) for v in row)
        )
    console.print(table)


# --------------------------------------------------------------------------- settlement values


def _gaps_schema() -> dict[str, Any]:
    from quantlab.data.settlements import MISSING_SCHEMA

    return {"underlying": pl.Utf8, **MISSING_SCHEMA, "stored": pl.Utf8}


def _stored_text(rows: pl.DataFrame) -> str:
    """``vendor_underlying 2823.89; parity_estimate 2824.90 ±1.11 (1 pair)``."""
    out = []
    for r in rows.iter_rows(named=True):
        text = f"{r['source']} {r['value']:.2f}"
        if r["std_error"] is not None:
            text += f" ±{r['std_error']:.2f}"
        if r["source"] == "parity_estimate" and r["n_pairs"] is not None:
            text += f" ({r['n_pairs']} pair{'' if r['n_pairs'] == 1 else 's'})"
        out.append(text)
    return "; ".join(out) or "-"


def settlement_gaps(
    store: st.StoreLike, underlying: str | None = None, day: dt.date | str | None = None
) -> pl.DataFrame:
    """Expiries without an ``official`` or ``index`` settlement value.

    :func:`quantlab.data.settlements.missing` for ``underlying`` (default: every underlying
    with instruments), limited to expiries on ``day`` when given, plus ``stored``: every
    stored source of that expiry and its value (text, most trusted first).

    Returns
    -------
    polars.DataFrame
        ``underlying, root, expiry, style, best_source, value, std_error, n_pairs, stored``.
    """
    from quantlab.data import settlements

    unds = [underlying.upper()] if underlying else st.list_underlyings(store, "instruments")
    frames = []
    for u in unds:
        gaps = settlements.missing(store, underlying=u)
        if day is not None:
            gaps = gaps.filter(pl.col("expiry") == layout.as_date(day))
        stored = settlements.read(store, underlying=u)
        text = [
            _stored_text(stored.filter((pl.col("root") == r) & (pl.col("expiry") == e)))
            for r, e in gaps.select("root", "expiry").iter_rows()
        ]
        frames.append(
            gaps.with_columns(stored=pl.Series(text, dtype=pl.Utf8)).select(
                pl.lit(u).alias("underlying"), pl.all()
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema=_gaps_schema())


def print_settlement_gaps(gaps: pl.DataFrame, console: Any = None) -> None:
    """Print :func:`settlement_gaps` output: the count, then one row per expiry."""
    from rich.table import Table

    console = console or wide_console(160)
    n = gaps.height
    if n == 0:
        console.print("settlement values: every expiry in the store has an official or index value")
        return
    console.print(
        f"settlement values: {n} expir{'y' if n == 1 else 'ies'} without an official or index "
        "value (add them with: quantlab data import-settlements FILE.csv)"
    )
    table = Table()
    for c in ("underlying", "root", "expiry", "style", "best source", "value", "std error"):
        table.add_column(c, justify="right" if c in ("value", "std error") else "left")
    table.add_column("stored sources")
    for r in gaps.iter_rows(named=True):
        table.add_row(
            r["underlying"],
            r["root"],
            str(r["expiry"]),
            r["style"],
            r["best_source"] or "none",
            "-" if r["value"] is None else f"{r['value']:.2f}",
            "-" if r["std_error"] is None else f"{r['std_error']:.2f}",
            r["stored"],
        )
    console.print(table)


__all__ = [
    "REASONS",
    "STALE_MINUTES",
    "check_day",
    "check_days",
    "print_report",
    "print_settlement_gaps",
    "settlement_gaps",
    "split_quotes",
]
