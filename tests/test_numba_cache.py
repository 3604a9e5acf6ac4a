"""The numba cache folder follows the kernels' source (numba only checks a function's own file)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numba
import pytest

from quantlab import _numba


def test_the_cache_folder_is_named_by_the_kernels_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp = _numba.kernel_fingerprint()
    assert len(fp) == 16 and fp == _numba.kernel_fingerprint()
    if not _numba.NUMBA_DISABLED:
        assert Path(numba.config.CACHE_DIR).name == fp
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert _numba.cache_dir() == tmp_path / fp
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _numba.cache_dir() == tmp_path / "xdg" / "quantlab" / "numba" / fp


def test_a_kernel_change_elsewhere_changes_the_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of the package with one edited kernel module gets another fingerprint."""
    import shutil

    src = Path(_numba.__file__).parent
    pkg = tmp_path / "quantlab"
    shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    fills = pkg / "execution" / "fills.py"
    fills.write_text(fills.read_text() + "\n# edited\n")
    monkeypatch.setattr(_numba, "__file__", str(pkg / "_numba.py"))
    edited = _numba.kernel_fingerprint()
    monkeypatch.setattr(_numba, "__file__", str(src / "_numba.py"))
    assert edited != _numba.kernel_fingerprint()


def test_old_fingerprint_folders_are_pruned(tmp_path: Path) -> None:
    keep, stale, fresh = tmp_path / ("a" * 16), tmp_path / ("b" * 16), tmp_path / ("c" * 16)
    for d in (stale, fresh):
        d.mkdir()
    old = time.time() - (_numba.CACHE_KEEP_DAYS + 1) * 86_400
    os.utime(stale, (old, old))
    _numba._prune(keep)
    assert keep.is_dir() and fresh.is_dir() and not stale.exists()
