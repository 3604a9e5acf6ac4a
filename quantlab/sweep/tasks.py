"""The worker side of a sweep: stage 2 of a batch of configs, and a best config's report.

Both run on any executor (top-level functions, picklable arguments). A config's results do
not depend on the batch it runs in, nor on the worker.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: a reported config's cost curve, beside its ``report.html``
COST_CURVE_FILE = "cost_curve.parquet"


def config_files(folder: Path, res: Any) -> dict[str, float]:
    """Write one config's results to ``folder`` and return its metrics (by name, as in
    ``metrics.json``): trades, decisions and daily equity Parquet, ``metrics.json``. Its
    ``status.json`` is written after these."""
    from quantlab.backtest.analytics import config_metrics

    res.trades.write_parquet(folder / "trades.parquet")
    res.decisions.write_parquet(folder / "decisions.parquet")
    res.equity_daily.write_parquet(folder / "equity_daily.parquet")
    metrics = dict(sorted(config_metrics(res.trades, res.equity_daily, res.capital).items()))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def write_status(folder: Path, status: dict[str, Any]) -> None:
    """``status.json`` last and atomically: a config folder with it is complete."""
    tmp = folder / "status.json.tmp"
    tmp.write_text(json.dumps(status))
    os.replace(tmp, folder / "status.json")


def stage2_batch(
    s1_folder: str, items: list[tuple[str, str, str]], sessions: Any = None
) -> list[dict[str, Any]]:
    """Stage 2 of each ``(config_id, spec JSON, output folder)`` in ``items`` on the shared
    stage-1 result in ``s1_folder`` (loaded once per worker), each written to its folder.

    Returns one record per config: ``status`` (what ``status.json`` holds: ``done`` or
    ``failed`` with the error, and the seconds), and for a done config its ``metrics`` and
    ``returns`` (daily returns, as the sweep summary uses them). One failing config does not
    stop the others. ``sessions``: the caller's session calendar
    (:func:`quantlab.calendar.session_table`), so a spawned worker need not build it.
    """
    from quantlab import calendar
    from quantlab.backtest.analytics import daily_returns
    from quantlab.backtest.engine import shared_stage1
    from quantlab.backtest.stage2 import run_stage2
    from quantlab.strategy.spec import StrategySpec

    if sessions is not None:
        calendar.use_session_table(sessions)
    out = []
    for config_id, spec_json, folder in items:
        t0 = time.perf_counter()
        cdir = Path(folder)
        cdir.mkdir(parents=True, exist_ok=True)
        rec: dict[str, Any] = {}
        try:
            res = run_stage2(shared_stage1(s1_folder), StrategySpec.model_validate_json(spec_json))
            rec["metrics"] = config_files(cdir, res)
            rec["returns"] = np.asarray(daily_returns(res.equity_daily, res.capital), float)
            status: dict[str, Any] = {"config_id": config_id, "status": "done", "error": ""}
        except Exception as exc:  # one failing config must not stop the sweep
            rec = {}
            status = {
                "config_id": config_id,
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
            }
        status["seconds"] = time.perf_counter() - t0
        write_status(cdir, status)
        out.append(rec | {"status": status})
    return out


def report_task(s1_folder: str, spec_json: str, folder: str, sessions: Any = None) -> str:
    """The HTML/PNG report (with the trade inspector and the cost curve) of one config, written
    to ``folder`` with its ``cost_curve.parquet`` (:func:`quantlab.backtest.costs.cost_curve`
    on the shared stage 1: stage 2 again per ``k``, about 11 runs, so only for the configs
    that get a report; :func:`break_even_of` reads the break-even ``k`` back)."""
    from quantlab import calendar
    from quantlab.backtest.costs import cost_curve
    from quantlab.backtest.engine import shared_stage1, trade_paths
    from quantlab.backtest.report import write_report
    from quantlab.backtest.stage2 import run_stage2
    from quantlab.strategy.spec import StrategySpec

    if sessions is not None:
        calendar.use_session_table(sessions)
    s1 = shared_stage1(s1_folder)
    spec = StrategySpec.model_validate_json(spec_json)
    res = run_stage2(s1, spec)
    m = spec.management
    curve = cost_curve(s1, spec)
    Path(folder).mkdir(parents=True, exist_ok=True)
    curve.write_parquet(Path(folder) / COST_CURVE_FILE)  # before report.html, which marks done
    write_report(
        Path(folder),
        res.trades,
        res.equity_daily,
        res.capital,
        decisions=res.decisions,
        paths=trade_paths(s1, res),
        tp_pct=m.take_profit_pct,
        sl_pct=m.stop_loss_pct,
        title=spec.name,
        n_boot=500,
        cost_curve=curve,
        risk=res.risk() if s1.path_fwd.size == s1.path_ts.size else None,
    )
    return folder


def break_even_of(report_folder: Path) -> dict[str, Any]:
    """``break_even_k`` (:func:`quantlab.backtest.costs.break_even_k`: None when the config
    never stops making money on the grid, or loses money even at mid) and ``break_even`` (the
    sentence that says which) of a config whose report is in ``report_folder``; empty when the
    report has no cost curve."""
    import polars as pl

    from quantlab.backtest.costs import break_even_k, break_even_sentence

    path = report_folder / COST_CURVE_FILE
    if not path.is_file():
        return {}
    curve = pl.read_parquet(path)
    return {"break_even_k": break_even_k(curve), "break_even": break_even_sentence(curve)}


@dataclass
class PendingReports:
    """Reports being written by :func:`report_task` on an executor: ``ids`` their configs;
    iterating waits for them, yielding each config id as its report is written, then calls
    ``then`` (once) when they are all written."""

    ids: list[str] = field(default_factory=list)
    running: Iterator[tuple[int, Any]] = field(default_factory=lambda: iter(()))
    then: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[str]:
        for i, _ in self.running:
            yield self.ids[i]
        if self.then is not None:
            done, self.then = self.then, None
            done()
