"""Every account breaker and greek limit decides the same in the backtest and in a simulated
live replay of the same days (the live runner computes the book's greeks from its chain
snapshot, the backtest from its stage-1 paths, both through :mod:`quantlab.risk`), triggers
with its own reason, and never triggers when it is not set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantlab.backtest import stage2 as s2
from quantlab.backtest.engine import backtest
from quantlab.backtest.stage1 import run_stage1
from quantlab.brokers.simulated import SimulatedBroker
from quantlab.live import Journal, LiveConfig, LiveRunner
from quantlab.strategy import StrategySpec
from quantlab.strategy import book_kernels as bk
from tests.conftest import MARKET, SyntheticStore
from tests.live.test_sim_live import DAYS

BUSY = {
    "name": "risk-parity",
    "dte": {"target": 2, "tolerance": 1},
    "entry": {"times": ["10:00", "11:00", "12:30", "14:00", "15:30"]},
    "short_delta": 0.25,
    "width": 25,
    "management": {"take_profit_pct": 25, "stop_loss_pct": 50},
    "risk": {"max_open_trades": 4, "max_new_trades_per_day": 4, "no_new_after_stop": False},
}
NEW_REASONS = {r for r in bk.D_REASONS[bk.D_DRAWDOWN :] if r}


@pytest.fixture(scope="module")
def store(synthetic_store: SyntheticStore) -> Path:
    return synthetic_store(**MARKET)


@pytest.fixture(scope="module")
def per_contract(store: Path) -> dict[str, float]:
    """Median greeks and worst scenario loss of one contract of the BUSY candidates."""
    spec = StrategySpec.from_dict(BUSY | {"risk": BUSY["risk"] | {"max_scenario_loss": 1e9}})
    s1 = run_stage1(store, [spec], DAYS[0], DAYS[-1])
    x = s2._inputs(s1, spec)
    risk = s2._risk_inputs(s1, spec, x, s2._exits(s1, spec, x))
    k, scen = risk[7], risk[8]
    return {
        "delta_pct": float(np.median(np.abs(k[:, bk.K_DELTA_PCT]))),
        "vega": float(np.median(np.abs(k[:, bk.K_VEGA]))),
        "gamma": float(np.median(-k[:, bk.K_GAMMA_PCT])),
        "scenario": float(np.median(-scen.min(axis=1))),
    }


def _both(store: Path, risk: dict, tmp: Path) -> tuple:
    spec = StrategySpec.from_dict(BUSY | {"risk": BUSY["risk"] | risk})
    bt = backtest(spec, store, start=DAYS[0], end=DAYS[-1], workers=1, report=False).results[0]
    cfg = LiveConfig.from_dict({"strategy": "unused.yaml", "kill_file": str(tmp / "KILL")})
    broker = SimulatedBroker(store, DAYS[0], spec.fills, spec.fees)
    run = LiveRunner(cfg, broker, Journal(tmp / "j.duckdb"), spec=spec, notify=lambda *_: None)
    for d in DAYS:
        run.run_day(d)
    return bt, run


LIMITS = {
    "max_portfolio_delta": lambda p: {"max_delta_per_pct": round(2.5 * p["delta_pct"], 2)},
    "max_portfolio_vega": lambda p: {"max_vega": round(2.5 * p["vega"], 2)},
    "max_short_gamma": lambda p: {"max_short_gamma": round(2.5 * p["gamma"], 2)},
    "max_scenario_loss": lambda p: {"max_scenario_loss": round(2.5 * p["scenario"], 2)},
    "max_drawdown": lambda p: {"max_drawdown_pct": 0.05},
    "weekly_loss_limit": lambda p: {"weekly_loss_limit": 40.0},
    "loss_streak_pause": lambda p: {"max_consecutive_losses": 1, "loss_pause_days": 1},
}


@pytest.mark.parametrize("reason", sorted(LIMITS))
def test_each_limit_triggers_the_same_live_and_in_the_backtest(
    store: Path, per_contract: dict, reason: str, tmp_path: Path
) -> None:
    risk = LIMITS[reason](per_contract)
    bt, run = _both(store, risk, tmp_path)
    cols = ["candidate_id", "entry_ts", "decision", "reason", "contracts"]
    live = run.journal.table("decisions", "paper")
    cols = [c for c in cols if c in live.columns and c in bt.decisions.columns]
    assert (
        live.select(cols)
        .sort("candidate_id")
        .equals(bt.decisions.select(cols).sort("candidate_id"))
    ), risk
    reasons = set(bt.decisions["reason"])
    assert reason in reasons, (risk, reasons)
    assert not (reasons & NEW_REASONS) - {reason}


def test_no_limit_set_no_new_reason(store: Path) -> None:
    bt = backtest(
        StrategySpec.from_dict(BUSY), store, start=DAYS[0], end=DAYS[-1], workers=1, report=False
    ).results[0]
    assert not set(bt.decisions["reason"]) & NEW_REASONS
