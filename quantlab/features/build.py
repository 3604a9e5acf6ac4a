"""Build and load point-in-time features of stage-1 candidates (see :mod:`.definitions`).

Storage
-------
* Parquet, one file per entry day: ``<store>/features/<name>-<version>/date=YYYY-MM-DD/
  part-0.parquet`` (written atomically; a day whose file already holds every candidate of that
  day is skipped, so rebuilding is incremental).
* DuckDB ``<store>/features.duckdb``: table ``features`` keyed by ``(feature_set_version,
  candidate_id)`` (one wide row per candidate, a column per feature; columns of a new feature
  set are added on first write) and table ``feature_sets`` (version, name, parameters). A single
  parent process writes the database; missing rows are re-synced from the Parquet files.

Point in time: every value is computed from quotes stamped at or before the candidate's
``entry_ts`` (the chain snapshot at entry, the day's spot-proxy series up to entry, and the
previous sessions' whole-day series). A candidate id appearing twice in the stage-1 result
(two rules picking the same structure at the same time) gets one row.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import DataError, InputError
from quantlab.features.definitions import (
    CODE_VERSION,
    DEFAULT,
    FEATURES,
    MAX_LEGS,
    FeatureParams,
    FeatureSet,
)
from quantlab.volatility import vix_from_chain

NS_PER_MIN = 60_000_000_000
MIN_PER_YEAR = 525_600.0
RV_MINUTES_PER_YEAR = 252.0 * 390.0
"""Annualisation of intraday realised variance: 252 sessions of 390 cash-index minutes."""
DB_FILE = "features.duckdb"
_KEY_COLUMNS = ("candidate_id", "entry_ts", "entry_date")


# --------------------------------------------------------------------------- paths


def features_dir(store: st.StoreLike, feature_set: FeatureSet) -> Path:
    """``<store>/features/<name>-<version>``."""
    return st.store_root(store) / "features" / feature_set.folder_name


def features_file(store: st.StoreLike, feature_set: FeatureSet, day: dt.date) -> Path:
    """Parquet file of one entry day of a feature set."""
    return features_dir(store, feature_set) / f"date={day.isoformat()}" / "part-0.parquet"


# --------------------------------------------------------------------------- pure pieces


def realized_vol(
    prices: np.ndarray, minutes: np.ndarray, per_year: float = RV_MINUTES_PER_YEAR
) -> float:
    """Annualised realised vol of a sampled price path: ``sqrt(sum r^2 / elapsed * per_year)``.

    Parameters
    ----------
    prices : array
        Positive prices in time order; NaN samples are skipped (returns span the gap).
    minutes : array
        Sample times in minutes (same length).
    per_year : float
        Minutes per year of trading (default 252 × 390).

    Returns
    -------
    float
        NaN with fewer than two finite samples or no elapsed time.

    Examples
    --------
    >>> p = 100 * np.exp(np.array([0.0, 0.01, 0.0, 0.01]))
    >>> round(realized_vol(p, np.array([0.0, 5, 10, 15]), per_year=15.0), 12)
    0.017320508076
    """
    x = np.asarray(prices, dtype=np.float64)
    t = np.asarray(minutes, dtype=np.float64)
    ok = np.isfinite(x) & (x > 0)
    if ok.sum() < 2:
        return math.nan
    lx, tt = np.log(x[ok]), t[ok]
    elapsed = float(tt[-1] - tt[0])
    if elapsed <= 0:
        return math.nan
    r = np.diff(lx)
    return math.sqrt(float(np.sum(r * r)) / elapsed * per_year)


def close_to_close_vol(closes: np.ndarray) -> float:
    """``sqrt(252 * mean(r^2))`` of the log returns of ``closes`` (oldest first); NaN if any
    close is missing or fewer than two closes."""
    c = np.asarray(closes, dtype=np.float64)
    if c.size < 2 or not np.all(np.isfinite(c) & (c > 0)):
        return math.nan
    r = np.diff(np.log(c))
    return math.sqrt(252.0 * float(np.mean(r * r)))


def calendar_features(entry_ts: np.ndarray, events: list[dt.date]) -> dict[str, np.ndarray]:
    """``weekday``, ``days_to_monthly``, ``minutes_since_open``, ``is_event_day``,
    ``days_to_next_event`` for entry times (int64 UTC ns)."""
    ts = np.asarray(entry_ts, dtype=np.int64)
    n = ts.size
    out: dict[str, np.ndarray] = {
        "weekday": np.zeros(n, np.int32),
        "days_to_monthly": np.zeros(n, np.int32),
        "minutes_since_open": np.zeros(n),
        "is_event_day": np.zeros(n, np.int32),
        "days_to_next_event": np.full(n, np.nan),
    }
    ev = set(events)
    for i, t in enumerate(ts):
        d = read.session_date(int(t))
        out["weekday"][i] = d.weekday()
        m = calendar.monthly_expiry(d.year, d.month)
        if m < d:
            y, mo = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
            m = calendar.monthly_expiry(y, mo)
        out["days_to_monthly"][i] = (m - d).days
        out["minutes_since_open"][i] = (int(t) - calendar.option_open_ns(d)) / NS_PER_MIN
        out["is_event_day"][i] = int(d in ev)
        j = bisect.bisect_left(events, d)
        if j < len(events):
            out["days_to_next_event"][i] = (events[j] - d).days
    return out


# --------------------------------------------------------------------------- spot proxy


def spot_series(
    dq: read.DayQuotes,
    rate: float,
    max_age_s: float,
    n_pairs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-minute spot proxy of one session: ``(minute-end stamps, S)``, S NaN when unknown.

    From the nearest PM (else AM) expiry not expiring that day (the expiring one if nothing
    else is listed): per minute, the median of ``K + (C - P)/df`` over the ``n_pairs`` fresh
    two-sided pairs with the smallest ``|C - P|``, times ``df = exp(-rate T)``. Each minute
    uses quotes stamped at or before it only.
    """
    day = dq.day
    minutes = dq.minutes()
    S = np.full(minutes.size, np.nan)
    if len(dq) == 0 or dq.ts.size == 0:
        return minutes, S
    today = np.datetime64(day, "D")
    choice = None
    for root in ("SPXW", "SPX"):
        m = dq.root == root
        later = m & (dq.expiry > today)
        if later.any():
            choice = (root, dq.expiry[later].min())
            break
    if choice is None:
        m = dq.root == "SPXW"
        if not m.any():
            return minutes, S
        choice = ("SPXW", dq.expiry[m].min())
        minutes = dq.minutes(expiring=True)
        S = np.full(minutes.size, np.nan)
    root, expiry = choice
    pos = np.flatnonzero((dq.root == root) & (dq.expiry == expiry))
    calls, puts = pos[dq.is_call[pos]], pos[~dq.is_call[pos]]
    ks, ci, pi = np.intersect1d(dq.strike[calls], dq.strike[puts], return_indices=True)
    if ks.size == 0:
        return minutes, S
    ci, pi = calls[ci], puts[pi]
    grid = dq.grid_index(minutes, np.concatenate([ci, pi]))  # [n_min, 2m]
    has = grid >= 0
    g = np.maximum(grid, 0)
    bid = np.where(has, dq.bid[g], np.nan)
    ask = np.where(has, dq.ask[g], np.nan)
    age = np.where(has, (minutes[:, None] - dq.ts[g]) / 1e9, np.inf)
    with np.errstate(invalid="ignore"):
        ok = (bid > 0) & (ask >= bid) & (age <= max_age_s)
    mid = 0.5 * (bid + ask)
    n = ks.size
    valid = ok[:, :n] & ok[:, n:]
    diff = mid[:, :n] - mid[:, n:]
    settle = calendar.settlement_ns(str(root), expiry.astype(dt.date))
    T = (settle - minutes) / NS_PER_MIN / MIN_PER_YEAR
    df = np.exp(-rate * T)
    est = ks[None, :] + diff / df[:, None]
    gap = np.where(valid, np.abs(diff), np.inf)
    k = min(n_pairs, n)
    best = np.argsort(gap, axis=1, kind="stable")[:, :k]
    rows = np.arange(minutes.size)[:, None]
    pick = np.where(np.isfinite(gap[rows, best]), est[rows, best], np.nan)
    any_ok = np.isfinite(pick).any(axis=1)
    F = np.full(minutes.size, np.nan)
    if any_ok.any():
        F[any_ok] = np.nanmedian(pick[any_ok], axis=1)
    return minutes, F * df


class _SpotCache:
    """Spot-proxy series per session, loaded on demand (NaN for sessions not in the store)."""

    def __init__(self, store: st.StoreLike, underlying: str, fs: FeatureSet) -> None:
        self.store, self.underlying, self.p = store, underlying, fs.params
        self.stored = set(st.list_days(store, "quotes", underlying))
        self._series: dict[dt.date, tuple[np.ndarray, np.ndarray]] = {}

    def series(self, day: dt.date) -> tuple[np.ndarray, np.ndarray]:
        if day not in self._series:
            if day not in self.stored:
                self._series[day] = (np.empty(0, np.int64), np.empty(0))
            else:
                dq = read.load_day(self.store, self.underlying, day)
                p = self.p
                self._series[day] = spot_series(dq, p.rate, p.max_age_s, p.forward_pairs)
        return self._series[day]

    def close(self, day: dt.date) -> float:
        _, s = self.series(day)
        f = np.flatnonzero(np.isfinite(s))
        return float(s[f[-1]]) if f.size else math.nan

    def previous_closes(self, day: dt.date, n: int) -> np.ndarray:
        """Closes of the ``n`` sessions before ``day``, oldest first."""
        out, d = [], day
        for _ in range(n):
            d = calendar.previous_session(d)
            out.append(self.close(d))
        return np.array(out[::-1])


# --------------------------------------------------------------------------- chain features


def _interp_in_range(x0: float, x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        return math.nan
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if not (x[0] <= x0 <= x[-1]):
        return math.nan
    return float(np.interp(x0, x, y))


def _chain_features(
    snap_chain: pl.DataFrame, skew_delta: float
) -> dict[tuple[str, dt.date], tuple[float, float, int]]:
    """Per (root, expiry): (ATM IV at k = 0, 25-delta put skew, dte)."""
    out: dict[tuple[str, dt.date], tuple[float, float, int]] = {}
    c = snap_chain.sort(["root", "expiry", "strike", "right"])
    root = c["root"].to_numpy().astype(str)
    exp_d = c["expiry"].to_numpy().astype("datetime64[D]")
    K = c["strike"].to_numpy().astype(np.float64)
    put = (c["right"] == "P").to_numpy()
    iv = c["iv"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    F = c["forward"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    d = np.abs(c["delta"].cast(pl.Float64).fill_null(np.nan).to_numpy())
    dte = c["dte"].fill_null(-1).to_numpy()
    if c.height == 0:
        return out
    change = np.flatnonzero((root[1:] != root[:-1]) | (exp_d[1:] != exp_d[:-1])) + 1
    bounds = np.concatenate([[0], change, [c.height]])
    for lo, hi in itertools.pairwise(bounds.tolist()):
        key = (str(root[lo]), exp_d[lo].astype(dt.date))
        fwd = F[lo:hi][np.isfinite(F[lo:hi])]
        if fwd.size == 0:
            out[key] = (math.nan, math.nan, int(dte[lo]))
            continue
        k = np.log(K[lo:hi] / fwd[0])
        uk, first = np.unique(k, return_index=True)
        atm = _interp_in_range(0.0, uk, iv[lo:hi][first])
        pm = put[lo:hi]
        skew = _interp_in_range(skew_delta, d[lo:hi][pm], iv[lo:hi][pm]) - atm
        out[key] = (atm, skew, int(dte[lo]))
    return out


# --------------------------------------------------------------------------- one day


def _compute_day(
    store: st.StoreLike,
    underlying: str,
    day: dt.date,
    cands: pl.DataFrame,
    rows: np.ndarray,
    res: Any,
    fs: FeatureSet,
    events: list[dt.date],
    spot: _SpotCache,
) -> pl.DataFrame:
    """Features of the candidates ``cands`` (rows ``rows`` of the stage-1 arrays) of ``day``."""
    p = fs.params
    dq = read.load_day(store, underlying, day)
    entry_ts = cands["entry_ts"].to_numpy().astype(np.int64)
    f: dict[str, np.ndarray] = {name: np.full(cands.height, np.nan) for name in FEATURES}
    _spread_features(f, rows, res)
    f["dte"] = cands["dte"].to_numpy().astype(np.float64)
    _structure_features(f, cands, entry_ts, dq)
    _chain_features_at_entry(f, cands, entry_ts, dq, p)
    _underlying_features(f, entry_ts, day, spot, p)
    f["iv_minus_rv5d"] = f["atm_iv"] - f["rv_5d"]
    f.update({k: v.astype(np.float64) for k, v in calendar_features(entry_ts, events).items()})
    return _features_frame(cands, f)


def _spread_features(f: dict[str, np.ndarray], rows: np.ndarray, res: Any) -> None:
    """Fill ``credit_mid`` and ``leg<j>_rel_spread`` of ``f`` from the entry quotes of the
    stage-1 result ``res`` (rows ``rows``)."""
    qty = np.asarray(res.qty)[rows].astype(np.float64)
    eb, ea = np.asarray(res.entry_bid)[rows], np.asarray(res.entry_ask)[rows]
    has = qty != 0
    mid = 0.5 * (eb + ea)
    f["credit_mid"] = -np.where(has, qty * mid, 0.0).sum(axis=1)
    f["credit_mid"][~np.all(np.isfinite(mid) | ~has, axis=1)] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(has, (ea - eb) / mid, np.nan)
    for j in range(MAX_LEGS):
        f[f"leg{j}_rel_spread"] = rel[:, j]


def _structure_features(
    f: dict[str, np.ndarray], cands: pl.DataFrame, entry_ts: np.ndarray, dq: read.DayQuotes
) -> None:
    """Fill ``T``, ``short_delta_abs``, ``long_delta_abs``, ``width``, ``max_quote_age_s`` and
    ``credit_to_width`` of ``f`` from each candidate's legs (``credit_mid`` already filled)."""
    sym_pos = {s: i for i, s in enumerate(dq.instruments["raw_symbol"].to_list())}
    for i, (legs, root, expiry, ts_i) in enumerate(
        zip(
            cands["legs"].to_list(),
            cands["root"].to_list(),
            cands["expiry"].to_list(),
            entry_ts,
            strict=True,
        )
    ):
        ts = int(ts_i)
        f["T"][i] = (calendar.settlement_ns(root, expiry) - ts) / NS_PER_MIN / MIN_PER_YEAR
        shorts = [abs(leg["delta"]) for leg in legs if leg["quantity"] < 0]
        longs = [abs(leg["delta"]) for leg in legs if leg["quantity"] > 0]
        f["short_delta_abs"][i] = max(shorts) if shorts else math.nan
        f["long_delta_abs"][i] = max(longs) if longs else math.nan
        widths = [
            max(ks) - min(ks)
            for ks in ([leg["strike"] for leg in legs if leg["right"] == r] for r in ("C", "P"))
            if ks
        ]
        f["width"][i] = max(widths) if widths else math.nan
        pos = [sym_pos.get(leg["occ"], -1) for leg in legs]
        if pos and min(pos) >= 0:
            a = dq.snapshot_arrays(int(ts), np.array(pos, dtype=np.int64))
            f["max_quote_age_s"][i] = float(np.max(a["age_s"]))
    with np.errstate(invalid="ignore", divide="ignore"):
        f["credit_to_width"] = np.where(f["width"] > 0, f["credit_mid"] / f["width"], np.nan)


def _chain_features_at_entry(
    f: dict[str, np.ndarray],
    cands: pl.DataFrame,
    entry_ts: np.ndarray,
    dq: read.DayQuotes,
    p: FeatureParams,
) -> None:
    """Fill ``atm_iv``, ``put_skew_25d``, ``term_slope`` and ``vix30`` of ``f`` from the chain
    snapshot at each distinct entry time (``p``: the feature set's parameters)."""
    from quantlab.chain.snapshot import build_snapshot

    for ts in np.unique(entry_ts).tolist():
        at = np.flatnonzero(entry_ts == ts)
        chain = dq.snapshot(int(ts), _key="all")
        snap = build_snapshot(chain, int(ts), rate=p.rate, max_age_s=p.max_age_s)
        per = _chain_features(snap.chain, p.skew_delta)
        far = sorted(
            (dte, r != "SPXW", atm)
            for (r, _), (atm, _, dte) in per.items()
            if dte >= p.term_min_dte
        )
        far_atm = far[0][2] if far else math.nan
        v30 = vix_from_chain(
            chain, int(ts), p.rate, min_days=p.vix_min_days, max_days=p.vix_max_days
        )
        for i in at.tolist():
            atm, skew, _ = per.get((cands["root"][i], cands["expiry"][i]), (math.nan, math.nan, 0))
            f["atm_iv"][i], f["put_skew_25d"][i] = atm, skew
            f["term_slope"][i] = far_atm - atm
            f["vix30"][i] = v30


def _underlying_features(
    f: dict[str, np.ndarray], entry_ts: np.ndarray, day: dt.date, spot: _SpotCache, p: FeatureParams
) -> None:
    """Fill ``rv_5d``, ``rv_20d``, ``rv_30m``, ``rv_day``, ``move_since_open`` and
    ``overnight_gap`` of ``f`` from the spot-proxy series up to each entry time and the
    previous sessions' closes (``p``: the feature set's parameters)."""
    minutes, S = spot.series(day)
    tmin = (minutes - minutes[0]) / NS_PER_MIN if minutes.size else minutes.astype(float)
    closes = spot.previous_closes(day, max(p.rv_days_short, p.rv_days_long) + 1)
    rv5 = close_to_close_vol(closes[-(p.rv_days_short + 1) :])
    rv20 = close_to_close_vol(closes[-(p.rv_days_long + 1) :])
    finite = np.flatnonzero(np.isfinite(S))
    for i, ts in enumerate(entry_ts.tolist()):
        f["rv_5d"][i], f["rv_20d"][i] = rv5, rv20
        last = int(np.searchsorted(minutes, ts, side="right")) - 1
        if last < 0:
            continue
        win = np.arange(last, max(last - p.rv_window_min, 0) - 1, -p.rv_step_min)[::-1]
        win = win[win >= last - p.rv_window_min]
        f["rv_30m"][i] = realized_vol(S[win], tmin[win])
        day_idx = np.arange(last, -1, -p.rv_step_min)[::-1]
        f["rv_day"][i] = realized_vol(S[day_idx], tmin[day_idx])
        seen = finite[finite <= last]
        if seen.size:
            s_first, s_now = S[seen[0]], S[seen[-1]]
            f["move_since_open"][i] = math.log(s_now / s_first)
            f["overnight_gap"][i] = math.log(s_first / closes[-1])


def _features_frame(cands: pl.DataFrame, f: dict[str, np.ndarray]) -> pl.DataFrame:
    """The key columns of ``cands`` and the feature arrays ``f`` as a frame of the stored dtypes."""
    cols: list[pl.Series] = [cands[c] for c in _KEY_COLUMNS]
    for name, (dtype, _) in FEATURES.items():
        v = f[name]
        if dtype == "Int32":
            cols.append(pl.Series(name, v, nan_to_null=True).cast(pl.Int32))
        else:
            cols.append(pl.Series(name, v, dtype=pl.Float64))
    return pl.DataFrame(cols)


# --------------------------------------------------------------------------- storage


def _schema() -> dict[str, Any]:
    out: dict[str, Any] = {"candidate_id": pl.Utf8, "entry_ts": pl.Int64, "entry_date": pl.Date}
    for name, (dtype, _) in FEATURES.items():
        out[name] = pl.Int32 if dtype == "Int32" else pl.Float64
    return out


def _write_day(path: Path, df: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    df.write_parquet(tmp)
    os.replace(tmp, path)


def _connect(store: st.StoreLike, *, read_only: bool = False, wait_s: float = 30.0) -> Any:
    """Open ``<store>/features.duckdb``, waiting up to ``wait_s`` while another process holds it."""
    import time

    import duckdb

    path = st.store_root(store) / DB_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if time.monotonic() > deadline:
                raise DataError(
                    f"feature database {path} could not be opened ({exc}); another process "
                    "holds it: one writer at a time."
                ) from exc
            time.sleep(0.05)


def _sync_db(store: st.StoreLike, fs: FeatureSet, df: pl.DataFrame) -> int:
    """Upsert the rows of ``df`` missing from the DuckDB table; returns rows written."""
    con = _connect(store)
    try:
        key = ", ".join(
            f"{c} {t}"
            for c, t in (
                ("feature_set_version", "VARCHAR"),
                ("feature_set_name", "VARCHAR"),
                ("candidate_id", "VARCHAR"),
                ("entry_ts", "BIGINT"),
                ("entry_date", "DATE"),
            )
        )
        con.execute(f"CREATE TABLE IF NOT EXISTS features ({key})")
        con.execute(
            "CREATE TABLE IF NOT EXISTS feature_sets (feature_set_version VARCHAR, "
            "name VARCHAR, params VARCHAR, code_version VARCHAR, events_file VARCHAR)"
        )
        have_cols = {r[0] for r in con.execute("DESCRIBE features").fetchall()}
        for name, (dtype, _) in FEATURES.items():
            if name not in have_cols:
                sql_t = "INTEGER" if dtype == "Int32" else "DOUBLE"
                con.execute(f'ALTER TABLE features ADD COLUMN "{name}" {sql_t}')
        v = fs.version
        if not con.execute(
            "SELECT 1 FROM feature_sets WHERE feature_set_version = ?", [v]
        ).fetchone():
            con.execute(
                "INSERT INTO feature_sets VALUES (?, ?, ?, ?, ?)",
                [
                    v,
                    fs.name,
                    json.dumps(asdict(fs.params), sort_keys=True),
                    CODE_VERSION,
                    str(fs.events_file),
                ],
            )
        have = {
            r[0]
            for r in con.execute(
                "SELECT candidate_id FROM features WHERE feature_set_version = ?", [v]
            ).fetchall()
        }
        new = df.filter(~pl.col("candidate_id").is_in(list(have)))
        if new.height == 0:
            return 0
        new = new.with_columns(
            pl.lit(v).alias("feature_set_version"), pl.lit(fs.name).alias("feature_set_name")
        )
        tbl = new.to_arrow()  # noqa: F841  (read by DuckDB's replacement scan)
        names = ["feature_set_version", "feature_set_name", *_KEY_COLUMNS, *FEATURES]
        cols = ", ".join(f'"{c}"' for c in names)
        con.execute("BEGIN")
        con.execute(f"INSERT INTO features ({cols}) SELECT {cols} FROM tbl")
        con.execute("COMMIT")
        return new.height
    finally:
        con.close()


# --------------------------------------------------------------------------- public API


def build_features(
    store: st.StoreLike,
    stage1_result: Any,
    feature_set: FeatureSet = DEFAULT,
    *,
    underlying: str = "SPX",
    progress: bool = False,
) -> pl.DataFrame:
    """Compute (or load) the features of every candidate of a stage-1 result.

    Parameters
    ----------
    store : Store or path
        The data store the stage-1 result was run on; features are written under it.
    stage1_result : quantlab.backtest.stage1.Stage1Result
        Candidates with entry quotes (``entry_bid``/``entry_ask``/``qty`` arrays).
    feature_set : FeatureSet
        Definitions and parameters; its ``version`` keys the stored rows.
    underlying : str
        Store partition of the quotes (``"SPX"``).
    progress : bool
        Show a progress bar over entry days.

    Returns
    -------
    polars.DataFrame
        One row per distinct ``candidate_id`` in entry order: ``candidate_id, entry_ts,
        entry_date`` and the feature columns of :data:`.definitions.FEATURES`.

    Notes
    -----
    Days whose Parquet file already holds every candidate of that day are read, not
    recomputed; new candidates of a day are computed and merged into its file.
    """
    if not isinstance(feature_set, FeatureSet):
        raise InputError(f"feature_set must be a FeatureSet (got {type(feature_set).__name__}).")
    cands = getattr(stage1_result, "candidates", None)
    if not isinstance(cands, pl.DataFrame):
        raise InputError(
            "stage1_result must be a Stage1Result (from run_stage1/load_stage1); "
            f"got {type(stage1_result).__name__}."
        )
    cands = cands.with_row_index("_row")
    first = cands.unique("candidate_id", keep="first", maintain_order=True)
    events = calendar.load_events(feature_set.events_file)
    spot = _SpotCache(store, underlying, feature_set)
    days = sorted(set(first["entry_date"].to_list()))
    it: Any = days
    if progress:
        from tqdm import tqdm

        it = tqdm(days, desc=f"features {feature_set.folder_name}", unit="day")
    parts = []
    for day in it:
        todo = first.filter(pl.col("entry_date") == day)
        parts.append(
            _build_day(store, underlying, day, todo, stage1_result, feature_set, events, spot)
        )
    out = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame(schema=_schema())
    want = first.select("candidate_id").with_row_index("_order")
    out = want.join(out, on="candidate_id", how="inner").sort("_order").drop("_order")
    _sync_db(store, feature_set, out)
    return out


def _build_day(
    store: st.StoreLike,
    underlying: str,
    day: dt.date,
    todo: pl.DataFrame,
    res: Any,
    fs: FeatureSet,
    events: list[dt.date],
    spot: _SpotCache,
) -> pl.DataFrame:
    """Features of the candidates ``todo`` of ``day`` (with their stage-1 ``_row``): those
    already in the day's Parquet file are read, the others computed and merged into it."""
    path = features_file(store, fs, day)
    done = pl.read_parquet(path) if path.is_file() else None
    if done is not None:
        todo = todo.filter(~pl.col("candidate_id").is_in(done["candidate_id"].to_list()))
    if todo.height == 0 and done is not None:
        return done
    rows = todo["_row"].to_numpy().astype(np.int64)
    new = _compute_day(store, underlying, day, todo.drop("_row"), rows, res, fs, events, spot)
    merged = new if done is None else pl.concat([done, new], how="vertical_relaxed")
    merged = merged.sort(["entry_ts", "candidate_id"]).cast(_schema())  # type: ignore[arg-type]
    _write_day(path, merged)
    return merged


def load_features(
    store: st.StoreLike,
    feature_set: FeatureSet = DEFAULT,
    candidate_ids: Any = None,
) -> pl.DataFrame:
    """Stored features of a feature set from ``<store>/features.duckdb``.

    Parameters
    ----------
    store : Store or path
    feature_set : FeatureSet
        Which version to read.
    candidate_ids : list of str, optional
        Only these candidates (default: all of that version).

    Returns
    -------
    polars.DataFrame
        ``candidate_id, entry_ts, entry_date`` and the feature columns, sorted by
        ``(entry_ts, candidate_id)``.

    Raises
    ------
    DataError
        No feature database in the store (run :func:`build_features` first).
    """
    path = st.store_root(store) / DB_FILE
    if not path.is_file():
        raise DataError(f"no feature database at {path}; run build_features(store, stage1) first.")
    cols = ", ".join(f'"{c}"' for c in (*_KEY_COLUMNS, *FEATURES))
    sql = f"SELECT {cols} FROM features WHERE feature_set_version = ?"
    args: list[Any] = [feature_set.version]
    con = _connect(store, read_only=True)
    try:
        names = {r[0] for r in con.execute("DESCRIBE features").fetchall()}
        missing = [c for c in FEATURES if c not in names]
        if missing:
            raise DataError(f"feature table in {path} lacks columns {missing}; rebuild.")
        if candidate_ids is not None:
            ids = pl.DataFrame({"candidate_id": [str(c) for c in candidate_ids]})  # noqa: F841
            sql += " AND candidate_id IN (SELECT candidate_id FROM ids)"
        df = con.sql(sql + " ORDER BY entry_ts, candidate_id", params=args).pl()
    finally:
        con.close()
    return df.cast(_schema())


__all__ = [
    "build_features",
    "calendar_features",
    "close_to_close_vol",
    "features_dir",
    "features_file",
    "load_features",
    "realized_vol",
    "spot_series",
]
