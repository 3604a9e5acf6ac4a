"""Input conversion shared by the public array functions.

Public functions accept numpy arrays, Python scalars, sequences, polars Series and pyarrow
arrays; they broadcast like numpy and hand the kernels contiguous 1-D float64 arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from quantlab.errors import InputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]


def to_numpy(name: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    mod = type(value).__module__
    if mod.startswith("polars"):
        return np.asarray(value.to_numpy())
    if mod.startswith("pyarrow"):
        return np.asarray(value.to_numpy(zero_copy_only=False))
    if mod.startswith("pandas"):
        return np.asarray(value.to_numpy())
    try:
        return np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many types
        raise InputError(
            f"{name} could not be converted to an array (got {type(value).__name__})."
        ) from exc


def as_float(name: str, value: Any) -> FloatArray:
    """Return ``value`` as a float64 array, naming ``name`` in the error if it is not numeric."""
    arr = to_numpy(name, value)
    if arr.dtype == np.float64:
        return arr
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    if arr.dtype == object:
        try:
            return np.array(
                [np.nan if v is None else v for v in arr.ravel()], dtype=np.float64
            ).reshape(arr.shape)
        except (TypeError, ValueError):
            pass
    raise InputError(
        f"{name} must be numeric (got dtype {arr.dtype}). Pass floats, e.g. {name}=[4500.0]."
    )


_CALL_WORDS = {"c": True, "call": True, "p": False, "put": False}


def as_bool_right(name: str, value: Any) -> BoolArray:
    """Option right as a bool array (True = call). Accepts bools, 0/1, or 'C'/'P'/'call'/'put'."""
    arr = to_numpy(name, value)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iuf":
        bad = ~np.isin(arr, (0, 1))
        if bad.any():
            raise InputError(
                f"{name} must be True/False, 1/0 or 'C'/'P' (got {arr[bad].ravel()[0]!r})."
            )
        return arr.astype(np.bool_)
    if arr.dtype.kind in "USO":
        flat = [str(v).strip().lower() for v in arr.ravel()]
        try:
            return np.array([_CALL_WORDS[v] for v in flat], dtype=np.bool_).reshape(arr.shape)
        except KeyError as exc:
            raise InputError(
                f"{name} must be True/False, 1/0 or 'C'/'P' (got {exc.args[0]!r})."
            ) from None
    raise InputError(f"{name} must be boolean or 'C'/'P' (got dtype {arr.dtype}).")


def broadcast(**arrays: np.ndarray) -> tuple[tuple[int, ...], dict[str, np.ndarray]]:
    """Broadcast named arrays; return the common shape and contiguous 1-D views of each.

    Raises :class:`InputError` naming every argument and its shape when they do not broadcast.
    """
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in arrays.items())
        raise InputError(f"arguments do not broadcast together: {shapes}.") from None
    out = {
        k: np.ascontiguousarray(np.broadcast_to(v, shape)).reshape(-1) for k, v in arrays.items()
    }
    return shape, out


def check_positive(name: str, arr: np.ndarray, *, allow_zero: bool = False, hint: str = "") -> None:
    """Raise if a finite element is negative (or zero unless ``allow_zero``). NaN passes through."""
    if arr.size == 0:
        return
    low = arr.min()  # one vectorized pass; NaN (or a bad value) falls through to the full check
    if low > 0 or (allow_zero and low == 0):
        return
    bad = (arr < 0) if allow_zero else (arr <= 0)
    if bad.any():
        idx = int(np.flatnonzero(bad.ravel())[0])
        what = "non-negative" if allow_zero else "positive"
        msg = f"{name} must be {what} (got {arr.ravel()[idx]!r} at index {idx})."
        raise InputError(f"{msg} {hint}".rstrip())


def out_array(name: str, out: Any, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """A caller-supplied output buffer as a flat view, or a new array when ``out`` is None.

    Reusing buffers in a hot loop saves the allocation (and page faults) of fresh outputs.
    """
    if out is None:
        return np.empty(int(np.prod(shape)), dtype=dtype)
    if (
        not isinstance(out, np.ndarray)
        or out.dtype != dtype
        or out.shape != shape
        or not out.flags.c_contiguous
    ):
        got = f"{type(out).__name__} {getattr(out, 'dtype', '')}{getattr(out, 'shape', '')}"
        raise InputError(
            f"{name} must be a C-contiguous {np.dtype(dtype)} array of shape {shape} (got {got})."
        )
    if not out.flags.writeable:
        raise InputError(f"{name} must be writeable.")
    return out.reshape(-1)


__all__ = [
    "BoolArray",
    "FloatArray",
    "Int8Array",
    "as_bool_right",
    "as_float",
    "broadcast",
    "check_positive",
    "out_array",
]
