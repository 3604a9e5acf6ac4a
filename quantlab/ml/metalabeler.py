"""LightGBM meta-labeler with sklearn's estimator shape, threshold choice and purged CV.

A meta-label says whether to take a candidate trade the strategy proposed (1 = take profit hit
before the stop). :class:`MetaLabeler` wraps ``lightgbm.LGBMClassifier``:

* ``__init__`` only stores parameters; ``fit`` validates, returns ``self``; fitted attributes end
  in ``_`` (``model_``, ``calibrator_``, ``classes_``, ``feature_names_in_``, ``n_features_in_``);
* with ``t0``/``t1`` (decision and label end times) and no ``sample_weight``, samples are
  weighted by average label uniqueness (:func:`quantlab.ml.weights.label_uniqueness`);
* LightGBM runs deterministically (``deterministic=True``, fixed seed, ``n_jobs=1`` default);
* probability calibration (isotonic or Platt/sigmoid) is fitted **inside** ``fit`` on the last
  ``calibration_fraction`` of the training samples in time, after purging from the booster's
  training part every sample whose label overlaps that hold-out. The booster is trained on the
  purged remainder only, so the calibrator sees honest out-of-sample scores of the very model
  it calibrates. Test data never touches calibration. A hold-out holding a single class (a
  run of stop-outs, common on small data) is widened back in time to the most recent sample
  of the missing class. Both calibrators are monotone non-decreasing in the booster's score,
  so calibration never reorders candidates: isotonic regression, or Platt scaling
  ``sigmoid(a * score + b)`` with ``a >= 0``, fitted to Platt's smoothed targets
  ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` (finite on a hold-out the scores separate;
  a hold-out on which the scores rank inversely gets ``a = 0``, its smoothed base rate).

:func:`cross_validate` runs a splitter from :mod:`quantlab.ml.cv` and reports per-fold and mean
AUC, log loss, Brier score, and precision/recall/F1 at a threshold chosen on the training fold
only (from its own inner purged out-of-fold predictions).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from quantlab.errors import InputError
from quantlab.ml.cv import PurgedKFold, validate_intervals
from quantlab.ml.weights import label_uniqueness

_CALIBRATIONS = ("isotonic", "sigmoid", None)


def _as_matrix(X: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Return ``X`` as a 2-D float64 array and its column names (None for plain arrays)."""
    mod = type(X).__module__
    names: np.ndarray | None = None
    if mod.startswith(("polars", "pandas")) and hasattr(X, "columns"):
        names = np.asarray([str(c) for c in X.columns], dtype=object)
        cols = []
        for c in X.columns:
            col = np.asarray(X[c].to_numpy())
            if col.dtype.kind == "b":
                col = col.astype(np.float64)
            if col.dtype.kind not in "iuf":
                if col.dtype == object:
                    try:
                        col = np.array([np.nan if v is None else v for v in col], dtype=np.float64)
                    except (TypeError, ValueError):
                        raise InputError(
                            f"X column {c!r} must be numeric (got dtype {col.dtype}). "
                            "Encode categories as numbers first."
                        ) from None
                else:
                    raise InputError(
                        f"X column {c!r} must be numeric (got dtype {col.dtype}). "
                        "Encode categories/timestamps as numbers first."
                    )
            cols.append(col.astype(np.float64))
        arr = np.column_stack(cols) if cols else np.empty((len(X), 0))
    else:
        if hasattr(X, "tocsr") or mod.startswith("scipy.sparse"):
            raise InputError(
                "X is a sparse matrix; sparse input is not supported. Pass X.toarray()."
            )
        arr = np.asarray(X)
        if arr.dtype.kind == "c":
            raise InputError("X must be real: Complex data not supported.")
        if arr.dtype.kind == "b":
            arr = arr.astype(np.float64)
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise InputError("X must be numeric (got non-numeric object values).") from None
        if arr.dtype.kind not in "iuf":
            raise InputError(f"X must be numeric (got dtype {arr.dtype}).")
        arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise InputError(
            f"X must be 2-D (samples x features) (got shape {arr.shape}). Reshape your data, "
            "e.g. X.reshape(-1, 1) for a single feature."
        )
    if arr.shape[1] == 0:
        raise InputError(
            f"X has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if np.isinf(arr).any():
        r, c = (int(v[0]) for v in np.nonzero(np.isinf(arr)))
        raise InputError(f"X holds inf at row {r}, column {c}. NaN is allowed (missing), inf not.")
    return arr, names


def _as_binary(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (classes, y01) for a binary target of length ``n``."""
    if y is None:
        raise InputError("MetaLabeler requires y to be passed, but the target y is None.")
    mod = type(y).__module__
    arr = np.asarray(y.to_numpy()) if mod.startswith(("polars", "pandas")) else np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        import warnings

        from sklearn.exceptions import DataConversionWarning

        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it was flattened. "
            "Pass y.ravel() to silence this.",
            DataConversionWarning,
            stacklevel=3,
        )
        arr = arr.ravel()
    if arr.ndim != 1:
        raise InputError(f"y must be 1-D (got shape {arr.shape}).")
    if arr.shape[0] != n:
        raise InputError(f"y has {arr.shape[0]} labels but X has {n} rows; they must match.")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise InputError(f"y holds NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}.")
    if arr.dtype.kind == "f" and (arr != np.round(arr)).any():
        raise InputError(
            "y must be binary class labels (Unknown label type: continuous). "
            "Meta-labels are 1 = take, 0 = skip."
        )
    classes = np.unique(arr)
    if classes.shape[0] != 2:
        what = "only one class" if classes.shape[0] < 2 else "more than two classes"
        raise InputError(
            f"y must be binary with both classes present (got {what}: {classes[:5].tolist()}). "
            "Only binary classification is supported; meta-labels are 1 = take, 0 = skip."
        )
    return classes, (arr == classes[1]).astype(np.int64)


def _as_weight(sample_weight: Any, n: int) -> np.ndarray:
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise InputError(f"sample_weight must have shape ({n},) (got {w.shape}).")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise InputError("sample_weight must be finite, non-negative and not all zero.")
    return w


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class PlattCalibrator:
    """Platt scaling ``P(take) = sigmoid(a * score + b)`` with ``a >= 0`` (monotone).

    ``predict_proba(score)`` takes the booster's raw scores (any shape with one value per
    sample) and returns shape ``(n, 2)``, like a scikit-learn classifier.
    """

    def __init__(self, a: float, b: float) -> None:
        self.a = float(a)
        self.b = float(b)

    @classmethod
    def fit(cls, score: np.ndarray, y01: np.ndarray, w: np.ndarray) -> PlattCalibrator:
        """Weighted fit to Platt's (1999) smoothed targets, slope constrained to ``a >= 0``."""
        from sklearn.linear_model import LogisticRegression

        s = np.asarray(score, dtype=np.float64).reshape(-1)
        n_pos = float(np.sum(y01 == 1))
        n_neg = float(y01.shape[0]) - n_pos
        t = np.where(y01 == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
        # soft targets as two weighted copies of every sample (label 1 with weight w t, label 0
        # with weight w (1 - t)): never separable, so the fit stays finite
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(
            np.concatenate([s, s]).reshape(-1, 1),
            np.r_[np.ones(s.shape[0]), np.zeros(s.shape[0])],
            sample_weight=np.r_[w * t, w * (1.0 - t)],
        )
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if a <= 0.0:  # scores useless or inverted on the hold-out: the best monotone map is flat
            rate = float(np.sum(w * t) / np.sum(w))
            a, b = 0.0, float(np.log(rate / (1.0 - rate)))
        return cls(a, b)

    def predict_proba(self, score: Any) -> np.ndarray:
        p = _sigmoid(self.a * np.asarray(score, dtype=np.float64).reshape(-1) + self.b)
        return np.column_stack([1.0 - p, p])

    def __repr__(self) -> str:
        return f"PlattCalibrator(a={self.a!r}, b={self.b!r})"


class MetaLabeler(ClassifierMixin, BaseEstimator):
    """Gradient-boosted meta-labeling classifier (LightGBM) with optional in-fit calibration.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample, colsample_bytree,
    reg_lambda : LightGBM parameters (``subsample < 1`` turns on bagging every iteration).
    calibration : {'isotonic', 'sigmoid', None}, default None
        Calibrate probabilities on an internal purged time hold-out (see the module notes).
    calibration_fraction : float, default 0.2
        Share of the (t0-ordered) training samples held out for the calibrator.
    random_state : int, default 0
        LightGBM seed.
    n_jobs : int, default 1
        LightGBM threads (1 keeps results bit-identical across machines).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    >>> clf = MetaLabeler(n_estimators=20).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 0.0,
        calibration: str | None = None,
        calibration_fraction: float = 0.2,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # meta-labels are binary
        tags.input_tags.allow_nan = True  # LightGBM treats NaN as missing
        return tags

    # ------------------------------------------------------------------ fit
    def _booster(self) -> Any:
        import lightgbm as lgb

        if self.calibration not in _CALIBRATIONS:
            raise InputError(
                f"calibration must be 'isotonic', 'sigmoid' or None (got {self.calibration!r})."
            )
        if not (0.0 < float(self.subsample) <= 1.0):
            raise InputError(f"subsample must be in (0, 1] (got {self.subsample!r}).")
        if not isinstance(self.random_state, int | np.integer) or isinstance(
            self.random_state, bool
        ):
            raise InputError(f"random_state must be an int seed (got {self.random_state!r}).")
        return lgb.LGBMClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1.0 else 0,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            random_state=int(self.random_state),
            n_jobs=self.n_jobs,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        t0: Any = None,
        t1: Any = None,
        sample_weight: Any = None,
    ) -> MetaLabeler:
        """Fit the booster (and the calibrator when ``calibration`` is set); return ``self``.

        Parameters
        ----------
        X : array-like or polars/pandas DataFrame, shape (n, p)
            Point-in-time features; NaN means missing. Frame column names are kept.
        y : array-like, shape (n,)
            Binary meta-labels.
        t0, t1 : array-like, optional
            Decision and label end times (both or neither). With them, samples are weighted by
            label uniqueness (unless ``sample_weight`` is given) and the calibration hold-out is
            the last samples by ``t0``, purged. Without them, row order is taken as time order
            and the hold-out is the last rows (no purging possible).
        sample_weight : array-like, optional
            Explicit non-negative weights; overrides uniqueness weighting.
        """
        arr, names = _as_matrix(X)
        n = arr.shape[0]
        classes, y01 = _as_binary(y, n)
        if (t0 is None) != (t1 is None):
            raise InputError("t0 and t1 must be given together (got only one of them).")
        a = b = None
        if t0 is not None:
            a, b = validate_intervals(t0, t1, require_sorted=False, n=n)
        if sample_weight is not None:
            w = _as_weight(sample_weight, n)
        elif a is not None:
            w = label_uniqueness(a, b)
        else:
            w = np.ones(n, dtype=np.float64)
        booster = self._booster()
        self.classes_ = classes
        self.n_features_in_ = arr.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        if self.calibration is None:
            booster.fit(arr, y01, sample_weight=w)
            self.model_ = booster
            self.calibrator_ = None
            return self
        fit_idx, cal_idx = self._calibration_split(n, a, b, y01)
        if np.unique(y01[cal_idx]).shape[0] < 2 or np.unique(y01[fit_idx]).shape[0] < 2:
            raise InputError(
                "the calibration hold-out or the booster's purged training part has a single "
                f"class (hold-out n={cal_idx.shape[0]}, training n={fit_idx.shape[0]}). Use more "
                "data, a larger calibration_fraction, or calibration=None."
            )
        booster.fit(arr[fit_idx], y01[fit_idx], sample_weight=w[fit_idx])
        margin = booster.predict(arr[cal_idx], raw_score=True)
        self.model_ = booster
        self.calibrator_ = self._fit_calibrator(margin, y01[cal_idx], w[cal_idx])
        return self

    def _calibration_split(
        self,
        n: int,
        a: np.ndarray | None,
        b: np.ndarray | None,
        y01: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(booster rows, hold-out rows): the last ``calibration_fraction`` by ``t0``, widened
        back to the latest sample of a class it lacks (with ``y01``), the rest purged."""
        frac = float(self.calibration_fraction)
        if not (0.0 < frac < 1.0):
            raise InputError(
                f"calibration_fraction must be in (0, 1) (got {self.calibration_fraction!r}). "
                "Typical: 0.2."
            )
        order = np.argsort(a, kind="stable") if a is not None else np.arange(n)
        start = n - max(round(frac * n), 1)
        if y01 is not None:
            ys = y01[order]
            held = np.unique(ys[start:])
            if held.shape[0] == 1:
                other = np.flatnonzero(ys[:start] != held[0])
                if other.shape[0]:
                    start = int(other[-1])
        cal_idx = order[start:]
        rest = order[:start]
        if a is not None and b is not None:
            # purge: the booster may only learn labels that ended before the hold-out began
            rest = rest[b[rest] < a[cal_idx].min()]
        if rest.shape[0] == 0:
            raise InputError(
                "no training samples are left for the booster after purging the calibration "
                "hold-out; labels are too long for calibration_fraction. Use calibration=None."
            )
        return np.sort(rest), np.sort(cal_idx)

    def _fit_calibrator(self, margin: np.ndarray, y01: np.ndarray, w: np.ndarray) -> Any:
        if self.calibration == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                margin, y01, sample_weight=w
            )
        return PlattCalibrator.fit(margin, y01, w)

    # -------------------------------------------------------------- predict
    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        arr, names = _as_matrix(X)
        if arr.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {arr.shape[1]} features, but MetaLabeler is expecting "
                f"{self.n_features_in_} features as input."
            )
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is not None and names is not None and list(names) != list(fitted):
            raise InputError(
                f"X columns {list(names)} differ from the fitted feature names {list(fitted)} "
                "(same names in the same order are required)."
            )
        return arr

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, shape (n, 2): column 1 is ``P(y == classes_[1])`` (take the trade)."""
        arr = self._check_X(X)
        margin = self.model_.predict(arr, raw_score=True)
        if self.calibrator_ is None:
            p = _sigmoid(margin)
        elif self.calibration == "isotonic":
            p = self.calibrator_.predict(margin)
        else:
            p = self.calibrator_.predict_proba(margin.reshape(-1, 1))[:, 1]
        p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, threshold: float = 0.5) -> np.ndarray:
        """Class labels: ``classes_[1]`` where ``P(take) >= threshold``."""
        p = self.predict_proba(X)[:, 1]
        return self.classes_[(p >= threshold).astype(np.int64)]


# ---------------------------------------------------------------- threshold


def choose_threshold(
    y_true: Any,
    proba: Any,
    *,
    metric: str = "f1",
    pnl_win: float | None = None,
    pnl_loss: float | None = None,
) -> float:
    """Pick the decision threshold (take when ``proba >= threshold``) that maximises a metric.

    Call it on training-fold (out-of-fold) predictions only, never on test data.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        Realised meta-labels.
    proba : array-like of float
        Predicted probability of 1.
    metric : {'f1', 'expected_pnl'}
        ``'f1'``: F1 of the positive class. ``'expected_pnl'``: total P&L of the taken trades
        with ``pnl_win`` per winner and ``-pnl_loss`` per loser (both positive magnitudes, e.g.
        credit and max loss); taking nothing (P&L 0) is allowed.

    Returns
    -------
    float
        Midway between the chosen score and the next lower distinct score (0.0 when every sample
        is taken; above the highest score when none is).

    Examples
    --------
    >>> round(choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 6)  # take 0.8, 0.4, 0.35
    0.225
    """
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise InputError(
            f"y_true and proba must be 1-D of the same length (got {y.shape} and {p.shape})."
        )
    if y.shape[0] == 0:
        raise InputError("y_true is empty.")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"y_true must hold 0/1 labels (got values {np.unique(y)[:5].tolist()}).")
    if not np.isfinite(p).all():
        raise InputError("proba must be finite.")
    y = y.astype(np.float64)
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    # candidate k = take the first k+1 sorted samples; only at the last of ties
    last = np.r_[ps[1:] != ps[:-1], True]
    tp = np.cumsum(ys)[last]
    taken = (np.arange(ps.shape[0]) + 1.0)[last]
    cuts = ps[last]
    if metric == "f1":
        pos = y.sum()
        if pos == 0:
            raise InputError("y_true has no positive samples; the F1 threshold is undefined.")
        score = 2.0 * tp / (taken + pos)
        k = int(np.argmax(score))
        none_best = False
    elif metric == "expected_pnl":
        if pnl_win is None or pnl_loss is None or pnl_win <= 0 or pnl_loss <= 0:
            raise InputError(
                f"metric='expected_pnl' needs positive pnl_win and pnl_loss magnitudes "
                f"(got pnl_win={pnl_win!r}, pnl_loss={pnl_loss!r}), e.g. credit and max loss."
            )
        score = tp * pnl_win - (taken - tp) * pnl_loss
        k = int(np.argmax(score))
        none_best = bool(score[k] <= 0.0)
    else:
        raise InputError(f"metric must be 'f1' or 'expected_pnl' (got {metric!r}).")
    if none_best:
        return float(np.nextafter(cuts[0], np.inf))
    if k + 1 < cuts.shape[0]:
        return float(0.5 * (cuts[k] + cuts[k + 1]))
    return 0.0


# ------------------------------------------------------------ cross-validate


def _fit(est: Any, X: np.ndarray, y: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> Any:
    params = inspect.signature(est.fit).parameters
    if "t0" in params and "t1" in params:
        return est.fit(X, y, t0=t0, t1=t1)
    return est.fit(X, y)


def _fold_metrics(y: np.ndarray, p: np.ndarray, thr: float) -> dict[str, float]:
    from sklearn.metrics import (
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    both = np.unique(y).shape[0] == 2
    pred = (p >= thr).astype(np.int64)
    return {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "threshold": float(thr),
        "n_train": 0.0,
        "n_test": float(y.shape[0]),
    }


def cross_validate(
    estimator: Any,
    X: Any,
    y: Any,
    t0: Any,
    t1: Any,
    cv: Any,
    *,
    threshold: float | str = "auto",
    metric: str = "f1",
    pnl_win: float | None = None,
    pnl_loss: float | None = None,
    inner_splits: int = 3,
) -> dict[str, Any]:
    """Out-of-sample metrics of ``estimator`` under a purged splitter.

    For each ``(train, test)`` fold of ``cv`` a clone of ``estimator`` is fitted on the training
    rows (with their ``t0``/``t1``, so uniqueness weights and calibration use training data
    only) and scored on the test rows. With ``threshold='auto'`` the decision threshold of each
    fold is chosen by :func:`choose_threshold` on the training fold's own out-of-fold
    predictions from an inner :class:`~quantlab.ml.cv.PurgedKFold` (``inner_splits`` folds,
    embargo of ``cv.embargo`` when it has one, else 0.01) run on the training rows alone; the
    test rows never influence it. A float ``threshold`` is used as is.

    Returns
    -------
    dict
        ``folds``: one dict per fold (auc, log_loss, brier, precision, recall, f1, threshold,
        n_train, n_test); ``mean``: their NaN-ignoring means; ``oof_proba``: test-fold
        probabilities per sample (NaN where a sample was never tested, e.g. walk-forward's
        first window); ``oof_auc``: AUC over all tested samples pooled.
    """
    from sklearn.metrics import roc_auc_score

    arr, _ = _as_matrix(X)
    n = arr.shape[0]
    classes, y01 = _as_binary(y, n)
    a, b = validate_intervals(t0, t1, require_sorted=True, n=n)
    if not (hasattr(cv, "split") and hasattr(cv, "get_n_splits")):
        raise InputError(f"cv must be a splitter with split/get_n_splits (got {cv!r}).")
    if isinstance(threshold, str) and threshold != "auto":
        raise InputError(f"threshold must be 'auto' or a float (got {threshold!r}).")
    embargo = getattr(cv, "embargo", 0.01)
    folds: list[dict[str, float]] = []
    oof = np.full(n, np.nan)
    for k, (tr, te) in enumerate(cv.split(arr)):
        if tr.shape[0] == 0 or np.unique(y01[tr]).shape[0] < 2:
            raise InputError(
                f"fold {k} has {tr.shape[0]} training samples after purging, not enough for a "
                "binary fit. Use fewer splits, a smaller embargo, or more data."
            )
        if threshold == "auto":
            inner = PurgedKFold(inner_splits, t0=a[tr], t1=b[tr], embargo=embargo)
            inner_p = np.full(tr.shape[0], np.nan)
            for itr, ite in inner.split():
                if itr.shape[0] == 0 or np.unique(y01[tr][itr]).shape[0] < 2:
                    continue
                m = _fit(clone(estimator), arr[tr][itr], y01[tr][itr], a[tr][itr], b[tr][itr])
                inner_p[ite] = m.predict_proba(arr[tr][ite])[:, 1]
            ok = np.isfinite(inner_p)
            if not ok.any() or y01[tr][ok].sum() == 0:
                raise InputError(
                    f"fold {k}: the inner purged split gave no usable out-of-fold predictions "
                    "to choose a threshold. Pass a fixed threshold or use more data."
                )
            thr = choose_threshold(
                y01[tr][ok], inner_p[ok], metric=metric, pnl_win=pnl_win, pnl_loss=pnl_loss
            )
        else:
            thr = float(threshold)
        model = _fit(clone(estimator), arr[tr], y01[tr], a[tr], b[tr])
        p = model.predict_proba(arr[te])[:, 1]
        oof[te] = p
        res = _fold_metrics(y01[te], p, thr)
        res["n_train"] = float(tr.shape[0])
        folds.append(res)
    keys = list(folds[0]) if folds else []
    mean = {key: float(np.nanmean([f[key] for f in folds])) for key in keys}
    tested = np.isfinite(oof)
    both = np.unique(y01[tested]).shape[0] == 2
    return {
        "folds": folds,
        "mean": mean,
        "oof_proba": oof,
        "oof_auc": float(roc_auc_score(y01[tested], oof[tested])) if both else float("nan"),
        "classes": classes,
    }


__all__ = ["MetaLabeler", "PlattCalibrator", "choose_threshold", "cross_validate"]
