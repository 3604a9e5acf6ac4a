"""Tests of quantlab.ml.metalabeler: sklearn shape, determinism, planted-signal recovery under
purged CV, calibration, threshold choice and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import brier_score_loss

from quantlab.errors import InputError
from quantlab.ml import (
    MetaLabeler,
    PurgedKFold,
    WalkForward,
    choose_threshold,
    cross_validate,
)

FAST = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 20}


def _dataset(n: int, seed: int, effect: float = 1.0) -> dict[str, np.ndarray]:
    """Candidates every minute, labels lasting 1-30 minutes; y depends on feature 0 only."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (effect * X[:, 0] + rng.normal(size=n) > 0).astype(np.int64)
    t0 = np.datetime64("2024-01-02T14:31", "ns") + np.arange(n) * np.timedelta64(1, "m")
    t1 = t0 + rng.integers(1, 31, size=n) * np.timedelta64(1, "m")
    return {"X": X, "y": y, "t0": t0, "t1": t1}


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return _dataset(3000, seed=7)


# ------------------------------------------------------------- sklearn shape


def test_init_stores_params_and_clone_round_trip() -> None:
    est = MetaLabeler(n_estimators=33, calibration="sigmoid", random_state=5)
    params = est.get_params()
    assert params["n_estimators"] == 33 and params["calibration"] == "sigmoid"
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert est.set_params(num_leaves=9) is est and est.num_leaves == 9
    assert MetaLabeler(**est.get_params()).get_params() == est.get_params()
    assert not [k for k in vars(MetaLabeler()) if k.endswith("_")]  # nothing fitted in __init__


def test_fit_returns_self_and_is_deterministic(data) -> None:
    X, y = data["X"][:800], data["y"][:800]
    est = MetaLabeler(**FAST, subsample=0.8, colsample_bytree=0.8, random_state=3)
    assert est.fit(X, y) is est
    p1 = est.predict_proba(X)
    p2 = clone(est).fit(X, y).predict_proba(X)
    assert np.array_equal(p1, p2)
    assert p1.shape == (800, 2)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0)
    assert est.n_features_in_ == 5 and not hasattr(est, "feature_names_in_")
    assert set(est.predict(X)) <= {0, 1}
    assert est.calibrator_ is None and list(est.classes_) == [0, 1]
    other = MetaLabeler(**FAST, subsample=0.8, colsample_bytree=0.8, random_state=4).fit(X, y)
    assert not np.array_equal(other.predict_proba(X), p1)  # the seed matters


def test_unfitted_predict_raises() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MetaLabeler().predict_proba(np.zeros((2, 2)))


def test_frames_keep_feature_names(data) -> None:
    pl = pytest.importorskip("polars")
    X, y = data["X"][:600], data["y"][:600]
    names = [f"f{i}" for i in range(5)]
    frame = pl.DataFrame({c: X[:, i] for i, c in enumerate(names)})
    est = MetaLabeler(**FAST).fit(frame, pl.Series(y))
    assert list(est.feature_names_in_) == names
    np.testing.assert_array_equal(
        est.predict_proba(frame), MetaLabeler(**FAST).fit(X, y).predict_proba(X)
    )
    with pytest.raises(InputError, match="differ from the fitted feature names"):
        est.predict_proba(frame.select(list(reversed(names))))
    pd = pytest.importorskip("pandas")
    est2 = MetaLabeler(**FAST).fit(pd.DataFrame(X, columns=names), y)
    assert list(est2.feature_names_in_) == names


def test_uniqueness_weights_used_when_times_given(data) -> None:
    X, y, t0, t1 = (data[k][:800] for k in ("X", "y", "t0", "t1"))
    from quantlab.ml import label_uniqueness

    a = MetaLabeler(**FAST).fit(X, y, t0=t0, t1=t1).predict_proba(X)
    b = MetaLabeler(**FAST).fit(X, y, sample_weight=label_uniqueness(t0, t1)).predict_proba(X)
    c = MetaLabeler(**FAST).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# ------------------------------------------------------- planted signal, CV


def test_planted_effect_recovered_and_shuffled_labels_are_noise(data) -> None:
    X, y, t0, t1 = data["X"], data["y"], data["t0"], data["t1"]
    cv = PurgedKFold(5, t0=t0, t1=t1, embargo=0.01)
    res = cross_validate(MetaLabeler(**FAST), X, y, t0, t1, cv)
    assert len(res["folds"]) == 5
    assert res["mean"]["auc"] > 0.65 and res["oof_auc"] > 0.65
    assert np.isfinite(res["oof_proba"]).all()  # every sample tested once
    assert 0.0 < res["mean"]["threshold"] < 1.0
    assert res["mean"]["f1"] > 0.5
    for fold in res["folds"]:
        assert fold["n_train"] + fold["n_test"] <= 3000

    shuffled = np.random.default_rng(11).permutation(y)
    noise = cross_validate(MetaLabeler(**FAST), X, shuffled, t0, t1, cv, threshold=0.5)
    assert 0.4 < noise["mean"]["auc"] < 0.6
    assert 0.4 < noise["oof_auc"] < 0.6


def test_walk_forward_cross_validate(data) -> None:
    X, y, t0, t1 = (data[k][:1500] for k in ("X", "y", "t0", "t1"))
    cv = WalkForward(3, t0=t0, t1=t1, embargo=np.timedelta64(5, "m"), min_train=300)
    res = cross_validate(MetaLabeler(**FAST), X, y, t0, t1, cv, threshold=0.5)
    assert len(res["folds"]) == 3
    assert np.isnan(res["oof_proba"][:300]).all()  # the first training window is never tested
    assert res["mean"]["auc"] > 0.65


def test_threshold_is_chosen_without_test_rows(data, monkeypatch) -> None:
    """The auto threshold of a fold depends only on its training rows."""
    import quantlab.ml.metalabeler as mod

    seen: list[int] = []
    real = mod.choose_threshold

    def spy(y_true, proba, **kw):
        seen.append(len(y_true))
        return real(y_true, proba, **kw)

    monkeypatch.setattr(mod, "choose_threshold", spy)
    X, y, t0, t1 = (data[k][:900] for k in ("X", "y", "t0", "t1"))
    cv = PurgedKFold(3, t0=t0, t1=t1, embargo=0.01)
    res = cross_validate(MetaLabeler(**FAST), X, y, t0, t1, cv)
    n_train = [int(f["n_train"]) for f in res["folds"]]
    assert len(seen) == 3 and all(s <= m for s, m in zip(seen, n_train, strict=True))


# -------------------------------------------------------------- calibration


def test_calibration_improves_brier_of_overconfident_model() -> None:
    train = _dataset(3000, seed=21, effect=0.5)
    test = _dataset(3000, seed=22, effect=0.5)
    overfit = {"n_estimators": 300, "learning_rate": 0.3, "num_leaves": 63, "min_child_samples": 5}
    raw = MetaLabeler(**overfit).fit(train["X"], train["y"], t0=train["t0"], t1=train["t1"])
    b_raw = brier_score_loss(test["y"], raw.predict_proba(test["X"])[:, 1])
    for how in ("isotonic", "sigmoid"):
        cal = MetaLabeler(**overfit, calibration=how).fit(
            train["X"], train["y"], t0=train["t0"], t1=train["t1"]
        )
        assert cal.calibrator_ is not None
        p = cal.predict_proba(test["X"])[:, 1]
        assert np.all((p >= 0) & (p <= 1))
        assert brier_score_loss(test["y"], p) < b_raw


def test_calibration_hold_out_is_purged(data) -> None:
    t0, t1 = data["t0"][:1000], data["t1"][:1000]
    est = MetaLabeler(**FAST, calibration="isotonic")
    fit_idx, cal_idx = est._calibration_split(1000, t0.view("int64"), t1.view("int64"))
    assert cal_idx.tolist() == list(range(800, 1000))
    assert t1[fit_idx].max() < t0[800]
    assert fit_idx.size < 800  # labels running into the hold-out were dropped


# ---------------------------------------------------------------- threshold


def test_choose_threshold_f1_and_pnl() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    # F1 by cut: take 2 -> 0.8, take 4 -> 6/7 (best), take all -> 2/3
    assert choose_threshold(y, p) == pytest.approx(0.45)
    # win 1, loss 3: take 2 -> +2 (best), take 4 -> 0
    assert choose_threshold(y, p, metric="expected_pnl", pnl_win=1, pnl_loss=3) == (
        pytest.approx(0.75)
    )
    # losing everywhere: take nothing -> threshold above the highest score
    t = choose_threshold([0, 0, 1], [0.9, 0.8, 0.1], metric="expected_pnl", pnl_win=1, pnl_loss=5)
    assert t > 0.9
    assert choose_threshold([1, 1], [0.4, 0.6]) == 0.0  # take all


def test_choose_threshold_errors() -> None:
    with pytest.raises(InputError, match="metric"):
        choose_threshold([0, 1], [0.1, 0.9], metric="accuracy")
    with pytest.raises(InputError, match="pnl_win"):
        choose_threshold([0, 1], [0.1, 0.9], metric="expected_pnl")
    with pytest.raises(InputError, match="y_true must hold 0/1"):
        choose_threshold([0, 2], [0.1, 0.9])
    with pytest.raises(InputError, match="same length"):
        choose_threshold([0, 1, 1], [0.1, 0.9])


# ------------------------------------------------------------- bad input


def test_bad_input_names_the_argument(data) -> None:
    X, y, t0, t1 = (data[k][:200] for k in ("X", "y", "t0", "t1"))
    est = MetaLabeler(**FAST)
    with pytest.raises(InputError, match="y has 199 labels"):
        est.fit(X, y[:-1])
    with pytest.raises(InputError, match="y must be binary"):
        est.fit(X, np.arange(200) % 3)
    with pytest.raises(InputError, match="y must be binary"):
        est.fit(X, np.ones(200))
    with pytest.raises(InputError, match="t0/t1 must have one entry per sample"):
        est.fit(X, y, t0=t0[:-1], t1=t1[:-1])
    with pytest.raises(InputError, match="t0 and t1 must be given together"):
        est.fit(X, y, t0=t0)
    with pytest.raises(InputError, match="t1 must be >= t0"):
        est.fit(X, y, t0=t1, t1=t0)
    with pytest.raises(InputError, match="calibration must be"):
        MetaLabeler(calibration="platt").fit(X, y)
    with pytest.raises(InputError, match="sample_weight"):
        est.fit(X, y, sample_weight=np.ones(5))
    with pytest.raises(InputError, match="X must be 2-D"):
        est.fit(X[:, 0], y)
    est.fit(X, y)
    with pytest.raises(InputError, match="X has 4 features, but MetaLabeler is expecting 5"):
        est.predict_proba(X[:, :4])
    cv = PurgedKFold(2, t0=t0, t1=t1)
    unsorted = t0[::-1]
    with pytest.raises(InputError, match="t0 must be sorted"):
        cross_validate(est, X, y, unsorted, unsorted, cv)
    with pytest.raises(InputError, match="threshold"):
        cross_validate(est, X, y, t0, t1, cv, threshold="best")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_sklearn_check_estimator() -> None:
    """sklearn's own estimator checks pass, bar one deliberate deviation."""
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(
        MetaLabeler(n_estimators=10, min_child_samples=2),
        expected_failed_checks={
            "check_dtype_object": "non-numeric X raises quantlab's InputError, not TypeError"
        },
    )
