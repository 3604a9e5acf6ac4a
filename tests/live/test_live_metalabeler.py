"""The live runner's champion gate against the backtester's stage 2 with the same model's filter.

A tiny real model is trained through :func:`quantlab.ml.train.train` (real Optuna, LightGBM and an
MLflow sqlite registry in a temp folder) on 5 sessions of the shared synthetic market (a
private copy: training writes features), registered with the alias ``champion``; the simulated runner then trades the last two sessions with the gate on, and
must take, skip and close exactly what stage 2 does with ``allowed = {p >= threshold}``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab import calendar
from quantlab.backtest.engine import stage1
from quantlab.backtest.stage2 import run_stage2
from quantlab.brokers.simulated import SimulatedBroker
from quantlab.errors import ConfigError, DataError
from quantlab.features import build_features
from quantlab.features.live import CandidateFeatures
from quantlab.live import Journal, LiveConfig, LiveRunner, MetaGate, MetaLabelerConfig
from quantlab.strategy import StrategySpec
from tests.conftest import MARKET, SyntheticStore
from tests.live.parity import closed_by, open_after

DAYS = calendar.sessions(dt.date(2024, 3, 4), dt.date(2024, 3, 8))
LIVE_DAYS = DAYS[-2:]
MODEL = "live-gate-test"
TRAIN_SPEC = {
    "name": "gate-put",
    "dte": {"target": 1, "tolerance": 1},
    "entry": {"times": [f"{h:02d}:{m:02d}" for h in range(10, 16) for m in (0, 20, 40)]},
    "short_delta": 0.15,
    "width": 10,
    "filters": {"min_credit": 0.0},
    "management": {"take_profit_pct": 50, "stop_loss_pct": 100},
    "risk": {"max_open_trades": 3, "max_new_trades_per_day": 4},
}
LIVE_SPEC = StrategySpec.from_dict(
    TRAIN_SPEC
    | {
        "name": "gate-live",
        "entry": {"times": [f"{h:02d}:{m:02d}" for h in range(10, 15) for m in (0, 30)]},
        "risk": {"max_open_trades": 2, "max_new_trades_per_day": 3},
    }
)


@pytest.fixture(scope="module")
def store(synthetic_store: SyntheticStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shared synthetic market (training writes features into it)."""
    return synthetic_store(**MARKET, copy_to=tmp_path_factory.mktemp("gate") / "store")


@pytest.fixture(scope="module")
def champion(store: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from quantlab.ml.train import TrainConfig, train

    work = tmp_path_factory.mktemp("gate_mlflow")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = TrainConfig.from_dict(
        {
            "strategy": TRAIN_SPEC,
            "store": str(store),
            "start": DAYS[0],
            "end": DAYS[-1],
            "test_fraction": 0.3,
            "test_embargo_days": 0.5,
            "cv": {"kind": "purged_kfold", "n_splits": 3},
            "optuna": {
                "n_trials": 1,
                "seed": 1,
                "storage": str(work / "optuna.db"),
                "study_name": "gate",
                "n_estimators": [10, 20],
            },
            "model_name": MODEL,
            "workers": 1,
            "calibration": None,
        }
    )
    try:
        yield train(cfg), uri
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def backtested(store: Path, champion):  # type: ignore[no-untyped-def]
    """Stage 1 of the live days, the champion's p of every candidate, a threshold that splits
    them, and stage 2 with ``allowed = {p >= threshold}``."""
    _, uri = champion
    gate = MetaGate.load(MetaLabelerConfig(model=MODEL, tracking_uri=uri))
    s1 = stage1(store, [LIVE_SPEC], LIVE_DAYS[0], LIVE_DAYS[-1], workers=1)
    feats = build_features(store, s1, gate.feature_set)
    p = gate.proba(feats)
    u = np.unique(p)
    assert u.size >= 2, "the tiny model should separate the candidates at least a little"
    k = int(np.searchsorted(u, np.median(p)))
    k = min(max(k, 1), u.size - 1)
    thr = float(0.5 * (u[k - 1] + u[k]))
    proba = dict(zip(feats["candidate_id"].to_list(), p.tolist(), strict=True))
    allowed = {c for c, q in proba.items() if q >= thr}
    return s1, feats, proba, thr, run_stage2(s1, LIVE_SPEC, allowed=allowed)


@pytest.fixture(scope="module")
def gated(store: Path, champion, backtested, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    _, uri = champion
    thr = backtested[3]
    tmp = tmp_path_factory.mktemp("gate_live")
    cfg = LiveConfig.from_dict(
        {
            "strategy": "unused.yaml",
            "kill_file": str(tmp / "KILL"),
            "meta_labeler": {"model": MODEL, "threshold": thr, "tracking_uri": uri},
        }
    )
    broker = SimulatedBroker(store, LIVE_DAYS[0], LIVE_SPEC.fills, LIVE_SPEC.fees)
    run = LiveRunner(
        cfg, broker, Journal(tmp / "j.duckdb"), spec=LIVE_SPEC, notify=lambda k, m, d: None
    )
    for d in LIVE_DAYS:
        run.run_day(d)
    return run


def test_gate_loads_the_champion_with_its_training_threshold(champion) -> None:  # type: ignore[no-untyped-def]
    res, uri = champion
    gate = MetaGate.load(MetaLabelerConfig(model=MODEL, tracking_uri=uri))
    assert gate.threshold == pytest.approx(res.threshold, abs=1e-12)
    assert gate.version == res.model_version and gate.feature_set.version == res.feature_version
    assert gate.columns == gate.feature_set.columns
    fixed = MetaGate.load(MetaLabelerConfig(model=MODEL, tracking_uri=uri, threshold=0.55))
    assert fixed.threshold == 0.55 and fixed.reason(0.41) == "meta_labeler p=0.41<0.55"
    assert fixed.reason(0.5499) == "meta_labeler p=0.5499<0.5500" and fixed.reason(0.55) == ""


def test_unknown_model_or_bad_threshold_is_a_clear_config_error(champion) -> None:  # type: ignore[no-untyped-def]
    _, uri = champion
    with pytest.raises(ConfigError, match="no-such-model"):
        MetaGate.load(MetaLabelerConfig(model="no-such-model", tracking_uri=uri))
    with pytest.raises(ConfigError, match="@nope"):
        MetaGate.load(MetaLabelerConfig(model=MODEL, alias="nope", tracking_uri=uri))
    with pytest.raises(ConfigError, match="threshold"):
        LiveConfig.from_dict({"strategy": "s.yaml", "meta_labeler": {"model": "m", "threshold": 2}})
    with pytest.raises(ConfigError, match="modle"):
        LiveConfig.from_dict({"strategy": "s.yaml", "meta_labeler": {"modle": "m"}})


def test_live_feature_rows_equal_the_feature_store(store: Path, backtested) -> None:  # type: ignore[no-untyped-def]
    s1, feats = backtested[0], backtested[1]
    cf = CandidateFeatures(store)
    rows = []
    for i, c in enumerate(s1.candidates.iter_rows(named=True)):
        legs = [
            lg | {"bid": s1.entry_bid[i, j], "ask": s1.entry_ask[i, j]}
            for j, lg in enumerate(c["legs"])
        ]
        rows.append(
            cf.row(
                candidate_id=c["candidate_id"],
                entry_ts=c["entry_ts"],
                root=c["root"],
                expiry=c["expiry"],
                dte=c["dte"],
                legs=legs,
            )
        )
    assert_frame_equal(pl.concat(rows), feats)
    with pytest.raises(DataError, match="no SPX quotes for 2024-04-04"):  # after the store
        c = s1.candidates.row(0, named=True)
        cf.row(
            candidate_id="x",
            entry_ts=c["entry_ts"] + 28 * 86_400_000_000_000,
            root=c["root"],
            expiry=c["expiry"],
            dte=1,
            legs=[c["legs"][0] | {"bid": 1.0, "ask": 1.1}],
        )


def test_gated_days_equal_stage2_with_the_models_filter(gated, backtested) -> None:  # type: ignore[no-untyped-def]
    _, _, proba, thr, bt = backtested
    dec = gated.journal.table("decisions", "paper").sort("candidate_id")
    ref = bt.decisions.sort("candidate_id")
    assert dec["candidate_id"].to_list() == ref["candidate_id"].to_list()
    gate_skips = dec.filter(pl.col("reason").str.starts_with("meta_labeler p="))
    assert gate_skips.height > 0 and (gate_skips["decision"] == "rejected").all()
    assert dec.filter(pl.col("decision") == "taken").height > 0
    # the gate's skip is stage 2's "filtered_by_model"; everything else is identical
    live = dec.with_columns(
        pl.when(pl.col("reason").str.starts_with("meta_labeler p="))
        .then(pl.lit("rejected"))
        .otherwise(pl.col("decision"))
        .alias("decision"),
        pl.when(pl.col("reason").str.starts_with("meta_labeler p="))
        .then(pl.lit("filtered_by_model"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )
    cols = ["candidate_id", "entry_ts", "decision", "reason", "expiry", "dte"]
    assert_frame_equal(live.select(cols), ref.select(cols))
    # p is recorded for every candidate the gate saw, equal to the backtest's batch prediction
    seen = dec.filter(pl.col("meta_p").is_not_null())
    assert seen.height > 0
    for cid, p, reason in seen.select("candidate_id", "meta_p", "reason").iter_rows():
        assert p == pytest.approx(proba[cid], abs=1e-12)
        assert (p < thr) == reason.startswith("meta_labeler p=")
    trades = gated.journal.table("trades", "paper").sort("trade_id")
    closed = closed_by(bt.trades, LIVE_DAYS[-1])
    assert trades.height == closed.height > 0
    same = ["trade_id", "entry_ts", "exit_ts", "exit_reason", "contracts"]
    assert_frame_equal(trades.select(same), closed.select(same))
    np.testing.assert_allclose(trades["pnl"].to_numpy(), closed["pnl"].to_numpy(), atol=1e-6)
    assert all(proba[c] >= thr for c in trades["candidate_id"].to_list())
    assert set(gated.open) == open_after(bt.trades, LIVE_DAYS[-1])


def test_reconciliation_with_the_gate_is_exact(gated, backtested, store: Path, champion) -> None:  # type: ignore[no-untyped-def]
    from quantlab.live.reconcile import reconcile_day

    _, uri = champion
    gate = MetaGate.load(MetaLabelerConfig(model=MODEL, tracking_uri=uri, threshold=backtested[3]))
    for d in LIVE_DAYS:
        rep = reconcile_day(gated.journal, store, LIVE_SPEC, d, "paper", gate=gate)
        assert rep.parity, rep.breaks
        assert not any("the runner used" in n for n in rep.notes)
        skips = rep.decisions.filter(pl.col("live_reason").str.starts_with("meta_labeler p="))
        assert (skips["bt_reason"] == "filtered_by_model").all()
    # without the runner's filter the backtest decides differently, and the report says why
    rep = reconcile_day(gated.journal, store, LIVE_SPEC, LIVE_DAYS[0], "paper")
    assert not rep.parity and any("gated entries with" in n for n in rep.notes)


def test_probability_sizing_live_equals_the_backtest(  # type: ignore[no-untyped-def]
    store: Path, champion, backtested, tmp_path: Path
) -> None:
    """The champion gate with probability sizing: live sizes each entry from its p exactly as
    stage 2 does from the batch predictions, and applies the risk rules at that size."""
    _, uri = champion
    s1, _, proba, thr, _ = backtested
    spec = LIVE_SPEC.model_copy(
        update={
            "sizing": LIVE_SPEC.sizing.model_copy(update={"mode": "probability", "contracts": 6})
        }
    )
    allowed = {c for c, q in proba.items() if q >= thr}
    bt = run_stage2(s1, spec, allowed=allowed, probabilities=proba)
    cfg = LiveConfig.from_dict(
        {
            "strategy": "unused.yaml",
            "kill_file": str(tmp_path / "KILL"),
            "meta_labeler": {"model": MODEL, "threshold": thr, "tracking_uri": uri},
        }
    )
    broker = SimulatedBroker(store, LIVE_DAYS[0], spec.fills, spec.fees)
    run = LiveRunner(
        cfg, broker, Journal(tmp_path / "j.duckdb"), spec=spec, notify=lambda k, m, d: None
    )
    for d in LIVE_DAYS:
        run.run_day(d)
    trades = run.journal.table("trades", "paper").sort("trade_id")
    closed = closed_by(bt.trades, LIVE_DAYS[-1])
    cols = ["trade_id", "contracts", "exit_reason", "pnl", "fees"]
    assert trades.height > 0 and trades.select(cols).equals(closed.select(cols))
    want = [int(np.floor(6 * proba[c] + 0.5)) for c in bt.trades["candidate_id"].to_list()]
    assert bt.trades["contracts"].to_list() == want
    dec = run.journal.table("decisions", "paper").sort("candidate_id")
    live = dec.with_columns(
        pl.when(pl.col("reason").str.starts_with("meta_labeler p="))
        .then(pl.lit("filtered_by_model"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )
    ref = bt.decisions.sort("candidate_id")
    assert live["reason"].to_list() == ref["reason"].to_list()
