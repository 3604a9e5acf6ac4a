"""Leak-free cross-validation splitters for labels that span time.

Every sample ``i`` is a candidate trade with a decision time ``t0[i]`` and a label end time
``t1[i]`` (when its outcome became known, e.g. the exit). Labels of neighbouring samples overlap
in time, so a plain K-fold lets the model train on outcomes that were still unknown when a test
sample was decided. The splitters here follow López de Prado, *Advances in Financial Machine
Learning* (2018), ch. 7:

* **purging** drops every training sample whose closed interval ``[t0, t1]`` overlaps the
  closed interval of any test sample (touching end points count as overlap);
* an **embargo** additionally drops training samples that start right after a test block, where
  serial correlation would still leak information.

Conventions
-----------
* ``t0`` and ``t1`` are 1-D arrays of the same length, ``t1 >= t0``, with ``t0`` sorted
  non-decreasing (samples in decision-time order). They may be ``datetime64`` (any unit, taken
  as UTC and converted to int64 nanoseconds), integers (e.g. int64 ns time stamps or bar numbers)
  or floats; polars/pandas Series and pandas indexes are accepted.
* ``embargo`` is either a **fraction** (a Python/numpy float in ``[0, 1)``: ``ceil(embargo * n)``
  samples) or a **duration** (a ``numpy.timedelta64`` or ``datetime.timedelta``, converted to
  nanoseconds, or a Python/numpy int taken in the units of ``t0``/``t1``, i.e. nanoseconds for
  datetime input).

Examples
--------
>>> import numpy as np
>>> t0 = np.arange(10)
>>> t1 = t0 + 1                      # each label overlaps the next sample
>>> cv = PurgedKFold(n_splits=2, t0=t0, t1=t1, embargo=0.0)
>>> [(tr.tolist(), te.tolist()) for tr, te in cv.split(t0)]
[([6, 7, 8, 9], [0, 1, 2, 3, 4]), ([0, 1, 2, 3], [5, 6, 7, 8, 9])]
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from quantlab._convert import to_numpy
from quantlab.errors import InputError

IndexPair = tuple[np.ndarray, np.ndarray]


def as_times(name: str, value: Any) -> np.ndarray:
    """Return ``value`` as a 1-D int64 (datetimes as ns, integers) or float64 array.

    Raises
    ------
    InputError
        If the input is not 1-D, not numeric/datetime, or holds NaT/NaN.
    """
    if value is None:
        raise InputError(f"{name} is required (got None). Pass one time per sample.")
    arr = to_numpy(name, value)
    if arr.dtype == object:
        try:
            arr = np.asarray(arr, dtype="datetime64[ns]")
        except (TypeError, ValueError):
            raise InputError(
                f"{name} must hold datetimes or numbers (got object values such as "
                f"{arr.ravel()[0]!r})."
            ) from None
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D (got shape {arr.shape}).")
    kind = arr.dtype.kind
    if kind == "M":
        if np.isnat(arr).any():
            idx = int(np.flatnonzero(np.isnat(arr))[0])
            raise InputError(f"{name} holds NaT at index {idx}. Every sample needs a time.")
        return arr.astype("datetime64[ns]").view(np.int64)
    if kind in "iu":
        return arr.astype(np.int64)
    if kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = int(np.flatnonzero(bad)[0])
            raise InputError(f"{name} must be finite (got {arr[idx]!r} at index {idx}).")
        return arr.astype(np.float64)
    raise InputError(f"{name} must be datetime64, integer or float times (got dtype {arr.dtype}).")


def validate_intervals(
    t0: Any, t1: Any, *, require_sorted: bool = True, n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Convert and check a pair of start/end time arrays; return them as numeric arrays.

    Checks equal lengths (and ``n`` when given), ``t1 >= t0`` and, if ``require_sorted``, that
    ``t0`` is non-decreasing. Errors name the argument, the offending index and the values.
    """
    a = as_times("t0", t0)
    b = as_times("t1", t1)
    if a.shape[0] != b.shape[0]:
        raise InputError(
            f"t0 and t1 must have the same length (got t0: {a.shape[0]}, t1: {b.shape[0]})."
        )
    if n is not None and a.shape[0] != n:
        raise InputError(
            f"t0/t1 must have one entry per sample of X (got {a.shape[0]} times for {n} samples)."
        )
    if a.dtype != b.dtype:  # mixed int/float: compare as float
        a, b = a.astype(np.float64), b.astype(np.float64)
    back = b < a
    if back.any():
        idx = int(np.flatnonzero(back)[0])
        raise InputError(
            f"t1 must be >= t0 for every sample (got t1={b[idx]!r} < t0={a[idx]!r} at index "
            f"{idx}). t1 is the label end time (e.g. the trade's exit)."
        )
    if require_sorted and a.shape[0] > 1:
        dec = np.diff(a) < 0
        if dec.any():
            idx = int(np.flatnonzero(dec)[0]) + 1
            raise InputError(
                f"t0 must be sorted non-decreasing (got t0[{idx}]={a[idx]!r} < "
                f"t0[{idx - 1}]={a[idx - 1]!r}). Sort the samples by decision time first."
            )
    return a, b


def _parse_embargo(embargo: Any, n: int) -> tuple[int, float]:
    """Return ``(n_samples, duration)``; exactly one of them is non-zero at most."""
    if isinstance(embargo, bool | np.bool_) or embargo is None:
        raise InputError(
            f"embargo must be a fraction in [0, 1) or a duration (got {embargo!r}). "
            "Typical: embargo=0.01."
        )
    if isinstance(embargo, float | np.floating):
        e = float(embargo)
        if not (0.0 <= e < 1.0):
            raise InputError(
                f"embargo as a float is a fraction of the samples and must lie in [0, 1) "
                f"(got {e!r}). Typical: 0.01. Pass a numpy.timedelta64 for a duration."
            )
        return math.ceil(e * n), 0.0
    if isinstance(embargo, np.timedelta64):
        if np.isnat(embargo):
            raise InputError("embargo must not be NaT.")
        d = float(embargo.astype("timedelta64[ns]").astype(np.int64))
    elif isinstance(embargo, _dt.timedelta):
        d = float(embargo // _dt.timedelta(microseconds=1)) * 1000.0
    elif isinstance(embargo, int | np.integer):
        d = float(embargo)
    else:
        raise InputError(
            f"embargo must be a float fraction, an int duration or a timedelta "
            f"(got {type(embargo).__name__} {embargo!r})."
        )
    if d < 0:
        raise InputError(f"embargo duration must be non-negative (got {embargo!r}).")
    return 0, d


def _check_n_splits(n_splits: Any) -> int:
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise InputError(f"n_splits must be an integer >= 2 (got {n_splits!r}).")
    return int(n_splits)


def _check_x(X: Any, n: int) -> None:
    if X is None:
        return
    m = X.shape[0] if hasattr(X, "shape") else len(X)
    if m != n:
        raise InputError(
            f"X has {m} samples but the splitter was built for {n} (len(t0)). Pass the same rows "
            "in the same (t0-sorted) order."
        )


class _IntervalSplitter:
    """Shared construction of the two splitters (parameters kept as given, arrays converted)."""

    def __init__(self, n_splits: int, t0: Any, t1: Any, embargo: Any) -> None:
        self.n_splits = n_splits
        self.t0 = t0
        self.t1 = t1
        self.embargo = embargo
        if t0 is None and hasattr(t1, "index") and not isinstance(t1, np.ndarray):
            t0 = t1.index  # pandas Series indexed by start time (AFML style)
        k = _check_n_splits(n_splits)
        self._t0, self._t1 = validate_intervals(t0, t1)
        self._n = int(self._t0.shape[0])
        if self._n < k:
            raise InputError(f"n_splits={k} is more than the number of samples ({self._n}).")
        self._k = k
        self._emb_n, self._emb_d = _parse_embargo(embargo, self._n)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of (train, test) pairs that :meth:`split` yields."""
        return self._k

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_splits={self._k}, n_samples={self._n}, "
            f"embargo={self.embargo!r})"
        )


class PurgedKFold(_IntervalSplitter):
    """K-fold over contiguous blocks in time with purging and embargo (AFML ch. 7.4).

    Parameters
    ----------
    n_splits : int, default 5
        Number of folds (>= 2). Test folds are ``numpy.array_split`` blocks of the t0-sorted
        samples, so every sample is tested exactly once.
    t0 : array-like, optional
        Decision (start) times, sorted non-decreasing. If omitted, ``t1`` must be a pandas
        Series indexed by start time.
    t1 : array-like
        Label end times, ``t1 >= t0``.
    embargo : float, int or timedelta, default 0.01
        Fraction of samples (``ceil(embargo * n)`` samples) or a duration; see the module notes.

    Notes
    -----
    For a test block ``[a, b)`` with end ``T = max(t1[a:b])``, training keeps sample ``i`` when

    * ``i < a`` and ``t1[i] < t0[a]`` (its label ended before the block started), or
    * ``i >= b`` and ``t0[i] > T`` (it starts after every test label ended), minus the embargo:
      the first ``ceil(embargo * n)`` such samples, or those with ``t0[i] <= T + duration``.

    Because ``t0`` is sorted and the block is contiguous, these rules are exactly "the closed
    interval ``[t0[i], t1[i]]`` overlaps no test interval". A fold may have an empty training set
    when labels are very long; callers should check.
    """

    def __init__(
        self, n_splits: int = 5, *, t0: Any = None, t1: Any = None, embargo: Any = 0.01
    ) -> None:
        super().__init__(n_splits, t0, t1, embargo)

    def split(self, X: Any = None, y: Any = None, groups: Any = None) -> Iterator[IndexPair]:
        """Yield ``(train_idx, test_idx)`` int64 index arrays for each fold in time order."""
        _check_x(X, self._n)
        t0, t1, n = self._t0, self._t1, self._n
        idx = np.arange(n, dtype=np.int64)
        for block in np.array_split(idx, self._k):
            a, b = int(block[0]), int(block[-1]) + 1
            end = t1[a:b].max()
            before = idx[:a][t1[:a] < t0[a]]
            first_after = int(np.searchsorted(t0, end, side="right"))
            if self._emb_d > 0:
                first_after = int(np.searchsorted(t0, end + self._emb_d, side="right"))
            first_after = max(first_after + self._emb_n, b)
            after = idx[first_after:]
            yield np.concatenate([before, after]), block.copy()


class WalkForward(_IntervalSplitter):
    """Expanding-window walk-forward: train strictly on the past, test on the next block.

    Parameters
    ----------
    n_splits : int, default 5
        Number of test blocks (>= 2).
    t0, t1 : array-like
        Decision and label end times as in :class:`PurgedKFold`.
    embargo : float, int or timedelta, default 0.0
        Gap between the training labels and the test block. A duration ``d`` keeps training
        samples with ``t1 < t0[a] - d``; a fraction drops the last ``ceil(embargo * n)`` eligible
        training samples (those closest to the test block).
    min_train : int, optional
        Minimum number of training samples in the first fold. The first test block starts at
        the earliest sample that leaves at least ``min_train`` eligible past samples. Default:
        the first test block starts at sample ``n // (n_splits + 1)`` (as sklearn's
        ``TimeSeriesSplit``).

    Notes
    -----
    The samples from the first test start to the end are split into ``n_splits`` contiguous
    blocks. For the block starting at ``a``, training is every sample ``i`` with
    ``t1[i] < t0[a]`` (minus the embargo): every training label was known before the first test
    decision. Earlier test blocks become training data for later ones (expanding window).
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        t0: Any = None,
        t1: Any = None,
        embargo: Any = 0.0,
        min_train: int | None = None,
    ) -> None:
        super().__init__(n_splits, t0, t1, embargo)
        self.min_train = min_train
        if min_train is not None and (
            isinstance(min_train, bool)
            or not isinstance(min_train, int | np.integer)
            or min_train < 1
        ):
            raise InputError(f"min_train must be a positive integer or None (got {min_train!r}).")
        self._start = self._first_test_start()

    def _eligible(self, a: int) -> np.ndarray:
        """Training indices for a test block starting at sample ``a``."""
        cut = self._t0[a] - self._emb_d
        train = np.flatnonzero(self._t1[:a] < cut).astype(np.int64)
        if self._emb_n:
            train = train[: max(train.shape[0] - self._emb_n, 0)]
        return train

    def _first_test_start(self) -> int:
        n, k = self._n, self._k
        if self.min_train is None:
            start = max(n // (k + 1), 1)
        else:
            # number of samples with t1 < t0[a] - d is non-decreasing in a: binary search it
            t1_sorted = np.sort(self._t1)
            counts = np.searchsorted(t1_sorted, self._t0 - self._emb_d, side="left") - self._emb_n
            ok = np.flatnonzero(counts >= int(self.min_train))
            if ok.size == 0:
                raise InputError(
                    f"min_train={self.min_train} cannot be met: at most {max(int(counts.max()), 0)}"
                    " samples end before any later sample starts. Lower min_train or embargo."
                )
            start = int(ok[0])
        if n - start < k:
            raise InputError(
                f"only {n - start} samples are left for {k} walk-forward test blocks after the "
                f"first training window (starts at sample {start}). Lower n_splits or min_train."
            )
        return start

    def split(self, X: Any = None, y: Any = None, groups: Any = None) -> Iterator[IndexPair]:
        """Yield ``(train_idx, test_idx)`` for each test block, oldest first."""
        _check_x(X, self._n)
        rest = np.arange(self._start, self._n, dtype=np.int64)
        for block in np.array_split(rest, self._k):
            yield self._eligible(int(block[0])), block.copy()


__all__ = ["PurgedKFold", "WalkForward", "as_times", "validate_intervals"]
