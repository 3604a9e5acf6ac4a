"""Running a backtest: stage 1 sharded by date over a process pool, stage 2 per config, outputs.

``quantlab backtest CONFIG`` and :func:`backtest` write to ``--out`` (default ``out/<name>/``):

- ``trades.parquet`` (the shared trade-record schema), ``decisions.parquet`` (every proposed
  candidate with its decision and reason), ``candidates.parquet`` (stage 1),
  ``equity_daily.parquet``, ``equity_minutes.parquet``;
- ``cost_curve.parquet``: total P&L, Sharpe and win rate for each fill assumption (``mid_k``
  with k from 0 to 0.5), from the same stage 1 (:mod:`quantlab.backtest.costs`);
- ``results.duckdb`` with the same tables, for SQL;
- ``report.html`` and PNGs (equity, drawdown, P&L histogram, cost curve, breakdowns, trade
  inspector).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.backtest.stage1 import (
    Stage1Result,
    combine_checksums,
    load_stage1,
    needs_forwards,
    run_stage1,
    save_stage1,
)
from quantlab.backtest.stage2 import PortfolioResult, run_stage2
from quantlab.config import StrictModel, read_yaml
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import DataError
from quantlab.money import NO_PRICE
from quantlab.strategy.spec import StrategySpec, with_strategy


class BacktestConfig(StrictModel):
    """A backtest file: the strategy (inline, or a path relative to this file) and the dates."""

    strategy: StrategySpec
    start: dt.date | None = None
    end: dt.date | None = None


def load_config(path: str | Path) -> BacktestConfig:
    """Read a backtest YAML, or a bare strategy YAML (then the dates default to the store's)."""
    p = Path(path)
    data = read_yaml(p)
    if "strategy" not in data:
        return BacktestConfig(strategy=StrategySpec.from_yaml(p))
    return BacktestConfig.from_dict(with_strategy(data, p), source=str(p))


def _shards(days: list[dt.date], n: int) -> list[tuple[dt.date, dt.date]]:
    n = max(1, min(n, len(days)))
    cuts = np.array_split(np.arange(len(days)), n)
    return [(days[c[0]], days[c[-1]]) for c in cuts if c.size]


def stage1_shard(
    store: str,
    specs: Sequence[StrategySpec],
    start: dt.date,
    end: dt.date,
    underlying: str,
    folder: str,
    sessions: Any = None,
    forwards: bool = True,
) -> str:
    """Run stage 1 for one date shard and write it to ``folder`` (a worker task of the process
    pool here and of the sweep executors: arrays go back through files, not pickles).
    ``sessions``: the caller's session calendar (see :func:`_use_sessions`); ``forwards``: keep
    the path forwards (:func:`quantlab.backtest.stage1.run_stage1`)."""
    _use_sessions(sessions)
    res = run_stage1(store, specs, start, end, underlying=underlying, forwards=forwards)
    save_stage1(res, folder)
    return str(folder)


def _use_sessions(sessions: Any) -> None:
    """In a pool worker, take the caller's session calendar instead of building it: building it
    imports exchange_calendars and pandas, about as long as every other import together."""
    if sessions is not None:
        calendar.use_session_table(sessions)


def _warm() -> None:
    """A pool worker's first task: its imports and numba's start-up (the first call of any
    compiled kernel), while the caller builds its calendar and starts its own shard."""
    read.warm_kernels()


def _stack_padded(arrays: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Row-stack int32 cent paths whose leg widths may differ (padding with ``NO_PRICE``),
    into ``out`` when given."""
    width = max(a.shape[1] for a in arrays)
    if out is None:
        out = np.empty((sum(a.shape[0] for a in arrays), width), dtype=np.int32)
    row = 0
    for a in arrays:
        out[row : row + a.shape[0], : a.shape[1]] = a
        out[row : row + a.shape[0], a.shape[1] :] = NO_PRICE
        row += a.shape[0]
    return out


_PATHS = ("path_ts", "path_bid", "path_ask", "path_fwd")


def merge_stage1(parts: Sequence[Stage1Result], folder: str | Path | None = None) -> Stage1Result:
    """Concatenate stage-1 shards (in date order) into one result.

    With ``folder``, the result is written there as :func:`save_stage1` would (the quote paths
    straight into their memory-mapped files, without a copy in memory) and returned memory-mapped
    from it: processes that load the folder share one copy of the paths.
    """
    if len(parts) == 1 and folder is None:
        return parts[0]
    offsets = [np.zeros(1, np.int64)]
    base = 0
    for p in parts:
        offsets.append(p.offsets[1:] + base)
        base += int(p.offsets[-1])
    days = sorted({d for p in parts for d in p.days})
    day_sums = {d: v for p in parts for d, v in p.day_sums.items()}
    checksum = combine_checksums(day_sums)  # the same as one pass over the same days
    width = max(p.path_bid.shape[1] for p in parts)
    with_fwd = [p.path_fwd.size == p.path_ts.size and p.path_ts.size > 0 for p in parts]
    fwd_rows = base if any(with_fwd) else 0
    if any(with_fwd) and not all(
        f or p.path_ts.size == 0 for f, p in zip(with_fwd, parts, strict=True)
    ):
        raise DataError("stage-1 shards to merge differ: some kept path forwards, some did not")
    if folder is None:
        paths = {
            "path_ts": np.concatenate([p.path_ts for p in parts]),
            "path_fwd": np.concatenate([p.path_fwd for p in parts])
            if fwd_rows
            else np.empty(0, np.float64),
            "path_bid": _stack_padded([p.path_bid for p in parts]),
            "path_ask": _stack_padded([p.path_ask for p in parts]),
        }
    else:
        out = Path(folder)
        tmp = out.with_name(out.name + ".tmp")
        tmp.mkdir(parents=True)
        need = base * (16 + 8 * width)
        if shutil.disk_usage(tmp).free < need * 1.2 + 2**26:
            raise DataError(
                f"no room for the merged stage-1 paths ({need / 2**20:.0f} MB) in {tmp.parent}"
            )
        mm = np.lib.format.open_memmap
        paths = {
            "path_ts": mm(tmp / "path_ts.npy", mode="w+", dtype=np.int64, shape=(base,)),
            "path_fwd": mm(tmp / "path_fwd.npy", mode="w+", dtype=np.float64, shape=(fwd_rows,)),
            "path_bid": mm(tmp / "path_bid.npy", mode="w+", dtype=np.int32, shape=(base, width)),
            "path_ask": mm(tmp / "path_ask.npy", mode="w+", dtype=np.int32, shape=(base, width)),
        }
        row = 0
        for p in parts:
            paths["path_ts"][row : row + p.path_ts.size] = p.path_ts
            if fwd_rows:
                paths["path_fwd"][row : row + p.path_ts.size] = p.path_fwd
            row += p.path_ts.size
        _stack_padded([p.path_bid for p in parts], paths["path_bid"])
        _stack_padded([p.path_ask for p in parts], paths["path_ask"])
    res = Stage1Result(
        candidates=pl.concat([p.candidates for p in parts]),
        rejections=pl.concat([p.rejections for p in parts]),
        offsets=np.concatenate(offsets),
        qty=np.concatenate([p.qty for p in parts]),
        strike=np.concatenate([p.strike for p in parts]),
        is_call=np.concatenate([p.is_call for p in parts]),
        entry_bid=np.concatenate([p.entry_bid for p in parts]),
        entry_ask=np.concatenate([p.entry_ask for p in parts]),
        settle_value=np.concatenate([p.settle_value for p in parts]),
        day_ids=[d for p in parts for d in p.day_ids],
        data_checksum=checksum,
        days=days,
        day_sums=day_sums,
        **paths,
    )
    if folder is None:
        return res
    for a in paths.values():
        if isinstance(a, np.memmap):
            a.flush()
    save_stage1(res, folder, written=_PATHS)
    # the files moved with their folder; the mappings stay valid (plain read-only views)
    for name, a in paths.items():
        view = a.view(np.ndarray)
        view.flags.writeable = False
        setattr(res, name, view)
    return res


#: Shared memory is used for stage-1 scratch files only when it has this much room (a container's
#: default /dev/shm is 64 MB; a memory-mapped write beyond a full tmpfs is a SIGBUS, not an error).
SHM_MIN_FREE = 4 * 1024**3


def _scratch(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary folder for stage-1 shards, in shared memory (``/dev/shm``) where there is
    room: shards go through it between processes, and a memory-mapped merged result there is
    shared by every process that loads it."""
    shm = Path("/dev/shm")
    where = None
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= SHM_MIN_FREE:
        where = str(shm)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=where)


def _days(store: st.StoreLike, start: dt.date, end: dt.date, underlying: str) -> list[dt.date]:
    stored = set(st.list_days(store, "quotes", underlying))
    days = [d for d in calendar.sessions(start, end) if d in stored]
    if not days:
        raise DataError(
            f"no stored sessions of {underlying} between {start} and {end} in {st.store_root(store)}"
        )
    return days


def _n_shards(days: list[dt.date], workers: int | None, min_shard_days: int) -> int:
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    return min(workers, max(1, len(days) // max(min_shard_days, 1)))


@contextlib.contextmanager
def _pool(
    store: st.StoreLike,
    start: dt.date,
    end: dt.date,
    underlying: str,
    workers: int | None,
    min_shard_days: int,
) -> Iterator[ProcessPoolExecutor | None]:
    """The spawn pool of a sharded run (None when it runs in this process), started at once.

    The size comes from the stored days in range (sessions, so no calendar is needed): the
    workers start Python, import and start numba while this process builds its session
    calendar, which it then hands them with each task.
    """
    stored = [d for d in st.list_days(store, "quotes", underlying) if start <= d <= end]
    n = _n_shards(stored, workers, min_shard_days) if stored else 1
    if n == 1:
        yield None
        return
    # spawn, not fork: forking a process whose numba/duckdb threads are running can deadlock
    pool = ProcessPoolExecutor(max_workers=n - 1, mp_context=multiprocessing.get_context("spawn"))
    done = False
    try:
        for _ in range(n - 1):
            pool.submit(_warm)
        yield pool
        done = True
    finally:
        # after a clean run the workers exit in the background (tearing down a worker takes
        # a few tenths of a second); after an error, wait for them
        pool.shutdown(wait=not done, cancel_futures=True)


def plan_shards(
    days: Sequence[dt.date], workers: int | None, min_shard_days: int = 10
) -> list[tuple[dt.date, dt.date]]:
    """The sharding rule of every stage-1 run (backtest, grid, sweeps on any executor): at most
    ``workers`` contiguous date ranges of at least ``min_shard_days`` sessions each. Results
    never depend on it (each shard follows its candidates to their close)."""
    return _shards(list(days), _n_shards(list(days), workers, min_shard_days))


#: ``run_tasks(fn, tasks)`` yields ``(task index, result)``: an executor's ``run``
RunTasks = Any


def sharded_stage1(
    store: st.StoreLike,
    specs: Sequence[StrategySpec],
    shards: Sequence[tuple[dt.date, dt.date]],
    run_tasks: RunTasks,
    scratch: Path,
    folder: Path | None = None,
    *,
    underlying: str = "SPX",
    bar: Any = None,
    forwards: bool = True,
) -> Stage1Result:
    """The one stage-1 orchestration: each shard of :func:`plan_shards` as a
    :func:`stage1_shard` task through ``run_tasks`` (a process pool, a sweep executor, Ray),
    written to ``scratch/shard-<first>-<last>`` (a shard already there is reused, so an
    interrupted sweep resumes), then merged (:func:`merge_stage1`) into ``folder`` (memory-
    mapped there) or in memory. A task may also return its result directly (the caller's own
    process runs a shard without writing it)."""
    root = str(st.store_root(store))
    sessions = calendar.session_table()
    folders = [Path(scratch) / f"shard-{a}-{b}" for a, b in shards]
    todo = [i for i, f in enumerate(folders) if not f.is_dir()]
    tasks = []
    for i in todo:
        a, b = shards[i]
        tasks.append((root, list(specs), a, b, underlying, str(folders[i]), sessions, forwards))
    got: dict[int, Any] = {}
    for k, res in run_tasks(stage1_shard, tasks):
        got[todo[k]] = res
        if bar is not None:
            a, b = shards[todo[k]]
            bar.update(len(calendar.sessions(a, b)))
    parts = [
        got[i] if isinstance(got.get(i), Stage1Result) else load_stage1(folders[i])
        for i in range(len(shards))
    ]
    return merge_stage1(parts, folder)


def _local_first(pool: ProcessPoolExecutor | None) -> RunTasks:
    """``run_tasks`` over this module's spawn pool: task 0 runs in this process (returning its
    result in memory: a spawned worker spends its first seconds starting Python and loading
    compiled kernels, which this process has done), the others in the pool."""

    def run(fn: Any, tasks: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        futures = [pool.submit(fn, *t) for t in tasks[1:]] if pool is not None else []
        if tasks:
            store, specs, a, b, underlying, _folder, _sessions, fwd = tasks[0]
            yield 0, run_stage1(store, specs, a, b, underlying=underlying, forwards=fwd)
        if pool is None:
            for k, t in enumerate(tasks[1:], 1):
                yield k, fn(*t)
        for k, fut in enumerate(futures, 1):
            yield k, fut.result()

    return run


_LOADED: dict[str, Stage1Result] = {}


def shared_stage1(folder: str | Path) -> Stage1Result:
    """The stage-1 result in ``folder``, memory-mapped and loaded once per process: the worker
    cache of every stage-2 task (grid, sweeps on any executor)."""
    key = str(folder)
    s1 = _LOADED.get(key)
    if s1 is None:
        _LOADED.clear()
        s1 = _LOADED[key] = load_stage1(folder, mmap=True)
    return s1


def stage1(
    store: st.StoreLike,
    specs: Sequence[StrategySpec],
    start: dt.date,
    end: dt.date,
    *,
    underlying: str = "SPX",
    workers: int | None = None,
    progress: bool = False,
    min_shard_days: int = 10,
    forwards: bool | None = None,
) -> Stage1Result:
    """Stage 1 over [start, end], sharded by entry date over ``workers`` processes
    (:func:`plan_shards`, :func:`sharded_stage1`). ``forwards``: keep each path minute's
    parity forward (greeks, attribution, greek limits); default: when a spec has a greek limit
    (:func:`quantlab.backtest.stage1.needs_forwards`).

    Each shard follows its own candidates past its last entry day, so shards give exactly the
    result of one pass; ranges shorter than ``min_shard_days`` per worker run in-process. This
    process runs the first shard itself and ``workers - 1`` spawned processes the others.
    """
    with _pool(store, start, end, underlying, workers, min_shard_days) as pool:
        days = _days(store, start, end, underlying)
        shards = plan_shards(days, workers if pool is not None else 1, min_shard_days)
        bar = progress_bar(len(days), "stage 1: sessions", progress)
        with _scratch("quantlab-stage1-") as tmp:
            folder = None if len(shards) == 1 else Path(tmp) / "merged"
            res = sharded_stage1(
                store,
                specs,
                shards,
                _local_first(pool),
                Path(tmp),
                folder,
                underlying=underlying,
                bar=bar,
                forwards=needs_forwards(specs) if forwards is None else forwards,
            )
    bar.close()
    return res


@dataclass
class GridResult:
    """Stage 1 of a set of configs and each config's stage 2 (in the order given), with the
    wall time of each stage in seconds."""

    stage1: Stage1Result
    results: list[PortfolioResult]
    stage1_s: float
    stage2_s: float


def _stage2(s1: Stage1Result, spec: StrategySpec, risk: str | None) -> PortfolioResult:
    """One config's stage 2 and, with a ``risk`` cadence, its risk tables (kept on the
    result)."""
    res = run_stage2(s1, spec)
    if risk:
        res.risk(minutes=False, cadence=risk)
    return res


def _stage2_share(
    folder: str, specs: list[StrategySpec], sessions: Any = None, risk: str | None = None
) -> list[PortfolioResult]:
    """A pool worker's share of stage 2: the merged stage-1 result (:func:`shared_stage1`),
    then each config."""
    _use_sessions(sessions)
    s1 = shared_stage1(folder)
    return [_stage2(s1, spec, risk).detached() for spec in specs]


def run_grid(
    store: st.StoreLike,
    specs: Sequence[StrategySpec],
    start: dt.date,
    end: dt.date,
    *,
    underlying: str = "SPX",
    workers: int | None = None,
    min_shard_days: int = 10,
    forwards: bool | None = None,
    risk: bool = False,
    risk_cadence: str = "close",
) -> GridResult:
    """Stage 1 once for every config, then stage 2 of each config, both over one process pool.

    ``risk``: each config's :meth:`~quantlab.backtest.stage2.PortfolioResult.risk` too
    (``minutes=False``, at ``risk_cadence``: session closes by default, ``"minute"`` for the
    minute-by-minute attribution), computed where its stage 2 ran; ``forwards`` (default: ``risk`` or a
    spec with a greek limit) keeps the stage-1 path forwards that needs.

    The same result as :func:`stage1` followed by :func:`run_stage2` per config (the sweep runner
    does the same with its executors), in less wall time: the spawned workers, once started,
    also take their share of the configs' stage 2 on the merged stage-1 result, which every
    process memory-maps from one copy in shared memory.
    """
    t0 = time.perf_counter()
    with _pool(store, start, end, underlying, workers, min_shard_days) as pool:
        days = _days(store, start, end, underlying)
        shards = plan_shards(days, workers if pool is not None else 1, min_shard_days)
        with _scratch("quantlab-grid-") as tmp:
            merged = Path(tmp) / "merged"
            folder = None if pool is None or len(shards) == 1 else merged
            fwd = (risk or needs_forwards(specs)) if forwards is None else forwards
            cad = risk_cadence if risk else None
            s1 = sharded_stage1(
                store, specs, shards, _local_first(pool), Path(tmp), folder,
                underlying=underlying, forwards=fwd,
            )  # fmt: skip
            t1 = time.perf_counter()
            if folder is None:
                results = [_stage2(s1, spec, cad) for spec in specs]
                return GridResult(s1, results, t1 - t0, time.perf_counter() - t1)
            assert pool is not None
            out = _stage2_both_ends(pool, s1, str(merged), specs, cad)
    return GridResult(s1, out, t1 - t0, time.perf_counter() - t1)


def _stage2_both_ends(
    pool: ProcessPoolExecutor,
    s1: Stage1Result,
    merged: str,
    specs: Sequence[StrategySpec],
    risk: str | None = None,
) -> list[PortfolioResult]:
    """Stage 2, one task per config: the workers take them from the front, this process from
    the back (cancelling the tasks it takes over) until they meet."""
    out: list[PortfolioResult | None] = [None] * len(specs)
    sessions = calendar.session_table()
    futures = [pool.submit(_stage2_share, merged, [spec], sessions, risk) for spec in specs]
    for j in range(len(specs) - 1, -1, -1):
        if not futures[j].cancel():  # a worker has it: it has every earlier one too
            break
        out[j] = _stage2(s1, specs[j], risk)
    for j, fut in enumerate(futures):
        if out[j] is None:
            out[j] = fut.result()[0].attach(s1)
    return [r for r in out if r is not None]


def progress_bar(total: int, desc: str, enabled: bool = True) -> Any:
    """The progress bar of long runs (tqdm; a no-op when disabled or empty)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="step",
        leave=False,
        dynamic_ncols=True,
        disable=not enabled or total == 0,
    )


@dataclass
class BacktestResult:
    stage1: Stage1Result
    results: list[PortfolioResult]
    out: Path | None = None
    #: the config's :func:`quantlab.backtest.costs.cost_curve` (computed when outputs are written)
    cost_curve: pl.DataFrame | None = None


def write_outputs(
    out: Path,
    s1: Stage1Result,
    res: PortfolioResult,
    *,
    report: bool = True,
    costs: pl.DataFrame | None = None,
) -> Path:
    """Write one config's Parquet files, the DuckDB results database and the report
    (``costs``: its cost curve, written as ``cost_curve.parquet`` and shown in the report).

    The trades' risk (``res.risk()``, :class:`quantlab.risk.greeks.TradeRisk`) goes to
    ``risk_trades.parquet`` (per trade: entry greeks, worst entry scenario, attribution totals,
    costs, P&L) and ``attribution_daily.parquet`` (per trade and ET date: the attribution terms,
    residual and mid P&L), both also tables of ``results.duckdb``, and into the report (not
    when stage 1 ran without its path forwards: no greeks)."""
    from quantlab.errors import ConfigError

    out.mkdir(parents=True, exist_ok=True)
    try:
        s1.require_forwards()
        risk = res.risk()
    except ConfigError:
        risk = None
    frames = {
        "trades": res.trades,
        "decisions": res.decisions,
        "candidates": s1.candidates.drop("legs").with_columns(
            s1.candidates["legs"]
            .list.eval(pl.element().struct.field("occ"))
            .list.join(",")
            .alias("legs")
        ),
        "equity_daily": res.equity_daily,
        "equity_minutes": res.equity_minutes,
    }
    if risk is not None:
        frames |= {"risk_trades": risk.trades, "attribution_daily": risk.daily}
    if costs is not None:
        frames["cost_curve"] = costs
    for name, df in frames.items():
        df.write_parquet(out / f"{name}.parquet")
    import duckdb

    db = out / "results.duckdb"
    tmp = db.with_suffix(".duckdb.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        for name in frames:
            con.execute(
                f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?)",
                [str(out / f"{name}.parquet")],
            )
    finally:
        con.close()
    os.replace(tmp, db)
    if report:
        from quantlab.backtest.report import write_report

        m = res.spec.management
        write_report(
            out,
            res.trades,
            res.equity_daily,
            res.capital,
            equity_minutes=res.equity_minutes,
            decisions=res.decisions,
            paths=trade_paths(s1, res),
            tp_pct=m.take_profit_pct,
            sl_pct=m.stop_loss_pct,
            title=f"quantlab backtest: {res.spec.name}",
            cost_curve=costs,
            risk=risk,
        )
    return out


def trade_paths(s1: Stage1Result, res: PortfolioResult) -> dict[str, pl.DataFrame]:
    """Per trade: minute cost to close at mid and through the fill model, entry to exit
    (dollars per share, clamped to the structure's payoff bounds as the exit rule sees them)."""
    from quantlab.strategy import kernels as k
    from quantlab.strategy.structure import strike_cents

    params = res.spec.fills.params
    idx = {cid: i for i, cid in enumerate(s1.candidates["candidate_id"].to_list())}
    out: dict[str, pl.DataFrame] = {}
    for t in res.trades.iter_rows(named=True):
        i = idx[t["candidate_id"]]
        a, b = int(s1.offsets[i]), int(s1.offsets[i + 1])
        ts = s1.path_ts[a:b]
        keep = np.flatnonzero(ts <= t["exit_ts"])
        n = len(t["legs"])
        qty = s1.qty[i].astype(np.int64)
        strike = strike_cents(np.nan_to_num(s1.strike[i]))
        lo, hi = k.payoff_bounds(qty, strike, s1.is_call[i], n)
        mid = np.full(keep.size, np.nan)
        fill = np.full(keep.size, np.nan)
        for j, r in enumerate(keep):
            m2, f = k.close_cost(s1.path_bid[a + r], s1.path_ask[a + r], qty, n, params, lo, hi)
            if m2 != k.NO_NET:
                mid[j], fill[j] = m2 / 200.0, f / 100.0
        out[t["trade_id"]] = pl.DataFrame({"ts": ts[keep], "mid_cost": mid, "exit_cost": fill})
    return out


#: share of decisions without a quote at their time above which :func:`warn_missing_quotes` warns
NO_QUOTE_WARN_SHARE = 0.5


def quote_times(store: st.StoreLike, underlying: str, day: dt.date) -> str:
    """The ET times at which a stored session has quotes, in words ("16:00 ET only",
    "09:30-16:15 ET, 406 minutes")."""
    q = st.read_partition(store, "quotes", underlying, day, columns=["ts"])
    if q is None or q.height == 0:
        return "no quotes"
    hm = q.select(
        pl.col("ts")
        .cast(pl.Datetime("ns", "UTC"))
        .dt.convert_time_zone(str(calendar.ET))
        .dt.strftime("%H:%M")
        .unique()
        .sort()
    )["ts"].to_list()
    if len(hm) <= 3:
        return f"{', '.join(hm)} ET only"
    return f"{hm[0]}-{hm[-1]} ET, {len(hm)} distinct minutes"


def warn_missing_quotes(store: st.StoreLike, s1: Stage1Result, underlying: str) -> str:
    """Warn (:class:`~quantlab.errors.DataError`'s sibling ``DataWarning``) when most decisions
    found no quote at their time, naming when the store does have quotes; returns the message
    ("" when there is nothing to say)."""
    import warnings

    from quantlab.backtest.select import NO_QUOTE_AT_TIME
    from quantlab.errors import DataWarning

    n = s1.candidates.height + s1.rejections.height
    miss = s1.rejections.filter(pl.col("reason") == NO_QUOTE_AT_TIME)
    if n == 0 or miss.height <= NO_QUOTE_WARN_SHARE * n:
        return ""
    day = miss["entry_date"][0]
    times = sorted(set(miss["entry_time"].to_list()))
    msg = (
        f"{miss.height} of {n} decisions found no quote at their time ({', '.join(times)} ET): "
        f"this store holds quotes at {quote_times(store, underlying, day)} on {day}. "
        "Use entry times at which the store has quotes."
    )
    warnings.warn(msg, DataWarning, stacklevel=2)
    return msg


def backtest(
    config: BacktestConfig | StrategySpec,
    store: st.StoreLike = "data",
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    out: Path | str | None = None,
    workers: int | None = None,
    progress: bool = False,
    report: bool = True,
) -> BacktestResult:
    """Run one strategy over the store and (with ``out``) write its outputs, its cost curve
    among them (:func:`quantlab.backtest.costs.cost_curve`, on the same stage 1)."""
    cfg = config if isinstance(config, BacktestConfig) else BacktestConfig(strategy=config)
    spec = cfg.strategy
    days = st.list_days(store, "quotes", spec.underlying)
    if not days:
        raise DataError(
            f"store {st.store_root(store)} holds no {spec.underlying} quotes; run `quantlab data synth` and `quantlab data ingest` first."
        )
    a = start or cfg.start or days[0]
    b = end or cfg.end or days[-1]
    s1 = stage1(
        store, [spec], a, b, underlying=spec.underlying, workers=workers, progress=progress,
        forwards=True,  # the report's greeks and attribution
    )  # fmt: skip
    warn_missing_quotes(store, s1, spec.underlying)
    res = run_stage2(s1, spec)
    if out is None:
        return BacktestResult(s1, [res])
    from quantlab.backtest.costs import cost_curve

    costs = cost_curve(s1, spec)
    out_dir = write_outputs(Path(out), s1, res, report=report, costs=costs)
    return BacktestResult(s1, [res], out_dir, costs)
