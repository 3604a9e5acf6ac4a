"""Greeks benchmark: the 54-config seed grid over the simulated year with greeks off and on.

    .venv/bin/python benchmarks/data.py          # first: builds /tmp/quantlab_bench_store
    .venv/bin/python benchmarks/greeks.py [--repeats 3]

Each run is :func:`quantlab.backtest.engine.run_grid` in a fresh process over ``--workers``
processes, alternating:

- **off**: stage 1 without path forwards (``forwards=False``) and stage 2 of every config, the
  grid as it ran before greeks existed;
- **close**: stage 1 with each path minute's parity forward, stage 2 of every config and its
  :meth:`~quantlab.backtest.stage2.PortfolioResult.risk` at session closes (each trade's
  greeks, vols and a daily second-order attribution at each close and its exit, the entry
  scenario grid; the per-trade and daily tables kept, ``minutes=False``) on the workers, as
  ``run_grid(risk=True)`` does by default;
- **minute**: the same with the risk read at every path minute of every trade (the
  attribution summed minute by minute, as a single backtest's report has it).

Printed: stage 1, stage 2 (+ risk) and total wall per run, the ranges over ``--repeats`` runs of
each and the ratio on/off (target <= 1.5x), the trades and the risk rows (trade-minutes) computed,
and the load average before and after each run. Then one config's full ``risk()`` (with the
minute frame, as the report draws it) timed in one process. Needs the store built by
benchmarks/data.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _common import add_bytecode_flag, apply_bytecode_flag, emit, machine_line, run_step
from _common import console as make_console
from backtest import DEFAULT_STORE, compare_spec, grid_specs

TARGET_RATIO = 1.5


def step_grid(a: dict[str, Any]) -> dict[str, Any]:
    """The seed grid with greeks off or on (see the module docstring)."""
    from quantlab.backtest.engine import run_grid

    mode = a["mode"]
    on = mode != "off"
    start, end = dt.date.fromisoformat(a["start"]), dt.date.fromisoformat(a["end"])
    t0 = time.perf_counter()
    g = run_grid(
        a["store"], grid_specs(), start, end, workers=a["workers"], forwards=on, risk=on,
        risk_cadence=mode if on else "close",
    )  # fmt: skip
    wall = time.perf_counter() - t0
    out = {
        "wall_s": wall,
        "stage1_s": g.stage1_s,
        "stage2_s": g.stage2_s,
        "trades": sum(r.trades.height for r in g.results),
        "path_rows": int(g.stage1.path_ts.size),
    }
    if on:
        risks = [r.risk(minutes=False, cadence=mode) for r in g.results]
        out["risk_trades"] = sum(r.trades.height for r in risks)
        out["risk_trade_days"] = sum(r.daily.height for r in risks)
        shares = [r.explained_share() for r in risks]
        out["explained_median"] = float(np.nanmedian(shares))
    return out


def step_report(a: dict[str, Any]) -> dict[str, Any]:
    """One config's stage 1 + 2, then its ``risk()`` with the minute frame, in one process."""
    from quantlab.backtest.stage1 import run_stage1
    from quantlab.backtest.stage2 import run_stage2

    spec = compare_spec()
    start, end = dt.date.fromisoformat(a["start"]), dt.date.fromisoformat(a["end"])
    s1 = run_stage1(a["store"], [spec], start, end)
    run_stage2(s1, spec).risk()  # compiled and warm
    times = []
    for _ in range(a["repeats"]):
        res = run_stage2(s1, spec)
        t0 = time.perf_counter()
        r = res.risk()
        times.append(time.perf_counter() - t0)
    return {
        "risk_s": times,
        "trades": res.trades.height,
        "minute_rows": r.minutes.height,
        "explained": r.explained_share(),
    }


STEPS = {"grid": step_grid, "report": step_report}


def _rng(xs: list[float]) -> str:
    return f"{min(xs):.2f}-{max(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--store", type=Path, default=DEFAULT_STORE)
    ap.add_argument("--start", default="2024-01-02")
    ap.add_argument("--end", default="2024-12-31")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each mode (default 3)")
    add_bytecode_flag(ap)
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--step-args", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        emit(STEPS[args.step](json.loads(args.step_args)))
        return
    apply_bytecode_flag(args)
    from rich.table import Table

    con = make_console()
    con.print(machine_line())
    script = Path(__file__).resolve()
    base = {"store": str(args.store), "start": args.start, "end": args.end}
    base["workers"] = args.workers
    con.print("warm-up: one run of each mode (numba cache, day cache)")
    modes = ("off", "close", "minute")
    for mode in modes:
        run_step(script, "grid", base | {"mode": mode})
    runs: dict[str, list[Any]] = {m: [] for m in modes}
    t = Table(title="seed grid, greeks off / at closes / every minute", header_style="bold")
    for h in ("run", "greeks", "stage 1 s", "stage 2 (+risk) s", "total s", "explained", "load"):
        t.add_column(h)
    for i in range(args.repeats):
        for mode in modes:
            r = run_step(script, "grid", base | {"mode": mode})
            runs[mode].append(r)
            res = r.result
            t.add_row(
                str(i + 1),
                mode,
                f"{res['stage1_s']:.2f}",
                f"{res['stage2_s']:.2f}",
                f"{res['wall_s']:.2f}",
                f"{res['explained_median']:.1%}" if "explained_median" in res else "",
                f"{r.load_before} -> {r.load_after}",
            )
    con.print(t)
    off = [r.result["wall_s"] for r in runs["off"]]
    for mode in modes[1:]:
        on_ = [r.result["wall_s"] for r in runs[mode]]
        ratios = [b / a for a, b in zip(off, on_, strict=True)]
        ok = "met" if max(ratios) <= TARGET_RATIO else "NOT met"
        last = runs[mode][-1].result
        con.print(
            f"greeks {mode}: off {_rng(off)} s, on {_rng(on_)} s, ratio {_rng(ratios)}x per run "
            f"pair (target <= {TARGET_RATIO}x: {ok}); {last['path_rows']:,} stage-1 path "
            f"forwards, the risk of {last['risk_trades']:,} trades "
            f"({last['risk_trade_days']:,} trade-days; median share of daily P&L variance "
            f"explained per config {last['explained_median']:.1%})"
        )
    rep = run_step(script, "report", base | {"repeats": 5}).result
    con.print(
        f"one config ({rep['trades']} trades, {rep['minute_rows']:,} trade-minutes): risk() "
        f"with the minute frame {_rng(rep['risk_s'])} s; attribution explains "
        f"{rep['explained']:.1%} of its daily P&L variance (held to exit, expiry days included)"
    )


if __name__ == "__main__":
    main()
