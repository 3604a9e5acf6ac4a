"""MLflow tracking: where runs go."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from quantlab.tracking import Tracker


@pytest.fixture(autouse=True)
def _no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_each_root_is_its_own_store_unless_the_user_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = Tracker(root=tmp_path / "a"), Tracker(root=tmp_path / "b")
    # mlflow.set_tracking_uri (in Tracker) sets MLFLOW_TRACKING_URI: that is not the user's
    assert a.uri != b.uri and b.uri == f"sqlite:///{(tmp_path / 'b' / 'mlflow.db').resolve()}"
    art = b.client.get_experiment(b.experiment_id).artifact_location
    assert art == (tmp_path / "b" / "artifacts").resolve().as_uri()
    con = sqlite3.connect(tmp_path / "b" / "mlflow.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    user = f"sqlite:///{tmp_path / 'user.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", user)
    assert Tracker(root=tmp_path / "c").uri == user
