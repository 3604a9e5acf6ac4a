"""Numba compilation switch shared by every kernel module.

Kernels are written once as plain Python and compiled with :func:`jit`. Setting the
environment variable ``QUANTLAB_DISABLE_NUMBA=1`` before ``quantlab`` is imported makes
:func:`jit` return the plain Python function unchanged (``prange`` becomes ``range``), so
kernels can be stepped through in a debugger or measured by coverage. A test runs the same
inputs both ways and requires identical numbers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

NUMBA_DISABLED: bool = os.environ.get("QUANTLAB_DISABLE_NUMBA", "").strip() not in ("", "0")

if NUMBA_DISABLED:
    prange = range

    def jit(*args: Any, **kwargs: Any) -> Any:
        """Return the function unchanged (numba disabled by QUANTLAB_DISABLE_NUMBA)."""
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]

        def wrap(func: F) -> F:
            return func

        return wrap

else:
    import numba
    from numba import prange

    def jit(*args: Any, **kwargs: Any) -> Any:
        """``numba.njit`` with ``cache=True`` by default."""
        kwargs.setdefault("cache", True)
        if len(args) == 1 and callable(args[0]) and not kwargs.get("_sig"):
            return numba.njit(**kwargs)(args[0])
        return numba.njit(*args, **kwargs)


__all__ = ["NUMBA_DISABLED", "jit", "prange"]
