"""Benchmark of the data layer: DBN ingest throughput and the point-in-time read path.

Run ``python benchmarks/data_read.py [--instruments 3000] [--ingest-days 5] [--store DIR]``.
It builds hand-made data (no network, deterministic per ``--seed``):

* read path: one ET session with ``--instruments`` options (SPXW, several expiries, calls and
  puts), each re-quoted in about 60% of the 405 minutes, written with
  :func:`quantlab.data.store.write_partition`; times a cold :func:`~quantlab.data.read.load_day`,
  :func:`~quantlab.data.read.chain_at` warm (full chain and one expiry), the numpy-only
  ``DayQuotes.snapshot_arrays``, and 4-leg :func:`~quantlab.data.read.quotes_between` series
  for the whole day (raw and forward-filled). Each warm figure is a median over many calls.
* ingest: ``--ingest-days`` sessions of DBN files (definition, cbbo-1m, statistics; written by
  :mod:`quantlab.data.synth.dbn_writer`) in the store's raw layout, ingested with
  :func:`quantlab.data.ingest.ingest`; prints records/s, the projected time for 1e8 quotes
  (a year of SPXW) and peak RSS.

Prints figures; asserts only correctness (a snapshot equals a brute-force polars answer).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantlab import calendar
from quantlab.data import read, store

DAY = dt.date(2024, 3, 14)


def make_chain(day: dt.date, n_instruments: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Instruments and minute quotes of one hand-made session (quotes sorted as stored)."""
    rng = np.random.default_rng(seed)
    n_exp = 8
    per_exp = max(n_instruments // (2 * n_exp), 1)
    expiries = [calendar.next_session(day) for _ in range(1)]
    while len(expiries) < n_exp:
        expiries.append(calendar.next_session(expiries[-1]))
    expiries[0] = day  # 0DTE
    rows = []
    iid = 1000
    for e in expiries:
        for k in range(per_exp):
            strike = 5000.0 + 5.0 * (k - per_exp // 2)
            for right in "CP":
                sym = f"SPXW  {e:%y%m%d}{right}{int(strike * 1000):08d}"
                rows.append((day, iid, sym, "SPXW", "SPX", e, "PM", strike, right, 100))
                iid += 1
    inst = pl.DataFrame(rows, schema=store.INSTRUMENTS_SCHEMA, orient="row")
    minutes = calendar.quote_minutes_ns(day)
    n_i, n_m = inst.height, minutes.size
    changed = rng.random((n_i, n_m)) < 0.6
    changed[:, 0] = True
    ii, mm = np.nonzero(changed)
    mid = np.abs(rng.normal(20, 15, n_i))[ii] + rng.normal(0, 0.5, ii.size)
    bid = np.round(np.maximum(mid - 0.1, 0.0), 2)
    quotes = pl.DataFrame({
        "ts": minutes[mm],
        "instrument_id": inst["instrument_id"].to_numpy()[ii],
        "bid": bid, "ask": bid + 0.2,
        "bid_size": rng.integers(1, 500, ii.size).astype(np.uint32),
        "ask_size": rng.integers(1, 500, ii.size).astype(np.uint32),
    })
    return inst, quotes


def timeit(fn, n: int) -> float:
    """Median milliseconds of ``n`` calls."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def bench_read(root: Path, n_instruments: int, seed: int) -> None:
    inst, quotes = make_chain(DAY, n_instruments, seed)
    t = time.perf_counter()
    store.write_partition(root, "instruments", "SPX", DAY, inst, source="bench")
    store.write_partition(root, "quotes", "SPX", DAY, quotes, source="bench")
    print(f"day: {inst.height} instruments, {quotes.height:,} quote rows "
          f"(write {time.perf_counter() - t:.2f}s)")
    minutes = calendar.quote_minutes_ns(DAY)
    ts = int(minutes[200]) + 17  # between minute ends
    read.clear_cache()
    t = time.perf_counter()
    read.chain_at(root, "SPX", ts)  # includes numba compile on a first-ever run (cached after)
    first = (time.perf_counter() - t) * 1e3
    read.clear_cache()
    t = time.perf_counter()
    dq = read.load_day(root, "SPX", DAY)
    cold_load = (time.perf_counter() - t) * 1e3
    read.clear_cache()
    t = time.perf_counter()
    snap = read.chain_at(root, "SPX", ts)
    cold = (time.perf_counter() - t) * 1e3
    # correctness: brute force with polars
    ref = (quotes.filter(pl.col("ts") <= ts).sort("ts").group_by("instrument_id")
           .agg(pl.col("bid").last(), pl.col("ts").last().alias("quote_ts")))
    chk = snap.join(ref, on="instrument_id", suffix="_ref")
    assert (chk["bid"] == chk["bid_ref"]).all() and (chk["quote_ts"] == chk["quote_ts_ref"]).all()
    dq = read.load_day(root, "SPX", DAY)
    exp = dq.expiry[len(dq) // 2].astype(object)
    warm = timeit(lambda: read.chain_at(root, "SPX", ts), 200)
    warm_exp = timeit(lambda: read.chain_at(root, "SPX", ts, expirations=[exp]), 200)
    warm_np = timeit(lambda: dq.snapshot_arrays(ts), 500)
    grid = timeit(lambda: dq.grid_index(minutes), 20)
    legs = dq.instrument_id[[10, 11, 40, 41]].tolist()
    t0, t1 = int(minutes[0]), int(minutes[-1])
    series_raw = timeit(lambda: read.quotes_between(root, legs, t0, t1), 200)
    series_ff = timeit(lambda: read.quotes_between(root, legs, t0, t1, ffill=True), 200)
    print(f"first chain_at in process (load + numba): {first:8.1f} ms")
    print(f"load_day cold (read parquet -> arrays): {cold_load:8.1f} ms")
    print(f"chain_at cold (load + snapshot):        {cold:8.1f} ms")
    print(f"chain_at warm, full chain ({len(dq)}):   {warm:8.3f} ms")
    print(f"chain_at warm, one expiry:              {warm_exp:8.3f} ms")
    print(f"DayQuotes.snapshot_arrays (numpy):      {warm_np:8.3f} ms")
    print(f"DayQuotes.grid_index all x {minutes.size} min:   {grid:8.1f} ms")
    print(f"quotes_between 4 legs, day, raw:        {series_raw:8.3f} ms")
    print(f"quotes_between 4 legs, day, ffill:      {series_ff:8.3f} ms")


def write_dbn_day(root: Path, day: dt.date, n_instruments: int, seed: int) -> int:
    """Definition, cbbo-1m and statistics DBN files of one session; returns quote records."""
    from quantlab.data import layout
    from quantlab.data.synth import dbn_writer as w

    inst, quotes = make_chain(day, n_instruments, seed)
    ids = inst["instrument_id"].to_numpy()
    n = ids.size
    start = calendar.option_open_ns(day) - 3 * 3600 * 10**9
    defs = w.empty_records(w.DEFINITION_DTYPE, n, w.DEFINITION_DEFAULTS)
    defs["instrument_id"] = ids
    defs["ts_event"] = defs["ts_recv"] = start
    defs["raw_symbol"] = np.array(inst["raw_symbol"].to_list(), dtype="S71")
    defs["underlying"] = b"SPX"
    defs["asset"] = b"SPXW"
    defs["instrument_class"] = np.array(inst["right"].to_list(), dtype="S1")
    defs["strike_price"] = (inst["strike"].to_numpy() * 1e9).astype(np.int64)
    exp = inst["expiry"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    defs["expiration"] = exp.astype(np.uint64)
    q = quotes.sort(["ts", "instrument_id"])  # files are in time order
    cb = w.empty_records(w.CBBO_DTYPE, q.height)
    cb["rtype"] = w.RTYPE_CBBO_1M
    cb["publisher_id"] = w.PUBLISHER_OPRA
    cb["instrument_id"] = q["instrument_id"].to_numpy()
    cb["ts_recv"] = q["ts"].to_numpy().astype(np.uint64)
    cb["ts_event"] = cb["ts_recv"] - np.uint64(20 * 10**9)
    cb["price"] = w.UNDEF_PRICE
    cb["side"] = b"N"
    cb["flags"] = w.FLAGS_CBBO
    cb["bid_px_00"] = np.round(q["bid"].to_numpy() * 1e9).astype(np.int64)
    cb["ask_px_00"] = np.round(q["ask"].to_numpy() * 1e9).astype(np.int64)
    cb["bid_sz_00"] = q["bid_size"].to_numpy()
    cb["ask_sz_00"] = q["ask_size"].to_numpy()
    stats = w.empty_records(w.STAT_DTYPE, 2 * n)
    stats["rtype"] = w.RTYPE_STATISTICS
    stats["publisher_id"] = np.tile([22, 31], n)
    stats["instrument_id"] = np.repeat(ids, 2)
    stats["ts_event"] = stats["ts_recv"] = start
    stats["ts_ref"] = w.UNDEF_TIMESTAMP
    stats["price"] = w.UNDEF_PRICE
    stats["quantity"] = np.repeat(np.arange(n) * 10, 2)
    stats["stat_type"] = w.STAT_OPEN_INTEREST
    stats["update_action"] = w.STAT_UPDATE_NEW
    end = start + 24 * 3600 * 10**9
    for schema, recs in (("definition", defs), ("cbbo-1m", cb), ("statistics", stats)):
        meta = w.encode_metadata(schema=schema, start_ns=start, end_ns=end,
                                 symbols=["SPXW.OPT"], day=day)
        w.write_dbn_zst(layout.raw_file(root, "SPX", day, schema), meta, recs)
    return q.height


def bench_ingest(root: Path, n_days: int, n_instruments: int, seed: int) -> None:
    from quantlab.data.ingest import ingest

    days = calendar.sessions(DAY, DAY + dt.timedelta(days=3 * n_days))[:n_days]
    n_quotes = sum(write_dbn_day(root, d, n_instruments, seed + i) for i, d in enumerate(days))
    t = time.perf_counter()
    rep = ingest(None, root)
    sec = time.perf_counter() - t
    rate = n_quotes / sec
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ingest: {n_days} days, {n_quotes:,} quotes in {sec:.2f}s = {rate:,.0f} quotes/s; "
          f"1e8 quotes -> {1e8 / rate / 60:.1f} min; peak RSS {rss:,.0f} MB")
    print(rep.summary())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instruments", type=int, default=3000)
    ap.add_argument("--ingest-days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--store", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or Path(tmp) / "store"
        bench_read(root / "read", args.instruments, args.seed)
        if args.ingest_days:
            bench_ingest(root / "ingest", args.ingest_days, args.instruments, args.seed)


if __name__ == "__main__":
    main()
