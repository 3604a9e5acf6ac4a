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
from pathlib import Path
from typing import Any

EXPERIMENT = "quantlab-backtests"


#: tracking URIs this process set with ``mlflow.set_tracking_uri`` (which also sets
#: ``MLFLOW_TRACKING_URI``): the variable wins only when the user set it
_SET_HERE: set[str] = set()

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

        ps = [Param(k[:250], str(v)[:6000]) for k, v in (params or {}).items()]
        ms = [Metric(k[:250], float(v), 0, 0) for k, v in (metrics or {}).items() if _finite(v)]
        ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for i in range(0, max(len(ps), len(ms), len(ts), 1), 100):
            self.client.log_batch(
                run_id, metrics=ms[i : i + 100], params=ps[i : i + 100], tags=ts[i : i + 100]
            )

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
