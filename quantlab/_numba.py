"""Numba compilation switch shared by every kernel module.

Kernels are written once as plain Python and compiled with :func:`jit`. Setting the
environment variable ``QUANTLAB_DISABLE_NUMBA=1`` before ``quantlab`` is imported makes
:func:`jit` return the plain Python function unchanged (``prange`` becomes ``range``), so
kernels can be stepped through in a debugger or measured by coverage. A test runs the same
inputs both ways and requires identical numbers.

Numba's on-disk cache (``cache=True``) checks only the source file of the function it compiled,
not the kernels it inlined from other modules (numba issue #1833): after a change to, say, the
fill kernel, the replay would keep running the old one. So the cache lives in a folder named by
a fingerprint of every quantlab module that defines kernels (``<NUMBA_CACHE_DIR or
~/.cache/quantlab/numba>/<fingerprint>``): any change to any kernel starts a fresh cache.
Fingerprint folders unused for :data:`CACHE_KEEP_DAYS` days are removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

CACHE_KEEP_DAYS = 7


def kernel_fingerprint() -> str:
    """A digest of the source of every quantlab module that defines numba kernels."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        text = path.read_bytes()
        if b"@jit" in text or b"numba" in text:
            h.update(str(path.relative_to(root)).encode() + b"\0" + text + b"\0")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """The numba cache folder of this source tree (see the module docstring)."""
    base = os.environ.get("NUMBA_CACHE_DIR", "").strip()
    if not base:
        home = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
        base = str(Path(home) / "quantlab" / "numba")
    return Path(base) / kernel_fingerprint()


def _prune(folder: Path) -> None:
    """Remove sibling fingerprint folders not used for CACHE_KEEP_DAYS days."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)
        old = time.time() - CACHE_KEEP_DAYS * 86_400
        for other in folder.parent.iterdir():
            if other != folder and other.is_dir() and len(other.name) == 16:
                if other.stat().st_mtime < old:
                    shutil.rmtree(other, ignore_errors=True)
    except OSError:
        pass


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

    _CACHE = cache_dir()
    _prune(_CACHE)
    numba.config.CACHE_DIR = str(_CACHE)  # type: ignore[attr-defined]

    def jit(*args: Any, **kwargs: Any) -> Any:
        """``numba.njit`` with ``cache=True`` by default."""
        kwargs.setdefault("cache", True)
        if len(args) == 1 and callable(args[0]) and not kwargs.get("_sig"):
            return numba.njit(**kwargs)(args[0])
        return numba.njit(*args, **kwargs)


__all__ = ["CACHE_KEEP_DAYS", "NUMBA_DISABLED", "cache_dir", "jit", "kernel_fingerprint", "prange"]
