"""MLflow tracking: where runs go, and runs written in one transaction read back as client runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from quantlab.tracking import RunRecord, Tracker


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


def test_runs_logged_together_read_back_as_runs_logged_one_by_one(tmp_path: Path) -> None:
    tr = Tracker(root=tmp_path / "ml")
    parent = tr.start("parent")
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.html").write_text("<html></html>")
    rec = RunRecord(
        "child",
        tags={"quantlab.kind": "backtest", "quantlab.status": "failed"},
        params={"dte.target": 3, "entry.times": '["10:00"]'},
        metrics={"sharpe_ratio": 1.5, "n_trades": 4.0, "calmar": float("nan")},
        files=[cfg],
        folders={"report": report},
        status="FAILED",
    )
    plain = RunRecord("plain", params={"dte.target": 5}, metrics={"sharpe_ratio": 0.5})
    together = tr.log_runs([rec, plain], parent)
    one = tr.log_run(rec, parent)
    runs = [tr.client.get_run(r) for r in (*together, one)]
    a, p, b = runs
    assert a.data.params == b.data.params == {"dte.target": "3", "entry.times": '["10:00"]'}
    assert a.data.metrics == b.data.metrics == {"sharpe_ratio": 1.5, "n_trades": 4.0}
    assert a.data.tags == b.data.tags and a.data.tags["mlflow.parentRunId"] == parent
    assert a.info.run_name == b.info.run_name == "child" and p.info.run_name == "plain"
    assert a.info.status == b.info.status == "FAILED" and p.info.status == "FINISHED"
    assert a.info.lifecycle_stage == "active" and a.info.end_time >= a.info.start_time > 0
    assert a.info.artifact_uri.startswith((tmp_path / "ml" / "artifacts").resolve().as_uri())
    names = [{f.path for f in tr.client.list_artifacts(r.info.run_id)} for r in (a, b)]
    assert names[0] == names[1] == {"config.json", "report"}
    assert [f.path for f in tr.client.list_artifacts(p.info.run_id)] == []
    hist = [tr.client.get_metric_history(r.info.run_id, "sharpe_ratio") for r in (a, b)]
    assert [(m.value, m.step, m.timestamp) for m in hist[0]] == [
        (m.value, m.step, m.timestamp) for m in hist[1]
    ]
    found = tr.client.search_runs(
        [tr.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}' and metrics.sharpe_ratio > 1",
    )
    assert {r.info.run_id for r in found} == {together[0], one}
    assert tr.log_runs([], parent) == []
