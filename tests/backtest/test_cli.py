"""`quantlab backtest` end to end: outputs on disk and the run in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from quantlab.cli import app
from tests.backtest.market import build, et, ramp
from tests.backtest.test_engine import EXPIRIES, MON, TUE


def test_backtest_command_writes_outputs_and_logs_to_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = build(
        tmp_path / "store",
        [MON, TUE],
        EXPIRIES,
        ramp([(et(MON, 9, 30), 5000.0), (et(TUE, 16, 0), 5040.0)]),
    )
    cfg = tmp_path / "bt.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "strategy": {
                    "name": "cli",
                    "dte": {"target": 2, "tolerance": 2},
                    "entry": {"times": ["10:00"]},
                    "short_delta": 0.1,
                    "width": 25,
                    "filters": {"min_credit": 0.0},
                },
                "start": "2024-03-04",
                "end": "2024-03-05",
            }
        )
    )
    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # wins over mlruns/, as MLflow users expect
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["backtest", str(cfg), "--store", str(store), "--out", str(out), "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "cost curve: this strategy " in res.output  # the break-even k in words
    for name in (
        "trades.parquet",
        "decisions.parquet",
        "cost_curve.parquet",
        "cost_curve.png",
        "results.duckdb",
        "report.html",
        "equity.png",
    ):
        assert (out / name).is_file(), name
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("quantlab-backtests").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["width"] == "25.0" and "total_pnl" in run.data.metrics
    assert run.data.tags["quantlab.data_checksum"] and run.data.tags["quantlab.code_version"]
    assert {"trades.parquet", "config.json", "report"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
    bad = CliRunner().invoke(
        app, ["backtest", str(tmp_path / "missing.yaml"), "--store", str(store)]
    )
    assert bad.exit_code == 1 and "config file not found" in bad.output
