"""MLflow tracking: where runs go, and logging a backtest or a sweep.

The store is ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts`` (the plain
file store is deprecated in MLflow 3); ``MLFLOW_TRACKING_URI``, when set, wins. Open it with::

    mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db

Only the parent process writes (MLflow's sqlite store takes one writer at a time).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPERIMENT = "quantlab-backtests"


#: tracking URIs this process set with ``mlflow.set_tracking_uri`` (which also sets
#: ``MLFLOW_TRACKING_URI``): the variable wins only when the user set it
_SET_HERE: set[str] = set()

#: database schemes of MLflow's SQL tracking store
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def _user_uri() -> str | None:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env if env and env not in _SET_HERE else None


def tracking_uri(root: Path | str = "mlruns") -> str:
    env = _user_uri()
    if env:
        return env
    folder = Path(root).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    _write_ahead_log(folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def _write_ahead_log(db: Path) -> None:
    """Put the sqlite store in write-ahead-log mode (a setting kept in the file).

    MLflow commits several times per run (a 1,000-config sweep about 5,000 times); with
    sqlite's default rollback journal each commit writes, syncs and deletes a journal file,
    with the log it is one append and one sync, several times faster. A store another process
    holds is left as it is (it still works, only slower).
    """
    import sqlite3

    try:
        con = sqlite3.connect(db, timeout=1.0)
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.Error:
        pass


def code_version() -> str:
    """Git commit of the working tree (with ``-dirty``), else the package version."""
    here = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return "quantlab " + version("quantlab")


class Tracker:
    """A thin wrapper over ``MlflowClient`` for the parent process."""

    def __init__(self, experiment: str = EXPERIMENT, root: Path | str = "mlruns") -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        user = _user_uri()
        self.uri = tracking_uri(root)
        mlflow.set_tracking_uri(self.uri)
        if not user:
            _SET_HERE.add(self.uri)
        self.client = MlflowClient(self.uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            art = None if user else (Path(root).resolve() / "artifacts").as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=art)
        else:
            self.experiment_id = exp.experiment_id

    def start(
        self, name: str, *, parent: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        t = dict(tags or {})
        if parent:
            t["mlflow.parentRunId"] = parent
        return self.client.create_run(self.experiment_id, run_name=name, tags=t).info.run_id

    def log(
        self,
        run_id: str,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        ps = [Param(k, v) for k, v in _params(params or {}).items()]
        ms = [Metric(k, v, 0, 0) for k, v in _metrics(metrics or {}).items()]
        ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for i in range(0, max(len(ps), len(ms), len(ts)), 100):
            self.client.log_batch(
                run_id, metrics=ms[i : i + 100], params=ps[i : i + 100], tags=ts[i : i + 100]
            )

    def log_run(self, rec: RunRecord, parent: str | None = None) -> str:
        """One complete run in the fewest calls MLflow's client has: created with its tags,
        its params and metrics in one batch, its artifacts, ended with its status."""
        t = rec.tags | ({"mlflow.parentRunId": parent} if parent else {})
        run = self.client.create_run(self.experiment_id, run_name=rec.name, tags=t)
        run_id = run.info.run_id
        self.log(run_id, params=rec.params, metrics=rec.metrics)
        _write_artifacts(run.info.artifact_uri, rec)
        self.end(run_id, rec.status)
        return run_id

    def log_runs(self, recs: Sequence[RunRecord], parent: str | None = None) -> list[str]:
        """Many complete runs (:meth:`log_run` each): in one transaction on a SQL store (the
        default sqlite one; a run through the client costs about six commits), else one by
        one. Returns their run ids, in order."""
        if not recs:
            return []
        if self.uri.split(":", 1)[0].split("+", 1)[0] not in _SQL_SCHEMES:
            return [self.log_run(r, parent) for r in recs]
        exp = self.client.get_experiment(self.experiment_id)
        ids, uris = _insert_runs(self.uri, exp, recs, parent)
        for uri, rec in zip(uris, recs, strict=True):
            _write_artifacts(uri, rec)
        return ids

    def artifact(self, run_id: str, path: Path | str, subdir: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), subdir)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
            return True
        except Exception:
            return False


def _finite(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and f not in (float("inf"), float("-inf"))


def _params(params: dict[str, Any]) -> dict[str, str]:
    return {k[:250]: str(v)[:6000] for k, v in params.items()}


def _metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k[:250]: float(v) for k, v in metrics.items() if _finite(v)}


@dataclass
class RunRecord:
    """A complete run to log: its name, tags, params, metrics, status (``FINISHED``,
    ``FAILED``), and artifacts: ``files`` at the top, ``folders`` (subfolder -> local folder)."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    files: Sequence[Path | str] = ()
    folders: dict[str, Path | str] = field(default_factory=dict)
    status: str = "FINISHED"


def _write_artifacts(artifact_uri: str, rec: RunRecord) -> None:
    """Copy the run's artifacts straight into its artifact location (``log_artifact`` would
    read the run back from the store first)."""
    if not rec.files and not rec.folders:
        return
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(artifact_uri)
    for f in rec.files:
        repo.log_artifact(str(f))
    for sub, folder in rec.folders.items():
        repo.log_artifacts(str(folder), sub)


def _insert_runs(
    uri: str, exp: Any, recs: Sequence[RunRecord], parent: str | None
) -> tuple[list[str], list[str]]:
    """Insert finished runs into MLflow's SQL store in one transaction, as the client's
    ``create_run``, ``log_batch`` and ``set_terminated`` would leave them (rows of MLflow's own
    table models: runs, tags with the run name and parent, params, metrics and latest metrics).
    Returns the run ids and artifact URIs."""
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.utils.uri import append_to_uri_path

    now = int(time.time() * 1000)
    rows: dict[Any, list[dict[str, Any]]] = {m: [] for m in (SqlRun, SqlTag, SqlParam, SqlMetric)}
    ids, uris = [], []
    for rec in recs:
        run_id = uuid.uuid4().hex
        art = append_to_uri_path(exp.artifact_location, run_id, "artifacts")
        ids.append(run_id)
        uris.append(art)
        tags = rec.tags | {"mlflow.runName": rec.name}
        if parent:
            tags["mlflow.parentRunId"] = parent
        rows[SqlRun].append(
            {
                "run_uuid": run_id,
                "name": rec.name,
                "source_type": "UNKNOWN",
                "source_name": "",
                "entry_point_name": "",
                "user_id": tags.get("mlflow.user", "unknown"),
                "status": rec.status,
                "start_time": now,
                "end_time": now,
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": art,
                "experiment_id": int(exp.experiment_id),
            }
        )
        rows[SqlTag] += [{"run_uuid": run_id, "key": k, "value": str(v)} for k, v in tags.items()]
        rows[SqlParam] += [
            {"run_uuid": run_id, "key": k, "value": v} for k, v in _params(rec.params).items()
        ]
        rows[SqlMetric] += [
            {"run_uuid": run_id, "key": k, "value": v, "timestamp": 0, "step": 0, "is_nan": False}
            for k, v in _metrics(rec.metrics).items()
        ]
    rows[SqlLatestMetric] = rows[SqlMetric]
    engine = sa.create_engine(uri, connect_args={"timeout": 20} if uri.startswith("sqlite") else {})
    try:
        with engine.begin() as con:
            for model, data in rows.items():
                if data:
                    con.execute(sa.insert(model.__table__), data)
    finally:
        engine.dispose()
    return ids, uris


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict to dotted keys (lists as JSON)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v, default=str)
        else:
            out[key] = v
    return out


def log_backtest(
    spec: Any,
    trades_out: Path,
    metrics: dict[str, float],
    data_checksum: str,
    *,
    root: Path | str = "mlruns",
) -> str:
    """Log one backtest as an MLflow run: strategy parameters, metrics, the config, the data
    checksum, the code version, and the output folder (trade log, decisions, report)."""
    tr = Tracker(root=root)
    run = tr.start(
        spec.name,
        tags={
            "quantlab.kind": "backtest",
            "quantlab.config_hash": spec.config_hash(),
            "quantlab.data_checksum": data_checksum,
            "quantlab.code_version": code_version(),
        },
    )
    tr.log(run, params=flatten(spec.model_dump(mode="json")), metrics=metrics)
    out = Path(trades_out)
    (out / "config.json").write_text(spec.model_dump_json(indent=2))
    for name in ("trades.parquet", "decisions.parquet", "equity_daily.parquet", "config.json"):
        if (out / name).is_file():
            tr.artifact(run, out / name)
    if (out / "report.html").is_file():
        for f in [*sorted(out.glob("*.png")), out / "report.html"]:
            tr.artifact(run, f, "report")
    tr.end(run)
    return run
