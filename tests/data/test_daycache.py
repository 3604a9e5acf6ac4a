"""The store's day cache: same DayQuotes as from Parquet, invalidated by rewrites, exact
encodings, robust to broken copies, concurrent writers and stores it cannot write to."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab.data import daycache, read
from quantlab.data import store as st
from tests.data.test_read import DAY, MINUTES, build_day

ARRAYS = (
    "ts",
    "bid",
    "ask",
    "lo",
    "hi",
    "instrument_id",
    "strike",
    "is_call",
    "expiry",
    "root",
    "multiplier",
    "bid_size",
    "ask_size",
)


def _write(root: Path, inst: pl.DataFrame, quotes: pl.DataFrame) -> Path:
    st.write_partition(root, "instruments", "SPX", DAY, inst, source="test")
    st.write_partition(root, "quotes", "SPX", DAY, quotes, source="test")
    return root


def _equal(a: read.DayQuotes, b: read.DayQuotes) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype.kind == "f":  # bit for bit, NaN where NaN
            nx, ny = np.isnan(x), np.isnan(y)
            assert np.array_equal(nx, ny), name
            assert np.array_equal(x[~nx].view(np.int64), y[~ny].view(np.int64)), name
        else:
            assert np.array_equal(x, y), name
    assert a.instruments.equals(b.instruments)
    assert a.symbols() == b.symbols() == a.instruments["raw_symbol"].to_list()
    for t in (MINUTES[0] - 1, MINUTES[10], MINUTES[200] + 5, MINUTES[-1]):
        assert a.snapshot(int(t)).equals(b.snapshot(int(t)))
        np.testing.assert_array_equal(a.grid_index(MINUTES[::7]), b.grid_index(MINUTES[::7]))


def _load(root: Path, cache: bool, monkeypatch: pytest.MonkeyPatch) -> read.DayQuotes:
    monkeypatch.setenv("QUANTLAB_DAY_CACHE", "1" if cache else "0")
    return read.DayQuotes.load(root, "SPX", DAY)


def _copies(root: Path) -> list[Path]:
    d = daycache.day_dir(root, "SPX", DAY)
    return sorted(p for p in d.iterdir() if not p.name.startswith(".")) if d.is_dir() else []


def test_cached_day_equals_parquet_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inst, quotes = build_day()
    root = _write(tmp_path, inst, quotes)
    ref = _load(root, False, monkeypatch)
    assert not daycache.root_dir(root).exists()  # off: nothing written
    cold = _load(root, True, monkeypatch)  # reads Parquet, writes a copy
    assert len(_copies(root)) == 1
    warm = _load(root, True, monkeypatch)  # reads the copy
    meta = json.loads((_copies(root)[0] / "meta.json").read_text())
    assert (meta["ts"], meta["prices"]) == ("minutes", "cents")
    assert warm.kernel_arrays()[4] is True and cold.kernel_arrays()[4] is False
    _equal(ref, cold)
    _equal(ref, warm)
    # only the rows asked for are decoded, and they are the same
    idx = np.array([0, 5, ref.n_rows - 1])
    for x, y in zip(ref.rows(idx), warm.rows(idx), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_rewritten_partition_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, quotes = build_day()
    root = _write(tmp_path, inst, quotes)
    _load(root, True, monkeypatch)
    first = _copies(root)
    changed = quotes.with_columns(pl.col("ask") + 1.0)
    st.write_partition(root, "quotes", "SPX", DAY, changed, source="test", checksum="other")
    again = _load(root, True, monkeypatch)
    np.testing.assert_allclose(again.ask, _load(root, False, monkeypatch).ask)
    assert np.nanmin(again.ask - _load(root, False, monkeypatch).ask) == 0.0
    assert len(_copies(root)) == 1 and _copies(root) != first  # the stale copy is gone
    _equal(_load(root, False, monkeypatch), _load(root, True, monkeypatch))


def test_inexact_values_are_kept_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, quotes = build_day()
    odd = quotes.with_columns(  # a sub-cent price, -0.0, and a stamp off the minute
        pl.when(pl.int_range(pl.len()) == 3).then(1.2345).otherwise(pl.col("bid")).alias("bid"),
        pl.when(pl.int_range(pl.len()) == 4).then(-0.0).otherwise(pl.col("ask")).alias("ask"),
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.col("ts") - 7)
        .otherwise(pl.col("ts"))
        .alias("ts"),
    )
    root = _write(tmp_path, inst, odd)
    ref = _load(root, False, monkeypatch)
    _load(root, True, monkeypatch)
    warm = _load(root, True, monkeypatch)
    meta = json.loads((_copies(root)[0] / "meta.json").read_text())
    assert (meta["ts"], meta["prices"]) == ("ns", "float")
    _equal(ref, warm)
    assert np.signbit(warm.ask[4]) and warm.ask[4] == 0.0


def test_a_broken_copy_falls_back_to_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, quotes = build_day()
    root = _write(tmp_path, inst, quotes)
    _load(root, True, monkeypatch)
    (_copies(root)[0] / "bid.npy").write_bytes(b"not an array")
    _equal(_load(root, False, monkeypatch), _load(root, True, monkeypatch))


def test_a_store_it_cannot_write_is_read_without_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, quotes = build_day()
    root = _write(tmp_path, inst, quotes)
    daycache.root_dir(root).parent.mkdir(parents=True)
    daycache.root_dir(root).write_text("a file where the cache folder would go")
    _equal(_load(root, False, monkeypatch), _load(root, True, monkeypatch))
    assert daycache.root_dir(root).is_file()


def test_concurrent_writers_leave_one_complete_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, quotes = build_day()
    root = _write(tmp_path, inst, quotes)
    monkeypatch.setenv("QUANTLAB_DAY_CACHE", "1")
    parts = daycache.day_parts(root, "SPX", DAY)
    folder = _copies(root)[0]
    import shutil

    shutil.rmtree(folder)
    wins = []
    threads = [
        threading.Thread(
            target=lambda: wins.append(daycache.save(folder, parts.instruments, parts.quotes))
        )
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) >= 1
    assert _copies(root) == [folder]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]
    _equal(_load(root, False, monkeypatch), _load(root, True, monkeypatch))
    # and two processes reading the same uncached day at once
    shutil.rmtree(daycache.root_dir(root))
    code = (
        "import sys; from quantlab.data import read; "
        f"dq = read.DayQuotes.load({str(root)!r}, 'SPX', '{DAY}'); print(float(dq.bid[5]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    ref = _load(root, False, monkeypatch)
    assert outs == [str(float(ref.bid[5]))] * 2
    assert len(_copies(root)) == 1
    _equal(ref, _load(root, True, monkeypatch))


def test_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inst, quotes = build_day()
    root = _write(tmp_path, inst, quotes)
    _load(root, True, monkeypatch)
    assert daycache.root_dir(root).is_dir()
    daycache.clear(root)
    assert not daycache.root_dir(root).exists()


def test_cache_command_reports_and_clears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from quantlab.cli import app

    inst, quotes = build_day()
    root = _write(tmp_path, inst, quotes)
    _load(root, True, monkeypatch)
    out = CliRunner().invoke(app, ["data", "cache", "--store", str(root)])
    assert out.exit_code == 0 and "1 cached day folder(s)" in out.output
    assert daycache.root_dir(root).is_dir()  # reporting alone deletes nothing
    out = CliRunner().invoke(app, ["data", "cache", "--store", str(root), "--clear"])
    assert out.exit_code == 0 and "cleared" in out.output
    assert not daycache.root_dir(root).exists()
    assert (root / "parquet").is_dir()  # the store itself is untouched
