"""Parameter sweeps: expansion, shared stages, executors, resume, failures, MLflow and DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from quantlab.backtest.engine import stage1
from quantlab.backtest.stage2 import run_stage2
from quantlab.errors import ConfigError
from quantlab.sweep.config import SweepConfig, expand, load_sweep
from quantlab.sweep.runner import run_sweep
from tests.backtest.market import build, et, ramp
from tests.backtest.test_engine import EXPIRIES, FRI, MON, THU, TUE, WED

REPO = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((REPO / "pipelines" / "strategies" / "spxw_put_credit.yaml").read_text())


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep_market")
    path = [
        (et(MON, 9, 30), 5000.0),
        (et(MON, 13, 0), 5030.0),
        (et(TUE, 11, 0), 4985.0),
        (et(WED, 15, 0), 5010.0),
        (et(THU, 12, 0), 4990.0),
        (et(FRI, 12, 0), 5020.0),
    ]
    return build(root, [MON, TUE, WED, THU, FRI], EXPIRIES, ramp(path))


def small(**kw) -> SweepConfig:  # type: ignore[no-untyped-def]
    data = {
        "name": "t",
        "base": BASE | {"filters": {"min_credit": 0.0}},
        "grid": {"dte.target": [2, 4], "short_delta": [0.10, 0.20], "width": [10, 25]},
        "heatmaps": [["dte.target", "short_delta"]],
        "pbo_splits": 2,
    } | kw
    return SweepConfig.from_dict(data)


def test_seed_grid_expands_to_54_distinct_configs() -> None:
    cfg = load_sweep(REPO / "pipelines" / "seed_grid.yaml")
    pts = expand(cfg)
    assert len(pts) == 54 and len({p.config_id for p in pts}) == 54
    assert all(p.spec is not None for p in pts)
    assert {p.spec.dte.target for p in pts if p.spec} == {3, 5, 7}


def test_random_search_is_seeded_and_invalid_points_are_kept() -> None:
    a = expand(small(search="random", n_samples=5, seed=3))
    b = expand(small(search="random", n_samples=5, seed=3))
    assert [p.params for p in a] == [p.params for p in b] and len(a) == 5
    bad = expand(small(grid={"short_delta": [0.1, 1.5]}))
    assert bad[0].spec is not None and bad[1].spec is None and "short_delta" in bad[1].error
    with pytest.raises(ConfigError, match="unknown key 'gird'"):
        SweepConfig.from_dict({"name": "x", "base": BASE, "gird": {}})


def test_sweep_runs_resumes_and_records_failures(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small(grid={"dte.target": [2, 4], "short_delta": [0.10, 0.20, 1.5], "width": [10, 25]})
    out, ml = tmp_path / "out", tmp_path / "mlruns"
    res = run_sweep(cfg, market, out, workers=1, mlflow_root=ml, progress=False)
    done = [s for s in res.status.values() if s["status"] == "done"]
    failed = [s for s in res.status.values() if s["status"] == "failed"]
    assert len(done) == 8 and len(failed) == 4 and all("short_delta" in f["error"] for f in failed)
    # stage 2 of each config equals a direct backtest of that config
    p = next(p for p in res.points if p.spec is not None and p.params["dte.target"] == 4)
    direct = run_stage2(stage1(market, [p.spec], MON, FRI, workers=1), p.spec).trades
    swept = pl.read_parquet(out / "configs" / p.config_id / "trades.parquet")
    assert direct.drop("data_checksum").equals(swept.drop("data_checksum"))
    # DuckDB results
    con = duckdb.connect(str(out / "sweep.duckdb"), read_only=True)
    assert con.execute("select count(*) from configs").fetchone()[0] == 12
    assert con.execute("select count(*) from configs where status = 'failed'").fetchone()[0] == 4
    assert con.execute("select count(distinct config_id) from equity_daily").fetchone()[0] == 8
    con.close()
    summary = json.loads((out / "summary.json").read_text())
    assert "deflated_sharpe" in summary and "pbo" in summary and summary["heatmaps"]
    assert Path(summary["heatmaps"][0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # MLflow: one parent, nested children with params and metrics
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{ml.resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name("quantlab-backtests")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("quantlab.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 12
    ok = [r for r in children if r.info.status == "FINISHED"]
    assert len(ok) == 8 and all(
        "sharpe_ratio" in r.data.metrics or "total_pnl" in r.data.metrics for r in ok
    )
    assert all(r.data.tags["quantlab.data_checksum"] for r in children)
    assert "pbo" in parents[0].data.metrics
    best = json.loads((out / "summary.json").read_text())["best"][0]["config_id"]
    assert (out / "configs" / best / "report" / "report.html").is_file()
    run_id = (out / "configs" / best / "mlflow_run_id").read_text()
    assert {"config.json", "trades.parquet", "report"} <= {
        a.path for a in client.list_artifacts(run_id)
    }
    # a config without a report: its config only; every config's trades: on the parent
    other = next(
        r
        for r in ok
        if not (out / "configs" / r.data.tags["quantlab.config_hash"] / "report").exists()
    )
    assert [a.path for a in client.list_artifacts(other.info.run_id)] == ["config.json"]
    assert "trades.parquet" in [a.path for a in client.list_artifacts(parents[0].info.run_id)]
    every = pl.read_parquet(
        client.download_artifacts(parents[0].info.run_id, "trades.parquet", str(tmp_path))
    )
    each = pl.concat(
        [pl.read_parquet(f) for f in sorted((out / "configs").glob("*/trades.parquet"))]
    )
    assert every.sort("trade_id").equals(each.sort("trade_id"))
    _ = mlflow
    # resume: nothing recomputed, nothing logged twice (also when a run id file was lost
    # after its run was logged)
    stamps = {f: f.stat().st_mtime_ns for f in (out / "configs").glob("*/status.json")}
    lost = {f: f.read_text() for f in sorted((out / "configs").glob("*/mlflow_run_id"))[:2]}
    for f in lost:
        f.unlink()
    again = run_sweep(cfg, market, out, workers=1, mlflow_root=ml, progress=False)
    assert stamps == {f: f.stat().st_mtime_ns for f in (out / "configs").glob("*/status.json")}
    assert again.metrics.equals(res.metrics)  # read back from metrics.json: the same table
    assert len(client.search_runs([exp.experiment_id])) == 13
    assert lost == {f: f.read_text() for f in lost}
    # the same folder over different data (a shorter period here): nothing stale is reused
    key = (out / "stage1_key").read_text()
    cfg4 = small(grid=cfg.grid, end=THU)
    res4 = run_sweep(cfg4, market, out, workers=1, mlflow_root=ml, progress=False)
    assert (out / "stage1_key").read_text() != key and not (out / "stage1" / key).exists()
    assert all(f.stat().st_mtime_ns != t for f, t in stamps.items())
    assert sum(s["status"] == "done" for s in res4.status.values()) == 8
    for cid, s4 in res4.status.items():
        if s4["status"] == "done":
            tr = pl.read_parquet(out / "configs" / cid / "trades.parquet")
            assert tr.height == 0 or tr["entry_date"].max() <= THU


def test_executors_give_identical_results(market: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    cfg = small()
    a = run_sweep(
        cfg,
        market,
        tmp_path / "process",
        executor="process",
        workers=2,
        mlflow=False,
        progress=False,
    )
    b = run_sweep(
        cfg, market, tmp_path / "ray", executor="ray", workers=2, mlflow=False, progress=False
    )
    for p in a.points:
        ta = pl.read_parquet(tmp_path / "process" / "configs" / p.config_id / "trades.parquet")
        tb = pl.read_parquet(tmp_path / "ray" / "configs" / p.config_id / "trades.parquet")
        assert ta.equals(tb)
    assert a.metrics.drop("index").equals(b.metrics.drop("index"))


def test_batches_and_workers_give_identical_results(market: Path, tmp_path: Path) -> None:
    cfg = small()
    a = run_sweep(cfg, market, tmp_path / "a", workers=2, mlflow=False, progress=False)
    b = run_sweep(cfg, market, tmp_path / "b", workers=1, batch=3, mlflow=False, progress=False)
    assert a.metrics.equals(b.metrics)
    for p in a.points:
        for name in ("trades.parquet", "decisions.parquet", "equity_daily.parquet"):
            fa = pl.read_parquet(tmp_path / "a" / "configs" / p.config_id / name)
            assert fa.equals(pl.read_parquet(tmp_path / "b" / "configs" / p.config_id / name))
    sa, sb = (json.loads((tmp_path / x / "summary.json").read_text()) for x in "ab")
    assert sa["deflated_sharpe"] == sb["deflated_sharpe"] and sa["pbo"] == sb["pbo"]
    assert sa["best"] == sb["best"]
