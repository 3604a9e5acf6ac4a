"""Meta-labeling pipeline: labels, Optuna resumability, no-leak check, train end to end.

8 sessions of the shared synthetic market (through the real DBN writer and ingest); a put credit
vertical entered every 20 minutes gives > 150 candidates.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab.errors import InputError
from quantlab.ml.labels import labels_from_trades, outcome_spec
from quantlab.ml.train import TrainConfig, contracts_for, train
from quantlab.ml.tuning import cv_scores, make_cv, tune
from quantlab.strategy.spec import StrategySpec
from tests.conftest import MARKET, SyntheticStore

START, END = dt.date(2024, 3, 4), dt.date(2024, 3, 13)
TIMES = [f"{h:02d}:{m:02d}" for h in range(10, 16) for m in (0, 15, 30, 45)][:23]
SPEC = {
    "name": "ml-put",
    "dte": {"target": 1, "tolerance": 1},
    "entry": {"times": TIMES},
    "short_delta": 0.15,
    "width": 10,
    "filters": {"min_credit": 0.0},
    "management": {"take_profit_pct": 50, "stop_loss_pct": 100},
    "risk": {"max_open_trades": 3, "max_new_trades_per_day": 4},
}


@pytest.fixture(scope="session")
def ml_store(synthetic_store: SyntheticStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shared synthetic market (training writes features into it)."""
    return synthetic_store(**MARKET, copy_to=tmp_path_factory.mktemp("ml") / "store")


@pytest.fixture(scope="session")
def trained(ml_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    work = tmp_path_factory.mktemp("ml_work")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    cfg = TrainConfig.from_dict(
        {
            "strategy": SPEC,
            "store": str(ml_store),
            "start": START,
            "end": END,
            "test_fraction": 0.3,
            "test_embargo_days": 0.5,
            "cv": {"kind": "purged_kfold", "n_splits": 3, "embargo": 0.01},
            "optuna": {
                "n_trials": 3,
                "seed": 1,
                "storage": str(work / "optuna.db"),
                "study_name": "t",
                "n_estimators": [10, 30],
            },
            "model_name": "ml-test-model",
            "workers": 1,
            "calibration": None,
        }
    )
    try:
        res = train(cfg)
        yield res, work
    finally:
        mp.undo()


def test_labels_by_hand() -> None:
    tr = pl.DataFrame(
        {
            "candidate_id": ["tp", "sl", "te+", "te-", "set0", "eod+"],
            "entry_ts": [1, 2, 3, 4, 5, 6],
            "exit_ts": [10, 11, 12, 13, 14, 15],
            "exit_reason": [
                "take_profit",
                "stop_loss",
                "time_exit",
                "time_exit",
                "settlement",
                "end_of_data",
            ],
            "pnl": [50.0, -100.0, 20.0, -5.0, 0.0, 1.0],
        }
    )
    lab = labels_from_trades(tr)
    assert dict(zip(lab["candidate_id"], lab["label"], strict=True)) == {
        "tp": 1,
        "sl": 0,
        "te+": 1,
        "te-": 0,
        "set0": 0,
        "eod+": 1,
    }
    assert lab["t0"].to_list() == [1, 2, 3, 4, 5, 6] and lab["t1"].to_list()[0] == 10
    zero = labels_from_trades(tr, time_exit_label="zero")
    assert zero["label"].to_list() == [1, 0, 0, 0, 0, 0]
    drop = labels_from_trades(tr, time_exit_label="drop")
    assert drop["candidate_id"].to_list() == ["tp", "sl"]
    with pytest.raises(InputError, match="time_exit_label"):
        labels_from_trades(tr, time_exit_label="maybe")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="more than once"):
        labels_from_trades(pl.concat([tr, tr]))


def test_outcome_spec_lifts_risk_rules() -> None:
    spec = StrategySpec.from_dict(SPEC | {"entry": {"times": TIMES, "mode": "first_valid"}})
    o = outcome_spec(spec)
    assert o.risk.max_open_trades >= 10**6 and not o.risk.no_new_after_stop
    assert o.entry.mode == "each" and o.sizing.contracts == 1
    assert o.management == spec.management and o.fills == spec.fills


def test_labels_match_exit_reasons(trained: tuple) -> None:
    res, _ = trained
    lab = res.labels
    assert lab.height >= 150
    tp = lab.filter(pl.col("exit_reason") == "take_profit")["label"]
    sl = lab.filter(pl.col("exit_reason") == "stop_loss")["label"]
    assert tp.len() > 0 and (tp == 1).all() and (sl == 0).all()
    other = lab.filter(~pl.col("exit_reason").is_in(["take_profit", "stop_loss"]))
    assert ((other["pnl"] > 0).cast(pl.Int8) == other["label"]).all()
    assert (lab["t1"] >= lab["t0"]).all()


def test_train_end_to_end(trained: tuple) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    res, _work = trained
    ev = res.evaluation
    assert ev["variant"].to_list()[:2] == ["unfiltered", "filtered"]
    unf, filt = ev.row(0, named=True), ev.row(1, named=True)
    print(f"\ncv mean auc {res.cv['mean']['auc']:.4f} test {res.test_metrics} thr {res.threshold}")
    print(ev)
    assert filt["trades"] <= filt["allowed"] and unf["trades"] <= unf["allowed"]
    assert filt["allowed"] <= unf["allowed"]
    assert 0.0 <= res.threshold <= 1.0 and res.n_trials == 3
    assert np.isfinite(res.cv["mean"]["auc"]) and 0.0 <= res.test_metrics["auc"] <= 1.0
    client = MlflowClient()
    run = client.get_run(res.run_id)
    for key in (
        "cv.mean.auc",
        "cv.fold0.auc",
        "test.auc",
        "test.brier",
        "bt.filtered.trades",
        "bt.unfiltered.total_pnl",
    ):
        assert key in run.data.metrics, key
    assert run.data.tags["quantlab.feature_set_version"] == res.feature_version
    arts = {a.path for a in client.list_artifacts(res.run_id, "plots")}
    assert {"plots/calibration.png", "plots/feature_importance.png"} <= arts
    mv = client.get_model_version_by_alias("ml-test-model", "champion")
    assert str(mv.version) == res.model_version
    model = mlflow.pyfunc.load_model("models:/ml-test-model@champion")
    X = res.test_predictions.select("candidate_id")  # features of the test candidates
    from quantlab.features import FeatureSet, load_features

    feats = load_features(res.config.store, FeatureSet("core"), X["candidate_id"].to_list())
    p = np.asarray(model.predict(feats.select(FeatureSet("core").columns).to_pandas()))
    assert p.shape == (feats.height,) and np.all((p >= 0) & (p <= 1))
    want = res.test_predictions.join(feats.select("candidate_id"), on="candidate_id")
    assert np.allclose(np.sort(p), np.sort(want["p"].to_numpy()))


def test_filtered_trades_are_allowed_candidates(trained: tuple, ml_store: Path) -> None:
    from quantlab.backtest.engine import stage1
    from quantlab.backtest.stage2 import run_stage2

    res, _ = trained
    spec = res.config.strategy
    s1 = stage1(ml_store, [spec], START, END, workers=1)
    pr = res.test_predictions
    allowed = set(pr.filter(pl.col("p") >= res.threshold)["candidate_id"].to_list())
    out = run_stage2(s1, spec, allowed=allowed)
    assert set(out.trades["candidate_id"].to_list()) <= allowed
    assert out.trades.height == res.evaluation.row(1, named=True)["trades"]
    assert out.trades.height <= len(allowed)


def test_optuna_resumes_and_shuffled_labels_do_not_leak(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 600
    X = rng.normal(size=(n, 6))
    y = rng.integers(0, 2, size=n)
    t0 = np.arange(n, dtype=np.int64) * 10
    t1 = t0 + rng.integers(0, 60, size=n)
    kw = dict(
        study_name="resume",
        storage=tmp_path / "o.db",
        n_trials=2,
        seed=0,
        n_splits=3,
        n_estimators=(10, 30),
    )
    first = tune(X, y, t0, t1, **kw)  # type: ignore[arg-type]
    second = tune(X, y, t0, t1, **kw)  # type: ignore[arg-type]
    assert first.n_trials == 2 and second.n_trials == 4 and second.n_new == 2
    assert second.study.study_name == "resume"
    # labels carry no signal: purged CV AUC of the tuned parameters stays near 0.5
    cv = make_cv("purged_kfold", 3, 0.01, t0, t1)
    scores = cv_scores(second.best_params, X, rng.permutation(y), t0, t1, cv)
    assert 0.35 <= float(np.mean(scores)) <= 0.65
    assert 0.35 <= second.best_value <= 0.65


def test_contracts_for() -> None:
    assert contracts_for(np.array([0.1, 0.3, 0.74, 0.76, 1.0]), 2).tolist() == [0, 1, 1, 2, 2]
