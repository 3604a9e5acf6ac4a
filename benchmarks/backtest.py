"""Backtest benchmark: the 54-config seed grid over the simulated year, and a plain pandas loop.

    .venv/bin/python benchmarks/data.py          # first: builds /tmp/quantlab_bench_store
    .venv/bin/python benchmarks/backtest.py      # then this

The grid (the user's seed sweep): SPXW put credit verticals, DTE {3, 5, 7} (tolerance 2, tie to
the shorter) x short |delta| {0.10, 0.20} x entry {10:00, 11:00, 12:00 ET} x width {10, 25, 50}
points, take profit 50% of max profit, stop at 100% of max profit, max 1 open trade, max 1 new
trade per day, no new trade after a stop, fills at mid -/+ 0.30 x spread (the other settings from
``pipelines/strategies/spxw_put_credit.yaml``). It runs in its own process through
:func:`quantlab.backtest.engine.run_grid`: stage 1 once for all configs, sharded by date over
``--workers`` processes (this one and a spawn pool), then
:func:`quantlab.backtest.stage2.run_stage2` per config, the configs shared out over the same
processes (as the sweep runner does). Printed: stage 1, stage 2 and total wall time, configs/s,
peak memory (``ru_maxrss`` of the process and of its largest pool worker, and the sampled peak
of the summed process tree), and throughput = quote rows stored for the backtested sessions
(from the Parquet footers) / total wall time, against QuantConnect LEAN's ~127,000 data
points/s (target >= 100x, whole grid <= 60 s, <= 4 GB). The header says how many sessions the
store's day cache (:mod:`quantlab.data.daycache`, derived arrays the first run writes) already
holds: a run that has to write them reads the Parquet files instead, and is slower.

Stage 2 per config: the grid table gives stage-2 wall / configs (the configs run in parallel
over ``--workers`` processes). A second step then times stage 2 alone in one process on the same
range's stage-1 result: each of the 54 configs once (median, range and sum = serial stage 2),
and the representative config (DTE 5, |delta| 0.10, 10:00, width 25) ``--stage2-repeats`` times
(median, min, max); ``--profile-stage2`` adds a cProfile of one call. The step only uses
``engine.stage1`` and ``stage2.run_stage2``, so it also runs against older trees.

Then one config (DTE 5, |delta| 0.10, 10:00, width 25) over one month (``--compare-month``) in
a straightforward pandas implementation (:func:`pandas_backtest`: pandas reads each day's
Parquet, builds the chain at the entry minute, forward from put-call parity and IV/delta with
:mod:`quantlab.pricing`, then walks the legs' quotes minute by minute to the take profit, stop
or settlement), timed against the engine on the same month, and its trades compared with the
engine's one by one (entry/exit time, credit, exit reason).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _common import (
    GB,
    REPO,
    add_bytecode_flag,
    apply_bytecode_flag,
    dir_size,
    emit,
    fmt_bytes,
    fmt_rate,
    load_avg,
    ok_mark,
    run_step,
)
from _common import console as make_console

DEFAULT_STORE = Path("/tmp/quantlab_bench_store")
SEED_YAML = REPO / "pipelines" / "strategies" / "spxw_put_credit.yaml"
LEAN_POINTS_PER_S = 127_000.0
TARGET_X = 100.0
TARGET_GRID_S = 60.0
TARGET_MEM = 4 * GB
DTES = (3, 5, 7)
DELTAS = (0.10, 0.20)
TIMES = ("10:00", "11:00", "12:00")
WIDTHS = (10, 25, 50)
COMPARE = {"dte": 5, "delta": 0.10, "time": "10:00", "width": 25}
COMPARE_LABEL = "pcv-5dte-10d-10h-w25"


# --------------------------------------------------------------------------- configs


def spec_dict(dte: int, delta: float, time_: str, width: float) -> dict[str, Any]:
    """The seed strategy YAML with one grid point's DTE, delta, entry time and width."""
    import yaml

    base = yaml.safe_load(SEED_YAML.read_text())
    return base | {
        "name": f"pcv-{dte}dte-{round(delta * 100):02d}d-{time_[:2]}h-w{int(width)}",
        "dte": {"target": dte, "tolerance": 2, "tie_break": "shorter"},
        "entry": {"times": [time_], "mode": "each"},
        "short_delta": delta,
        "width": width,
        "management": base["management"] | {"take_profit_pct": 50, "stop_loss_pct": 100},
        "risk": base["risk"]
        | {"max_open_trades": 1, "max_new_trades_per_day": 1, "no_new_after_stop": True},
        "fills": {"kind": "mid_k", "k": 0.30},
    }


def grid_specs() -> list[Any]:
    from quantlab.strategy import StrategySpec

    return [
        StrategySpec.from_dict(spec_dict(d, x, t, w), source="grid")
        for d in DTES
        for x in DELTAS
        for t in TIMES
        for w in WIDTHS
    ]


def compare_spec() -> Any:
    from quantlab.strategy import StrategySpec

    c = COMPARE
    return StrategySpec.from_dict(spec_dict(c["dte"], c["delta"], c["time"], c["width"]))


def quote_rows(store: Path, days: list[dt.date]) -> int:
    """Quote rows stored for these sessions, from the Parquet footers (no data read)."""
    import pyarrow.parquet as pq

    from quantlab.data import layout

    total = 0
    for d in days:
        p = layout.partition_file(store, "quotes", "SPX", d)
        if p.is_file():
            total += pq.read_metadata(p).num_rows
    return total


# --------------------------------------------------------------------------- engine steps


def _metrics(res: Any) -> dict[str, Any]:
    tr = res.trades
    eq = res.equity_daily["equity"].to_numpy()
    import numpy as np

    dd = float((eq - np.maximum.accumulate(eq)).min()) if eq.size else 0.0
    pnl = tr["pnl"].to_numpy() if tr.height else np.zeros(0)
    reasons = tr["exit_reason"].value_counts() if tr.height else None
    rc = (
        dict(zip(reasons["exit_reason"].to_list(), reasons["count"].to_list(), strict=True))
        if reasons is not None
        else {}
    )
    return {
        "name": res.spec.name,
        "trades": tr.height,
        "total_pnl": float(pnl.sum()),
        "avg_pnl": float(pnl.mean()) if pnl.size else math.nan,
        "win_rate": float((pnl > 0).mean()) if pnl.size else math.nan,
        "max_dd": dd,
        "tp": rc.get("take_profit", 0),
        "sl": rc.get("stop_loss", 0),
        "settle": rc.get("settlement", 0),
        "eod": rc.get("end_of_data", 0),
        "avg_credit": float(tr["credit_per_share"].mean()) if tr.height else math.nan,
    }


def step_grid(a: dict[str, Any]) -> dict[str, Any]:
    from quantlab.backtest.engine import run_grid

    specs = grid_specs()
    start, end = dt.date.fromisoformat(a["start"]), dt.date.fromisoformat(a["end"])
    c0 = time.process_time()
    g = run_grid(a["store"], specs, start, end, workers=a["workers"])
    cpu_self = time.process_time() - c0
    import multiprocessing

    for child in multiprocessing.active_children():  # reaped, so ru_maxrss counts the workers
        child.join()
    s1 = g.stage1
    metrics = [_metrics(res) for res in g.results]
    return {
        "stage1_s": g.stage1_s,
        "stage2_s": g.stage2_s,
        "n_configs": len(specs),
        "candidates": len(s1),
        "rejections": s1.rejections.height,
        "path_rows": int(s1.path_ts.size),
        "days_read": len(s1.days),
        "cpu_self_s": cpu_self,
        "cpu_children_s": _children_cpu(),
        "metrics": metrics,
    }


def _children_cpu() -> float:
    """User + system CPU seconds of this process's reaped children (the spawn pool)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _trade_rows(df: Any) -> list[dict[str, Any]]:
    out = []
    for t in df.iter_rows(named=True):
        legs = sorted(t["legs"], key=lambda lg: lg["quantity"])
        out.append(
            {
                "entry_ts": t["entry_ts"],
                "exit_ts": t["exit_ts"],
                "expiry": str(t["expiry"]),
                "short": legs[0]["strike"],
                "long": legs[-1]["strike"],
                "credit": t["credit_per_share"],
                "exit_cost": t["exit_cost_per_share"],
                "reason": t["exit_reason"],
            }
        )
    return out


def step_engine_month(a: dict[str, Any]) -> dict[str, Any]:
    """The comparison config over the month: with ``--workers`` (a spawn pool once the range
    has >= 10 sessions per worker), then in this process (``workers=1``, day cache emptied)."""
    from quantlab.backtest.engine import stage1
    from quantlab.backtest.stage2 import run_stage2
    from quantlab.data import read

    spec = compare_spec()
    start, end = dt.date.fromisoformat(a["start"]), dt.date.fromisoformat(a["end"])
    t0 = time.perf_counter()
    res = run_stage2(stage1(a["store"], [spec], start, end, workers=a["workers"]), spec)
    sec = time.perf_counter() - t0
    read.clear_cache()
    t0 = time.perf_counter()
    s1 = stage1(a["store"], [spec], start, end, workers=1)
    res1 = run_stage2(s1, spec)
    sec1 = time.perf_counter() - t0
    same = _trade_rows(res.trades) == _trade_rows(res1.trades)
    dec = res.decisions
    reasons = dec.group_by("reason").len().sort("reason").iter_rows() if dec.height else []
    return {
        "seconds": sec,
        "seconds_inproc": sec1,
        "trades": _trade_rows(res.trades),
        "pool_equals_inproc": same,
        "days_read": [str(d) for d in s1.days],
        "decisions": {r or "taken": n for r, n in reasons},
    }


def step_pandas(a: dict[str, Any]) -> dict[str, Any]:
    """The pandas loop over the month, twice in this process (the second without imports)."""
    c = COMPARE
    args = (a["store"], dt.date.fromisoformat(a["start"]), dt.date.fromisoformat(a["end"]))
    kw = {"dte_target": c["dte"], "delta": c["delta"], "entry": c["time"], "width": c["width"]}
    t0 = time.perf_counter()
    out = pandas_backtest(*args, **kw)
    out["seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = pandas_backtest(*args, **kw)
    out["seconds_again"] = time.perf_counter() - t0
    out["repeatable"] = again["trades"] == out["trades"]
    return out


def step_warmup(a: dict[str, Any]) -> dict[str, Any]:
    """One config on one day: refreshes numba's on-disk cache and .pyc files, so that a
    library file edited since the last run is not recompiled inside a timed step."""
    from quantlab.backtest.engine import stage1
    from quantlab.backtest.stage2 import run_stage2

    spec = compare_spec()
    day = dt.date.fromisoformat(a["day"])
    t0 = time.perf_counter()
    run_stage2(stage1(a["store"], [spec], day, day, workers=1), spec)
    return {"seconds": time.perf_counter() - t0}


def step_stage2(a: dict[str, Any]) -> dict[str, Any]:
    """Stage 2 alone, in this one process, on the benchmark range's stage-1 result (computed
    once, over ``workers`` processes, as in the grid): each of the 54 grid configs once (after
    one warm-up call, so numba loading is not timed), then the representative config
    (:data:`COMPARE`) ``repeats`` more times; optionally a cProfile of one more call of it."""
    import statistics

    from quantlab.backtest.engine import stage1
    from quantlab.backtest.stage2 import run_stage2

    specs = grid_specs()
    rep = compare_spec()
    start, end = dt.date.fromisoformat(a["start"]), dt.date.fromisoformat(a["end"])
    t0, c0 = time.perf_counter(), time.process_time()
    s1 = stage1(a["store"], specs, start, end, workers=a["workers"])
    s1_s, s1_cpu = time.perf_counter() - t0, time.process_time() - c0
    import multiprocessing

    for child in multiprocessing.active_children():  # the spawn pool: gone before timing
        child.join()
    s1_cpu += _children_cpu()
    t0 = time.perf_counter()
    run_stage2(s1, rep)
    warm_ms = (time.perf_counter() - t0) * 1e3
    per: dict[str, float] = {}
    per_cpu: dict[str, float] = {}
    trades: dict[str, int] = {}
    for spec in specs:
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_stage2(s1, spec)
        per[spec.name] = (time.perf_counter() - t0) * 1e3
        per_cpu[spec.name] = (time.process_time() - c0) * 1e3
        trades[spec.name] = res.trades.height
    rep_ms, rep_cpu = [], []
    for _ in range(a["repeats"]):
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_stage2(s1, rep)
        rep_ms.append((time.perf_counter() - t0) * 1e3)
        rep_cpu.append((time.process_time() - c0) * 1e3)
    vals = sorted(per.values())
    cpus = sorted(per_cpu.values())
    out = {
        "stage1_s": s1_s,
        "stage1_cpu_s": s1_cpu,
        "warm_ms": warm_ms,
        "per_config_ms": per,
        "per_config_cpu_ms": per_cpu,
        "trades": trades,
        "serial_total_s": sum(vals) / 1e3,
        "median_ms": statistics.median(vals),
        "min_ms": vals[0],
        "max_ms": vals[-1],
        "serial_cpu_s": sum(cpus) / 1e3,
        "median_cpu_ms": statistics.median(cpus),
        "rep_name": rep.name,
        "rep_trades": res.trades.height if rep_ms else trades.get(rep.name, 0),
        "rep_ms": rep_ms,
        "rep_cpu_ms": rep_cpu,
        "candidates": len(s1),
    }
    if a.get("profile"):
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        run_stage2(s1, rep)
        prof.disable()
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("cumulative").print_stats(a.get("profile_top", 25))
        buf.write("\n--- by own time ---\n")
        st.sort_stats("tottime").print_stats(a.get("profile_top", 25))
        out["profile"] = buf.getvalue()
    return out


STEPS = {
    "warmup": step_warmup,
    "grid": step_grid,
    "stage2": step_stage2,
    "engine_month": step_engine_month,
    "pandas": step_pandas,
}


# --------------------------------------------------------------------------- plain pandas loop
# The same rules written the obvious way: pandas frames, a Python loop over minutes. Only the
# pricing functions (forward, IV, delta), the session calendar and the store paths are reused.

OK, NO_QUOTE, STALE, CROSSED, ZERO_BID, ONE_SIDED, LOCKED = range(7)
MIN_PER_YEAR = 525_600.0


def _fill(bid: float, ask: float, sell: bool, k: float) -> float:
    """Fill price: mid -/+ k x spread, rounded to the SPX tick against the trader."""
    if not (math.isfinite(bid) and math.isfinite(ask)) or ask <= 0:
        return math.nan
    bid = max(bid, 0.0)
    mid = 0.5 * (bid + ask)
    spread = max(ask - bid, 0.0)
    raw = max(mid - k * spread if sell else mid + k * spread, 0.0)
    tick = 0.10 if raw >= 3.0 else 0.05
    cents = math.floor(tick * 100 + 0.5)
    units = raw / tick
    return (math.floor(units + 1e-9) if sell else math.ceil(units - 1e-9)) * cents / 100.0


def _read_day(store: str, day: dt.date) -> tuple[Any, Any]:
    import pandas as pd

    from quantlab.data import layout

    inst = pd.read_parquet(layout.partition_file(store, "instruments", "SPX", day))
    quotes = pd.read_parquet(
        layout.partition_file(store, "quotes", "SPX", day),
        columns=["ts", "instrument_id", "bid", "ask"],
    )
    return inst, quotes


def _chain_at(inst: Any, quotes: Any, ts: int, max_age: float) -> Any:
    """Every instrument with its last quote stamped <= ts, its age and quality flag."""
    import numpy as np

    last = (
        quotes[quotes["ts"] <= ts]
        .sort_values(["instrument_id", "ts"])
        .drop_duplicates("instrument_id", keep="last")
    )
    ch = inst.merge(last, on="instrument_id", how="left")
    ch["age_s"] = (ts - ch["ts"]) / 1e9
    b, a = ch["bid"].to_numpy(float), ch["ask"].to_numpy(float)
    one_sided = ~(np.isfinite(b) & np.isfinite(a)) | (a <= 0)
    ch["flag"] = np.select(
        [
            ch["ts"].isna().to_numpy(),
            ch["age_s"].to_numpy() > max_age,
            ~one_sided & (b > 0) & (b > a),
            one_sided,
            b <= 0,
            b == a,
        ],
        [NO_QUOTE, STALE, CROSSED, ONE_SIDED, ZERO_BID, LOCKED],
        OK,
    )
    return ch


def _parity_forward(exp_chain: Any, T: float, rate: float, fresh_only: bool) -> float:
    from quantlab.pricing import implied_forward

    c = exp_chain[exp_chain["right"] == "C"].set_index("strike")
    p = exp_chain[exp_chain["right"] == "P"].set_index("strike")
    pair = c.join(p, how="inner", suffixes=("_c", "_p")).sort_index()
    if pair.empty:
        return math.nan
    fresh = ((pair["flag_c"] == OK) & (pair["flag_p"] == OK)).to_numpy() if fresh_only else None
    fit = implied_forward(
        pair.index.to_numpy(float),
        pair["bid_c"].to_numpy(float),
        pair["ask_c"].to_numpy(float),
        pair["bid_p"].to_numpy(float),
        pair["ask_p"].to_numpy(float),
        T,
        r=rate,
        fresh=fresh,
    )
    return float(fit.forward)


def _select(
    ch: Any,
    day: dt.date,
    ts: int,
    dte_target: int,
    tol: int,
    delta: float,
    width: float,
    rate: float,
) -> dict[str, Any] | str:
    """Expiry by DTE, short put by |delta| (own OTM IV), long put ``width`` points below."""
    import numpy as np

    from quantlab import calendar
    from quantlab.pricing import black76_greeks, implied_vol

    spxw = ch[ch["root"] == "SPXW"]
    best = None
    for expiry in sorted(spxw["expiry"].unique()):
        dte = (expiry - day).days
        T = (calendar.settlement_ns("SPXW", expiry) - ts) / 60e9 / MIN_PER_YEAR
        if dte < 0 or abs(dte - dte_target) > tol or T <= 0:
            continue
        F = _parity_forward(spxw[spxw["expiry"] == expiry], T, rate, True)
        if not math.isfinite(F):
            continue
        key = (abs(dte - dte_target), dte)
        if best is None or key < best[0]:
            best = (key, expiry, F, T, dte)
    if best is None:
        return "no_expiry_in_tolerance"
    _, expiry, F, T, dte = best
    df = math.exp(-rate * T)
    e = spxw[spxw["expiry"] == expiry].copy()
    e["mid"] = 0.5 * (e["bid"] + e["ask"])
    is_call = (e["right"] == "C").to_numpy()
    K = e["strike"].to_numpy(float)
    otm = np.where(is_call, K >= F, K < F) & e["flag"].isin([OK, LOCKED, STALE]).to_numpy()
    src = e[otm]
    iv_src = implied_vol(
        src["mid"].to_numpy(float),
        F,
        src["strike"].to_numpy(float),
        T,
        df,
        (src["right"] == "C").to_numpy(),
    )
    iv_by_k = dict(zip(src["strike"].to_numpy(float), iv_src, strict=True))
    puts = e[e["right"] == "P"].copy()
    puts["iv"] = [iv_by_k.get(k, math.nan) for k in puts["strike"]]
    ivp = puts["iv"].to_numpy(float)
    g = black76_greeks(
        F, puts["strike"].to_numpy(float), T, np.where(np.isfinite(ivp), ivp, 0.0), df, False
    )
    puts["delta"] = np.where(np.isfinite(ivp), g["delta"], np.nan)
    pool = puts[puts["flag"].isin([OK, LOCKED]) & puts["delta"].notna()]
    if pool.empty:
        return "no_P_strike_for_delta"
    dist = (pool["delta"].abs() - delta).abs()
    tied = pool[dist <= dist.min() + 1e-12]
    short = tied.loc[tied["delta"].abs().idxmin()]
    lk = short["strike"] - width
    longs = puts[(puts["strike"] - lk).abs().lt(1e-6) & puts["flag"].isin([OK, LOCKED, ZERO_BID])]
    if longs.empty:
        return "long_strike_not_listed_or_unusable"
    long = longs.iloc[0]
    return {"expiry": expiry, "dte": dte, "short": short, "long": long}


def _walk(
    store: str,
    sel: dict[str, Any],
    credit: float,
    entry_ts: int,
    first: tuple,
    stored: set,
    k: float,
    tp: float,
    sl: float,
    rate: float,
    days_read: set,
) -> dict[str, Any]:
    """Follow the two legs minute by minute from entry to the TP/SL or settlement."""
    import numpy as np
    import pandas as pd

    from quantlab import calendar

    expiry = sel["expiry"]
    occ = [sel["short"]["raw_symbol"], sel["long"]["raw_symbol"]]
    ks, kl = float(sel["short"]["strike"]), float(sel["long"]["strike"])
    close_ns = calendar.contract_close_ns("SPXW", expiry, expiry)
    carry = [
        (float(sel["short"]["bid"]), float(sel["short"]["ask"])),
        (float(sel["long"]["bid"]), float(sel["long"]["ask"])),
    ]
    last = None
    reached = False
    day = first[0]
    frames = first[1:]
    while True:
        inst, quotes = frames
        minutes = calendar.quote_minutes_ns(day)
        minutes = minutes[(minutes > entry_ts) & (minutes <= close_ns)]
        grid = pd.DataFrame({"ts": minutes})
        cols = []
        for j, sym in enumerate(occ):
            ids = inst.loc[inst["raw_symbol"] == sym, "instrument_id"]
            if ids.empty:  # not listed today: no quote
                cols.append((np.full(minutes.size, np.nan), np.full(minutes.size, np.nan)))
                continue
            q = quotes[quotes["instrument_id"] == ids.iloc[0]].sort_values("ts")
            q = q.assign(qts=q["ts"])[["ts", "qts", "bid", "ask"]]
            m = pd.merge_asof(grid, q, on="ts", direction="backward")
            b, a = m["bid"].to_numpy(float, copy=True), m["ask"].to_numpy(float, copy=True)
            seen = np.flatnonzero(m["qts"].notna().to_numpy())
            n0 = seen[0] if seen.size else minutes.size  # before today's first quote: carry
            b[:n0], a[:n0] = carry[j]
            cols.append((b, a))
        for i, t in enumerate(minutes):
            sb, sa = cols[0][0][i], cols[0][1][i]
            lb, la = cols[1][0][i], cols[1][1][i]
            if not (math.isfinite(sa) and sa > 0 and math.isfinite(la) and la > 0):
                continue
            sb = sb if math.isfinite(sb) and sb >= 0 else 0.0
            lb = lb if math.isfinite(lb) and lb >= 0 else 0.0
            mid_cost = 0.5 * (sb + sa) - 0.5 * (lb + la)
            fill_cost = _fill(sb, sa, False, k) - _fill(lb, la, True, k)
            last = (int(t), fill_cost)
            if mid_cost >= sl:
                return {"exit_ts": int(t), "exit_cost": fill_cost, "reason": "stop_loss"}
            if mid_cost <= tp:
                return {"exit_ts": int(t), "exit_cost": fill_cost, "reason": "take_profit"}
        if minutes.size:
            carry = [(cols[j][0][-1], cols[j][1][-1]) for j in range(2)]
            reached = reached or int(minutes[-1]) >= close_ns
        if day >= expiry:
            break
        nxt = [d for d in calendar.sessions(day + dt.timedelta(days=1), expiry) if d in stored]
        if not nxt:
            break
        day = nxt[0]
        frames = _read_day(store, day)
        days_read.add(day)
    if reached:
        ch = _chain_at(frames[0], frames[1], close_ns, 300.0)
        exp = ch[(ch["root"] == "SPXW") & (ch["expiry"] == expiry)]
        T = max((calendar.settlement_ns("SPXW", expiry) - close_ns) / 60e9, 1.0) / MIN_PER_YEAR
        s = _parity_forward(exp, T, rate, False)
        if math.isfinite(s):
            cost = max(ks - s, 0.0) - max(kl - s, 0.0)
            return {
                "exit_ts": calendar.settlement_ns("SPXW", expiry),
                "exit_cost": cost,
                "reason": "settlement",
            }
    if last is None:
        return {"exit_ts": -1, "exit_cost": math.nan, "reason": "no_exit_quotes"}
    return {"exit_ts": last[0], "exit_cost": last[1], "reason": "end_of_data"}


def pandas_backtest(
    store: str,
    start: dt.date,
    end: dt.date,
    *,
    dte_target: int,
    delta: float,
    entry: str,
    width: float,
    tol: int = 2,
    rate: float = 0.045,
    k: float = 0.30,
    min_credit: float = 0.30,
    max_rel: float = 0.50,
    min_bid: float = 0.05,
    max_age: float = 300.0,
    tp_pct: float = 50.0,
    sl_pct: float = 100.0,
) -> dict[str, Any]:
    """One put-credit-vertical config, one entry time a day, in plain pandas (see module doc)."""
    from quantlab import calendar
    from quantlab.data import layout

    root = Path(store) / "parquet" / "quotes" / "underlying=SPX"
    stored = {layout.as_date(p.name.split("=")[1]) for p in root.iterdir()}
    hh, mm = (int(x) for x in entry.split(":"))
    trades: list[dict[str, Any]] = []
    decisions: dict[str, int] = {}
    days_read: set[dt.date] = set()
    open_until = -1  # exit ts of the last trade
    stopped_at: dict[dt.date, int] = {}  # first stop exit ts per ET date
    for day in [d for d in calendar.sessions(start, end) if d in stored]:
        ts = calendar.to_ns(dt.datetime.combine(day, dt.time(hh, mm), tzinfo=calendar.ET))
        inst, quotes = _read_day(store, day)
        days_read.add(day)
        ch = _chain_at(inst, quotes, ts, max_age)
        sel = _select(ch, day, ts, dte_target, tol, delta, width, rate)
        if isinstance(sel, str):
            decisions[sel] = decisions.get(sel, 0) + 1
            continue
        s, lg = sel["short"], sel["long"]
        credit = _fill(float(s["bid"]), float(s["ask"]), True, k) - _fill(
            float(lg["bid"]), float(lg["ask"]), False, k
        )
        s_mid = 0.5 * (s["bid"] + s["ask"])
        rel = (s["ask"] - s["bid"]) / s_mid if s_mid > 0 else math.nan
        if not math.isfinite(credit) or credit <= 0:
            why = "no_credit"
        elif s["bid"] < min_bid:
            why = "min_bid"
        elif not math.isfinite(rel) or rel > max_rel:
            why = "max_rel_spread"
        elif credit < min_credit:
            why = "min_credit"
        elif open_until > ts:
            why = "max_open_trades"
        elif day in stopped_at and stopped_at[day] <= ts:
            why = "stopped_today"
        else:
            why = ""
        if why:
            decisions[why] = decisions.get(why, 0) + 1
            continue
        out = _walk(
            store,
            sel,
            credit,
            ts,
            (day, inst, quotes),
            stored,
            k,
            (1 - tp_pct / 100) * credit,
            (1 + sl_pct / 100) * credit,
            rate,
            days_read,
        )
        if out["reason"] == "no_exit_quotes":
            decisions["no_exit_quotes"] = decisions.get("no_exit_quotes", 0) + 1
            continue
        decisions["taken"] = decisions.get("taken", 0) + 1
        open_until = out["exit_ts"]
        if out["reason"] == "stop_loss":
            d = dt.datetime.fromtimestamp(out["exit_ts"] / 1e9, tz=calendar.ET).date()
            stopped_at[d] = min(stopped_at.get(d, out["exit_ts"]), out["exit_ts"])
        trades.append(
            {
                "entry_ts": ts,
                "exit_ts": out["exit_ts"],
                "expiry": str(sel["expiry"]),
                "short": float(s["strike"]),
                "long": float(lg["strike"]),
                "credit": credit,
                "exit_cost": out["exit_cost"],
                "reason": out["reason"],
            }
        )
    return {
        "trades": trades,
        "decisions": decisions,
        "days_read": sorted(str(d) for d in days_read),
    }


# --------------------------------------------------------------------------- comparison


def compare_trades(eng: list[dict], pdl: list[dict]) -> tuple[int, list[str]]:
    """Trades agreeing on entry/exit time, expiry, strikes, credit and exit reason; and why not."""
    from quantlab import calendar

    def et(ns: int) -> str:
        return dt.datetime.fromtimestamp(ns / 1e9, tz=calendar.ET).strftime("%m-%d %H:%M")

    by_e = {t["entry_ts"]: t for t in eng}
    by_p = {t["entry_ts"]: t for t in pdl}
    agree = 0
    notes = []
    for ts in sorted(set(by_e) | set(by_p)):
        e, p = by_e.get(ts), by_p.get(ts)
        if e is None or p is None:
            who = "engine" if e is not None else "pandas"
            t = e or p
            assert t is not None
            notes.append(
                f"entry {et(ts)}: only the {who} trades ({t['expiry']} "
                f"{t['short']:.0f}/{t['long']:.0f}P, exit {t['reason']})"
            )
            continue
        diffs = []
        for key in ("expiry", "short", "long", "exit_ts", "reason"):
            if e[key] != p[key]:
                ev, pv = e[key], p[key]
                if key == "exit_ts":
                    ev, pv = et(ev), et(pv)
                diffs.append(f"{key} engine {ev} / pandas {pv}")
        if abs(e["credit"] - p["credit"]) > 1e-9:
            diffs.append(f"credit engine {e['credit']:.2f} / pandas {p['credit']:.2f}")
        if abs(e["exit_cost"] - p["exit_cost"]) > 1e-6:
            diffs.append(f"exit cost engine {e['exit_cost']:.4f} / pandas {p['exit_cost']:.4f}")
        if diffs:
            notes.append(f"entry {et(ts)}: " + "; ".join(diffs))
        else:
            agree += 1
    return agree, notes


# --------------------------------------------------------------------------- parent


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Needs the store built by benchmarks/data.py.",
    )
    ap.add_argument(
        "--store",
        type=Path,
        default=DEFAULT_STORE,
        help=f"store built by benchmarks/data.py (default {DEFAULT_STORE})",
    )
    ap.add_argument("--start", default=None, help="first entry date (default: first stored)")
    ap.add_argument("--end", default=None, help="last entry date (default: last stored)")
    ap.add_argument("--workers", type=int, default=2, help="stage-1 processes (default 2)")
    ap.add_argument(
        "--compare-month",
        default="2024-03",
        help="YYYY-MM for the pandas comparison (default 2024-03)",
    )
    ap.add_argument(
        "--skip-grid",
        action="store_true",
        help="no grid (the single-process stage-2 step and the comparison still run)",
    )
    ap.add_argument("--skip-compare", action="store_true", help="only the grid")
    ap.add_argument("--top", type=int, default=10, help="configs in the P&L table (default 10)")
    ap.add_argument(
        "--stage2-repeats",
        type=int,
        default=7,
        help="single-process stage 2: timed calls of the representative config after "
        "each grid config once (default 7; 0 skips the single-process step)",
    )
    ap.add_argument(
        "--profile-stage2",
        action="store_true",
        help="also print a cProfile of one stage-2 call of the representative "
        "config (top functions by cumulative and own time)",
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
    from quantlab.data import store as st

    console = make_console()
    store: Path = args.store
    stored = st.list_days(store, "quotes", "SPX") if store.is_dir() else []
    if not stored:
        raise SystemExit(
            f"no SPX quotes in {store}: build the simulated year first with\n"
            f"    .venv/bin/python benchmarks/data.py --store {store}\n"
            "(a few minutes; add --days N for a shorter range)."
        )
    start = dt.date.fromisoformat(args.start) if args.start else stored[0]
    end = dt.date.fromisoformat(args.end) if args.end else stored[-1]
    days = [d for d in calendar.sessions(start, end) if d in set(stored)]
    if not days:
        raise SystemExit(
            f"no stored sessions between {start} and {end} in {store} "
            f"(it holds {stored[0]}..{stored[-1]})."
        )
    rows = quote_rows(store, days)
    script = Path(__file__).resolve()
    from quantlab.data import daycache

    cached = sum(daycache.is_cached(store, "SPX", d) for d in days)
    console.print(
        f"machine: 2-core box; load average now {load_avg()}; store {store}: "
        f"{len(days)} sessions {days[0]}..{days[-1]}, {rows:,} quote rows, "
        f"{fmt_bytes(dir_size(store / 'parquet' / 'quotes'))} of quote Parquet; day cache "
        f"(quantlab.data.daycache) holds {cached} of these sessions"
        + ("" if daycache.enabled() else " (off: QUANTLAB_DAY_CACHE=0)")
    )
    console.print(f"warm-up: one config, one day (numba cache / .pyc refresh; load {load_avg()})")
    w = run_step(script, "warmup", {"store": str(store), "day": days[0].isoformat()})
    console.print(f"  {w.result['seconds']:.1f} s in the call, {w.wall_s:.1f} s process wall")
    if not args.skip_grid:
        console.print(
            f"[bold]grid[/bold]: 54 configs, stage 1 over {args.workers} workers "
            f"(load {load_avg()})"
        )
        gargs = {
            "store": str(store),
            "start": days[0].isoformat(),
            "end": days[-1].isoformat(),
            "workers": args.workers,
        }
        g = run_step(script, "grid", gargs)
        print_grid(console, g, rows, len(days), args)
        grid_s = g.result["stage1_s"] + g.result["stage2_s"]
    else:
        g, grid_s = None, None
    if args.stage2_repeats > 0 or args.profile_stage2:
        console.print(
            f"[bold]stage 2 in one process[/bold]: 54 configs once, "
            f"{COMPARE_LABEL} x {args.stage2_repeats} (load {load_avg()})"
        )
        sargs = {
            "store": str(store),
            "start": days[0].isoformat(),
            "end": days[-1].isoformat(),
            "workers": args.workers,
            "repeats": args.stage2_repeats,
            "profile": args.profile_stage2,
        }
        print_stage2(console, run_step(script, "stage2", sargs), g.result if g else None)
    if not args.skip_compare:
        run_compare(console, script, store, stored, args, grid_s)
    console.print(f"load average now {load_avg()}")


def print_grid(console: Any, g: Any, rows: int, n_days: int, args: argparse.Namespace) -> None:
    from rich.table import Table

    r = g.result
    total = r["stage1_s"] + r["stage2_s"]
    thr = rows / total
    t = Table(
        title=f"54-config grid over {n_days} sessions ({rows:,} quote rows); "
        f"load 1/5/15 min {g.load}"
    )
    for col in ("figure", "value", "target", ""):
        t.add_column(col)
    lean_x = thr / LEAN_POINTS_PER_S
    for row in [
        ("stage 1 (candidates + quote paths, all configs)", f"{r['stage1_s']:.2f} s", "", ""),
        (
            "  candidates / rejections / path rows",
            f"{r['candidates']:,} / {r['rejections']:,} / {r['path_rows']:,}",
            "",
            "",
        ),
        (
            f"stage 2 ({r['n_configs']} configs over {args.workers} processes)",
            f"{r['stage2_s']:.2f} s",
            "",
            "",
        ),
        (
            "  stage 2 wall per config (stage-2 wall / configs)",
            f"{1e3 * r['stage2_s'] / r['n_configs']:.1f} ms/config",
            "",
            "",
        ),
        ("  stage 2 share of the total", f"{100 * r['stage2_s'] / total:.0f} %", "", ""),
        (
            "total (stage 1 + stage 2)",
            f"{total:.2f} s",
            f"<= {TARGET_GRID_S:.0f} s",
            ok_mark(total <= TARGET_GRID_S),
        ),
        ("  step process wall (incl. imports, spawn)", f"{g.wall_s:.1f} s", "", ""),
        (
            "  CPU of the grid: this process + pool workers (user + system)",
            f"{r['cpu_self_s'] + r['cpu_children_s']:.1f} s ({r['cpu_self_s']:.1f} + "
            f"{r['cpu_children_s']:.1f})",
            "",
            "",
        ),
        ("configs per second", f"{r['n_configs'] / total:.2f}", "", ""),
        (
            "throughput (stored quote rows / total)",
            fmt_rate(thr),
            f">= {fmt_rate(TARGET_X * LEAN_POINTS_PER_S)}",
            ok_mark(lean_x >= TARGET_X),
        ),
        ("  vs LEAN ~127,000 data points/s", f"{lean_x:,.0f}x", f">= {TARGET_X:.0f}x", ""),
        (
            "peak memory: process / largest worker (ru_maxrss)",
            f"{fmt_bytes(g.rss_self)} / {fmt_bytes(g.rss_children)}",
            "",
            "",
        ),
        (
            "peak memory: process tree (PSS summed, sampled every 0.2 s)",
            fmt_bytes(g.tree_peak),
            "<= 4 GB",
            ok_mark(g.tree_peak <= TARGET_MEM and g.rss_self <= TARGET_MEM),
        ),
    ]:
        t.add_row(*row)
    console.print(t)
    m = sorted(r["metrics"], key=lambda x: -x["total_pnl"])
    t2 = Table(
        title=f"Top {args.top} of {len(m)} configs by total P&L ($, 1 contract, net of fees)"
    )
    cols = (
        "config",
        "trades",
        "win %",
        "total P&L",
        "avg P&L",
        "max DD",
        "avg credit",
        "TP/SL/settle/eod",
    )
    for col in cols:
        t2.add_column(col, justify="right" if col != "config" else "left")
    for x in m[: args.top]:
        t2.add_row(
            x["name"],
            str(x["trades"]),
            f"{100 * x['win_rate']:.0f}",
            f"{x['total_pnl']:,.0f}",
            f"{x['avg_pnl']:,.1f}",
            f"{x['max_dd']:,.0f}",
            f"{x['avg_credit']:.2f}",
            f"{x['tp']}/{x['sl']}/{x['settle']}/{x['eod']}",
        )
    console.print(t2)
    tot = sum(x["trades"] for x in m)
    console.print(
        f"all configs: {tot:,} trades; configs with no trade: "
        f"{sum(1 for x in m if x['trades'] == 0)}"
    )


def print_stage2(console: Any, p: Any, grid: dict[str, Any] | None) -> None:
    """The single-process stage-2 figures, next to the grid's parallel stage-2 wall."""
    import statistics

    from rich.table import Table

    r = p.result
    n = len(r["per_config_ms"])
    t = Table(
        title=f"stage 2 in one process over the benchmark range ({r['candidates']:,} "
        f"candidates; stage 1 again: {r['stage1_s']:.2f} s wall, "
        f"{r['stage1_cpu_s']:.1f} s CPU); load 1/5/15 min {p.load}"
    )
    for col in ("figure", "wall", "CPU (process_time)"):
        t.add_column(col)
    rep, rcpu = r["rep_ms"], r["rep_cpu_ms"]
    cpu = sorted(r["per_config_cpu_ms"].values())
    rows = [
        ("first call (warm-up, not counted)", f"{r['warm_ms']:.1f} ms", ""),
        (
            f"{n} grid configs once each, summed (serial stage 2)",
            f"{r['serial_total_s']:.2f} s",
            f"{r['serial_cpu_s']:.2f} s",
        ),
        (
            "  per config: median (min - max)",
            f"{r['median_ms']:.1f} ms ({r['min_ms']:.1f} - {r['max_ms']:.1f})",
            f"{r['median_cpu_ms']:.1f} ms ({cpu[0]:.1f} - {cpu[-1]:.1f})",
        ),
        (
            "  per config: mean",
            f"{1e3 * r['serial_total_s'] / max(n, 1):.1f} ms",
            f"{1e3 * r['serial_cpu_s'] / max(n, 1):.1f} ms",
        ),
    ]
    if grid is not None:
        rows.append(
            (
                "grid stage 2 (parallel) wall / configs, for comparison",
                f"{1e3 * grid['stage2_s'] / grid['n_configs']:.1f} ms/config",
                "",
            )
        )
    if rep:
        rows.append(
            (
                f"{r['rep_name']} ({r['rep_trades']} trades) x {len(rep)}: median (min - max)",
                f"{statistics.median(rep):.1f} ms ({min(rep):.1f} - {max(rep):.1f})",
                f"{statistics.median(rcpu):.1f} ms ({min(rcpu):.1f} - {max(rcpu):.1f})",
            )
        )
    for row in rows:
        t.add_row(*row)
    console.print(t)
    if r.get("profile"):
        console.print(f"[bold]cProfile of one stage-2 call of {r['rep_name']}[/bold]")
        console.print(r["profile"], markup=False, highlight=False)


def run_compare(
    console: Any,
    script: Path,
    store: Path,
    stored: list[dt.date],
    args: argparse.Namespace,
    grid_s: float | None = None,
) -> None:
    from rich.table import Table

    from quantlab import calendar

    y, mth = (int(x) for x in args.compare_month.split("-"))
    m0 = dt.date(y, mth, 1)
    m1 = dt.date(y + (mth == 12), mth % 12 + 1, 1) - dt.timedelta(days=1)
    mdays = [d for d in calendar.sessions(m0, m1) if d in set(stored)]
    if not mdays:
        raise SystemExit(f"--compare-month {args.compare_month}: no stored sessions in it.")
    rows = quote_rows(store, mdays)
    sargs = {
        "store": str(store),
        "start": mdays[0].isoformat(),
        "end": mdays[-1].isoformat(),
        "workers": args.workers,
    }
    c = COMPARE
    label = f"DTE {c['dte']}, |delta| {c['delta']:.2f}, {c['time']}, width {c['width']}"
    console.print(
        f"[bold]comparison[/bold] {label} over {args.compare_month} "
        f"({len(mdays)} sessions, {rows:,} quote rows): engine (load {load_avg()})"
    )
    e = run_step(script, "engine_month", sargs)
    console.print(f"  pandas loop (load {load_avg()})")
    p = run_step(script, "pandas", sargs)
    er, pr = e.result, p.result
    agree, notes = compare_trades(er["trades"], pr["trades"])
    rows_read = quote_rows(store, [dt.date.fromisoformat(d) for d in pr["days_read"]])
    t = Table(title=f"{label}, {args.compare_month}: engine vs plain pandas loop")
    for col in ("", "engine", "pandas loop"):
        t.add_column(col)
    n_tr = max(len(er["trades"]), len(pr["trades"]))
    rows_tbl = [
        ("load 1/5/15 min: before → after", e.load, p.load),
        (
            f"wall, 1st run in the step process (engine: workers={args.workers}, a spawn pool "
            "from 10 sessions per worker)",
            f"{er['seconds']:.2f} s",
            f"{pr['seconds']:.2f} s",
        ),
        (
            "wall, 2nd run (engine: workers=1 in process, in-memory day LRU emptied, arrays from "
            "the store's day cache when it holds them; pandas: Parquet again)",
            f"{er['seconds_inproc']:.2f} s",
            f"{pr['seconds_again']:.2f} s",
        ),
        (
            "quote rows/s = month's stored rows / wall (1st; 2nd)",
            f"{fmt_rate(rows / er['seconds'])}; {fmt_rate(rows / er['seconds_inproc'])}",
            f"{fmt_rate(rows / pr['seconds'])}; {fmt_rate(rows / pr['seconds_again'])}",
        ),
        (
            "pandas wall / engine wall (1st; 2nd)",
            f"{pr['seconds'] / er['seconds']:.2f}x; {pr['seconds_again'] / er['seconds_inproc']:.1f}x",
            "",
        ),
        (
            "extrapolated, not measured: 54 configs x 12 months at the 2nd-run wall",
            f"(the grid above: {grid_s:.0f} s)" if grid_s else "",
            f"{54 * 12 * pr['seconds_again'] / 60:.1f} min",
        ),
        (
            "sessions read / their quote rows",
            f"{len(er['days_read'])}",
            f"{len(pr['days_read'])} / {rows_read:,}",
        ),
        ("peak memory (step process tree)", fmt_bytes(e.peak), fmt_bytes(p.peak)),
        ("trades", str(len(er["trades"])), str(len(pr["trades"]))),
        (
            "trades agreeing (entry/exit ts, expiry, strikes, credit, exit cost, reason)",
            f"{agree} of {n_tr}",
            "",
        ),
    ]
    for row in rows_tbl:
        t.add_row(*row)
    console.print(t)
    if not er["pool_equals_inproc"]:
        console.print("[red]engine: the pool and in-process runs gave different trades[/red]")
    if not pr["repeatable"]:
        console.print("[red]pandas loop: the two runs gave different trades[/red]")
    console.print("engine decisions: " + ", ".join(f"{k}={v}" for k, v in er["decisions"].items()))
    console.print("pandas decisions: " + ", ".join(f"{k}={v}" for k, v in pr["decisions"].items()))
    for n in notes:
        console.print(f"  [yellow]differs[/yellow] {n}")
    if not notes:
        console.print("  every trade agrees.")


if __name__ == "__main__":
    main()
