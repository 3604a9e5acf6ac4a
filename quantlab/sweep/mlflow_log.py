"""A sweep in MLflow: one parent run, one nested child run per config.

A child holds its config's parameters (the swept values), its metrics, its tags (config hash,
data checksum, code version, status, the error of a failed config) and ``config.json``; the
children of the best configs (those with a report) also hold ``trades.parquet`` and
``report/``. The parent holds the grid, the deflated Sharpe ratio, the PBO, ``summary.json``,
the heatmaps and ``trades.parquet``: every config's trades in one file (``config_hash`` is the
config id), as in the ``trades`` table of ``sweep.duckdb``.

The children are written together (:meth:`quantlab.tracking.Tracker.log_runs`: one transaction
on the sqlite store). Each config is logged once: its run id goes to
``configs/<config_id>/mlflow_run_id``, and a rerun logs only the configs without one, after
looking up the parent's children (a run interrupted between the two keeps its runs).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from quantlab.sweep.config import ConfigPoint, SweepConfig
from quantlab.sweep.tasks import PendingReports

#: artifacts of every child run / of the children of the configs with a report
CHILD_FILES = ("config.json",)
REPORTED_FILES = ("trades.parquet",)


def log_sweep(
    cfg: SweepConfig,
    out_dir: Path,
    points: list[ConfigPoint],
    status: dict[str, dict[str, Any]],
    metrics: pl.DataFrame,
    summary: dict[str, Any],
    checksum: str,
    tracker: Any,
    reports: PendingReports | None = None,
) -> str:
    """Log the sweep (see the module docstring) with ``tracker`` (a
    :class:`quantlab.tracking.Tracker`, or the root folder of the store to open one in);
    returns the parent run id.

    ``reports``: the reports being written meanwhile (by the workers). The children are
    logged first, then each of these reports goes to its config's child run as it is done.
    """
    from quantlab.tracking import Tracker, code_version, flatten

    tr = tracker if isinstance(tracker, Tracker) else Tracker(root=tracker)
    version = code_version()
    pfile = out_dir / "mlflow_parent_run_id"
    parent = pfile.read_text().strip() if pfile.is_file() else ""
    resumed = bool(parent) and tr.exists(parent)
    if not resumed:
        parent = tr.start(
            cfg.name, tags={"quantlab.kind": "sweep", "quantlab.code_version": version}
        )
        pfile.write_text(parent)
        tr.log(
            parent,
            params=flatten({"grid": cfg.grid}) | {"search": cfg.search, "n_configs": len(points)},
        )
    todo = [
        p
        for p in points
        if p.config_id in status
        and not (out_dir / "configs" / p.config_id / "mlflow_run_id").is_file()
    ]
    if todo and resumed:
        todo = _drop_logged(tr, parent, out_dir, todo)
    base = {
        "quantlab.kind": "backtest",
        "quantlab.data_checksum": checksum,
        "quantlab.code_version": version,
    }
    by_id = {r["config_id"]: r for r in metrics.to_dicts()}
    pending = set(reports.ids) if reports is not None else set()
    recs = [
        _child(cfg, p, out_dir, status[p.config_id], by_id.get(p.config_id, {}), base, pending)
        for p in todo
    ]
    for p, run in zip(todo, tr.log_runs(recs, parent), strict=True):
        (out_dir / "configs" / p.config_id / "mlflow_run_id").write_text(run)
    for cid in reports or ():
        _log_report(tr, out_dir / "configs" / cid)
    _log_parent(tr, parent, out_dir, summary, checksum)
    return parent


def _drop_logged(tr: Any, parent: str, out_dir: Path, todo: list[ConfigPoint]) -> list[ConfigPoint]:
    """``todo`` without the configs the parent already has a child run of (their run ids are
    written to their folders)."""
    have: dict[str, str] = {}
    token = None
    while True:
        page = tr.client.search_runs(
            [tr.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent}'",
            max_results=1000,
            page_token=token,
        )
        have |= {r.data.tags.get("quantlab.config_hash", ""): r.info.run_id for r in page}
        token = page.token
        if not token:
            break
    left = []
    for p in todo:
        if p.config_id in have:
            (out_dir / "configs" / p.config_id / "mlflow_run_id").write_text(have[p.config_id])
        else:
            left.append(p)
    return left


def _child(
    cfg: SweepConfig,
    p: ConfigPoint,
    out_dir: Path,
    st_: dict[str, Any],
    row: dict[str, Any],
    base: dict[str, str],
    pending: set[str],
) -> Any:
    """One config's child run (see the module docstring); its ``report/`` folder goes with it
    unless the report is in ``pending`` (still being written)."""
    from quantlab.tracking import RunRecord

    cdir = out_dir / "configs" / p.config_id
    cdir.mkdir(parents=True, exist_ok=True)
    done = st_["status"] == "done"
    tags = base | {"quantlab.config_hash": p.config_id, "quantlab.status": st_["status"]}
    if not done:
        tags["quantlab.error"] = st_.get("error", "")[:4000]
    if p.spec is not None:
        (cdir / "config.json").write_text(p.spec.model_dump_json(indent=2))
    report = cdir / "report"
    reported = p.config_id not in pending and (report / "report.html").is_file()
    names = CHILD_FILES + (REPORTED_FILES if reported else ())
    return RunRecord(
        p.spec.name if p.spec else f"{cfg.name}[{p.index}]",
        tags=tags,
        params={k: json.dumps(v) if isinstance(v, list) else v for k, v in p.params.items()},
        metrics={
            k: v
            for k, v in row.items()
            if k not in ("config_id", "index", "status") and not k.startswith("param.")
        },
        files=[cdir / name for name in names if (cdir / name).is_file()],
        folders={"report": report} if reported else {},
        status="FINISHED" if done else "FAILED",
    )


def _log_report(tr: Any, cdir: Path) -> None:
    """A report written after its config's child run was logged: the report and the trades
    go to that run."""
    rfile = cdir / "mlflow_run_id"
    if rfile.is_file() and (cdir / "report" / "report.html").is_file():
        run = rfile.read_text().strip()
        for name in REPORTED_FILES:
            if (cdir / name).is_file():
                tr.artifact(run, cdir / name)
        tr.client.log_artifacts(run, str(cdir / "report"), "report")


def _log_parent(
    tr: Any, parent: str, out_dir: Path, summary: dict[str, Any], checksum: str
) -> None:
    """The parent's summary metrics, ``summary.json`` and heatmaps; then it ends."""
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
    with tempfile.TemporaryDirectory() as tmp:
        if _all_trades(out_dir / "sweep.duckdb", Path(tmp) / "trades.parquet"):
            tr.artifact(parent, Path(tmp) / "trades.parquet")
    tr.end(parent)


def _all_trades(db: Path, dest: Path) -> bool:
    """The ``trades`` table of the sweep's DuckDB (every config's trades) as one Parquet file,
    by config; False when there is none."""
    import duckdb

    if not db.is_file():
        return False
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'trades'"
        ).fetchone()
        if not found or not found[0]:
            return False
        con.execute(
            f"COPY (SELECT * FROM trades ORDER BY config_hash, entry_ts, trade_id) TO '{dest}' "
            "(FORMAT parquet)"
        )
    finally:
        con.close()
    return True
