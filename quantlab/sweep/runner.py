"""Running a sweep: shared stage 1 sharded by date, stage 2 sharded by config, one writer.

Layout under ``--out`` (default ``out/sweeps/<name>``)::

    stage1/<key>/shard-<first>-<last>/   stage-1 shards (workers write; a folder that exists is complete)
    stage1/<key>/merged/                 all shards in one result, memory-mapped by stage-2 workers
    configs/<config_id>/                 trades / decisions / equity_daily Parquet, metrics.json,
                                         status.json ("done" or "failed" with the error)
    sweep.duckdb                         configs, metrics, trades and daily equity, for SQL
    summary.json, heatmap_*.png          the summary with the deflated Sharpe ratio and the PBO

A rerun skips every finished shard and config, and logs to MLflow only what it has not logged.
Workers write Parquet only; this process alone writes DuckDB and MLflow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.backtest.analytics import config_metrics
from quantlab.data import store as st
from quantlab.errors import DataError
from quantlab.strategy.spec import StrategySpec
from quantlab.sweep.config import ConfigPoint, SweepConfig, expand
from quantlab.sweep.executors import make_executor


def _stage2_task(s1_folder: str, spec_json: str, config_id: str, out_dir: str) -> dict[str, Any]:
    from quantlab.backtest.engine import shared_stage1
    from quantlab.backtest.stage2 import run_stage2

    t0 = time.perf_counter()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        s1 = shared_stage1(s1_folder)
        spec = StrategySpec.model_validate_json(spec_json)
        res = run_stage2(s1, spec)
        res.trades.write_parquet(folder / "trades.parquet")
        res.decisions.write_parquet(folder / "decisions.parquet")
        res.equity_daily.write_parquet(folder / "equity_daily.parquet")
        metrics = config_metrics(res.trades, res.equity_daily, res.capital)
        (folder / "metrics.json").write_text(json.dumps(metrics, sort_keys=True))
        status = {
            "config_id": config_id,
            "status": "done",
            "error": "",
            "seconds": time.perf_counter() - t0,
        }
    except Exception as exc:  # one failing config must not stop the sweep
        status = {
            "config_id": config_id,
            "status": "failed",
            "seconds": time.perf_counter() - t0,
            "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
        }
    tmp = folder / "status.json.tmp"
    tmp.write_text(json.dumps(status))
    os.replace(tmp, folder / "status.json")
    return status


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
) -> SweepResult:
    """Run (or resume) a sweep; see the module docstring for what it writes."""
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
        status = _run_stage2(ex, points, out_dir, merged, progress)
    finally:
        ex.close()
    metrics = _collect(out_dir, points, status)
    summary = summarize_sweep(cfg, out_dir, points, status, metrics, s1)
    _reports(cfg, out_dir, points, summary, s1)
    _write_duckdb(out_dir, points, status, metrics)
    if mlflow:
        _log_mlflow(cfg, out_dir, points, status, metrics, summary, s1.data_checksum, mlflow_root)
    return SweepResult(out_dir, points, status, metrics, summary)


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


def _run_stage2(
    ex: Any, points: list[ConfigPoint], out_dir: Path, merged: Path, progress: bool
) -> dict[str, dict[str, Any]]:
    """Stage 2 on ``ex`` of every valid config not done yet (stage 1 read from ``merged``).

    Returns the status of every config: a new run's, a done config's as recorded, an
    invalid config's as failed with its error.
    """
    from quantlab.backtest.engine import progress_bar

    status: dict[str, dict[str, Any]] = {}
    tasks = []
    for p in points:
        cdir = out_dir / "configs" / p.config_id
        prev = _status(cdir)
        if p.spec is None:
            status[p.config_id] = {
                "config_id": p.config_id,
                "status": "failed",
                "error": p.error,
                "seconds": 0.0,
            }
            continue
        if prev is not None and prev["status"] == "done":
            status[p.config_id] = prev
            continue
        tasks.append((str(merged), p.spec.model_dump_json(), p.config_id, str(cdir)))
    bar = progress_bar(len(tasks), "stage 2 (configs)", progress)
    failures = 0
    for _, res in ex.run(_stage2_task, tasks):
        status[res["config_id"]] = res
        failures += res["status"] != "done"
        bar.update(1)
        bar.set_postfix(failed=failures)
    bar.close()
    return status


def _reports(
    cfg: SweepConfig, out_dir: Path, points: list[ConfigPoint], summary: dict[str, Any], s1: Any
) -> None:
    """HTML/PNG reports (with the trade inspector) of the ``report_top`` best configs."""
    from quantlab.backtest.engine import trade_paths
    from quantlab.backtest.report import write_report
    from quantlab.backtest.stage2 import run_stage2

    by_id = {p.config_id: p for p in points}
    for row in summary.get("best", [])[: cfg.report_top]:
        p = by_id.get(row["config_id"])
        folder = out_dir / "configs" / row["config_id"] / "report"
        if p is None or p.spec is None or (folder / "report.html").is_file():
            continue
        res = run_stage2(s1, p.spec)
        m = p.spec.management
        write_report(
            folder,
            res.trades,
            res.equity_daily,
            res.capital,
            decisions=res.decisions,
            paths=trade_paths(s1, res),
            tp_pct=m.take_profit_pct,
            sl_pct=m.stop_loss_pct,
            title=p.spec.name,
            n_boot=500,
        )


def _collect(
    out_dir: Path, points: list[ConfigPoint], status: dict[str, dict[str, Any]]
) -> pl.DataFrame:
    rows = []
    for p in points:
        s = status.get(p.config_id, {})
        row: dict[str, Any] = {
            "config_id": p.config_id,
            "index": p.index,
            "status": s.get("status", "missing"),
        }
        row |= {
            f"param.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in p.params.items()
        }
        mfile = out_dir / "configs" / p.config_id / "metrics.json"
        if s.get("status") == "done" and mfile.is_file():
            row |= json.loads(mfile.read_text())
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def returns_matrix(
    out_dir: Path, ids: list[str], capital: dict[str, float]
) -> tuple[np.ndarray, list[str]]:
    """Daily returns, one column per finished config (all share the stage-1 session list)."""
    from quantlab.backtest.analytics import daily_returns

    cols, kept = [], []
    for cid in ids:
        f = out_dir / "configs" / cid / "equity_daily.parquet"
        if f.is_file():
            cols.append(daily_returns(pl.read_parquet(f), capital[cid]))
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
) -> dict[str, Any]:
    """Deflated Sharpe ratio of the best config, PBO by CSCV, best configs, heatmaps."""
    from quantlab.stats.overfitting import deflated_sharpe_from_matrix, pbo_cscv

    done = [
        p
        for p in points
        if status.get(p.config_id, {}).get("status") == "done" and p.spec is not None
    ]
    cap = {p.config_id: p.spec.sizing.capital for p in done}  # type: ignore[union-attr]
    R, _ids = returns_matrix(out_dir, [p.config_id for p in done], cap)
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
        best = (
            metrics.filter(pl.col("status") == "done")
            .sort(cfg.metric, descending=True, nulls_last=True)
            .head(10)
        )
        summary["best"] = best.to_dicts()
    summary["heatmaps"] = [str(p) for p in heatmaps(cfg, metrics, out_dir)]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


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


def _log_mlflow(
    cfg: SweepConfig,
    out_dir: Path,
    points: list[ConfigPoint],
    status: dict[str, dict[str, Any]],
    metrics: pl.DataFrame,
    summary: dict[str, Any],
    checksum: str,
    root: str | Path,
) -> None:
    from quantlab.tracking import Tracker, code_version, flatten

    tr = Tracker(root=root)
    version = code_version()
    pfile = out_dir / "mlflow_parent_run_id"
    parent = pfile.read_text().strip() if pfile.is_file() else ""
    if not parent or not tr.exists(parent):
        parent = tr.start(
            cfg.name, tags={"quantlab.kind": "sweep", "quantlab.code_version": version}
        )
        pfile.write_text(parent)
        tr.log(
            parent,
            params=flatten({"grid": cfg.grid}) | {"search": cfg.search, "n_configs": len(points)},
        )
    by_id = {r["config_id"]: r for r in metrics.to_dicts()}
    for p in points:
        cdir = out_dir / "configs" / p.config_id
        rfile = cdir / "mlflow_run_id"
        if rfile.is_file() or p.config_id not in status:
            continue
        cdir.mkdir(parents=True, exist_ok=True)
        st_ = status[p.config_id]
        run = tr.start(
            p.spec.name if p.spec else f"{cfg.name}[{p.index}]",
            parent=parent,
            tags={
                "quantlab.kind": "backtest",
                "quantlab.config_hash": p.config_id,
                "quantlab.data_checksum": checksum,
                "quantlab.code_version": version,
                "quantlab.status": st_["status"],
            },
        )
        m = {
            k: v
            for k, v in by_id.get(p.config_id, {}).items()
            if k not in ("config_id", "index", "status") and not k.startswith("param.")
        }
        tr.log(
            run,
            params={k: json.dumps(v) if isinstance(v, list) else v for k, v in p.params.items()},
            metrics=m,
        )
        if p.spec is not None:
            (cdir / "config.json").write_text(p.spec.model_dump_json(indent=2))
            tr.artifact(run, cdir / "config.json")
        for name in ("trades.parquet", "metrics.json"):
            if (cdir / name).is_file():
                tr.artifact(run, cdir / name)
        if (cdir / "report" / "report.html").is_file():
            tr.client.log_artifacts(run, str(cdir / "report"), "report")
        if st_["status"] != "done":
            tr.log(run, tags={"quantlab.error": st_.get("error", "")[:4000]})
        tr.end(run, "FINISHED" if st_["status"] == "done" else "FAILED")
        rfile.write_text(run)
    sm: dict[str, float] = {
        "configs_done": float(summary["done"]),
        "configs_failed": float(summary["failed"]),
    }
    if "deflated_sharpe" in summary:
        sm["deflated_sharpe_ratio"] = summary["deflated_sharpe"]["dsr"]
        sm["best_sharpe_per_period"] = summary["deflated_sharpe"]["sr"]
    if "pbo" in summary:
        sm["pbo"] = summary["pbo"]["pbo"]
    tr.log(parent, metrics=sm, tags={"quantlab.data_checksum": checksum})
    tr.artifact(parent, out_dir / "summary.json")
    for h in summary.get("heatmaps", []):
        tr.artifact(parent, h, "heatmaps")
    tr.end(parent)
