"""The fill model checked against fills: the k formula on hand-made quotes, and the k of a
simulated broker configured to fill at a known k recovered from its live journal."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from quantlab.brokers.simulated import SimulatedBroker
from quantlab.cli import app
from quantlab.execution import FillModel
from quantlab.live import Journal, LiveConfig, LiveRunner
from quantlab.live.fill_k import (
    achieved_k,
    breakdown,
    delta_bucket,
    estimate_k,
    fill_k_path,
    fill_k_report,
)
from tests.conftest import MARKET, SyntheticStore
from tests.live.test_reconcile import DAYS, SPEC

SPXW_TICKS = np.array([0.05, 0.10])


def _quotes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` legs' bid/ask on the SPX grid (5 cents below $3, 10 at or above)."""
    bid = np.round(rng.uniform(0.0, 6.0, n) / 0.05) * 0.05
    bid = np.where(bid >= 3.0, np.round(bid / 0.10) * 0.10, bid)
    ask = bid + rng.integers(1, 8, n) * np.where(bid >= 3.0, 0.10, 0.05)
    return np.round(bid, 2), np.round(ask, 2)


def test_k_formula_on_hand_made_quotes() -> None:
    # a put spread sold: short 1.00/1.20, long 0.40/0.50 -> mid 0.65, width 0.30
    bid, ask, sold = [1.00, 0.40], [1.20, 0.50], [-1, 1]
    assert achieved_k(bid, ask, sold, 0.65)[:2] == (0.0, pytest.approx(-1 / 3))  # at mid
    assert achieved_k(bid, ask, sold, 0.50)[0] == 0.5  # natural: 1.00 - 0.50
    k, k_lo, mid, width = achieved_k(bid, ask, sold, 0.55)
    assert (mid, width) == (0.65, 0.3) and k == pytest.approx(1 / 3) and k_lo == pytest.approx(0)
    # bought back (the exit): debit, mirrored
    assert achieved_k(bid, ask, [1, -1], -0.65)[0] == 0.0
    assert achieved_k(bid, ask, [1, -1], -0.80)[0] == 0.5  # natural: -(1.20 - 0.40)
    assert achieved_k(bid, ask, [1, -1], -0.75)[0] == pytest.approx(1 / 3)
    # better than mid is negative; no quote or no width: no k
    assert achieved_k(bid, ask, sold, 0.71)[0] == pytest.approx(-0.2)
    assert math.isnan(achieved_k([1.0], [1.0], [-1], 1.0)[0])
    assert math.isnan(achieved_k([1.0, math.nan], [1.2, math.nan], sold, 0.5)[0])
    assert delta_bucket(0.12) == "0.10-0.15" and delta_bucket(math.nan) == "?"


@pytest.mark.parametrize("k", [0.0, 0.1, 0.2, 0.3, 0.45])
def test_a_fill_model_price_bounds_its_k(k: float) -> None:
    """Every mid_k fill (tick rounded) lies in k <= achieved < k + ticks / width, so the model's
    k is in (k_lo, k] of each fill, for entries (credit) and exits (debit) alike."""
    rng = np.random.default_rng(11)
    fm = FillModel(k=k)
    for _ in range(300):
        n = int(rng.integers(2, 5))
        bid, ask = _quotes(rng, n)
        ratio = rng.choice([-1, 1], n) * rng.integers(1, 3, n)
        net = fm.net_price(bid, ask, ratio)
        got, lo, _, width = achieved_k(bid, ask, ratio, net, fm)
        assert lo < k <= got + 1e-12
        assert got - k < float(np.sum(np.abs(ratio) * SPXW_TICKS[1])) / width


def _sim_journal(root: Path, work: Path, k: float) -> Path:
    """A paper replay of DAYS through a simulated broker that fills at the mid_k price of
    ``k`` (SPEC's own limits are at k = 0.30, so every order fills at the broker's price)."""
    cfg = LiveConfig.from_dict({"strategy": "unused.yaml", "kill_file": str(work / "KILL")})
    path = work / f"k{k}.duckdb"
    journal = Journal(path)
    broker = SimulatedBroker(root, DAYS[0], FillModel(k=k), SPEC.fees)
    run = LiveRunner(cfg, broker, journal, spec=SPEC, notify=lambda kind, m, d: None)
    for d in DAYS:
        run.run_day(d)
    journal.close()
    return path


@pytest.fixture(scope="module")
def market(synthetic_store: SyntheticStore) -> Path:
    return synthetic_store(**MARKET)


@pytest.mark.parametrize("k", [0.2, 0.1])
def test_fill_k_recovers_the_k_of_a_simulated_broker(
    market: Path, tmp_path: Path, k: float
) -> None:
    path = _sim_journal(market, tmp_path, k)
    j = Journal(path)
    try:
        rep = fill_k_report(j, market, "paper", DAYS[0], fills=SPEC.fills)
    finally:
        j.close()
    f, e = rep.fills, rep.estimate
    assert e.n == f.height >= 6 and set(f["purpose"]) == {"entry", "exit"}
    # each fill: the broker's k within its tick-rounding bounds
    assert (f["k_lo"] < k).all() and (f["k"] >= k - 1e-12).all()
    allow = (f["k"] - f["k_lo"]).to_numpy()
    assert abs(e.median - k) <= float(np.max(allow))
    assert abs(e.estimate - k) <= float(np.mean(allow)) / 2 + 1e-12
    assert e.lo < k <= e.hi and e.one_k is not None and e.one_k[0] < k <= e.one_k[1]
    assert e.suggested_k is not None and k <= e.suggested_k <= round(e.hi + 0.05, 2)
    assert rep.configured_k == 0.3 and "Suggested fills.k" in rep.summary()
    by_day = rep.breakdowns["day"]
    assert by_day["n"].sum() == f.height and set(by_day["day"]) <= set(DAYS)
    assert breakdown(f, "purpose")["n"].sum() == f.height
    assert f["dte"].min() >= 0 and (f["delta_bucket"] != "?").all()
    png = rep.plot(tmp_path / "k.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_estimate_of_no_fills_and_of_one() -> None:
    empty = estimate_k(pl.DataFrame({"k": [], "k_lo": []}, schema={"k": float, "k_lo": float}))
    assert empty.n == 0 and empty.suggested_k is None and "no filled order" in empty.sentence()
    one = estimate_k(pl.DataFrame({"k": [0.3], "k_lo": [0.1]}))
    assert one.n == 1 and math.isnan(one.lo) and one.suggested_k is None
    assert one.estimate == pytest.approx(0.2)


def test_reconcile_since_prints_and_plots_the_fill_k(
    market: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    journal = _sim_journal(market, tmp_path_factory.mktemp("fill_k_cli"), 0.2)
    (tmp_path / "strategy.yaml").write_text(yaml.safe_dump(SPEC.model_dump(mode="json")))
    cfg = {
        "strategy": "strategy.yaml",
        "broker": "sim",
        "mode": "paper",
        "kill_file": str(tmp_path / "KILL"),
        "store": str(market),
        "notify": {"console": False},
    }
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(cfg))
    args = ["live", "reconcile", "--config", str(tmp_path / "live.yaml")]
    res = CliRunner().invoke(app, [*args, "--since", str(DAYS[0]), "--journal", str(journal)])
    assert res.exit_code == 0, res.output
    assert "Suggested fills.k" in res.output and "k by day" in res.output
    png = fill_k_path(journal, "paper", DAYS[0])
    assert png.is_file() and pl.read_parquet(png.with_suffix(".parquet")).height >= 6
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "--since" in res.output
