"""Running a backtest: stage 1 sharded by date over a process pool, stage 2 per config, outputs.

``quantlab backtest CONFIG`` and :func:`backtest` write to ``--out`` (default ``out/<name>/``):

- ``trades.parquet`` (the shared trade-record schema), ``decisions.parquet`` (every proposed
  candidate with its decision and reason), ``candidates.parquet`` (stage 1),
  ``equity_daily.parquet``, ``equity_minutes.parquet``;
- ``results.duckdb`` with the same tables, for SQL;
- ``report.html`` and PNGs (equity, drawdown, P&L histogram, breakdowns, trade inspector).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.backtest.stage1 import NO_PRICE, Stage1Result, load_stage1, run_stage1, save_stage1
from quantlab.backtest.stage2 import PortfolioResult, run_stage2
from quantlab.config import StrictModel, read_yaml
from quantlab.data import store as st
from quantlab.errors import DataError
from quantlab.strategy.spec import StrategySpec


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
    strat = data["strategy"]
    if isinstance(strat, str):
        data = data | {"strategy": StrategySpec.from_yaml(p.parent / strat).model_dump()}
    return BacktestConfig.from_dict(data, source=str(p))


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
) -> str:
    """Run stage 1 for one date shard and write it to ``folder`` (a worker task of the process
    pool here and of the sweep executors: arrays go back through files, not pickles)."""
    save_stage1(run_stage1(store, specs, start, end, underlying=underlying), folder)
    return str(folder)


def _stack_padded(arrays: list[np.ndarray]) -> np.ndarray:
    """Row-stack int32 cent paths whose leg widths may differ (padding with ``NO_PRICE``)."""
    width = max(a.shape[1] for a in arrays)
    out = np.full((sum(a.shape[0] for a in arrays), width), NO_PRICE, dtype=np.int32)
    row = 0
    for a in arrays:
        out[row : row + a.shape[0], : a.shape[1]] = a
        row += a.shape[0]
    return out


def merge_stage1(parts: Sequence[Stage1Result]) -> Stage1Result:
    """Concatenate stage-1 shards (in date order) into one result."""
    if len(parts) == 1:
        return parts[0]
    offsets = [np.zeros(1, np.int64)]
    base = 0
    for p in parts:
        offsets.append(p.offsets[1:] + base)
        base += int(p.offsets[-1])
    days = sorted({d for p in parts for d in p.days})
    import hashlib

    checksum = hashlib.sha256("".join(p.data_checksum for p in parts).encode()).hexdigest()[:16]
    return Stage1Result(
        candidates=pl.concat([p.candidates for p in parts]),
        rejections=pl.concat([p.rejections for p in parts]),
        offsets=np.concatenate(offsets),
        path_ts=np.concatenate([p.path_ts for p in parts]),
        path_bid=_stack_padded([p.path_bid for p in parts]),
        path_ask=_stack_padded([p.path_ask for p in parts]),
        qty=np.concatenate([p.qty for p in parts]),
        strike=np.concatenate([p.strike for p in parts]),
        is_call=np.concatenate([p.is_call for p in parts]),
        entry_bid=np.concatenate([p.entry_bid for p in parts]),
        entry_ask=np.concatenate([p.entry_ask for p in parts]),
        settle_value=np.concatenate([p.settle_value for p in parts]),
        day_ids=[d for p in parts for d in p.day_ids],
        data_checksum=checksum,
        days=days,
    )


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
) -> Stage1Result:
    """Stage 1 over [start, end], sharded by entry date over ``workers`` processes.

    Each shard follows its own candidates past its last entry day, so shards give exactly the
    result of one pass; ranges shorter than ``min_shard_days`` per worker run in-process.
    """
    stored = set(st.list_days(store, "quotes", underlying))
    days = [d for d in calendar.sessions(start, end) if d in stored]
    if not days:
        raise DataError(
            f"no stored sessions of {underlying} between {start} and {end} in {st.store_root(store)}"
        )
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    shards = _shards(days, min(workers, max(1, len(days) // max(min_shard_days, 1))))
    if len(shards) == 1:
        bar = _progress(len(days), "stage 1: candidates") if progress else None
        tick = None if bar is None else (lambda _d, b=bar: b.update(1))
        res = run_stage1(store, specs, days[0], days[-1], underlying=underlying, progress=tick)
        if bar:
            bar.close()
        return res
    root = str(st.store_root(store))
    parts: list[Stage1Result] = []
    bar = _progress(len(shards), "stage 1: date shards") if progress else None
    # spawn, not fork: forking a process whose numba/duckdb threads are running can deadlock
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="quantlab-stage1-") as tmp:
        folders = [str(Path(tmp) / f"shard-{i}") for i in range(len(shards))]
        n = len(shards)
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
            for folder in pool.map(stage1_shard, [root] * n, [list(specs)] * n, [a for a, _ in shards],
                                   [b for _, b in shards], [underlying] * n, folders):  # fmt: skip
                parts.append(load_stage1(folder, mmap=False))
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    return merge_stage1(parts)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)


@dataclass
class BacktestResult:
    stage1: Stage1Result
    results: list[PortfolioResult]
    out: Path | None = None


def write_outputs(
    out: Path, s1: Stage1Result, res: PortfolioResult, *, report: bool = True
) -> Path:
    """Write one config's Parquet files, the DuckDB results database and the report."""
    out.mkdir(parents=True, exist_ok=True)
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
            out, res.trades, res.equity_daily, res.capital, equity_minutes=res.equity_minutes,
            decisions=res.decisions, paths=trade_paths(s1, res), tp_pct=m.take_profit_pct,
            sl_pct=m.stop_loss_pct, title=f"quantlab backtest: {res.spec.name}",
        )  # fmt: skip
    return out


def trade_paths(s1: Stage1Result, res: PortfolioResult) -> dict[str, pl.DataFrame]:
    """Per trade: minute cost to close at mid and through the fill model, entry to exit."""
    from quantlab.backtest import _exit_kernels as ek

    fm = res.spec.fills
    idx = {cid: i for i, cid in enumerate(s1.candidates["candidate_id"].to_list())}
    out: dict[str, pl.DataFrame] = {}
    for t in res.trades.iter_rows(named=True):
        i = idx[t["candidate_id"]]
        ts, pb, pa = s1.quotes(i)
        keep = np.flatnonzero(ts <= t["exit_ts"])
        n = len(t["legs"])
        mid = np.full(keep.size, np.nan)
        fill = np.full(keep.size, np.nan)
        for j, k in enumerate(keep):
            mid[j], fill[j] = ek.close_costs(
                pb[k], pa[k], s1.qty[i], n, fm.kind_code, fm.k, fm.tick_small, fm.tick_large,
                fm.tick_threshold,
            )  # fmt: skip
        ts = ts[keep]
        out[t["trade_id"]] = pl.DataFrame({"ts": ts, "mid_cost": mid, "exit_cost": fill})
    return out


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
    """Run one strategy over the store and (with ``out``) write its outputs."""
    cfg = config if isinstance(config, BacktestConfig) else BacktestConfig(strategy=config)
    spec = cfg.strategy
    days = st.list_days(store, "quotes", spec.underlying)
    if not days:
        raise DataError(
            f"store {st.store_root(store)} holds no {spec.underlying} quotes; run `quantlab data synth` and `quantlab data ingest` first."
        )
    a = start or cfg.start or days[0]
    b = end or cfg.end or days[-1]
    s1 = stage1(store, [spec], a, b, underlying=spec.underlying, workers=workers, progress=progress)
    res = run_stage2(s1, spec)
    out_dir = None
    if out is not None:
        out_dir = write_outputs(Path(out), s1, res, report=report)
    return BacktestResult(s1, [res], out_dir)
