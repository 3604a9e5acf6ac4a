"""Tests of quantlab.ml.cv (purged K-fold, walk-forward) and quantlab.ml.weights (uniqueness).

Splitter invariants are checked by hypothesis on random interval sets against a brute-force
overlap test; uniqueness is checked on hand-worked examples (AFML ch. 4) and against an
O(n^2)/O(n*m) reference computed the slow way.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantlab.errors import InputError
from quantlab.ml import PurgedKFold, WalkForward, label_uniqueness


@st.composite
def intervals(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(4, 60))
    gaps = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    lens = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    t0 = np.cumsum(np.asarray(gaps, dtype=np.int64))
    return t0, t0 + np.asarray(lens, dtype=np.int64)


embargoes = st.one_of(st.sampled_from([0.0, 0.05, 0.1, 0.25]), st.integers(0, 8))


def _overlaps(t0: np.ndarray, t1: np.ndarray, i: np.ndarray, j: np.ndarray) -> bool:
    """Brute force: does any closed interval in i overlap any closed interval in j?"""
    if i.size == 0 or j.size == 0:
        return False
    return bool(((t0[i][:, None] <= t1[j][None, :]) & (t0[j][None, :] <= t1[i][:, None])).any())


@given(intervals(), st.integers(2, 6), embargoes)
def test_purged_kfold_invariants(iv, k, embargo) -> None:
    t0, t1 = iv
    n = t0.size
    k = min(k, n)
    cv = PurgedKFold(k, t0=t0, t1=t1, embargo=embargo)
    tested = np.zeros(n, dtype=int)
    folds = list(cv.split(np.zeros((n, 1))))
    assert len(folds) == cv.get_n_splits() == k
    for tr, te in folds:
        tested[te] += 1
        assert np.all(np.diff(te) == 1)  # contiguous block in time
        assert np.intersect1d(tr, te).size == 0
        assert not _overlaps(t0, t1, tr, te)
        end = t1[te].max()
        after = tr[tr > te[-1]]
        if isinstance(embargo, float):
            # the first ceil(embargo*n) samples starting after every test label are dropped
            h = int(np.ceil(embargo * n))
            clean = np.flatnonzero(t0 > end)
            dropped = clean[:h]
            assert np.intersect1d(tr, dropped).size == 0
            assert np.array_equal(after, clean[h:])
        else:
            assert np.all(t0[after] > end + embargo)
            assert np.array_equal(after, np.flatnonzero(t0 > end + embargo))
        # purging removes only what overlaps: every non-overlapping earlier sample is kept
        before = tr[tr < te[0]]
        assert np.array_equal(before, np.flatnonzero(t1 < t0[te[0]]))
    assert np.all(tested == 1)


@given(intervals(), st.integers(2, 4), embargoes, st.one_of(st.none(), st.integers(1, 5)))
def test_walk_forward_trains_strictly_in_past(iv, k, embargo, min_train) -> None:
    t0, t1 = iv
    try:
        cv = WalkForward(k, t0=t0, t1=t1, embargo=embargo, min_train=min_train)
    except InputError:
        return  # not enough samples for this configuration: refused with a clear error
    folds = list(cv.split())
    assert len(folds) == k
    prev_end = -1
    for j, (tr, te) in enumerate(folds):
        assert np.all(np.diff(te) == 1)
        if j > 0:
            assert te[0] == prev_end + 1
        prev_end = te[-1]
        if tr.size:
            assert tr.max() < te[0]
            d = embargo if isinstance(embargo, int) else 0
            assert t1[tr].max() < t0[te[0]] - d
            assert not _overlaps(t0, t1, tr, te)
        if min_train is not None and j == 0:
            assert tr.size >= min_train
    assert folds[-1][1][-1] == t0.size - 1


def test_purged_kfold_hand_example() -> None:
    t0 = np.arange(10)
    t1 = t0 + 2
    folds = list(PurgedKFold(2, t0=t0, t1=t1, embargo=0.1).split())
    # fold 1: test 0..4 ends at 6 -> first clean start is 7; embargo 1 sample drops 7
    assert folds[0][0].tolist() == [8, 9]
    # fold 2: test 5..9 starts at 5 -> keep labels ending before 5: 0, 1, 2
    assert folds[1][0].tolist() == [0, 1, 2]


def test_datetime_input_and_timedelta_embargo() -> None:
    base = np.datetime64("2024-01-02T14:30", "m")
    t0 = base + np.arange(20) * np.timedelta64(30, "m")
    t1 = t0 + np.timedelta64(45, "m")
    cv = PurgedKFold(4, t0=t0, t1=t1, embargo=np.timedelta64(60, "m"))
    cv2 = PurgedKFold(4, t0=t0, t1=t1, embargo=dt.timedelta(hours=1))
    for (a, b), (c, d) in zip(cv.split(), cv2.split(), strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    tr, te = next(iter(cv.split()))
    end = t1[te].max()
    assert np.all(t0[tr] > end + np.timedelta64(60, "m"))


def test_pandas_series_t1_indexed_by_t0() -> None:
    pd = pytest.importorskip("pandas")
    idx = pd.date_range("2024-01-02", periods=12, freq="h")
    t1 = pd.Series(idx + pd.Timedelta(hours=2), index=idx)
    a = [tr.tolist() for tr, _ in PurgedKFold(3, t1=t1, embargo=0.0).split()]
    b = [tr.tolist() for tr, _ in PurgedKFold(3, t0=idx, t1=t1.to_numpy(), embargo=0.0).split()]
    assert a == b


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"t0": [0, 1, 2], "t1": [1, 2]}, "same length"),
        ({"t0": [0, 2, 1], "t1": [3, 3, 3]}, "t0 must be sorted"),
        ({"t0": [0, 1, 2], "t1": [1, 0, 3]}, "t1 must be >= t0"),
        ({"t0": [0, 1, 2], "t1": [1, 2, 3], "embargo": 1.5}, "embargo"),
        ({"t0": [0, 1, 2], "t1": [1, 2, 3], "embargo": -1}, "embargo"),
        ({"t0": [0, 1, 2], "t1": [1, 2, 3], "n_splits": 1}, "n_splits"),
        ({"t0": [0, 1, 2], "t1": [1, 2, 3], "n_splits": 4}, "n_splits"),
        ({"t0": [0.0, np.nan, 2.0], "t1": [1, 2, 3]}, "t0 must be finite"),
        ({"t0": ["a", "b", "c"], "t1": [1, 2, 3]}, "t0 must be"),
    ],
)
def test_bad_splitter_input_names_argument(kwargs, word) -> None:
    kwargs = {"n_splits": 2, **kwargs}
    with pytest.raises(InputError, match=word):
        PurgedKFold(**kwargs)


def test_split_rejects_wrong_x_length() -> None:
    cv = PurgedKFold(2, t0=np.arange(5), t1=np.arange(5))
    with pytest.raises(InputError, match="X has 4 samples"):
        next(iter(cv.split(np.zeros((4, 2)))))


def test_walk_forward_min_train_unreachable() -> None:
    with pytest.raises(InputError, match="min_train"):
        WalkForward(2, t0=np.arange(10), t1=np.arange(10) + 100, min_train=3)


# ------------------------------------------------------------------- weights


def test_uniqueness_hand_worked_continuous() -> None:
    # segments [0,2):1 label, [2,4):2, [4,6):2, [6,8):1
    w = label_uniqueness([0, 2, 4], [4, 6, 8])
    np.testing.assert_allclose(w, [0.75, 0.5, 0.75])


def test_uniqueness_hand_worked_bars_afml() -> None:
    # bars 0..8, closed intervals: concurrency 1,1,2,2,3,2,2,1,1
    w = label_uniqueness([0, 2, 4], [4, 6, 8], bar_times=np.arange(9))
    np.testing.assert_allclose(w, [10 / 15, 7 / 15, 10 / 15])


def test_uniqueness_non_overlapping_and_identical() -> None:
    np.testing.assert_allclose(label_uniqueness([0, 5, 10], [5, 10, 12]), 1.0)
    np.testing.assert_allclose(label_uniqueness([0, 10, 20], [4, 14, 24], np.arange(25)), 1.0)
    np.testing.assert_allclose(label_uniqueness([3, 3], [9, 9]), 0.5)
    np.testing.assert_allclose(label_uniqueness([3, 3, 10], [3, 3, 11]), [0.5, 0.5, 1.0])


def _brute_continuous(t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    out = np.empty(t0.size)
    for i in range(t0.size):
        if t1[i] == t0[i]:
            out[i] = 1.0 / np.sum((t0 <= t0[i]) & (t1 >= t0[i]))
            continue
        acc = 0.0
        for s in range(int(t0[i]), int(t1[i])):  # unit segments [s, s+1) on an integer grid
            acc += 1.0 / np.sum((t0 <= s) & (t1 > s))
        out[i] = acc / (t1[i] - t0[i])
    return out


def _brute_bars(t0: np.ndarray, t1: np.ndarray, bars: np.ndarray) -> np.ndarray:
    conc = np.array([np.sum((t0 <= b) & (t1 >= b)) for b in bars])
    return np.array(
        [np.mean(1.0 / conc[(bars >= a) & (bars <= b)]) for a, b in zip(t0, t1, strict=True)]
    )


@given(intervals(), st.randoms(use_true_random=False))
def test_uniqueness_matches_brute_force(iv, rnd) -> None:
    t0, t1 = iv
    perm = np.array(rnd.sample(range(t0.size), t0.size))  # order must not matter
    t0, t1 = t0[perm], t1[perm]
    w = label_uniqueness(t0, t1)
    np.testing.assert_allclose(w, _brute_continuous(t0, t1), rtol=1e-12)
    assert np.all((w > 0) & (w <= 1 + 1e-12))
    bars = np.arange(t0.min(), t1.max() + 1)
    np.testing.assert_allclose(label_uniqueness(t0, t1, bars), _brute_bars(t0, t1, bars))


def test_uniqueness_datetimes() -> None:
    t0 = np.array(["2024-01-02T10:00", "2024-01-02T10:30"], dtype="datetime64[m]")
    t1 = t0 + np.timedelta64(60, "m")
    np.testing.assert_allclose(label_uniqueness(t0, t1), [0.75, 0.75])


def test_uniqueness_bad_input() -> None:
    with pytest.raises(InputError, match="same length"):
        label_uniqueness([0, 1], [1])
    with pytest.raises(InputError, match="t1 must be >= t0"):
        label_uniqueness([0, 5], [1, 2])
    with pytest.raises(InputError, match="contains no bar"):
        label_uniqueness([0, 5], [1, 6], bar_times=[2, 3])
    with pytest.raises(InputError, match="strictly increasing"):
        label_uniqueness([0, 5], [1, 6], bar_times=[0, 0, 5])
