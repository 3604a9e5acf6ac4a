"""Running a sweep: shared stage 1 sharded by date, stage 2 in batches of configs, one writer.

Layout under ``--out`` (default ``out/sweeps/<name>``)::

    stage1/<key>/shard-<first>-<last>/   stage-1 shards (workers write; a folder that exists is complete)
    stage1/<key>/merged/                 all shards in one result, memory-mapped by stage-2 workers
    configs/<config_id>/                 trades / decisions / equity_daily Parquet, metrics.json,
                                         status.json ("done" or "failed" with the error),
                                         report/ for the best configs (with cost_curve.parquet),
                                         mlflow_run_id once logged
    sweep.duckdb                         configs, metrics, trades and daily equity, for SQL;
                                         cost_curves of the configs with a report
    summary.json, heatmap_*.png          the summary with the deflated Sharpe ratio and the PBO;
                                         its best configs with a report carry their break-even k

A rerun skips every finished shard and config, and logs to MLflow only what it has not logged.
Workers write Parquet only; this process alone writes DuckDB and MLflow. One pool serves the
whole sweep: stage 1, stage 2 (configs in batches, each returning its configs' metrics and daily
returns so nothing just written is read back), then the reports of the best configs, which run
on the workers while this process writes the summary and DuckDB and logs to MLflow (imported and
set up in a thread during stage 2; see :mod:`quantlab.sweep.mlflow_log`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import shutil
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.data import store as st
from quantlab.errors import DataError
from quantlab.strategy.spec import StrategySpec
from quantlab.sweep.config import ConfigPoint, SweepConfig, expand
from quantlab.sweep.executors import make_executor
from quantlab.sweep.tasks import (
    COST_CURVE_FILE,
    PendingReports,
    break_even_of,
    report_task,
    stage2_batch,
)

#: most configs in one stage-2 task (a batch has about 8 per worker when there are fewer)
MAX_BATCH = 32


def _reset_if_stale(out_dir: Path, key: str, progress: bool) -> None:
    """A sweep folder resumes only over the same data and candidate rules (the stage-1 key:
    rules, dates, data checksum). Otherwise its config results, stage 1 and MLflow parent link
    are removed so old and new data never mix (runs already in MLflow stay, tagged with their
    own data checksum)."""
    kfile = out_dir / "stage1_key"
    old = kfile.read_text().strip() if kfile.is_file() else None
    if old is not None and old != key:
        if progress:
            print(
                f"sweep {out_dir}: data or candidate rules changed (stage 1 {old} -> {key}); "
                "recomputing every config",
                file=sys.stderr,
            )
        for name in ("configs", "stage1"):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in ("mlflow_parent_run_id", "summary.json", "sweep.duckdb"):
            (out_dir / name).unlink(missing_ok=True)
    kfile.write_text(key)


def _status(folder: Path) -> dict[str, Any] | None:
    p = folder / "status.json"
    return json.loads(p.read_text()) if p.is_file() else None


@dataclass
class SweepResult:
    out: Path
    points: list[ConfigPoint]
    status: dict[str, dict[str, Any]]
    metrics: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Stage2:
    """Stage 2 as this run saw it: every config's status, and the metrics and daily returns of
    the configs it ran (those done before are on disk)."""

    status: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, float]]
    returns: dict[str, np.ndarray]


def _stage1_key(specs: list[StrategySpec], a: dt.date, b: dt.date, checksum: str) -> str:
    from quantlab.backtest.stage1 import STAGE1_FORMAT, rules_for

    key = {"rules": sorted(rules_for(specs)), "a": str(a), "b": str(b), "data": checksum}
    blob = json.dumps(key | {"format": STAGE1_FORMAT})
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def run_sweep(
    cfg: SweepConfig,
    store: str | Path = "data",
    out: str | Path | None = None,
    *,
    executor: str = "process",
    workers: int | None = None,
    mlflow: bool = True,
    mlflow_root: str | Path = "mlruns",
    progress: bool = True,
    batch: int | None = None,
) -> SweepResult:
    """Run (or resume) a sweep; see the module docstring for what it writes.

    ``batch``: configs per stage-2 task (default: about 8 tasks per worker, at most
    :data:`MAX_BATCH` configs each); results do not depend on it.
    """
    from quantlab.backtest.engine import plan_shards, progress_bar, sharded_stage1
    from quantlab.backtest.stage1 import data_checksum, load_stage1

    out_dir = Path(out) if out is not None else Path("out") / "sweeps" / cfg.name
    out_dir.mkdir(parents=True, exist_ok=True)
    points = expand(cfg)
    valid = [p for p in points if p.spec is not None]
    if not valid:
        raise DataError(f"sweep {cfg.name}: no valid config; first error: {points[0].error}")
    underlying = valid[0].spec.underlying  # type: ignore[union-attr]
    days = _sweep_days(cfg, store, underlying)
    workers = workers or min(os.cpu_count() or 1, 8)
    specs = [p.spec for p in valid if p.spec is not None]
    key = _stage1_key(specs, days[0], days[-1], data_checksum(store, underlying, days))
    s1_root = out_dir / "stage1" / key
    merged = s1_root / "merged"
    _reset_if_stale(out_dir, key, progress)
    ex = make_executor(executor, workers)
    try:
        # -- stage 1: shards by date (skipped when already on disk) ---------------------------------
        if not merged.is_dir():
            bar = progress_bar(len(days), "stage 1 (date shards)", progress)
            sharded_stage1(
                store,
                specs,
                plan_shards(days, workers),
                ex.run,
                s1_root,
                merged,
                underlying=underlying,
                bar=bar,
            )
            bar.close()
        s1 = load_stage1(merged)
        # MLflow's import and store set-up run in a thread while the workers run stage 2
        tracker = _in_thread(_tracker, mlflow_root) if mlflow else None
        s2 = _run_stage2(ex, points, out_dir, merged, progress, batch)
        metrics, summary = _after_stage2(ex, cfg, out_dir, points, s1, s2, merged, tracker)
    finally:
        ex.close()
    return SweepResult(out_dir, points, s2.status, metrics, summary)


def _after_stage2(
    ex: Any,
    cfg: SweepConfig,
    out_dir: Path,
    points: list[ConfigPoint],
    s1: Any,
    s2: _Stage2,
    merged: Path,
    tracker: Future | None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The metrics table and the summary; the reports of the best configs on the workers while
    this process writes the summary, DuckDB and (with a ``tracker``) MLflow."""
    metrics = _collect(out_dir, points, s2)
    reports = _start_reports(ex, cfg, out_dir, points, _best(cfg, metrics), merged)
    summary = summarize_sweep(cfg, out_dir, points, s2.status, metrics, s1, returns=s2.returns)
    reports.then = lambda: add_break_even(out_dir, summary)
    _write_duckdb(out_dir, points, s2.status, metrics)
    if tracker is not None:
        from quantlab.sweep.mlflow_log import log_sweep

        checksum = s1.data_checksum
        log_sweep(
            cfg, out_dir, points, s2.status, metrics, summary, checksum, tracker.result(), reports
        )
    for _ in reports:  # without MLflow (which waits for them itself)
        pass
    return metrics, summary


def _tracker(root: str | Path) -> Any:
    from quantlab.tracking import Tracker

    return Tracker(root=root)


def _in_thread(fn: Any, *args: Any) -> Future:
    """``fn(*args)`` in a thread of its own; the future of its result."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantlab-sweep")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def _sweep_days(cfg: SweepConfig, store: str | Path, underlying: str) -> list[dt.date]:
    """The stored sessions of ``underlying`` from ``cfg.start`` to ``cfg.end`` (default: all)."""
    days_all = st.list_days(store, "quotes", underlying)
    if not days_all:
        raise DataError(f"store {st.store_root(store)} holds no {underlying} quotes")
    a, b = cfg.start or days_all[0], cfg.end or days_all[-1]
    days = [d for d in calendar.sessions(a, b) if d in set(days_all)]
    if not days:
        raise DataError(f"no stored sessions between {a} and {b}")
    return days


def _batch_size(n: int, workers: int, batch: int | None) -> int:
    if batch is not None:
        return max(1, batch)
    return max(1, min(MAX_BATCH, math.ceil(n / (8 * max(1, workers)))))


def _run_stage2(
    ex: Any,
    points: list[ConfigPoint],
    out_dir: Path,
    merged: Path,
    progress: bool,
    batch: int | None = None,
) -> _Stage2:
    """Stage 2 on ``ex`` of every valid config not done yet (stage 1 read from ``merged``), in
    batches of configs (one task each).

    The status of every config: a new run's, a done config's as recorded, an invalid config's
    as failed with its error; and the metrics and daily returns of the configs run now.
    """
    from quantlab.backtest.engine import progress_bar

    s2 = _Stage2({}, {}, {})
    todo = []
    for p in points:
        prev = _status(out_dir / "configs" / p.config_id)
        if p.spec is None:
            s2.status[p.config_id] = {
                "config_id": p.config_id,
                "status": "failed",
                "error": p.error,
                "seconds": 0.0,
            }
        elif prev is not None and prev["status"] == "done":
            s2.status[p.config_id] = prev
        else:
            todo.append(
                (p.config_id, p.spec.model_dump_json(), str(out_dir / "configs" / p.config_id))
            )
    size = _batch_size(len(todo), getattr(ex, "workers", 1), batch)
    sessions = calendar.session_table()
    tasks = [(str(merged), todo[i : i + size], sessions) for i in range(0, len(todo), size)]
    bar = progress_bar(len(todo), "stage 2 (configs)", progress)
    failures = 0
    for _, recs in ex.run(stage2_batch, tasks):
        for rec in recs:
            cid = rec["status"]["config_id"]
            s2.status[cid] = rec["status"]
            failures += rec["status"]["status"] != "done"
            if "metrics" in rec:
                s2.metrics[cid], s2.returns[cid] = rec["metrics"], rec["returns"]
        bar.update(len(recs))
        bar.set_postfix(failed=failures)
    bar.close()
    return s2


def _best(cfg: SweepConfig, metrics: pl.DataFrame, n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` best done configs by ``cfg.metric`` (rows of the metrics table)."""
    if cfg.metric not in metrics.columns:
        return []
    done = metrics.filter(pl.col("status") == "done")
    return done.sort(cfg.metric, descending=True, nulls_last=True).head(n).to_dicts()


def _start_reports(
    ex: Any,
    cfg: SweepConfig,
    out_dir: Path,
    points: list[ConfigPoint],
    best: list[dict[str, Any]],
    merged: Path,
) -> PendingReports:
    """Start the HTML/PNG reports (with the trade inspector) of the ``report_top`` best configs
    that have none yet, on the executor's workers (iterate the result to wait for them)."""
    by_id = {p.config_id: p for p in points}
    todo = []
    for row in best[: cfg.report_top]:
        p = by_id.get(row["config_id"])
        folder = out_dir / "configs" / row["config_id"] / "report"
        if p is not None and p.spec is not None and not (folder / "report.html").is_file():
            todo.append((p.config_id, p.spec.model_dump_json(), str(folder)))
    if not todo:
        return PendingReports()
    sessions = calendar.session_table()
    tasks = [(str(merged), spec, folder, sessions) for _, spec, folder in todo]
    return PendingReports([cid for cid, _, _ in todo], ex.start(report_task, tasks))


def _collect(out_dir: Path, points: list[ConfigPoint], s2: _Stage2) -> pl.DataFrame:
    """The metrics table: a row per config (id, index, status, ``param.*``, metrics); the
    metrics of configs done in an earlier run come from their ``metrics.json``."""
    rows = []
    for p in points:
        s = s2.status.get(p.config_id, {})
        row: dict[str, Any] = {
            "config_id": p.config_id,
            "index": p.index,
            "status": s.get("status", "missing"),
        }
        row |= {
            f"param.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in p.params.items()
        }
        if s.get("status") == "done":
            if p.config_id in s2.metrics:
                row |= s2.metrics[p.config_id]
            else:
                mfile = out_dir / "configs" / p.config_id / "metrics.json"
                if mfile.is_file():
                    row |= json.loads(mfile.read_text())
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def returns_matrix(
    out_dir: Path,
    ids: list[str],
    capital: dict[str, float],
    known: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Daily returns, one column per finished config (all share the stage-1 session list):
    from ``known`` (config id -> returns) where given, else read from the config's
    ``equity_daily.parquet``."""
    from quantlab.backtest.analytics import daily_returns

    known = known or {}
    cols, kept = [], []
    for cid in ids:
        f = out_dir / "configs" / cid / "equity_daily.parquet"
        if cid in known:
            cols.append(known[cid])
        elif f.is_file():
            cols.append(daily_returns(pl.read_parquet(f), capital[cid]))
        else:
            continue
        kept.append(cid)
    if not cols:
        return np.empty((0, 0)), []
    n = min(c.size for c in cols)
    return np.column_stack([c[:n] for c in cols]), kept


def summarize_sweep(
    cfg: SweepConfig,
    out_dir: Path,
    points: list[ConfigPoint],
    status: dict[str, dict[str, Any]],
    metrics: pl.DataFrame,
    s1: Any,
    *,
    returns: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Deflated Sharpe ratio of the best config, PBO by CSCV, best configs, heatmaps.

    ``returns``: daily returns already at hand by config id (the others are read from disk).
    """
    from quantlab.stats.overfitting import deflated_sharpe_from_matrix, pbo_cscv

    done = [
        p
        for p in points
        if status.get(p.config_id, {}).get("status") == "done" and p.spec is not None
    ]
    cap = {p.config_id: p.spec.sizing.capital for p in done}  # type: ignore[union-attr]
    R, _ids = returns_matrix(out_dir, [p.config_id for p in done], cap, returns)
    summary: dict[str, Any] = {
        "name": cfg.name,
        "configs": len(points),
        "done": len(done),
        "failed": sum(1 for s in status.values() if s.get("status") == "failed"),
        "sessions": len(s1.days),
        "candidates": s1.candidates.height,
        "data_checksum": s1.data_checksum,
    }
    active = R[:, np.nanstd(R, axis=0) > 0] if R.size else R
    if active.shape[1] >= 2 and active.shape[0] >= 4:
        dsr = deflated_sharpe_from_matrix(active)
        summary["deflated_sharpe"] = {
            k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
            for k, v in dsr.__dict__.items()
        }
        splits = min(cfg.pbo_splits, active.shape[0] - active.shape[0] % 2)
        splits -= splits % 2
        if splits >= 2:
            pbo = pbo_cscv(active, n_splits=splits)
            summary["pbo"] = {
                "pbo": float(pbo.pbo),
                "n_combinations": int(pbo.n_combinations),
                "n_splits": int(pbo.n_splits),
                "prob_oos_loss": float(pbo.prob_oos_loss),
            }
    if cfg.metric in metrics.columns:
        summary["best"] = _best(cfg, metrics)
    summary["heatmaps"] = [str(p) for p in heatmaps(cfg, metrics, out_dir)]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def add_break_even(out_dir: Path, summary: dict[str, Any]) -> None:
    """Add ``break_even_k`` and ``break_even`` (:func:`quantlab.sweep.tasks.break_even_of`) to
    each best config of ``summary`` that has a report, rewrite ``summary.json``, and put the
    reported configs' cost curves in ``sweep.duckdb`` (table ``cost_curves``, by config id).
    The reports (and their cost curves) exist only for the ``report_top`` best configs: a cost
    curve is stage 2 again per ``k`` (11 points), too dear for every config of a large sweep."""
    for row in summary.get("best", []):
        row |= break_even_of(out_dir / "configs" / row["config_id"] / "report")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    curves = sorted((out_dir / "configs").glob(f"*/report/{COST_CURVE_FILE}"))
    if curves and (out_dir / "sweep.duckdb").is_file():
        import duckdb

        con = duckdb.connect(str(out_dir / "sweep.duckdb"))
        try:
            con.execute(
                "CREATE OR REPLACE TABLE cost_curves AS SELECT split_part(filename, '/', -3) "
                "AS config_id, * EXCLUDE (filename) FROM read_parquet(?, filename=true) "
                "ORDER BY config_id, slippage, k",
                [[str(c) for c in curves]],
            )
        finally:
            con.close()


def heatmaps(cfg: SweepConfig, metrics: pl.DataFrame, out_dir: Path) -> list[Path]:
    """A PNG per configured pair of grid keys: the metric averaged over the other parameters."""
    if cfg.metric not in metrics.columns or not cfg.heatmaps:
        return []
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    done = metrics.filter(pl.col("status") == "done")
    paths = []
    for x, y in cfg.heatmaps:
        cx, cy = f"param.{x}", f"param.{y}"
        piv = done.group_by([cx, cy]).agg(pl.col(cfg.metric).mean()).sort([cy, cx])
        xs = sorted(piv[cx].unique().to_list(), key=str)
        ys = sorted(piv[cy].unique().to_list(), key=str)
        grid = np.full((len(ys), len(xs)), np.nan)
        for r in piv.iter_rows(named=True):
            grid[ys.index(r[cy]), xs.index(r[cx])] = r[cfg.metric]
        fig = Figure(figsize=(1.2 * len(xs) + 3, 0.8 * len(ys) + 2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        im = ax.imshow(grid, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        for i in range(len(ys)):
            for j in range(len(xs)):
                if math.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=9)
        fig.colorbar(im, ax=ax, label=cfg.metric)
        ax.set_title(f"{cfg.name}: mean {cfg.metric} by {y} x {x}")
        fig.tight_layout()
        p = out_dir / f"heatmap_{x}_{y}.png".replace("/", "_")
        fig.savefig(p, dpi=110)
        paths.append(p)
    return paths


def _write_duckdb(
    out_dir: Path,
    points: list[ConfigPoint],
    status: dict[str, dict[str, Any]],
    metrics: pl.DataFrame,
) -> None:
    import duckdb

    db = out_dir / "sweep.duckdb"
    tmp = out_dir / "sweep.duckdb.tmp"
    tmp.unlink(missing_ok=True)
    configs = pl.DataFrame(
        [
            {
                "config_id": p.config_id,
                "index": p.index,
                "name": p.spec.name if p.spec else "",
                "params": json.dumps(p.params, default=str),
                "status": status.get(p.config_id, {}).get("status", "missing"),
                "error": status.get(p.config_id, {}).get("error", ""),
            }
            for p in points
        ]
    )
    con = duckdb.connect(str(tmp))
    try:
        con.register("configs_df", configs.to_arrow())
        con.execute("CREATE TABLE configs AS SELECT * FROM configs_df")
        con.register("metrics_df", metrics.to_arrow())
        con.execute("CREATE TABLE metrics AS SELECT * FROM metrics_df")
        trades = sorted((out_dir / "configs").glob("*/trades.parquet"))
        if trades:
            con.execute(
                "CREATE TABLE trades AS SELECT * FROM read_parquet(?, union_by_name=true)",
                [[str(t) for t in trades]],
            )
            daily = sorted((out_dir / "configs").glob("*/equity_daily.parquet"))
            con.execute(
                "CREATE TABLE equity_daily AS SELECT split_part(filename, '/', -2) AS config_id, date, equity, pnl "
                "FROM read_parquet(?, filename=true)",
                [[str(d) for d in daily]],
            )
    finally:
        con.close()
    os.replace(tmp, db)
