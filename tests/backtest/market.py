"""A small, fully known market written into a real store, for backtest tests.

Every instrument quotes every minute from a known forward path and a flat 15% vol (Black-76),
bid/ask = mid -/+ 0.05 rounded out to SPX ticks. ``forward(ts)`` is piecewise linear in time,
so a test can move the market through a take-profit or a stop at a chosen minute.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.data import store as st
from quantlab.pricing import black76_price

VOL = 0.15
RATE = 0.045


def occ(root: str, expiry: dt.date, right: str, strike: float) -> str:
    return f"{root:<6}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"


def tick_out(x: np.ndarray, up: bool) -> np.ndarray:
    tick = np.where(x >= 3.0, 0.10, 0.05)
    f = np.ceil if up else np.floor
    return np.round(f(np.round(x / tick, 6)) * tick, 2)


def build(
    root_dir: Path,
    days: list[dt.date],
    expiries: list[dt.date],
    forward: Callable[[np.ndarray], np.ndarray],
    strikes: np.ndarray | None = None,
    id_offset: int = 1000,
) -> Path:
    """Write instruments and dense minute quotes for ``days`` into a store at ``root_dir``."""
    K = np.arange(4800.0, 5205.0, 5.0) if strikes is None else strikes
    for n_day, day in enumerate(days):
        rows = []
        live = [e for e in expiries if e >= day]
        for e_i, expiry in enumerate(live):
            for right in ("C", "P"):
                for k_i, k in enumerate(K):
                    iid = (
                        id_offset * (n_day + 1) + 10_000 * e_i + 2 * k_i + (right == "P")
                    )  # change daily
                    rows.append(
                        {
                            "date": day,
                            "instrument_id": iid,
                            "raw_symbol": occ("SPXW", expiry, right, k),
                            "root": "SPXW",
                            "underlying": "SPX",
                            "expiry": expiry,
                            "settlement": "PM",
                            "strike": float(k),
                            "right": right,
                            "multiplier": 100,
                        }
                    )
        inst = pl.DataFrame(rows)
        st.write_partition(
            root_dir, "instruments", "SPX", day, inst, source="test", checksum=f"t{day}"
        )
        q = []
        for r in inst.iter_rows(named=True):
            expiring = r["expiry"] == day
            minutes = calendar.quote_minutes_ns(day, expiring=expiring)
            settle = calendar.settlement_ns("SPXW", r["expiry"])
            T = np.maximum((settle - minutes) / 60e9, 0.5) / 525_600
            F = forward(minutes)
            mid = black76_price(F, r["strike"], T, VOL, np.exp(-RATE * T), r["right"] == "C")
            bid = np.maximum(tick_out(mid - 0.05, up=False), 0.0)
            ask = np.maximum(tick_out(mid + 0.05, up=True), 0.05)
            q.append(
                pl.DataFrame(
                    {
                        "ts": minutes,
                        "instrument_id": np.full(minutes.size, r["instrument_id"], np.uint32),
                        "bid": bid,
                        "ask": ask,
                        "bid_size": np.full(minutes.size, 10, np.uint32),
                        "ask_size": np.full(minutes.size, 10, np.uint32),
                    }
                )
            )
        st.write_partition(
            root_dir, "quotes", "SPX", day, pl.concat(q), source="test", checksum=f"q{day}"
        )
    return root_dir


def et(day: dt.date, hh: int, mm: int) -> int:
    return calendar.to_ns(dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=calendar.ET))


def ramp(points: list[tuple[int, float]]) -> Callable[[np.ndarray], np.ndarray]:
    """Piecewise-linear forward through (ts_ns, level) points, flat outside."""
    xs = np.array([p[0] for p in points], dtype=np.float64)
    ys = np.array([p[1] for p in points], dtype=np.float64)
    return lambda ts: np.interp(np.asarray(ts, dtype=np.float64), xs, ys)


_ = math
