"""Decision snapshot on hand-built chains: cleaning flags, forward, smile and deltas."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from quantlab import calendar
from quantlab.chain import QuoteFlag, build_snapshot
from quantlab.chain.snapshot import flag_quotes
from quantlab.pricing import black76_price

DAY = dt.date(2024, 3, 4)
EXPIRY = dt.date(2024, 3, 8)
RATE = 0.05


def _chain(F: float, ts: int) -> tuple[pl.DataFrame, np.ndarray]:
    K = np.arange(4800.0, 5205.0, 5.0)
    T = (calendar.settlement_ns("SPXW", EXPIRY) - ts) / 60e9 / 525_600
    vol = np.clip(0.14 - 1.2 * np.log(K / F), 0.08, 0.6)
    df = math.exp(-RATE * T)
    rows = []
    for right, is_call in (("C", True), ("P", False)):
        px = black76_price(F, K, T, vol, df, is_call)
        rows.append(
            pl.DataFrame(
                {
                    "instrument_id": np.arange(K.size, dtype=np.uint32) + (0 if is_call else 1000),
                    "raw_symbol": [f"SPXW  240308{right}{int(k * 1000):08d}" for k in K],
                    "root": "SPXW",
                    "expiry": EXPIRY,
                    "strike": K,
                    "right": right,
                    "bid": np.maximum(np.round(px - 0.05, 2), 0.0),
                    "ask": np.round(px + 0.05, 2),
                    "age_s": 30.0,
                }
            )
        )
    return pl.concat(rows), vol


def test_snapshot_recovers_forward_vols_and_deltas() -> None:
    ts = calendar.to_ns(dt.datetime(2024, 3, 4, 10, 0, tzinfo=calendar.ET))
    chain, _ = _chain(5012.0, ts)
    snap = build_snapshot(chain, ts, rate=RATE)
    exp = snap.expiries.row(0, named=True)
    assert exp["forward"] == pytest.approx(5012.0, abs=0.05)
    minutes = (calendar.settlement_ns("SPXW", EXPIRY) - ts) / 60e9
    assert exp["T"] == pytest.approx(minutes / 525_600)
    c = snap.chain.filter((pl.col("flag") == QuoteFlag.OK) & pl.col("iv").is_not_null())
    K = c["strike"].to_numpy()
    true = np.clip(0.14 - 1.2 * np.log(K / 5012.0), 0.08, 0.6)
    near = np.abs(np.log(K / 5012.0)) < 0.02
    assert np.max(np.abs(c["iv"].to_numpy()[near] - true[near])) < 0.01
    puts = c.filter(pl.col("right") == "P")
    assert (puts["delta"] < 0).all() and (c.filter(pl.col("right") == "C")["delta"] > 0).all()
    # both rights at a strike share the out-of-the-money vol
    both = snap.chain.group_by("strike").agg(pl.col("iv").n_unique()).filter(pl.col("iv") > 1)
    assert both.height == 0
    assert (snap.chain["dte"] == 4).all()


def test_quote_flags() -> None:
    bid = np.array([1.0, 1.0, 0.0, np.nan, 1.2, 1.0, 1.0])
    ask = np.array([1.1, 1.0, 0.05, 1.0, 1.1, 1.1, np.nan])
    age = np.array([10.0, 10.0, 10.0, 10.0, 10.0, 900.0, np.nan])
    got = flag_quotes(bid, ask, age, 300.0)
    assert got.tolist() == [
        QuoteFlag.OK,
        QuoteFlag.LOCKED,
        QuoteFlag.ZERO_BID,
        QuoteFlag.ONE_SIDED,
        QuoteFlag.CROSSED,
        QuoteFlag.STALE,
        QuoteFlag.NO_QUOTE,
    ]


def test_stale_and_crossed_quotes_do_not_move_the_forward() -> None:
    ts = calendar.to_ns(dt.datetime(2024, 3, 4, 11, 0, tzinfo=calendar.ET))
    chain, _ = _chain(4990.0, ts)
    near = (pl.col("strike") == 4990.0) & (pl.col("right") == "C")
    bad = chain.with_columns(
        pl.when(near).then(pl.col("bid") + 20).otherwise(pl.col("bid")).alias("bid"),
        pl.when(near).then(pl.lit(1200.0)).otherwise(pl.col("age_s")).alias("age_s"),
    )
    snap = build_snapshot(bad, ts, rate=RATE)
    assert snap.expiries["forward"][0] == pytest.approx(4990.0, abs=0.05)
    assert snap.chain.filter(near)["flag"][0] == QuoteFlag.STALE
