"""The book's greeks and scenarios from a chain snapshot: what the live runner passes to the
decision book's greek limits (:mod:`quantlab.strategy.book_kernels`) and records for
``quantlab live status``. The backtest computes the same numbers from its stage-1 paths
(:func:`quantlab.backtest.replay.book_risk`) with the same kernels
(:func:`quantlab.risk.kernels.state_at`, :func:`~quantlab.risk.kernels.add_position`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantlab import calendar
from quantlab.money import to_cents
from quantlab.risk import kernels as rk
from quantlab.risk.scenarios import SPOT_MOVES, VOL_MOVES, worst
from quantlab.strategy.book_kernels import K_SIZE

#: the names of :func:`book_risk`'s greeks (dollars; the book kernels' ``K_*`` then theta)
BOOK_GREEKS = ("delta_pt", "delta_pct", "vega_pt", "gamma_pct", "theta_day")


@dataclass(frozen=True)
class Position:
    """One open trade as the risk kernels see it: its legs (OCC symbol, signed quantity per
    combo unit, strike, right), contracts, and its forward and legs' vols at entry (the
    fallback of :func:`quantlab.risk.kernels.state_at`)."""

    root: str
    expiry: dt.date
    occ: tuple[str, ...]
    qty: tuple[int, ...]
    strike: tuple[float, ...]
    is_call: tuple[bool, ...]
    contracts: int
    entry_forward: float
    entry_iv: tuple[float, ...]

    @classmethod
    def from_legs(
        cls, root: str, expiry: dt.date, legs: Iterable[Mapping], contracts: int, forward: float
    ) -> Position:
        """From leg records with ``occ``, ``quantity``, ``strike``, ``right`` and ``iv``."""
        legs = list(legs)
        return cls(
            root,
            expiry,
            tuple(str(lg["occ"]) for lg in legs),
            tuple(int(lg["quantity"]) for lg in legs),
            tuple(float(lg["strike"]) for lg in legs),
            tuple(lg["right"] == "C" for lg in legs),
            int(contracts),
            float(forward),
            tuple(math.nan if lg.get("iv") is None else float(lg["iv"]) for lg in legs),
        )


def _arrays(p: Position) -> tuple[np.ndarray, ...]:
    return (
        np.asarray(p.qty, np.int64),
        np.asarray(p.strike, np.float64),
        np.asarray(p.is_call, np.bool_),
        np.asarray(p.entry_iv, np.float64),
    )


def snapshot_inputs(
    snap: Any,
) -> tuple[dict[str, tuple[float, float]], dict[tuple[str, dt.date], float]]:
    """``(quotes, forwards)`` of :func:`book_risk` from a decision snapshot
    (:func:`quantlab.chain.snapshot.build_snapshot`)."""
    ch, ex = snap.chain, snap.expiries
    bid = ch["bid"].fill_null(np.nan).to_list()
    ask = ch["ask"].fill_null(np.nan).to_list()
    quotes = dict(zip(ch["raw_symbol"].to_list(), zip(bid, ask, strict=True), strict=True))
    keys = zip(ex["root"].to_list(), ex["expiry"].to_list(), strict=True)
    return quotes, dict(zip(keys, ex["forward"].fill_null(np.nan).to_list(), strict=True))


def book_risk(
    positions: Iterable[Position],
    quotes: Mapping[str, tuple[float, float]],
    forwards: Mapping[tuple[str, dt.date], float],
    ts: int,
    rate: float,
    *,
    scenarios: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``(greeks, scenario P&L)`` of ``positions`` at ``ts`` in dollars: the ``K_*`` array of
    the book kernels and the flattened :mod:`~quantlab.risk.scenarios` grid (empty unless
    ``scenarios``). ``quotes`` maps an OCC symbol to its (bid, ask) at ``ts`` (NaN = none),
    ``forwards`` a (root, expiry) to its parity forward (NaN or missing = unknown). The greeks
    have a fifth element, the theta per calendar day (:data:`BOOK_GREEKS` names them)."""
    k = np.zeros(K_SIZE + 1)
    scen = np.zeros(SPOT_MOVES.size * VOL_MOVES.size if scenarios else 0)
    for p in positions:
        qty, strike, is_call, entry_iv = _arrays(p)
        n = qty.size
        q = [quotes.get(o, (math.nan, math.nan)) for o in p.occ]
        bid = to_cents([b for b, _ in q]).astype(np.int64)
        ask = to_cents([a for _, a in q]).astype(np.int64)
        T = rk.year_frac(int(ts), calendar.settlement_ns(p.root, p.expiry))
        df = math.exp(-rate * T)
        iv = np.empty(n)
        f = rk.state_at(
            bid, ask, float(forwards.get((p.root, p.expiry), math.nan)), T, df, strike,
            is_call, n, p.entry_forward, entry_iv, iv,
        )  # fmt: skip
        rk.add_position(
            f, T, df, rate, qty, strike, is_call, n, iv, p.contracts, SPOT_MOVES, VOL_MOVES,
            k, scen,
        )  # fmt: skip
    return k, scen


def risk_record(
    positions: list[Position], snap: Any, ts: int, rate: float
) -> dict[str, Any] | None:
    """What the live runner journals of its book at ``ts`` (None with no open position): the
    greeks by name, the scenario grid (``spot`` fractions, ``vol`` shifts, ``pnl[spot][vol]``
    in dollars) and its worst cell."""
    if not positions:
        return None
    quotes, forwards = snapshot_inputs(snap)
    k, scen = book_risk(positions, quotes, forwards, ts, rate, scenarios=True)
    grid = scen.reshape(SPOT_MOVES.size, VOL_MOVES.size)
    loss, spot, vol = worst(grid)
    return {
        "n_open": len(positions),
        "greeks": dict(zip(BOOK_GREEKS, k.tolist(), strict=True)),
        "spot": SPOT_MOVES.tolist(),
        "vol": VOL_MOVES.tolist(),
        "pnl": grid.round(2).tolist(),
        "worst": {"loss": loss, "spot_pct": spot, "vol_pts": vol},
    }


def candidate_risk(
    p: Position, ts: int, rate: float, *, scenarios: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One contract's ``(greeks, scenario P&L)`` of a candidate at its entry (its forward and
    legs' vols from the decision snapshot), as the backtest's
    :func:`quantlab.risk.kernels.entry_risk` has them."""
    qty, strike, is_call, entry_iv = _arrays(p)
    k = np.zeros((1, K_SIZE))
    scen = np.zeros((1, SPOT_MOVES.size * VOL_MOVES.size if scenarios else 0))
    rk.entry_risk(
        np.array([ts], np.int64), np.array([calendar.settlement_ns(p.root, p.expiry)], np.int64),
        float(rate), np.array([p.entry_forward]), qty[None, :], strike[None, :],
        is_call[None, :], np.array([qty.size], np.int64), entry_iv[None, :], SPOT_MOVES,
        VOL_MOVES, k, scen,
    )  # fmt: skip
    return k[0], scen[0]


__all__ = [
    "BOOK_GREEKS",
    "Position",
    "book_risk",
    "candidate_risk",
    "risk_record",
    "snapshot_inputs",
]
