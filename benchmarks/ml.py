"""Meta-labeling benchmark: features for a year of the seed grid's candidates, and a 50-trial
Optuna study on them.

    .venv/bin/python benchmarks/ml.py [--store /tmp/quantlab_bench_store] [--trials 50]

Targets on this 2-core machine: features for a year of seed-grid candidates <= 1 minute; a
50-trial Optuna study on that data <= 5 minutes. Needs the store built by benchmarks/data.py.
The feature build is incremental and the Optuna study resumes, so a second run reuses what the
first wrote: pass --fresh to measure from scratch.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--store", default="/tmp/quantlab_bench_store")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--fresh", action="store_true", help="delete earlier features and the study first"
    )
    args = ap.parse_args()
    from quantlab.backtest.engine import stage1
    from quantlab.data import store as st
    from quantlab.features import DEFAULT, build_features
    from quantlab.features.build import features_dir
    from quantlab.ml.labels import make_labels
    from quantlab.ml.tuning import tune
    from quantlab.strategy import StrategySpec

    con = Console()
    days = st.list_days(args.store, "quotes", "SPX")
    if not days:
        raise SystemExit(f"no store at {args.store}: run benchmarks/data.py first")
    storage = Path("/tmp/quantlab_bench_optuna.db")
    if args.fresh:
        shutil.rmtree(features_dir(args.store, DEFAULT), ignore_errors=True)
        Path(args.store, "features.duckdb").unlink(missing_ok=True)
        storage.unlink(missing_ok=True)
    base = yaml.safe_load((REPO / "pipelines" / "strategies" / "spxw_put_credit.yaml").read_text())
    specs = []
    for dte, delta, t, w in itertools.product(
        [3, 5, 7], [0.10, 0.20], ["10:00", "11:00", "12:00"], [10, 25, 50]
    ):
        specs.append(
            StrategySpec.from_dict(
                base
                | {
                    "name": f"g{dte}-{delta}-{t}-{w}",
                    "dte": {"target": dte, "tolerance": 2},
                    "short_delta": delta,
                    "entry": {"times": [t]},
                    "width": w,
                }
            )
        )
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    s1 = stage1(args.store, specs, days[0], days[-1], workers=args.workers)
    t_s1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = build_features(args.store, s1, DEFAULT, progress=True)
    t_feat = time.perf_counter() - t0
    # every candidate of the grid labelled by its own outcome (the grid shares TP/SL rules)
    labels = pl.concat([make_labels(s1, spec) for spec in specs]).unique(
        "candidate_id", keep="first"
    )
    data = labels.join(feats.drop("entry_ts", "entry_date"), on="candidate_id", how="inner").sort(
        "t0"
    )
    cols = [c for c in DEFAULT.columns if c in data.columns]
    X = data.select(cols).cast({c: float for c in cols}).to_numpy()
    y = data["label"].to_numpy().astype(np.int64)
    t0 = time.perf_counter()
    res = tune(
        X,
        y,
        data["t0"].to_numpy(),
        data["t1"].to_numpy(),
        study_name="bench-50",
        storage=storage,
        n_trials=args.trials,
        seed=0,
        n_splits=5,
        embargo=0.01,
    )
    t_opt = time.perf_counter() - t0
    table = Table(
        title=f"meta-labeling over {len(days)} sessions (load {load0:.2f} -> {os.getloadavg()[0]:.2f})"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("stage 1 (54 configs)", f"{t_s1:.1f} s, {len(s1):,} candidates")
    table.add_row(
        "features (all candidates)",
        f"{t_feat:.1f} s = {feats.height / max(t_feat, 1e-9):,.0f} candidates/s (target <= 60 s)",
    )
    table.add_row("labelled candidates (all 54 configs)", f"{y.size:,} ({y.mean():.1%} positive)")
    table.add_row(
        f"Optuna study, {res.n_new} new trials",
        f"{t_opt:.1f} s (target <= 300 s); best CV AUC {res.best_value:.3f}",
    )
    con.print(table)


if __name__ == "__main__":
    main()
