"""Fixtures of the research tests: the shared synthetic market and a per-worker MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MARKET, SyntheticStore

START, END = MARKET["start"], MARKET["end"]  # 12 sessions, trades and both label classes


@pytest.fixture(scope="session")
def research_store(
    synthetic_store: SyntheticStore, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The shared synthetic market (a narrower strike band than the demo's); each worker's
    research tests share a private copy (the demo and the notebooks write features)."""
    return synthetic_store(**MARKET, copy_to=tmp_path_factory.mktemp("research") / "store")


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
