"""Walk-forward benchmark: the 54-config seed grid over the simulated year, monthly steps.

    .venv/bin/python benchmarks/walkforward.py [--store /tmp/quantlab_bench_store]

Runs ``pipelines/walkforward_seed.yaml`` (the seed grid of ``pipelines/seed_grid.yaml``; train 6
months, test 1, step 1, rolling; criterion Sharpe) end to end through
:func:`quantlab.backtest.walkforward_run.walkforward`: stage 1 once for all configs (sharded over
``--workers`` processes), stage 2 of every config over the year, the choice per window and each
test window's stage 2, the Parquet outputs, the HTML page and MLflow logging (a throw-away store
under ``--mlflow``; ``--no-mlflow`` to skip it). Prints the wall time of each part, the load
average and the table of windows with the out-of-sample and look-ahead figures. Target: <= 60 s.
Needs the store built by benchmarks/data.py.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--store", default="/tmp/quantlab_bench_store")
    ap.add_argument("--config", default=str(REPO / "pipelines" / "walkforward_seed.yaml"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/quantlab_bench_walkforward")
    ap.add_argument("--mlflow", default="/tmp/quantlab_bench_wf_mlruns")
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args()
    import os

    from quantlab.backtest._walkforward_report import short_name
    from quantlab.backtest.walkforward_cli import windows_table
    from quantlab.backtest.walkforward_run import walkforward

    con = Console(width=200)
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.rmtree(args.mlflow, ignore_errors=True)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    load0 = "/".join(f"{x:.2f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    run = walkforward(
        args.config,
        args.store,
        args.out,
        workers=args.workers,
        mlflow=not args.no_mlflow,
        mlflow_root=args.mlflow,
    )
    total = time.perf_counter() - t0
    load1 = "/".join(f"{x:.2f}" for x in os.getloadavg())
    s = run.result.summary
    con.print(windows_table(run.result.windows))
    d = s["deflated_sharpe"]
    con.print(
        f"out of sample ({s['oos_sessions']} sessions): P&L ${s['oos_total_pnl']:,.0f}, Sharpe "
        f"{s['oos_sharpe']:.2f}, {s['oos_n_trades']} trades; deflated Sharpe {d['dsr']:.3g} "
        f"(per-session SR {d.get('sr', float('nan')):.3f} vs expected max "
        f"{d.get('sr_star', float('nan')):.3f} of {d['n_trials']:.0f} configs)"
    )
    con.print(
        f"look-ahead ({short_name(s['lookahead_config'])}): P&L ${s['lookahead_total_pnl']:,.0f}, "
        f"Sharpe {s['lookahead_sharpe']:.2f}, {s['lookahead_n_trades']} trades"
    )
    rest = total - run.stage1_s - run.walk_s
    ok = "met" if total <= TARGET_S else "NOT met"
    con.print(
        f"{s['n_configs']} configs, {s['n_windows']} windows: stage 1 {run.stage1_s:.1f} s, "
        f"walk (stage 2 of every config + each window) {run.walk_s:.2f} s, outputs/page/MLflow "
        f"{rest:.1f} s, total {total:.1f} s (target <= {TARGET_S:.0f} s: {ok}); "
        f"load {load0} -> {load1}"
    )
    con.print(f"outputs: {run.out}/walkforward.html")


if __name__ == "__main__":
    main()
