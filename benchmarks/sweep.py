"""Sweep benchmark: 1,000 configs over the simulated year, end to end through `run_sweep`.

    .venv/bin/python benchmarks/sweep.py [--store /tmp/quantlab_bench_store] [--n 1000]

A random search over the seed structure's parameters (DTE, short delta, entry time, width,
take profit, stop loss, fill model k), with the shared stage 1, stage 2 in batches of configs
on the process pool, the reports of the 5 best, the DuckDB results and MLflow logging (a
throw-away store under --mlflow). Target: 1,000 configs over a year in < 90 s on this 2-core
machine.
Needs the store built by benchmarks/data.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import yaml
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--store", default="/tmp/quantlab_bench_store")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/quantlab_bench_sweep")
    ap.add_argument("--mlflow", default="/tmp/quantlab_bench_mlruns")
    ap.add_argument("--keep", action="store_true", help="resume instead of starting fresh")
    args = ap.parse_args()
    from quantlab.console import wide_console
    from quantlab.data import store as st
    from quantlab.sweep.config import SweepConfig
    from quantlab.sweep.runner import run_sweep

    con = wide_console()
    days = st.list_days(args.store, "quotes", "SPX")
    if not days:
        raise SystemExit(f"no store at {args.store}: run benchmarks/data.py first")
    if not args.keep:
        for p in (args.out, args.mlflow):
            shutil.rmtree(p, ignore_errors=True)
    base = yaml.safe_load((REPO / "pipelines" / "strategies" / "spxw_put_credit.yaml").read_text())
    grid = {
        "dte.target": [3, 5, 7],
        "short_delta": [0.08, 0.10, 0.12, 0.15, 0.20],
        "entry.times": [["10:00"], ["11:00"], ["12:00"]],
        "width": [10, 25, 50],
        "management.take_profit_pct": [30, 50, 70, 90],
        "management.stop_loss_pct": [50, 100, 200, 300],
        "fills.k": [0.0, 0.3, 0.5],
    }
    cfg = SweepConfig.from_dict(
        {
            "name": "bench-1000",
            "base": base,
            "search": "random",
            "n_samples": args.n,
            "seed": 1,
            "grid": grid,
            "heatmaps": [["dte.target", "short_delta"]],
            "pbo_splits": 16,
        }
    )
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    e0 = time.time()
    res = run_sweep(
        cfg, args.store, args.out, workers=args.workers, mlflow_root=args.mlflow, progress=True
    )
    wall = time.perf_counter() - t0
    s2 = [s.get("seconds", 0.0) for s in res.status.values()]
    phases = _phases(Path(args.out), e0)
    table = Table(
        title=f"sweep of {args.n} configs over {len(days)} sessions (load {load0[0]:.2f} -> {os.getloadavg()[0]:.2f})"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("configs done / failed", f"{res.summary['done']} / {res.summary['failed']}")
    table.add_row("candidates (shared stage 1)", f"{res.summary['candidates']:,}")
    table.add_row("wall time", f"{wall:,.1f} s (target < 90 s)")
    table.add_row("seconds per config (wall / configs)", f"{wall / max(len(res.points), 1):.3f}")
    if phases is not None:
        s1_s, s2_s = phases
        n2 = max(len(s2), 1)
        table.add_row("stage 1 wall (shards + merge)", f"{s1_s:,.1f} s")
        table.add_row(
            f"stage 2 wall ({args.workers} processes)",
            f"{s2_s:,.1f} s = {1e3 * s2_s / n2:.0f} ms/config",
        )
        table.add_row(
            "after stage 2 (summary, reports, DuckDB, MLflow)", f"{wall - s1_s - s2_s:,.1f} s"
        )
    table.add_row(
        "stage 2 task per config (incl. Parquet/metrics writes): median / mean",
        f"{1e3 * sorted(s2)[len(s2) // 2]:.0f} / {1e3 * sum(s2) / max(len(s2), 1):.0f} ms",
    )
    if "deflated_sharpe" in res.summary:
        table.add_row(
            "deflated Sharpe ratio of the best", f"{res.summary['deflated_sharpe']['dsr']:.3g}"
        )
    if "pbo" in res.summary:
        table.add_row("PBO (CSCV, 16 blocks)", f"{res.summary['pbo']['pbo']:.3g}")
    for row in res.summary.get("best", [])[: cfg.report_top]:
        if "break_even" in row:
            table.add_row(f"cost curve of {row['config_id']}", row["break_even"])
    con.print(table)


def _phases(out: Path, started: float) -> tuple[float, float] | None:
    """Stage-1 and stage-2 wall seconds of a fresh sweep, from the files it wrote: stage 1 ends
    with the merged stage-1 folder, stage 2 with the last config's ``status.json``."""
    merged = [f for f in out.glob("stage1/*/merged/**/*") if f.is_file()]
    done = list(out.glob("configs/*/status.json"))
    if not merged or not done:
        return None
    s1_end = max(f.stat().st_mtime for f in merged)
    s2_end = max(f.stat().st_mtime for f in done)
    return s1_end - started, s2_end - s1_end


if __name__ == "__main__":
    main()
