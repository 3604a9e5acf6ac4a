"""``quantlab walkforward CONFIG``: a walk-forward run over a store, its files, MLflow and page.

The config names a sweep (its grid is the configs tried) and the windows::

    name: seed-walkforward
    sweep: seed_grid.yaml          # relative to this file
    windows: {mode: rolling, unit: months, train: 6, test: 1, step: 1, embargo: 0}
    criterion: sharpe              # deflated_sharpe, or any config_metrics key (-key: minimise)

Written under ``--out`` (default ``out/walkforward/<name>``): ``windows.parquet`` (a row per
window: dates, chosen config, score, in-sample and out-of-sample Sharpe, trades, P&L),
``trades.parquet`` (the out-of-sample trades, with their window), ``lookahead_trades.parquet``,
``equity_daily.parquet`` (stitched and look-ahead equity), ``summary.json`` and
``walkforward.html`` with its PNGs. MLflow: one parent run (the summary, the files) and a
child run per window. The rules are those of :mod:`quantlab.backtest.walkforward`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from quantlab.backtest.walkforward import WalkForwardResult, WindowSpec, run_walkforward
from quantlab.config import StrictModel, read_yaml
from quantlab.data import store as st
from quantlab.errors import ConfigError, DataError


class WalkForwardConfig(StrictModel):
    name: str = Field(..., min_length=1)
    sweep: str = Field(..., description="the sweep YAML whose configs are tried")
    windows: WindowSpec = WindowSpec()
    criterion: str = "sharpe"


def load_walkforward(path: str | Path) -> tuple[WalkForwardConfig, Any]:
    """The walk-forward config at ``path`` and its sweep (:class:`~quantlab.sweep.config.
    SweepConfig`, read relative to the file)."""
    from quantlab.sweep.config import load_sweep

    p = Path(path)
    cfg = WalkForwardConfig.from_dict(read_yaml(p), source=str(p))
    sp = (p.parent / cfg.sweep).resolve()
    if not sp.is_file():
        raise ConfigError(f"{p}: sweep file not found: {sp}")
    return cfg, load_sweep(sp)


@dataclass
class WalkForwardRun:
    out: Path
    result: WalkForwardResult
    stage1_s: float
    walk_s: float
    mlflow_run_id: str | None = None


def _days(store: str | Path, underlying: str, a: dt.date | None, b: dt.date | None) -> list:
    days = st.list_days(store, "quotes", underlying)
    days = [d for d in days if (a is None or d >= a) and (b is None or d <= b)]
    if not days:
        raise DataError(f"store {st.store_root(store)} holds no {underlying} quotes in {a}..{b}")
    return days


def walkforward(
    config: str | Path,
    store: str | Path = "data",
    out: str | Path | None = None,
    *,
    workers: int | None = None,
    mlflow: bool = True,
    mlflow_root: str | Path = "mlruns",
    progress: bool = False,
) -> WalkForwardRun:
    """Run the walk-forward config at ``config`` over ``store``; write and log its results."""
    from quantlab.backtest.engine import stage1
    from quantlab.sweep.config import expand

    cfg, sweep = load_walkforward(config)
    points = [p for p in expand(sweep) if p.spec is not None]
    if not points:
        raise ConfigError(f"{config}: the sweep {sweep.name} has no valid config")
    specs = [p.spec for p in points if p.spec is not None]
    underlying = specs[0].underlying
    days = _days(store, underlying, sweep.start, sweep.end)
    t0 = time.perf_counter()
    s1 = stage1(
        store, specs, days[0], days[-1], underlying=underlying, workers=workers, progress=progress
    )
    t1 = time.perf_counter()
    ids = [p.config_id for p in points]
    res = run_walkforward(s1, specs, cfg.windows, cfg.criterion, ids=ids)
    t2 = time.perf_counter()
    res.summary |= {"name": cfg.name, "sweep": sweep.name, "data_checksum": s1.data_checksum}
    out_dir = Path(out) if out is not None else Path("out") / "walkforward" / cfg.name
    write_outputs(out_dir, res, cfg.name)
    run_id = log_walkforward(cfg, out_dir, res, mlflow_root) if mlflow else None
    return WalkForwardRun(out_dir, res, t1 - t0, t2 - t1, run_id)


def write_outputs(out_dir: Path, res: WalkForwardResult, title: str) -> Path:
    """The Parquet files, ``summary.json`` and the HTML page of ``res`` in ``out_dir``."""
    from quantlab.backtest._walkforward_report import write_page

    out_dir.mkdir(parents=True, exist_ok=True)
    res.windows.write_parquet(out_dir / "windows.parquet")
    res.trades.write_parquet(out_dir / "trades.parquet")
    res.lookahead_trades.write_parquet(out_dir / "lookahead_trades.parquet")
    res.equity_daily.write_parquet(out_dir / "equity_daily.parquet")
    (out_dir / "summary.json").write_text(json.dumps(res.summary, indent=2, default=str))
    write_page(out_dir, res, title)
    return out_dir


def _parent_metrics(summary: dict[str, Any]) -> dict[str, float]:
    keys = (
        "oos_total_pnl oos_sharpe oos_n_trades lookahead_total_pnl lookahead_sharpe "
        "lookahead_n_trades n_windows n_configs"
    ).split()
    out = {k: float(summary[k]) for k in keys}
    dsr = summary.get("deflated_sharpe", {})
    out |= {f"oos_deflated_sharpe.{k}": float(v) for k, v in dsr.items()}
    for key in ("oos_sharpe_ci", "oos_total_pnl_ci"):
        lo, hi = summary.get(key, (math.nan, math.nan))
        out |= {f"{key}.lo": float(lo), f"{key}.hi": float(hi)}
    return out


def log_walkforward(
    cfg: WalkForwardConfig, out_dir: Path, res: WalkForwardResult, root: str | Path = "mlruns"
) -> str:
    """One MLflow parent run (the summary's figures, the files and page) and a child per
    window (its dates and chosen config as params; score, Sharpes, trades and P&L as metrics)."""
    from quantlab.tracking import RunRecord, Tracker, code_version, flatten

    tr = Tracker(root=root)
    tags = {
        "quantlab.kind": "walkforward",
        "quantlab.data_checksum": str(res.summary.get("data_checksum", "")),
        "quantlab.code_version": code_version(),
    }
    parent = tr.start(cfg.name, tags=tags)
    tr.log(
        parent, params=flatten(cfg.model_dump(mode="json")), metrics=_parent_metrics(res.summary)
    )
    children = []
    for w in res.windows.to_dicts():
        params = {k: str(w[k]) for k in ("train_start", "train_end", "test_start", "test_end")}
        params |= {"config_id": w["config_id"], "config": w["config"]}
        metrics = {k: w[k] for k in ("score", "is_sharpe", "oos_sharpe", "n_trades", "pnl")}
        name = f"{cfg.name} window {w['window']} ({w['test_start']})"
        tags_w = tags | {
            "quantlab.kind": "walkforward_window",
            "quantlab.config_hash": w["config_id"],
        }
        children.append(RunRecord(name, tags_w, params, metrics))
    tr.log_runs(children, parent=parent)
    for f in sorted(out_dir.iterdir()):
        if f.is_file():
            tr.artifact(parent, f)
    tr.end(parent)
    return parent
