"""Fixtures of the research tests: one small synthetic store shared by every xdist worker."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest

START, END, SEED = "2024-03-01", "2024-03-18", 7  # 12 sessions, trades and both label classes


@pytest.fixture(scope="session")
def research_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic store, built once per run (xdist workers share it under a file lock)."""
    from quantlab.data import read
    from quantlab.data.ingest import ingest
    from quantlab.data.synth import synthesize

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, common to all workers
    store, ready = base / "research_store", base / "research_store.ready"
    with open(base / "research_store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.is_file():
            tmp = base / f"research_store.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            synthesize(START, END, SEED, tmp, profile="demo", dte_max=8, moneyness=0.06)
            ingest(None, tmp)
            shutil.rmtree(store, ignore_errors=True)
            os.replace(tmp, store)
            ready.write_text(f"{START}..{END} seed {SEED}\n")
    read.clear_cache()
    return store


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A per-worker sqlite MLflow store, created up front (its schema migration takes seconds)."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("research_mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # MLflow puts the default experiment's artifacts under the cwd
        MlflowClient(uri).search_experiments()
    return uri
