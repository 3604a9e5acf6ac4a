"""The array decision snapshot (ChainView) and selection on it give exactly the polars path's
numbers: same flags, forwards, implied vols, deltas and chosen legs, on messy random chains."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from quantlab import calendar
from quantlab.backtest.select import select_from_view, select_structure
from quantlab.chain import build_snapshot
from quantlab.chain.snapshot import ChainView
from quantlab.data import store as st
from quantlab.data.read import DayQuotes
from quantlab.pricing import black76_price
from quantlab.strategy.spec import DTESpec, LegSpec

DAY = dt.date(2024, 3, 4)
EXPIRIES = (dt.date(2024, 3, 4), dt.date(2024, 3, 6), dt.date(2024, 3, 8), dt.date(2024, 3, 15))
RATE = 0.045


def _et(hh: int, mm: int) -> int:
    return calendar.to_ns(dt.datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=calendar.ET))


def messy_day(seed: int) -> DayQuotes:
    """SPXW and SPX chains with sparse, stale, crossed, locked, one-sided and zero-bid quotes."""
    rng = np.random.default_rng(seed)
    F = 5000.0 + rng.normal(0, 20)
    inst, quotes = [], []
    iid = 100
    for root in ("SPXW", "SPX"):
        for expiry in EXPIRIES if root == "SPXW" else EXPIRIES[-1:]:
            for k in np.arange(4700.0, 5305.0, 10.0):
                for right in "CP":
                    iid += 1
                    sym = f"{root:<6}{expiry:%y%m%d}{right}{round(k * 1000):08d}"
                    inst.append(
                        (
                            DAY,
                            iid,
                            sym,
                            root,
                            "SPX",
                            expiry,
                            "AM" if root == "SPX" else "PM",
                            float(k),
                            right,
                            100,
                        )
                    )
                    minutes = calendar.quote_minutes_ns(DAY, expiring=expiry == DAY)
                    n = int(rng.choice([2, 40, 200, minutes.size]))
                    keep = np.sort(rng.choice(minutes.size, n, replace=False))
                    ts = minutes[keep]
                    T = (
                        np.maximum((calendar.settlement_ns(root, expiry) - ts) / 6e10, 1.0)
                        / 525_600
                    )
                    vol = 0.12 + 0.6 * abs(math.log(k / F)) + rng.normal(0, 0.01)
                    mid = black76_price(F, k, T, vol, np.exp(-RATE * T), right == "C")
                    half = rng.choice([0.0, 0.05, 0.10, 0.30], ts.size)
                    bid = np.round(mid - half, 2)
                    ask = np.round(mid + half, 2)
                    bad = rng.random(ts.size)
                    bid = np.where(bad < 0.02, np.nan, bid)  # one-sided
                    bid = np.where((bad > 0.02) & (bad < 0.05), 0.0, bid)  # zero bid
                    ask = np.where((bad > 0.05) & (bad < 0.07), bid - 0.05, ask)  # crossed
                    quotes.append(
                        pl.DataFrame(
                            {
                                "ts": ts,
                                "instrument_id": np.full(ts.size, iid, np.uint32),
                                "bid": bid,
                                "ask": ask,
                                "bid_size": np.full(ts.size, 1, np.uint32),
                                "ask_size": np.full(ts.size, 1, np.uint32),
                            }
                        )
                    )
    inst_df = pl.DataFrame(inst, schema=st.INSTRUMENTS_SCHEMA, orient="row")
    q = pl.concat(quotes).with_columns(pl.col("bid").fill_nan(None))
    return DayQuotes("SPX", DAY, inst_df, q)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit, NaN where NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.isnan(a), np.isnan(b)
    return bool(
        np.array_equal(na, nb) and np.array_equal(a[~na].view(np.int64), b[~nb].view(np.int64))
    )


@settings(max_examples=12, deadline=None)
@given(
    seed=hs.integers(0, 10_000),
    hh=hs.sampled_from([9, 10, 12, 15]),
    age=hs.sampled_from([60.0, 300.0]),
)
def test_chain_view_equals_build_snapshot(seed: int, hh: int, age: float) -> None:
    dq = messy_day(seed)
    ts = _et(hh, 45)
    for roots in (["SPXW"], ["SPX", "SPXW"]):
        sel = dq.select(roots=roots)
        view = ChainView(dq, ts, sel, rate=RATE, max_age_s=age)
        snap = build_snapshot(dq.snapshot(ts, sel), ts, rate=RATE, max_age_s=age)
        chain = snap.chain
        exp_rows = {(r["root"], r["expiry"]): r for r in snap.expiries.iter_rows(named=True)}
        assert [k for k in view.expiries() if view.fit(*k) is not None] == list(exp_rows)
        for root, expiry in view.expiries():
            fit = view.fit(root, expiry)
            a, b = view.rows(root, expiry)  # type: ignore[misc]
            part = chain.filter((pl.col("root") == root) & (pl.col("expiry") == expiry))
            assert part["instrument_id"].to_list() == dq.instrument_id[view.position[a:b]].tolist()
            assert part["flag"].to_list() == view.flag[a:b].tolist()
            if fit is None:
                continue
            row = exp_rows[(root, expiry)]
            assert _same(
                np.array([fit.forward]),
                np.array([row["forward"] if row["forward"] is not None else np.nan]),
            )
            assert fit.T == row["T"] and fit.df == row["df"]
            vols = view.vols(root, expiry)
            assert _same(vols.iv, part["iv"].fill_null(np.nan).to_numpy())
            assert _same(vols.delta, part["delta"].fill_null(np.nan).to_numpy())


LEGSETS = {
    "put_width": (
        LegSpec(right="P", side="sell", delta=0.2),
        LegSpec(right="P", side="buy", width_from=0, width=20),
    ),
    "call_delta": (
        LegSpec(right="C", side="sell", delta=0.15),
        LegSpec(right="C", side="buy", delta=0.05),
    ),
    "condor": (
        LegSpec(right="P", side="sell", delta=0.1),
        LegSpec(right="P", side="buy", width_from=0, width=30),
        LegSpec(right="C", side="sell", delta=0.1),
        LegSpec(right="C", side="buy", width_from=2, width=30),
    ),
    "later_ref": (
        LegSpec(right="P", side="buy", width_from=1, width=10),
        LegSpec(right="P", side="sell", delta=0.3),
    ),
    "far_width": (
        LegSpec(right="P", side="sell", delta=0.02, quantity=2),
        LegSpec(right="P", side="buy", width_from=0, width=500),
    ),
}


@settings(max_examples=10, deadline=None)
@given(
    seed=hs.integers(0, 10_000),
    target=hs.integers(0, 12),
    tol=hs.integers(0, 3),
    tie=hs.sampled_from(["shorter", "longer"]),
    match=hs.sampled_from(["nearest", "at_most"]),
)
def test_select_from_view_equals_select_structure(
    seed: int, target: int, tol: int, tie: str, match: str
) -> None:
    dq = messy_day(seed)
    ts = _et(11, 0)
    dte = DTESpec(target=target, tolerance=tol, tie_break=tie)  # type: ignore[arg-type]
    for roots in (("SPXW",), ("SPX", "SPXW")):
        sel = dq.select(roots=list(roots))
        view = ChainView(dq, ts, sel, rate=RATE)
        snap = build_snapshot(dq.snapshot(ts, sel), ts, rate=RATE)
        for legs in LEGSETS.values():
            want = select_structure(snap.chain, snap.expiries, DAY, dte, roots, legs, match)
            got = select_from_view(view, DAY, dte, roots, legs, match)
            assert got.reason == want.reason
            assert (got.root, got.expiry, got.dte) == (want.root, want.expiry, want.dte)
            assert _same(np.array([got.forward]), np.array([want.forward]))
            assert got.legs == want.legs or all(
                _same(
                    np.array([getattr(x, f) for f in ("strike", "bid", "ask", "delta", "iv")]),
                    np.array([getattr(y, f) for f in ("strike", "bid", "ask", "delta", "iv")]),
                )
                and (x.occ, x.instrument_id, x.right, x.quantity)
                == (y.occ, y.instrument_id, y.right, y.quantity)
                for x, y in zip(got.legs, want.legs, strict=True)
            )


def test_chain_view_of_an_empty_day() -> None:
    dq = messy_day(1)
    empty = DayQuotes("SPX", DAY, dq.instruments, pl.DataFrame(schema=st.QUOTES_SCHEMA))
    view = ChainView(empty, _et(10, 0), empty.select(roots=["SPXW"]), rate=RATE)
    assert (view.flag == 1).all()  # NO_QUOTE everywhere
    fit = view.fit(*view.expiries()[1])
    assert fit is not None and not fit.ok
    with pytest.raises(KeyError):
        view.vols("SPXW", dt.date(2030, 1, 1))
