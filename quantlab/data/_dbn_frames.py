"""Databento records of one session to the store's frames (the pure step of :mod:`quantlab.data.ingest`).

The rules (session dates, prices, instruments, open interest, quarantine) are described in
:mod:`quantlab.data.ingest`; this module turns decoded structured arrays into the
``instruments``, ``quotes``, ``open_interest`` and ``quarantine`` frames of one day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from quantlab.data import store as st
from quantlab.data.quality import split_quotes

UNDEF_PRICE = np.iinfo(np.int64).max
UNDEF_TS = np.iinfo(np.uint64).max
PRICE_SCALE = 1e9
STAT_OPEN_INTEREST = 9
_OCC_RE = r"^[A-Z0-9 ]{6}[0-9]{6}[CP][0-9]{8}$"


# --------------------------------------------------------------------------- record -> frame


def _px(values: np.ndarray) -> np.ndarray:
    """Fixed-point prices to float (NaN where undefined)."""
    v = np.asarray(values, dtype=np.int64)
    out = v / PRICE_SCALE
    out[v == UNDEF_PRICE] = np.nan
    return out


def _text(values: np.ndarray) -> pl.Series:
    return pl.Series(np.char.decode(np.asarray(values), "ascii", "replace")).str.strip_chars("\x00")


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
class DayInputs:
    defs: list[np.ndarray] = field(default_factory=list)
    cbbo: list[np.ndarray] = field(default_factory=list)
    stats: list[np.ndarray] = field(default_factory=list)
    fallback_underlying: set[str] = field(default_factory=set)


def _concat(parts: list[np.ndarray], fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Concatenate the named fields of structured arrays (their dtypes may differ by version)."""
    return {f: np.concatenate([p[f] for p in parts]) if parts else np.empty(0) for f in fields}


_Frames = dict[tuple[str, str], pl.DataFrame]  # (table, underlying) -> partition
_Quarantine = list[tuple[str, pl.DataFrame]]  # (underlying, quarantined rows)


def build_day(
    day: dt.date, inputs: DayInputs, store: st.StoreLike
) -> dict[tuple[str, str], pl.DataFrame]:
    """Every partition of one session date, keyed by (table, underlying)."""
    inst, q_inst = _instruments(_merge_defs(inputs.defs), day)
    index = _UnderlyingIndex.of(_known_instruments(inst, store, day), inputs.fallback_underlying)
    out: _Frames = {}
    quarantine: _Quarantine = []
    for key, g in inst.partition_by("underlying", as_dict=True, maintain_order=True).items():
        out[("instruments", str(key[0]))] = g
    if q_inst.height:
        quarantine.append((index.unknown, q_inst))
    if inputs.cbbo:
        frames, bad = _quote_frames(inputs.cbbo, index)
        out.update(frames)
        quarantine += bad
    if inputs.stats:
        frames, bad = _open_interest_frames(inputs.stats, day, index)
        out.update(frames)
        quarantine += bad
    by_u: dict[str, list[pl.DataFrame]] = defaultdict(list)
    for u, frame in quarantine:
        if frame.height:
            by_u[u].append(frame)
    for u, frames_u in by_u.items():
        out[("quarantine", u)] = pl.concat(frames_u)
    return out


def _merge_defs(parts: list[np.ndarray]) -> np.ndarray:
    """The definition records of every file in one array (empty without any)."""
    if parts and len({p.dtype for p in parts}) > 1:  # mixed DBN versions
        cols = ("instrument_id", "ts_recv", "raw_symbol", "underlying", "contract_multiplier")
        c = _concat(parts, cols)
        defs = np.empty(c["ts_recv"].size, dtype=[(k, c[k].dtype) for k in cols])
        for k in cols:
            defs[k] = c[k]
        return defs
    if parts:
        return np.concatenate(parts)
    return np.empty(0)


def _known_instruments(inst: pl.DataFrame, store: st.StoreLike, day: dt.date) -> pl.DataFrame:
    """``inst`` and the instruments already in the store for ``day`` (definitions ingested in
    an earlier run) that ``inst`` does not redefine."""
    known = [inst]
    for u in st.list_underlyings(store, "instruments"):
        old = st.read_partition(store, "instruments", u, day)
        if old is not None and old.height:
            known.append(
                old.filter(~pl.col("instrument_id").is_in(inst["instrument_id"].implode()))
            )
    return pl.concat(known) if len(known) > 1 else inst


@dataclass(frozen=True, eq=False)
class _UnderlyingIndex:
    """The underlying of each known instrument id, as small integer codes into ``names``
    (cheap to carry and partition; -1 = no definition)."""

    ids: np.ndarray
    """Known instrument ids, sorted."""
    codes: np.ndarray
    """int16 code of the underlying of each of ``ids``."""
    names: np.ndarray
    """Underlying names, sorted."""
    unknown: str
    """Underlying of records without a definition: the files' only underlying, else the
    day's only one, else ``"UNKNOWN"``."""

    @classmethod
    def of(cls, inst_all: pl.DataFrame, fallback_underlying: set[str]) -> _UnderlyingIndex:
        ids = inst_all.get_column("instrument_id").to_numpy()
        order = np.argsort(ids, kind="stable")
        names, codes = np.unique(
            inst_all.get_column("underlying").to_numpy()[order].astype(str), return_inverse=True
        )
        unknown = (
            sorted(fallback_underlying)[0]
            if len(fallback_underlying) == 1
            else (str(names[0]) if names.size == 1 else "UNKNOWN")
        )
        return cls(ids[order], codes.astype(np.int16), names, unknown)

    def name(self, code: Any) -> str:
        """The underlying of a code (``unknown`` for -1)."""
        return self.unknown if int(code) < 0 else str(self.names[int(code)])

    def lookup(self, iid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found, code)`` of each instrument id: whether it has a definition, and the code
        of its underlying (-1 without)."""
        if self.ids.size == 0:
            return np.zeros(iid.size, bool), np.full(iid.size, -1, np.int16)
        pos = np.searchsorted(self.ids, iid)
        pos_c = np.minimum(pos, self.ids.size - 1)
        found = (pos < self.ids.size) & (self.ids[pos_c] == iid)
        return found, np.where(found, self.codes[pos_c], np.int16(-1))


def _quote_frames(cbbo: list[np.ndarray], index: _UnderlyingIndex) -> tuple[_Frames, _Quarantine]:
    """``quotes`` partitions of the cbbo records and the quarantined quotes."""
    c = _concat(
        cbbo,
        ("ts_recv", "instrument_id", "bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00"),
    )
    ts = c["ts_recv"]
    iid = c["instrument_id"].astype(np.uint32)
    _, und = index.lookup(iid)
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
    good, bad = split_quotes(qf, index.ids)
    quarantine: _Quarantine = []
    for (u,), g in bad.partition_by("_u", as_dict=True).items():
        quarantine.append((index.name(u), g.select(list(st.QUARANTINE_SCHEMA))))
    out: _Frames = {}
    if index.names.size == 1:
        out[("quotes", index.name(0))] = good.drop("_u")
    else:
        for (u,), g in good.partition_by("_u", as_dict=True).items():
            out[("quotes", index.name(u))] = g.drop("_u")
    return out, quarantine


def _open_interest_frames(
    stats: list[np.ndarray], day: dt.date, index: _UnderlyingIndex
) -> tuple[_Frames, _Quarantine]:
    """``open_interest`` partitions of the statistics records (the last open interest of each
    instrument) and the quarantined ones (no definition, or undefined quantity)."""
    c = _concat(stats, ("ts_recv", "instrument_id", "stat_type"))
    # quantity is i4 in DBN v1/v2 and i8 in v3: find "undefined" per part before concat.
    c["undef"] = np.concatenate([p["quantity"] == np.iinfo(p["quantity"].dtype).max for p in stats])
    c["quantity"] = np.concatenate([p["quantity"].astype(np.int64) for p in stats])
    oi = c["stat_type"] == STAT_OPEN_INTEREST
    qty = c["quantity"][oi]
    undef_q = c["undef"][oi]
    ts = c["ts_recv"][oi].astype(np.int64)
    iid = c["instrument_id"][oi].astype(np.uint32)
    found, und = index.lookup(iid)
    bad_mask = ~found | undef_q
    quarantine: _Quarantine = []
    if bad_mask.any():
        why = np.where(~found, "no_definition", "undefined_open_interest")
        for r in np.unique(why[bad_mask]):
            m = bad_mask & (why == r)
            for u in np.unique(und[m]):
                mm = m & (und == u)
                quarantine.append(
                    (index.name(u), _q_rows("open_interest", ts[mm], iid[mm], str(r)))
                )
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
    out: _Frames = {}
    for (u,), gg in g.partition_by("_u", as_dict=True).items():
        out[("open_interest", index.name(u))] = gg.select(list(st.OPEN_INTEREST_SCHEMA))
    return out, quarantine
