"""``make demo``'s research loop runs end to end (on the small research store, shrunk settings).

The real demo covers three months; here the same steps run on the 12-session store that the
notebook tests share, with two Optuna trials and no calibration hold-out (too few sessions for
one), so the code path cannot rot between releases.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.research.conftest import END, START


def test_demo_runs_every_step(research_store: Path, mlflow_uri: str, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from mlflow.tracking import MlflowClient

    from quantlab.demo import run_demo

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.chdir(tmp_path)  # optuna.db and MLflow artifacts land under the cwd
    out = tmp_path / "out"
    steps = run_demo(
        store=str(research_store), out=str(out), start=START, end=END, workers=1, trials=2,
        train_overrides={"calibration": None, "test_embargo_days": 1,
                         "cv": {"kind": "purged_kfold", "n_splits": 2, "embargo": 0.01}},
    )
    names = [s.name for s in steps]
    assert names == ["pricing core", "market data", "seed grid sweep", "seed backtest",
                     "meta-labeler"]
    assert "synthesized 0" in steps[1].result  # the store's sessions are reused, not rewritten
    summary = json.loads((out / "sweep" / "summary.json").read_text())
    assert summary["configs"] == 18 and summary["done"] == 18
    assert "deflated_sharpe" in summary
    assert (out / "backtest" / "report.html").is_file()
    ev = (out / "train" / "evaluation.csv").read_text().splitlines()
    assert ev[0].startswith("variant") and len(ev) == 4
    assert "@champion" in steps[4].result
    client = MlflowClient(mlflow_uri)
    mv = client.get_model_version_by_alias("demo-spxw-put-credit-metalabeler", "champion")
    assert mv.version
    text = capsys.readouterr().out
    assert "mlflow ui --backend-store-uri" in text and "report.html" in text
