"""The cost curve in a sweep: the reported configs' curves, their break-even k in the summary."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from quantlab.backtest.costs import break_even_k, break_even_sentence, cost_curve
from quantlab.backtest.engine import stage1
from quantlab.sweep.runner import run_sweep
from tests.backtest.test_engine import FRI, MON
from tests.sweep.test_sweep import market, small

__all__ = ["market"]  # the module-scoped market fixture of test_sweep


def test_reported_configs_carry_their_cost_curve_and_break_even_k(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small(grid={"dte.target": [2, 4], "short_delta": [0.10, 0.20]}, report_top=2)
    out, ml = tmp_path / "out", tmp_path / "mlruns"
    res = run_sweep(cfg, market, out, workers=1, mlflow_root=ml, progress=False)
    best = json.loads((out / "summary.json").read_text())["best"]
    assert len(best) == 4
    for a, b in zip(best, res.summary["best"], strict=True):  # the file is the returned summary
        assert a["config_id"] == b["config_id"] and a.get("break_even") == b.get("break_even")
    by_id = {p.config_id: p for p in res.points}
    for row in best[:2]:  # reported: the curve, its break-even k and sentence, the report section
        spec = by_id[row["config_id"]].spec
        assert spec is not None
        report = out / "configs" / row["config_id"] / "report"
        curve = pl.read_parquet(report / "cost_curve.parquet")
        direct = cost_curve(stage1(market, [spec], MON, FRI, workers=1), spec)
        assert curve.equals(direct)
        assert curve.filter("is_spec")["total_pnl"].item() == pytest.approx(row["total_pnl"])
        assert row["break_even_k"] == break_even_k(direct)
        assert row["break_even"] == break_even_sentence(direct)
        html = (report / "report.html").read_text()
        assert "Cost curve" in html and (report / "cost_curve.png").is_file()
    for row in best[2:]:  # not reported: no curve computed
        assert "break_even_k" not in row
        assert not (out / "configs" / row["config_id"] / "report").exists()
    # the reported configs' curves in the sweep's DuckDB
    con = duckdb.connect(str(out / "sweep.duckdb"), read_only=True)
    db = con.sql("SELECT * FROM cost_curves").pl()
    con.close()
    assert isinstance(db, pl.DataFrame) and set(db["config_id"]) == {
        r["config_id"] for r in best[:2]
    }
    first = db.filter(pl.col("config_id") == best[0]["config_id"]).drop("config_id")
    assert first.equals(
        pl.read_parquet(out / "configs" / best[0]["config_id"] / "report" / "cost_curve.parquet")
    )
    # the summary logged on the MLflow parent is the one with the break-even k
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{ml.resolve() / 'mlflow.db'}")
    parent = (out / "mlflow_parent_run_id").read_text().strip()
    logged = client.download_artifacts(parent, "summary.json", str(tmp_path))
    assert json.loads(Path(logged).read_text())["best"] == best
