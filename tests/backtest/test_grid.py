"""The grid runner and stage-1 plumbing: one pool for both stages, merges in shared memory,
the day cache, stage-1 files; all give exactly the plain results."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from quantlab.backtest.engine import merge_stage1, run_grid, stage1
from quantlab.backtest.stage1 import _ARRAYS, Stage1Result, load_stage1, run_stage1, save_stage1
from quantlab.backtest.stage2 import run_stage2
from quantlab.data import read
from quantlab.errors import DataError
from quantlab.strategy import StrategySpec
from tests.backtest.market import build, et, ramp

DAYS = [dt.date(2024, 3, d) for d in (4, 5, 6, 7, 8, 11, 12)]
EXPIRIES = [dt.date(2024, 3, d) for d in (6, 8, 11, 13, 15)]


def _spec(name: str, **kw) -> StrategySpec:  # type: ignore[no-untyped-def]
    base = {
        "name": name,
        "dte": {"target": 2, "tolerance": 1},
        "entry": {"times": ["10:00", "12:00"]},
        "short_delta": 0.15,
        "width": 25,
        "filters": {"min_credit": 0.0},
    }
    return StrategySpec.from_dict(base | kw)


SPECS = [
    _spec("a"),
    _spec("b", short_delta=0.3, width=10, management={"take_profit_pct": 25, "stop_loss_pct": 50}),
    _spec("c", structure="call_credit_vertical", dte={"target": 4, "tolerance": 2}),
    _spec("d", structure="iron_condor", entry={"times": ["11:00"]}, short_delta=0.1, width=50),
]


@pytest.fixture(scope="module")
def wave(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Up, down and up again over two weeks: stops, take-profits and settlements."""
    root = tmp_path_factory.mktemp("wave")
    read.clear_cache()
    path = [
        (et(DAYS[0], 9, 30), 5000.0),
        (et(DAYS[1], 12, 0), 5040.0),
        (et(DAYS[3], 15, 0), 4950.0),
        (et(DAYS[6], 11, 0), 5010.0),
    ]
    return build(root, DAYS, EXPIRIES, ramp(path), strikes=np.arange(4850.0, 5155.0, 5.0))


def _same_s1(a: Stage1Result, b: Stage1Result) -> None:
    assert a.candidates.equals(b.candidates) and a.rejections.equals(b.rejections)
    for name in _ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.data_checksum == b.data_checksum and a.days == b.days
    assert [[(p, x.tolist()) for p, x in c] for c in a.day_ids] == [
        [(p, x.tolist()) for p, x in c] for c in b.day_ids
    ]


def test_run_grid_equals_stage1_then_stage2(wave: Path) -> None:
    one = stage1(wave, SPECS, DAYS[0], DAYS[-1], workers=2, min_shard_days=1)
    # one row per rule and decision time: a candidate or the reason there is none
    n_rule_times = sum(len(s.entry.times) for s in SPECS)
    assert len(one) + one.rejections.height == n_rule_times * len(DAYS)
    assert len(one) > 20 and one.candidates["candidate_id"].is_unique().all()
    g = run_grid(wave, SPECS, DAYS[0], DAYS[-1], workers=2, min_shard_days=1)
    _same_s1(one, g.stage1)
    assert g.stage1_s > 0 and g.stage2_s > 0
    reasons = set()
    for spec, res in zip(SPECS, g.results, strict=True):
        ref = run_stage2(one, spec)
        assert res.spec == spec
        for frame in ("trades", "decisions", "equity_minutes", "equity_daily"):
            assert getattr(res, frame).equals(getattr(ref, frame)), (spec.name, frame)
        reasons |= set(res.trades["exit_reason"].to_list())
    assert len(reasons) >= 2
    # in one process, or over four: the same candidates, paths, checksums and results
    for workers in (1, 4):
        other = run_grid(wave, SPECS, DAYS[0], DAYS[-1], workers=workers, min_shard_days=1)
        _same_s1(other.stage1, g.stage1)
        for a, b in zip(other.results, g.results, strict=True):
            for frame in ("trades", "decisions", "equity_minutes", "equity_daily"):
                assert getattr(a, frame).equals(getattr(b, frame)), (workers, frame)


def test_a_trade_is_the_same_whatever_range_covers_it(wave: Path) -> None:
    """A shorter --end: every trade it holds is the full run's trade, checksum included."""
    full = run_grid(wave, SPECS, DAYS[0], DAYS[-1], workers=1)
    for end in (DAYS[-2], DAYS[3]):
        short = run_grid(wave, SPECS, DAYS[0], end, workers=2, min_shard_days=1)
        for a, b in zip(short.results, full.results, strict=True):
            assert a.trades.height > 0
            assert a.trades.equals(b.trades.filter(b.trades["entry_date"] <= end)), end


def test_stage1_is_the_same_with_and_without_the_day_cache(
    wave: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTLAB_DAY_CACHE", "0")
    read.clear_cache()
    plain = run_stage1(wave, SPECS, DAYS[0], DAYS[-2])
    monkeypatch.setenv("QUANTLAB_DAY_CACHE", "1")
    for _ in range(2):  # writes the copies, then reads them
        read.clear_cache()
        _same_s1(plain, run_stage1(wave, SPECS, DAYS[0], DAYS[-2]))


def test_merge_into_a_folder_and_stage1_files(wave: Path, tmp_path: Path) -> None:
    a = run_stage1(wave, SPECS, DAYS[0], DAYS[2])
    b = run_stage1(wave, SPECS[:2], DAYS[3], DAYS[-1])  # fewer legs: padded when merged
    assert a.path_bid.shape[1] == 4 and b.path_bid.shape[1] == 2
    mem = merge_stage1([a, b])
    on_disk = merge_stage1([a, b], tmp_path / "merged")
    _same_s1(mem, on_disk)
    assert not on_disk.path_bid.flags.writeable
    _same_s1(mem, load_stage1(tmp_path / "merged"))
    _same_s1(mem, load_stage1(tmp_path / "merged", mmap=False))
    assert type(load_stage1(tmp_path / "merged").path_ts) is np.ndarray  # no memmap subclass
    # metadata is JSON (no pickle); a folder of another format is refused, not misread
    save_stage1(a, tmp_path / "old")
    assert not list((tmp_path / "old").glob("*.pkl"))
    meta = json.loads((tmp_path / "old" / "meta.json").read_text())
    assert meta["data_checksum"] == a.data_checksum
    (tmp_path / "old" / "meta.json").write_text(json.dumps(meta | {"format": 1}))
    with pytest.raises(DataError, match="format 1"):
        load_stage1(tmp_path / "old")
