"""Data-layer benchmark: synthetic market, DBN ingest, store sizes and the point-in-time read path.

    .venv/bin/python benchmarks/data.py                 # a whole year (2024), several minutes
    .venv/bin/python benchmarks/data.py --days 5        # the first 5 sessions only
    .venv/bin/python benchmarks/data.py --fresh         # regenerate the store

Steps, each in its own process so that each peak memory is its own (``ru_maxrss`` of the step's
process; a sampled peak of its whole process tree is shown too):

1. synth: :func:`quantlab.data.synth.synthesize` with profile ``spxw10`` (SPXW <= 10 DTE,
   strikes +-10%) over the range into ``--store`` (raw DBN files + truth);
2. ingest: :func:`quantlab.data.ingest.ingest` of everything under ``<store>/raw`` into Parquet;
3. one FULL SPX+SPXW day (profile ``full``) synthesized and ingested into a scratch store;
4. read path on a day of the store (and on the full day): :func:`quantlab.data.read.chain_at`
   cold and warm, a 4-leg whole-day minute series (:func:`quantlab.data.read.quotes_between`)
   warm, ``DayQuotes.snapshot_arrays`` and ``grid_index``; warm figures are medians over many
   calls; the snapshot is checked against a brute-force polars answer;
5. with ``--profiles test demo spxw10 full``: a few sessions of each listing profile.

The store is kept (default ``/tmp/quantlab_bench_store``) for ``benchmarks/backtest.py`` and
reused on the next run (its synth/ingest figures are then the recorded ones, marked so) unless
``--fresh``. Targets printed beside the figures: a year of SPXW <= 10 DTE +-10% (~1e8 quote
records) synthesizes in <= 5 min and ingests in <= 5 min on the 2-core box with peak memory
<= 4 GB; a chain snapshot <= 10 ms warm; a 4-leg minute series <= 10 ms warm.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _common import (
    GB,
    StepResult,
    add_bytecode_flag,
    apply_bytecode_flag,
    dir_size,
    emit,
    fmt_bytes,
    fmt_rate,
    load_avg,
    median_ms,
    ok_mark,
    run_step,
)
from _common import console as make_console

DEFAULT_STORE = Path("/tmp/quantlab_bench_store")
RECORD = "bench_data.json"
STORE_ENTRIES = {"raw", "parquet", "quarantine", "manifest.duckdb", "manifest.duckdb.wal", RECORD}
YEAR_SESSIONS = 252
TARGET_YEAR_S = 300.0
TARGET_MEM = 4 * GB
TARGET_MS = 10.0


# --------------------------------------------------------------------------- child steps


def step_synth(a: dict[str, Any]) -> dict[str, Any]:
    from quantlab.data.synth import synthesize

    t0 = time.perf_counter()
    rep = synthesize(a["start"], a["end"], a["seed"], a["store"], profile=a["profile"])
    sec = time.perf_counter() - t0
    return {
        "seconds": sec,
        "days": len(rep.days),
        "n_quotes": rep.n_quotes,
        "n_instruments": rep.n_instruments,
        "bytes": rep.bytes_written,
    }


def step_ingest(a: dict[str, Any]) -> dict[str, Any]:
    from quantlab.data.ingest import ingest

    t0 = time.perf_counter()
    rep = ingest(None, a["store"])
    sec = time.perf_counter() - t0
    return {
        "seconds": sec,
        "records": rep.records,
        "quotes_rows": rep.rows("quotes"),
        "days": len(rep.days),
        "quarantined": rep.quarantined,
    }


def read_figures(store: str, day: str) -> dict[str, Any]:
    """chain_at cold/warm and a 4-leg whole-day series on one stored day (milliseconds)."""
    import numpy as np

    from quantlab import calendar
    from quantlab.data import read

    d = dt.date.fromisoformat(day)
    ts = calendar.to_ns(dt.datetime.combine(d, dt.time(10, 0), tzinfo=calendar.ET)) + 17
    t = time.perf_counter()
    read.chain_at(store, "SPX", ts)
    first = (time.perf_counter() - t) * 1e3  # parquet read + numba cache load of the process
    cold = []
    for _ in range(5):
        read.clear_cache()
        t = time.perf_counter()
        snap = read.chain_at(store, "SPX", ts)
        cold.append((time.perf_counter() - t) * 1e3)
    dq = read.load_day(store, "SPX", d)
    warm = median_ms(lambda: read.chain_at(store, "SPX", ts), 200)
    # one SPXW expiry about 5 DTE: its chain, and 4 legs of an iron condor around the money
    spxw = snap.filter(snap["root"] == "SPXW")
    exps = sorted(set(spxw["expiry"].to_list()))
    exp = min(exps, key=lambda e: abs((e - d).days - 5))
    warm_exp = median_ms(
        lambda: read.chain_at(store, "SPX", ts, expirations=[exp], roots=["SPXW"]), 200
    )
    one = spxw.filter(spxw["expiry"] == exp).sort("strike")
    puts = one.filter(one["right"] == "P")["instrument_id"].to_numpy()
    calls = one.filter(one["right"] == "C")["instrument_id"].to_numpy()
    legs = [
        int(puts[int(len(puts) * 0.40)]),
        int(puts[int(len(puts) * 0.35)]),
        int(calls[int(len(calls) * 0.60)]),
        int(calls[int(len(calls) * 0.65)]),
    ]
    m = calendar.quote_minutes_ns(d)
    t0, t1 = int(m[0]), int(m[-1])
    series_ff = median_ms(
        lambda: read.quotes_between(store, legs, t0, t1, ffill=True, underlying="SPX"), 200
    )
    series_raw = median_ms(lambda: read.quotes_between(store, legs, t0, t1, underlying="SPX"), 200)
    ff = read.quotes_between(store, legs, t0, t1, ffill=True, underlying="SPX")
    snap_np = median_ms(lambda: dq.snapshot_arrays(ts), 500)
    grid = median_ms(lambda: dq.grid_index(m), 10)
    return {
        "check": _check_snapshot(store, d, ts, snap),
        "snapshot_np_ms": snap_np,
        "grid_ms": grid,
        "minutes": int(m.size),
        "day": day,
        "instruments": len(dq),
        "quote_rows": int(dq.ts.size),
        "chain_rows": snap.height,
        "expiry_rows": one.height,
        "first_ms": first,
        "cold_ms": float(np.median(cold)),
        "warm_ms": warm,
        "warm_expiry_ms": warm_exp,
        "series_ff_ms": series_ff,
        "series_raw_ms": series_raw,
        "series_rows": ff.height,
    }


def _check_snapshot(store: str, d: dt.date, ts: int, snap: Any) -> str:
    """chain_at against a brute-force polars answer (last quote stamped <= ts per instrument)."""
    import polars as pl

    from quantlab.data import store as st

    q = st.read_partition(store, "quotes", "SPX", d)
    ref = (
        q.filter(pl.col("ts") <= ts)
        .sort("ts")
        .group_by("instrument_id")
        .agg(pl.col("bid").last(), pl.col("ask").last(), pl.col("ts").last().alias("ref_ts"))
    )
    chk = snap.join(ref, on="instrument_id", how="left")
    bad = chk.filter(
        (pl.col("quote_ts").fill_null(-1) != pl.col("ref_ts").fill_null(-1))
        | (
            pl.col("bid").fill_nan(-1.0).fill_null(-1.0)
            != pl.col("bid_right").fill_nan(-1.0).fill_null(-1.0)
        )
        | (
            pl.col("ask").fill_nan(-1.0).fill_null(-1.0)
            != pl.col("ask_right").fill_nan(-1.0).fill_null(-1.0)
        )
    ).height
    return "ok" if bad == 0 else f"MISMATCH in {bad} rows"


def step_profiles(a: dict[str, Any]) -> dict[str, Any]:
    """A few sessions per listing profile into a scratch store (after one warm-up day)."""
    from quantlab import calendar
    from quantlab.data.synth import synthesize

    start = dt.date.fromisoformat(a["start"])
    days = calendar.sessions(start, start + dt.timedelta(days=60))[: a["days"] + 1]
    out = {}
    for prof in a["profiles"]:
        tmp = Path(tempfile.mkdtemp(prefix="quantlab_bench_prof_"))
        try:
            synthesize(days[0], days[0], a["seed"], tmp, profile=prof)  # warm-up
            t0 = time.perf_counter()
            rep = synthesize(days[1], days[-1], a["seed"], tmp, profile=prof)
            sec = time.perf_counter() - t0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        n = len(rep.days)
        out[prof] = {
            "days": n,
            "s_per_day": sec / n,
            "quotes_per_day": rep.n_quotes / n,
            "rate": rep.n_quotes / sec,
            "bytes_per_day": rep.bytes_written / n,
            "instruments_per_day": rep.n_instruments / n,
        }
    return out


def step_read(a: dict[str, Any]) -> dict[str, Any]:
    return read_figures(a["store"], a["day"])


def step_full(a: dict[str, Any]) -> dict[str, Any]:
    from quantlab.data.ingest import ingest
    from quantlab.data.synth import synthesize

    tmp = Path(tempfile.mkdtemp(prefix="quantlab_bench_full_"))
    try:
        t0 = time.perf_counter()
        rep = synthesize(a["day"], a["day"], a["seed"], tmp, profile="full")
        synth_s = time.perf_counter() - t0
        if not rep.days:
            raise SystemExit(f"--full-day {a['day']} is not a session; pick a trading day.")
        t0 = time.perf_counter()
        irep = ingest(None, tmp)
        ingest_s = time.perf_counter() - t0
        out = {
            "synth_s": synth_s,
            "ingest_s": ingest_s,
            "n_quotes": rep.n_quotes,
            "n_instruments": rep.n_instruments,
            "raw_bytes": dir_size(tmp / "raw" / "OPRA.PILLAR"),
            "parquet_bytes": dir_size(tmp / "parquet"),
        }
        out["read"] = read_figures(str(tmp), a["day"])
        _ = irep
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


STEPS = {
    "profiles": step_profiles,
    "synth": step_synth,
    "ingest": step_ingest,
    "read": step_read,
    "full": step_full,
}


# --------------------------------------------------------------------------- parent


def _sizes(store: Path) -> dict[str, int]:
    return {
        "raw_dbn": dir_size(store / "raw" / "OPRA.PILLAR"),
        "raw_quotes_dbn": dir_size(store / "raw" / "OPRA.PILLAR", "cbbo-1m.dbn.zst"),
        "truth": dir_size(store / "raw" / "synth"),
        "parquet": dir_size(store / "parquet"),
        "parquet_quotes": dir_size(store / "parquet" / "quotes"),
        "quarantine": dir_size(store / "quarantine"),
    }


def _step_dict(s: StepResult) -> dict[str, Any]:
    return {
        "result": s.result,
        "wall_s": s.wall_s,
        "rss_self": s.rss_self,
        "rss_children": s.rss_children,
        "tree_peak": s.tree_peak,
        "load_before": s.load_before,
        "load_after": s.load_after,
    }


def _from_dict(name: str, d: dict[str, Any]) -> StepResult:
    return StepResult(
        name,
        d["result"],
        d["wall_s"],
        d["rss_self"],
        d["rss_children"],
        d["tree_peak"],
        d["load_before"],
        d["load_after"],
    )


def _remove_store(store: Path) -> None:
    extra = {p.name for p in store.iterdir()} - STORE_ENTRIES
    if extra:
        raise SystemExit(
            f"--fresh: {store} holds files that are not a benchmark store's ({sorted(extra)}); "
            "refusing to delete it. Pick another --store."
        )
    shutil.rmtree(store)


def build_store(args: argparse.Namespace, days: list[dt.date], console: Any) -> dict[str, Any]:
    """Synthesize and ingest into the store, or reuse the recorded run."""
    store: Path = args.store
    want = {
        "start": days[0].isoformat(),
        "end": days[-1].isoformat(),
        "n_days": len(days),
        "seed": args.seed,
        "profile": "spxw10",
    }
    rec_path = store / RECORD
    if store.exists() and args.fresh:
        console.print(f"--fresh: removing {store}")
        _remove_store(store)
    if store.exists() and any(store.iterdir()):
        if not rec_path.is_file():
            raise SystemExit(
                f"{store} exists but has no {RECORD} (an interrupted run?). Rerun with --fresh "
                "to regenerate it, or pick another --store."
            )
        rec = json.loads(rec_path.read_text())
        if rec["range"] != want:
            raise SystemExit(
                f"{store} holds {rec['range']}, not the requested {want}. Rerun with --fresh to "
                "regenerate it, or pick another --store."
            )
        console.print(
            f"reusing {store} (built {rec['created']}); synth/ingest figures below "
            "are the ones recorded then. --fresh regenerates."
        )
        rec["reused"] = True
        return rec
    store.mkdir(parents=True, exist_ok=True)
    script = Path(__file__).resolve()
    console.print(
        f"[bold]synth[/bold] spxw10 {days[0]}..{days[-1]} ({len(days)} sessions) "
        f"into {store}  (load {load_avg()})"
    )
    s = run_step(
        script,
        "synth",
        {
            "start": days[0].isoformat(),
            "end": days[-1].isoformat(),
            "seed": args.seed,
            "store": str(store),
            "profile": "spxw10",
        },
    )
    console.print(f"  done in {s.wall_s:.1f}s; [bold]ingest[/bold]  (load {load_avg()})")
    i = run_step(script, "ingest", {"store": str(store)})
    console.print(f"  done in {i.wall_s:.1f}s")
    rec = {
        "range": want,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "synth": _step_dict(s),
        "ingest": _step_dict(i),
        "sizes": _sizes(store),
    }
    rec_path.write_text(json.dumps(rec, indent=1, default=str))
    rec["reused"] = False
    return rec


def report(rec: dict[str, Any], full: StepResult | None, rd: StepResult, console: Any) -> None:
    from rich.table import Table

    n = rec["range"]["n_days"]
    s = _from_dict("synth", rec["synth"])
    i = _from_dict("ingest", rec["ingest"])
    sz = rec["sizes"]
    sr, ir = s.result, i.result
    nq = ir["records"].get("cbbo-1m", 0)
    scale = YEAR_SESSIONS / n
    tag = " (recorded)" if rec.get("reused") else ""
    t = Table(
        title=f"Data layer: spxw10 store {rec['range']['start']}..{rec['range']['end']} "
        f"({n} sessions, seed {rec['range']['seed']}){tag}"
    )
    for col in ("step", "figure", "value", "target", "", "load 1/5/15 min: before → after"):
        t.add_column(col, overflow="fold")
    year_s = sr["seconds"] * scale
    t.add_row(
        "synth",
        "quote records",
        f"{sr['n_quotes']:,} ({sr['n_quotes'] / n:,.0f}/day)",
        "~1e8 / year",
        "",
        s.load,
    )
    t.add_row("", "wall time (synthesize call)", f"{sr['seconds']:.1f} s", "", "", "")
    t.add_row(
        "", "throughput", fmt_rate(sr["n_quotes"] / sr["seconds"]) + " quote records", "", "", ""
    )
    t.add_row(
        "",
        "year (252 sessions)" + (" extrapolated" if n != YEAR_SESSIONS else ""),
        f"{year_s / 60:.2f} min",
        "<= 5 min",
        ok_mark(year_s <= TARGET_YEAR_S),
        "",
    )
    t.add_row(
        "",
        "peak memory (ru_maxrss self / tree PSS sampled)",
        f"{fmt_bytes(s.rss_self)} / {fmt_bytes(s.tree_peak)}",
        "<= 4 GB",
        ok_mark(s.peak <= TARGET_MEM),
        "",
    )
    t.add_row(
        "",
        "raw DBN per day (all schemas / cbbo-1m)",
        f"{fmt_bytes(sz['raw_dbn'] / n)} / {fmt_bytes(sz['raw_quotes_dbn'] / n)}",
        "",
        "",
        "",
    )
    t.add_row("", "synthetic truth per day", fmt_bytes(sz["truth"] / n), "", "", "")
    year_i = ir["seconds"] * scale
    t.add_row("ingest", "quote records read", f"{nq:,}", "", "", i.load, end_section=False)
    t.add_row("", "wall time (ingest call)", f"{ir['seconds']:.1f} s", "", "", "")
    t.add_row("", "throughput", fmt_rate(nq / ir["seconds"]) + " quote records", "", "", "")
    t.add_row(
        "",
        "year (252 sessions)" + (" extrapolated" if n != YEAR_SESSIONS else ""),
        f"{year_i / 60:.2f} min",
        "<= 5 min",
        ok_mark(year_i <= TARGET_YEAR_S),
        "",
    )
    t.add_row(
        "",
        "peak memory (ru_maxrss self / tree PSS sampled)",
        f"{fmt_bytes(i.rss_self)} / {fmt_bytes(i.tree_peak)}",
        "<= 4 GB",
        ok_mark(i.peak <= TARGET_MEM),
        "",
    )
    t.add_row(
        "",
        "Parquet per day (all tables / quotes)",
        f"{fmt_bytes(sz['parquet'] / n)} / {fmt_bytes(sz['parquet_quotes'] / n)}",
        "",
        "",
        "",
    )
    if ir.get("quarantined"):
        t.add_row(
            "",
            "quarantined rows",
            ", ".join(f"{k}={v:,}" for k, v in ir["quarantined"].items()),
            "",
            "",
            "",
        )
    if full is not None:
        fr = full.result
        t.add_row("FULL day", f"{full_day_label(fr)}", "", "", "", full.load, end_section=False)
        t.add_row(
            "",
            "synth + ingest",
            f"{fr['synth_s']:.2f} s + {fr['ingest_s']:.2f} s = "
            f"{fr['synth_s'] + fr['ingest_s']:.2f} s",
            "",
            "",
            "",
        )
        t.add_row(
            "",
            "raw DBN / Parquet",
            f"{fmt_bytes(fr['raw_bytes'])} / {fmt_bytes(fr['parquet_bytes'])}",
            "",
            "",
            "",
        )
        t.add_row(
            "",
            "peak memory (ru_maxrss self / tree PSS sampled)",
            f"{fmt_bytes(full.rss_self)} / {fmt_bytes(full.tree_peak)}",
            "<= 4 GB",
            ok_mark(full.peak <= TARGET_MEM),
            "",
        )
    for label, r, load in (
        ("read (spxw10)", rd.result, rd.load),
        ("read (FULL)", full.result["read"] if full else None, full.load if full else ""),
    ):
        if r is None:
            continue
        t.add_row(
            label,
            f"day {r['day']}: instruments / quote rows",
            f"{r['instruments']:,} / {r['quote_rows']:,}",
            "",
            "",
            load,
        )
        t.add_row(
            "",
            "first chain_at in process (read + numba load)",
            f"{r['first_ms']:.1f} ms",
            "",
            "",
            "",
        )
        t.add_row(
            "",
            f"chain_at cold (clear cache; {r['chain_rows']:,} rows)",
            f"{r['cold_ms']:.1f} ms",
            "",
            "",
            "",
        )
        t.add_row(
            "",
            "chain_at warm, whole chain",
            f"{r['warm_ms']:.3f} ms",
            "<= 10 ms",
            ok_mark(r["warm_ms"] <= TARGET_MS),
            "",
        )
        t.add_row(
            "",
            f"chain_at warm, one SPXW expiry ({r['expiry_rows']} rows)",
            f"{r['warm_expiry_ms']:.3f} ms",
            "<= 10 ms",
            ok_mark(r["warm_expiry_ms"] <= TARGET_MS),
            "",
        )
        t.add_row(
            "",
            f"4-leg day minute series warm, ffill ({r['series_rows']:,} rows)",
            f"{r['series_ff_ms']:.3f} ms",
            "<= 10 ms",
            ok_mark(r["series_ff_ms"] <= TARGET_MS),
            "",
        )
        t.add_row(
            "", "4-leg day series warm, raw records", f"{r['series_raw_ms']:.3f} ms", "", "", ""
        )
        t.add_row(
            "",
            "DayQuotes.snapshot_arrays warm (numpy only)",
            f"{r['snapshot_np_ms']:.3f} ms",
            "",
            "",
            "",
        )
        t.add_row(
            "",
            f"DayQuotes.grid_index, all instruments x {r['minutes']} minutes",
            f"{r['grid_ms']:.1f} ms",
            "",
            "",
            "",
        )
        t.add_row(
            "",
            "chain_at vs brute-force polars (last quote <= t)",
            r["check"],
            "",
            ok_mark(r["check"] == "ok"),
            "",
            end_section=True,
        )
    console.print(t)


def report_profiles(p: StepResult, console: Any) -> None:
    from rich.table import Table

    t = Table(title=f"synth per listing profile (after a warm-up day); load {p.load}")
    for col in (
        "profile",
        "days",
        "s/day",
        "quotes/day",
        "quote records/s",
        "DBN/day",
        "instruments/day",
        "year (252) min",
    ):
        t.add_column(col, justify="right")
    for prof, r in p.result.items():
        t.add_row(
            prof,
            str(r["days"]),
            f"{r['s_per_day']:.2f}",
            f"{r['quotes_per_day']:,.0f}",
            fmt_rate(r["rate"]),
            fmt_bytes(r["bytes_per_day"]),
            f"{r['instruments_per_day']:,.0f}",
            f"{252 * r['s_per_day'] / 60:.1f}",
        )
    console.print(t)


def full_day_label(fr: dict[str, Any]) -> str:
    return f"{fr['n_instruments']:,} instruments, {fr['n_quotes']:,} quote records"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Targets: year synth <= 5 min, ingest <= 5 min, peak <= 4 GB; chain and 4-leg "
        "series <= 10 ms warm.",
    )
    ap.add_argument(
        "--store",
        type=Path,
        default=DEFAULT_STORE,
        help=f"store folder, kept and reused (default {DEFAULT_STORE})",
    )
    ap.add_argument("--start", default="2024-01-01", help="first date (default 2024-01-01)")
    ap.add_argument("--end", default="2024-12-31", help="last date (default 2024-12-31)")
    ap.add_argument("--days", type=int, default=None, help="only the first N sessions of the range")
    ap.add_argument("--seed", type=int, default=7, help="synthetic market seed (default 7)")
    ap.add_argument("--fresh", action="store_true", help="delete and regenerate the store")
    ap.add_argument(
        "--full-day",
        default="2024-03-14",
        help="session for the FULL SPX+SPXW day (default 2024-03-14)",
    )
    ap.add_argument("--skip-full", action="store_true", help="skip the FULL day step")
    ap.add_argument(
        "--read-day",
        default=None,
        help="session of the store for the read path (default: the first full session "
        "from the middle of the range)",
    )
    ap.add_argument(
        "--profiles",
        nargs="*",
        default=[],
        metavar="PROFILE",
        help="also time a few sessions of these listing profiles (test, demo, "
        "spxw10, full) in a scratch store",
    )
    ap.add_argument(
        "--profile-days",
        type=int,
        default=5,
        help="sessions per --profiles entry, from 2024-03-04 (default 5)",
    )
    add_bytecode_flag(ap)
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--step-args", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        emit(STEPS[args.step](json.loads(args.step_args)))
        return
    apply_bytecode_flag(args)

    from quantlab import calendar

    console = make_console()
    days = calendar.sessions(args.start, args.end)
    if args.days is not None:
        if args.days < 1:
            raise SystemExit(f"--days must be >= 1 (got {args.days}).")
        days = days[: args.days]
    if not days:
        raise SystemExit(f"no sessions between {args.start} and {args.end}.")
    console.print(f"machine: {_cpu_count()} cores; load average now {load_avg()}")
    rec = build_store(args, days, console)
    script = Path(__file__).resolve()
    full = None
    if not args.skip_full:
        console.print(
            f"[bold]FULL day[/bold] {args.full_day} synth + ingest + read (load {load_avg()})"
        )
        full = run_step(script, "full", {"day": args.full_day, "seed": args.seed})
    regular = [d for d in days[len(days) // 2 :] if not calendar.is_early_close(d)] or days
    read_day = args.read_day or regular[0].isoformat()
    console.print(f"[bold]read path[/bold] on {read_day} (load {load_avg()})")
    rd = run_step(script, "read", {"store": str(args.store), "day": read_day})
    report(rec, full, rd, console)
    if args.profiles:
        console.print(f"[bold]profiles[/bold] {args.profiles} (load {load_avg()})")
        pargs = {
            "profiles": args.profiles,
            "days": args.profile_days,
            "seed": args.seed,
            "start": "2024-03-04",
        }
        report_profiles(run_step(script, "profiles", pargs), console)
    console.print(f"store kept at {args.store} for benchmarks/backtest.py; load now {load_avg()}")


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main()
