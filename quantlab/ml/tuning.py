"""Optuna tuning of the meta-labeler on purged cross-validation (training period only).

Study
-----
* Storage: an Optuna RDB (sqlite) file, default ``mlruns/optuna.db``; a study with the same name
  is loaded and **continued** (``load_if_exists``), so tuning resumes and accumulates trials.
* Sampler: TPE, seeded with ``seed + number of trials already in the study`` (a resumed study
  does not replay the first run's random start-up points).
* Pruner: ``MedianPruner`` on the running mean of the fold scores, reported after every fold
  (step = fold number): a trial whose running mean is worse than the median of earlier trials at
  the same step is stopped.
* Objective: mean fold AUC (maximised) or mean fold log loss (minimised) of an uncalibrated
  :class:`~quantlab.ml.metalabeler.MetaLabeler` (calibration is monotone and leaves AUC
  unchanged; it is fitted once on the final model) under :class:`~quantlab.ml.cv.PurgedKFold`
  or :class:`~quantlab.ml.cv.WalkForward` with the configured embargo. Callers pass the
  training samples only; the held-out test period never enters the study.

Search space (:func:`suggest_params`)
-------------------------------------
========================  ==========================  =====
parameter                 range                       scale
========================  ==========================  =====
``num_leaves``            4 .. 63                     int, log
``learning_rate``         0.01 .. 0.3                 log
``n_estimators``          ``n_estimators`` bounds     int (default 50 .. 500, step 25)
``min_child_samples``     5 .. 100                    int, log
``subsample``             0.5 .. 1.0
``colsample_bytree``      0.5 .. 1.0
``reg_lambda``            1e-3 .. 10                  log
========================  ==========================  =====
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from quantlab.errors import InputError

CVKind = Literal["purged_kfold", "walk_forward"]
Objective = Literal["auc", "log_loss"]


def storage_url(path: str | Path) -> str:
    """``sqlite:///<absolute path>`` for an Optuna sqlite file (its folder is created)."""
    s = str(path)
    if "://" in s:
        return s
    p = Path(s).resolve()
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p}"


def make_cv(kind: CVKind, n_splits: int, embargo: float, t0: Any, t1: Any) -> Any:
    """The configured splitter over samples with decision times ``t0`` and label ends ``t1``."""
    from quantlab.ml.cv import PurgedKFold, WalkForward

    if kind == "purged_kfold":
        return PurgedKFold(n_splits, t0=t0, t1=t1, embargo=float(embargo))
    if kind == "walk_forward":
        return WalkForward(n_splits, t0=t0, t1=t1, embargo=float(embargo))
    raise InputError(f"cv kind must be 'purged_kfold' or 'walk_forward' (got {kind!r}).")


def suggest_params(trial: Any, n_estimators: tuple[int, int] = (50, 500)) -> dict[str, Any]:
    """Draw one point of the search space (see the module table)."""
    lo, hi = n_estimators
    step = max((hi - lo) // 18, 1)
    hi = lo + step * ((hi - lo) // step)  # on the step grid (Optuna would warn and do the same)
    return {
        "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "n_estimators": trial.suggest_int("n_estimators", lo, hi, step=step),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def _score(y: np.ndarray, p: np.ndarray, objective: Objective) -> float:
    from sklearn.metrics import log_loss, roc_auc_score

    if objective == "auc":
        return float(roc_auc_score(y, p)) if np.unique(y).shape[0] == 2 else math.nan
    return float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))


def cv_scores(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    cv: Any,
    *,
    objective: Objective = "auc",
    random_state: int = 0,
    n_jobs: int = 1,
    on_fold: Any = None,
) -> list[float]:
    """Fold scores of an uncalibrated MetaLabeler with ``params`` under splitter ``cv``.

    ``on_fold(k, scores_so_far)`` is called after each fold (the pruning hook); folds whose
    training part or test block holds a single class are skipped (score NaN).
    """
    from quantlab.ml.metalabeler import MetaLabeler

    scores: list[float] = []
    for k, (tr, te) in enumerate(cv.split(X)):
        if tr.shape[0] == 0 or np.unique(y[tr]).shape[0] < 2:
            scores.append(math.nan)
        else:
            model = MetaLabeler(**params, random_state=random_state, n_jobs=n_jobs)
            model.fit(X[tr], y[tr], t0=t0[tr], t1=t1[tr])
            scores.append(_score(y[te], model.predict_proba(X[te])[:, 1], objective))
        if on_fold is not None:
            on_fold(k, scores)
    return scores


@dataclass
class TuneResult:
    """Outcome of :func:`tune`: the study (all trials, resumed ones included) and its best."""

    study: Any
    best_params: dict[str, Any]
    best_value: float
    n_trials: int  # trials in the study after this call (all states)
    n_new: int  # trials this call added


def tune(
    X: Any,
    y: Any,
    t0: Any,
    t1: Any,
    *,
    study_name: str,
    storage: str | Path = "mlruns/optuna.db",
    n_trials: int = 30,
    timeout: float | None = None,
    seed: int = 0,
    cv_kind: CVKind = "purged_kfold",
    n_splits: int = 5,
    embargo: float = 0.01,
    objective: Objective = "auc",
    n_estimators: tuple[int, int] = (50, 500),
    n_jobs: int = 1,
) -> TuneResult:
    """Run (or continue) an Optuna study of the meta-labeler's LightGBM parameters.

    Parameters
    ----------
    X, y, t0, t1 : array-like
        Training samples only, sorted by ``t0`` (decision time); ``t1`` = label end time.
    study_name, storage
        Study identity; an existing study of that name in ``storage`` is continued.
    n_trials, timeout
        Trials to add in this call, and an optional wall-clock limit in seconds.
    seed
        TPE seed (offset by the number of trials already in the study).
    cv_kind, n_splits, embargo
        The purged splitter (see :func:`make_cv`).
    objective : {'auc', 'log_loss'}
        Mean fold AUC (maximised) or log loss (minimised).

    Returns
    -------
    TuneResult
    """
    import optuna

    if objective not in ("auc", "log_loss"):
        raise InputError(f"objective must be 'auc' or 'log_loss' (got {objective!r}).")
    if int(n_trials) < 1:
        raise InputError(f"n_trials must be >= 1 (got {n_trials!r}).")
    arr = np.ascontiguousarray(X, dtype=np.float64)
    yy = np.asarray(y).astype(np.int64)
    a = np.asarray(t0, dtype=np.int64)
    b = np.asarray(t1, dtype=np.int64)
    if not (arr.shape[0] == yy.shape[0] == a.shape[0] == b.shape[0]):
        raise InputError(
            f"X, y, t0, t1 must have the same length (got {arr.shape[0]}, {yy.shape[0]}, "
            f"{a.shape[0]}, {b.shape[0]})."
        )
    cv = make_cv(cv_kind, n_splits, embargo, a, b)
    url = storage_url(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction: Literal["maximize", "minimize"] = "maximize" if objective == "auc" else "minimize"
    probe = optuna.create_study(
        study_name=study_name, storage=url, direction=direction, load_if_exists=True
    )
    if probe.direction.name.lower() != direction:
        raise InputError(
            f"study {study_name!r} in {url} was created to {probe.direction.name.lower()}; "
            f"objective {objective!r} needs {direction}. Use another study name."
        )
    before = len(probe.trials)
    study = optuna.create_study(
        study_name=study_name,
        storage=url,
        direction=direction,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=int(seed) + before),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )

    def run_trial(trial: Any) -> float:
        params = suggest_params(trial, n_estimators)

        def report(k: int, scores: list[float]) -> None:
            done = [s for s in scores if s == s]
            if done:
                trial.report(float(np.mean(done)), step=k)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        scores = cv_scores(
            params, arr, yy, a, b, cv, objective=objective, n_jobs=n_jobs, on_fold=report
        )
        trial.set_user_attr("fold_scores", [None if s != s else s for s in scores])
        done = [s for s in scores if s == s]
        if not done:
            raise optuna.TrialPruned()  # no fold had both classes: nothing to score
        return float(np.mean(done))

    study.optimize(run_trial, n_trials=int(n_trials), timeout=timeout, catch=())
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise InputError(
            f"study {study_name!r} has no completed trial (all pruned or failed); use more data, "
            "fewer splits or more trials."
        )
    return TuneResult(
        study,
        dict(study.best_params),
        float(study.best_value),
        len(study.trials),
        len(study.trials) - before,
    )


__all__ = ["TuneResult", "cv_scores", "make_cv", "storage_url", "suggest_params", "tune"]
