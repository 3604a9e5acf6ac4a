"""Train the meta-labeler end to end and evaluate the filtered strategy out of sample.

:func:`train` runs: stage 1 over ``[start, end]`` -> features (:func:`~quantlab.features.
build_features`) -> labels (:func:`~quantlab.ml.labels.make_labels`) -> a time split (the last
``test_fraction`` of the labelled candidates by entry time is the held-out test; training keeps
only labels that ended ``test_embargo_days`` before the first test entry) -> Optuna on purged CV
of the training period (:mod:`quantlab.ml.tuning`) -> per-fold CV metrics of the best parameters
(calibrated model; precision/recall/F1 at 0.5) and the decision threshold chosen on the pooled
training out-of-fold predictions
(:func:`~quantlab.ml.metalabeler.choose_threshold`) -> the final calibrated model fitted on the
training period -> evaluation on the test period:

* classification: AUC, log loss, Brier, precision / recall / F1 at the threshold;
* strategy, by re-running stage 2 (risk rules re-applied) over the test-period candidates:
  ``unfiltered`` (every test candidate allowed), ``filtered`` (those with ``p >= threshold``),
  ``filtered_sized`` (the filtered trades with ``size = clip(round(max_contracts * p), 0,
  max_contracts)`` contracts; candidates sized 0 are not allowed; each trade's P&L and fees are
  multiplied by its size, since the fee schedule is per contract).

Sharpe and drawdown come from :func:`quantlab.backtest.analytics.performance` over an end-of-day
equity of the test sessions built from the trades' P&L realized at their exit date (the same
construction for all three rows, so sizing can be applied per trade).

MLflow (experiment ``quantlab-metalabel``): parameters, per-fold and mean CV metrics, test
metrics, the evaluation table, a reliability (calibration) plot and a feature-importance plot,
the feature-set version and the data checksum; the model is logged as a pyfunc whose
``predict`` returns P(take), registered as ``model_name`` with alias ``champion``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from mlflow.pyfunc import PythonModel  # the registered model's wrapper class lives here
from pydantic import Field

from quantlab.config import StrictModel, read_yaml
from quantlab.errors import DataError
from quantlab.strategy.spec import StrategySpec, with_strategy

EXPERIMENT = "quantlab-metalabel"
NS_PER_DAY = 86_400_000_000_000


class CVConfig(StrictModel):
    kind: Literal["purged_kfold", "walk_forward"] = "purged_kfold"
    n_splits: int = Field(5, ge=2)
    embargo: float = Field(0.01, ge=0.0, lt=1.0, description="fraction of samples")


class OptunaConfig(StrictModel):
    n_trials: int = Field(30, ge=1)
    timeout: float | None = Field(None, gt=0.0, description="seconds")
    seed: int = 0
    storage: str = "mlruns/optuna.db"
    study_name: str | None = Field(None, description="default: <model_name>-<strategy hash>")
    objective: Literal["auc", "log_loss"] = "auc"
    n_estimators: tuple[int, int] = (50, 500)


class TrainConfig(StrictModel):
    """A training file (``pipelines/train_seed.yaml``)."""

    strategy: StrategySpec
    store: str = "data"
    start: dt.date | None = None
    end: dt.date | None = None
    feature_set: str = "core"
    time_exit_label: Literal["pnl_sign", "zero", "drop"] = "pnl_sign"
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    test_embargo_days: float = Field(1.0, ge=0.0)
    cv: CVConfig = CVConfig()
    optuna: OptunaConfig = OptunaConfig()
    threshold_metric: Literal["f1", "expected_pnl"] = "f1"
    calibration: Literal["isotonic", "sigmoid"] | None = "sigmoid"
    calibration_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    max_contracts: int = Field(2, ge=1, description="bet sizing: round(max_contracts * p)")
    model_name: str = "spxw-metalabeler"
    seed: int = 0
    workers: int | None = None


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a training YAML; ``strategy`` may be inline or a path relative to the file."""
    p = Path(path)
    data = read_yaml(p)
    data = with_strategy(data, p) | {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig.from_dict(data, source=str(p))


@dataclass
class TrainResult:
    config: TrainConfig
    model: Any
    threshold: float
    best_params: dict[str, Any]
    cv: dict[str, Any]
    test_metrics: dict[str, float]
    evaluation: pl.DataFrame
    labels: pl.DataFrame
    test_predictions: pl.DataFrame
    study_name: str
    n_trials: int
    feature_version: str
    data_checksum: str
    run_id: str | None = None
    model_version: str | None = None


class ProbaModel(PythonModel):
    """MLflow pyfunc wrapper: ``predict(features)`` returns P(take) per row (float64)."""

    def __init__(self, model: Any, columns: list[str]) -> None:
        self.model = model
        self.columns = list(columns)

    def predict(self, context, model_input, params=None):
        import pandas as pd

        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        X = df[self.columns].astype("float64").to_numpy()
        return self.model.predict_proba(X)[:, 1]


def _matrix(df: pl.DataFrame, columns: list[str]) -> np.ndarray:
    return df.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy()


def _row(name: str, allowed: int, res: Any, first_day: dt.date, cap: float) -> dict:
    """One variant's numbers: trade statistics and the mark-to-market daily equity of the
    stage-2 run (the backtest's equity builder) from the first test-period session on."""
    from quantlab.backtest.analytics import performance, trade_stats

    trades = res.trades
    ts = trade_stats(trades)
    perf = performance(res.equity_daily.filter(pl.col("date") >= first_day), cap)
    return {
        "variant": name,
        "allowed": allowed,
        "trades": ts["n_trades"],
        "win_rate": ts["win_rate"],
        "total_pnl": ts["total_pnl"],
        "expectancy": ts["expectancy"],
        "fees": ts["total_fees"],
        "sharpe": perf["sharpe_ratio"],
        "max_drawdown": perf["max_drawdown"],
        "max_drawdown_dollars": perf["max_drawdown_dollars"],
    }


def contracts_for(p: np.ndarray, max_contracts: int) -> np.ndarray:
    """Bet size from calibrated P(take): the decision core's probability sizing
    (:func:`quantlab.strategy.book.probability_contracts`), as an array."""
    from quantlab.strategy.book import probability_contracts

    return np.asarray(probability_contracts(np.asarray(p, np.float64), max_contracts), np.int64)


def evaluate_strategy(
    s1: Any, spec: StrategySpec, proba: pl.DataFrame, threshold: float, max_contracts: int
) -> pl.DataFrame:
    """Unfiltered / filtered / filtered-and-sized stage-2 runs over the candidates of ``proba``.

    ``proba`` holds ``candidate_id, entry_ts, p`` for the test-period candidates only.
    """
    from quantlab import calendar
    from quantlab.backtest.stage2 import run_stage2

    if proba.height == 0:
        raise DataError("no test-period candidates to evaluate the filter on.")
    first_day = calendar.et_date(int(proba["entry_ts"].cast(pl.Int64).to_numpy().min()))
    cap = spec.sizing.capital
    ids = proba["candidate_id"].to_list()
    p = proba["p"].to_numpy()
    take = {c for c, pc in zip(ids, p, strict=True) if pc >= threshold}
    # sized: the decision core's probability sizing, risk rules applied at the sized quantity
    sized_spec = spec.model_copy(
        update={
            "sizing": spec.sizing.model_copy(
                update={"mode": "probability", "contracts": max_contracts}
            )
        }
    )
    variants = [
        ("unfiltered", set(ids), spec, None),
        ("filtered", take, spec, None),
        (
            f"filtered_sized(max {max_contracts})",
            take,
            sized_spec,
            dict(zip(ids, p.tolist(), strict=True)),
        ),
    ]
    rows = []
    for name, allowed, sp, probs in variants:
        res = run_stage2(s1, sp, allowed=allowed, probabilities=probs)
        rows.append(_row(name, len(allowed), res, first_day, cap))
    return pl.DataFrame(rows)


def _plots(out: Path, y: np.ndarray, p: np.ndarray, model: Any, columns: list[str]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    paths = []
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    if np.unique(y).shape[0] == 2:
        frac, mean = calibration_curve(
            y, p, n_bins=min(10, max(2, y.shape[0] // 10)), strategy="quantile"
        )
        ax.plot(mean, frac, "o-", label="test period")
    ax.set_xlabel("predicted P(take)")
    ax.set_ylabel("observed frequency")
    ax.set_title("Reliability (held-out test)")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "calibration.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    gain = model.model_.booster_.feature_importance(importance_type="gain")
    order = np.argsort(gain)
    fig, ax = plt.subplots(figsize=(6, max(3, 0.22 * len(columns))))
    ax.barh(np.array(columns)[order], gain[order])
    ax.set_xlabel("total gain")
    ax.set_title("Feature importance")
    fig.tight_layout()
    paths.append(out / "feature_importance.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def _split(labels: pl.DataFrame, frac: float, embargo_days: float) -> tuple[np.ndarray, np.ndarray]:
    t0 = labels["t0"].to_numpy()
    t1 = labels["t1"].to_numpy()
    n = t0.shape[0]
    n_test = max(math.ceil(frac * n), 1)
    start = t0[n - n_test]
    test = np.flatnonzero(t0 >= start)
    train = np.flatnonzero(t1 < start - int(embargo_days * NS_PER_DAY))
    return train, test


def train(cfg: TrainConfig, *, mlflow_log: bool = True, progress: bool = False) -> TrainResult:
    """Run the pipeline of the module notes; see :class:`TrainConfig` for the knobs."""
    from quantlab.backtest.engine import stage1
    from quantlab.data import store as st
    from quantlab.features import FeatureSet, build_features
    from quantlab.ml.labels import make_labels
    from quantlab.ml.metalabeler import MetaLabeler, _fold_metrics, choose_threshold, cross_validate
    from quantlab.ml.tuning import make_cv, tune

    spec = cfg.strategy
    days = st.list_days(cfg.store, "quotes", spec.underlying)
    if not days:
        raise DataError(f"store {cfg.store} holds no {spec.underlying} quotes.")
    a, b = cfg.start or days[0], cfg.end or days[-1]
    s1 = stage1(
        cfg.store, [spec], a, b, underlying=spec.underlying, workers=cfg.workers, progress=progress
    )
    fs = FeatureSet(cfg.feature_set)
    feats = build_features(cfg.store, s1, fs, underlying=spec.underlying, progress=progress)
    cols = fs.columns
    labels = make_labels(s1, spec, time_exit_label=cfg.time_exit_label)
    data = labels.join(feats.drop("entry_ts", "entry_date"), on="candidate_id", how="inner")
    data = data.sort(["t0", "candidate_id"])
    tr, te = _split(data, cfg.test_fraction, cfg.test_embargo_days)
    X, y = _matrix(data, cols), data["label"].to_numpy().astype(np.int64)
    t0, t1 = data["t0"].to_numpy(), data["t1"].to_numpy()
    if tr.shape[0] < 2 * cfg.cv.n_splits or np.unique(y[tr]).shape[0] < 2:
        raise DataError(
            f"only {tr.shape[0]} training labels ({int(y[tr].sum())} positive) after the time "
            f"split of {data.height} labelled candidates; widen the date range."
        )
    study = cfg.optuna.study_name or f"{cfg.model_name}-{spec.config_hash()[:8]}"
    tuned = tune(
        X[tr],
        y[tr],
        t0[tr],
        t1[tr],
        study_name=study,
        storage=cfg.optuna.storage,
        n_trials=cfg.optuna.n_trials,
        timeout=cfg.optuna.timeout,
        seed=cfg.optuna.seed,
        cv_kind=cfg.cv.kind,
        n_splits=cfg.cv.n_splits,
        embargo=cfg.cv.embargo,
        objective=cfg.optuna.objective,
        n_estimators=(cfg.optuna.n_estimators[0], cfg.optuna.n_estimators[1]),
    )
    est = MetaLabeler(
        **tuned.best_params,
        calibration=cfg.calibration,
        calibration_fraction=cfg.calibration_fraction,
        random_state=cfg.seed,
    )
    cv = make_cv(cfg.cv.kind, cfg.cv.n_splits, cfg.cv.embargo, t0[tr], t1[tr])
    pnl_win = pnl_loss = None
    if cfg.threshold_metric == "expected_pnl":
        d = data[tr]
        wins = d.filter(pl.col("pnl") > 0)["pnl"].to_numpy()
        losses = d.filter(pl.col("pnl") <= 0)["pnl"].to_numpy()
        pnl_win = float(wins.mean()) if wins.size else 1.0
        pnl_loss = float(-losses.mean()) if losses.size else 1.0
    # per-fold metrics (precision/recall/F1 at 0.5); the threshold is then chosen on the pooled
    # out-of-fold predictions of these training-period folds, never on the test period
    cvres = cross_validate(est, X[tr], y[tr], t0[tr], t1[tr], cv, threshold=0.5)
    oof = cvres["oof_proba"]
    ok = np.isfinite(oof)
    thr = choose_threshold(
        y[tr][ok], oof[ok], metric=cfg.threshold_metric, pnl_win=pnl_win, pnl_loss=pnl_loss
    )
    model = est.fit(X[tr], y[tr], t0=t0[tr], t1=t1[tr])
    p_test = model.predict_proba(X[te])[:, 1]
    test_metrics = _fold_metrics(y[te], p_test, thr)
    test_metrics["n_train"] = float(tr.shape[0])
    # the filter applies to every test-period candidate, labelled or not
    start_ts = int(t0[te].min())
    test_feats = feats.filter(pl.col("entry_ts") >= start_ts).sort(["entry_ts", "candidate_id"])
    proba = test_feats.select("candidate_id", "entry_ts").with_columns(
        pl.Series("p", model.predict_proba(_matrix(test_feats, cols))[:, 1])
    )
    evaluation = evaluate_strategy(s1, spec, proba, thr, cfg.max_contracts)
    res = TrainResult(
        config=cfg,
        model=model,
        threshold=thr,
        best_params=tuned.best_params,
        cv=cvres,
        test_metrics=test_metrics,
        evaluation=evaluation,
        labels=labels,
        test_predictions=proba,
        study_name=study,
        n_trials=tuned.n_trials,
        feature_version=fs.version,
        data_checksum=s1.data_checksum,
    )
    if mlflow_log:
        _log(res, data[te], y[te], p_test, cols, data.select(cols).head(5))
    return res


def _log(
    res: TrainResult,
    test: pl.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    cols: list[str],
    example: pl.DataFrame,
) -> None:
    import mlflow
    from mlflow.models import infer_signature

    from quantlab.tracking import Tracker, code_version, flatten

    cfg = res.config
    trk = Tracker(experiment=EXPERIMENT)
    run = trk.start(
        cfg.model_name,
        tags={
            "quantlab.kind": "metalabel",
            "quantlab.config_hash": cfg.config_hash(),
            "quantlab.strategy_hash": cfg.strategy.config_hash(),
            "quantlab.data_checksum": res.data_checksum,
            "quantlab.feature_set_version": res.feature_version,
            "quantlab.code_version": code_version(),
            "quantlab.optuna_study": res.study_name,
        },
    )
    params = flatten(cfg.model_dump(mode="json", exclude={"strategy"}))
    params |= {f"best.{k}": v for k, v in res.best_params.items()}
    params |= {
        "threshold": res.threshold,
        "feature_set_version": res.feature_version,
        "data_checksum": res.data_checksum,
        "n_labels": res.labels.height,
        "optuna_trials_total": res.n_trials,
        "strategy": cfg.strategy.name,
    }
    metrics: dict[str, float] = {}
    for k, fold in enumerate(res.cv["folds"]):
        metrics |= {f"cv.fold{k}.{m}": v for m, v in fold.items()}
    metrics |= {f"cv.mean.{m}": v for m, v in res.cv["mean"].items()}
    metrics["cv.oof_auc"] = res.cv["oof_auc"]
    metrics |= {f"test.{m}": v for m, v in res.test_metrics.items()}
    for row in res.evaluation.iter_rows(named=True):
        name = row["variant"].split("(")[0]
        metrics |= {f"bt.{name}.{k}": v for k, v in row.items() if k != "variant"}
    trk.log(run, params=params, metrics=metrics)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for f in _plots(out, y, p, res.model, cols):
            trk.artifact(run, f, "plots")
        res.evaluation.write_csv(out / "evaluation.csv")
        (out / "train_config.json").write_text(cfg.model_dump_json(indent=2))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        for name in ("evaluation.csv", "train_config.json", "metrics.json"):
            trk.artifact(run, out / name)
    ex = example.to_pandas().astype("float64")
    wrapper = ProbaModel(res.model, cols)
    sig = infer_signature(ex, res.model.predict_proba(ex.to_numpy())[:, 1])
    reqs = _requirements()
    with mlflow.start_run(run_id=run):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=wrapper,
            signature=sig,
            input_example=ex.head(2),
            pip_requirements=reqs,
            registered_model_name=cfg.model_name,
        )
    version = str(info.registered_model_version)
    trk.client.set_registered_model_alias(cfg.model_name, "champion", version)
    trk.client.set_tag(run, "quantlab.model_version", version)
    res.run_id, res.model_version = run, version


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("mlflow", "lightgbm", "scikit-learn", "numpy", "pandas", "cloudpickle"):
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return out


__all__ = [
    "CVConfig",
    "OptunaConfig",
    "ProbaModel",
    "TrainConfig",
    "TrainResult",
    "contracts_for",
    "evaluate_strategy",
    "load_train_config",
    "train",
]
