"""Expiry and strike selection from a decision snapshot (shared with the live runner).

Rules (see :mod:`quantlab.strategy.spec` for the user-facing description):

- Expiry: listed expiries of the configured roots still trading at the decision time, with
  DTE (calendar days from the ET decision date) within ``tolerance`` of ``target``; the nearest
  wins; a tie goes to the shorter (``tie_break: shorter``) or longer one.
- Short legs by |delta| (Black-76 dV/dF from quantlab's own out-of-the-money implied vol):
  ``nearest`` the target (a tie goes to the strike further out of the money), or the largest
  |delta| ``at_most`` the target. Only usable quotes (flag OK or LOCKED) with a solved vol count.
- A long leg by ``width``: exactly ``width`` points further out of the money than its short leg
  (puts below, calls above); if that strike is not listed with a usable quote the candidate is
  rejected (the width sets the max loss, so no substitute is taken). By delta: as a short leg,
  but it must be further out of the money than the short leg of the same right.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from quantlab.chain.snapshot import QuoteFlag
from quantlab.strategy.spec import DTESpec, LegSpec

USABLE = (int(QuoteFlag.OK), int(QuoteFlag.LOCKED))


@dataclass(frozen=True)
class LegChoice:
    occ: str
    instrument_id: int
    right: str
    strike: float
    quantity: int  # signed: -n sold, +n bought
    bid: float
    ask: float
    delta: float
    iv: float


@dataclass(frozen=True)
class Selection:
    """A chosen structure, or a rejection (``legs`` empty and ``reason`` set)."""

    root: str
    expiry: dt.date | None
    dte: int
    forward: float
    legs: tuple[LegChoice, ...]
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def pick_expiry(expiries: pl.DataFrame, day: dt.date, spec: DTESpec) -> tuple[str, dt.date] | None:
    """Choose (root, expiry) from the snapshot's expiry table (which has ``root, expiry, forward``)."""
    if expiries.height == 0:
        return None
    ok = expiries.filter(pl.col("forward").is_not_null())
    best: tuple[int, int, str, dt.date] | None = None
    for root, expiry in zip(ok["root"].to_list(), ok["expiry"].to_list(), strict=True):
        dte = (expiry - day).days
        if dte < 0 or abs(dte - spec.target) > spec.tolerance:
            continue
        tie = dte if spec.tie_break == "shorter" else -dte
        key = (abs(dte - spec.target), tie, root, expiry)
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else (best[2], best[3])


def _by_delta(d: np.ndarray, target: float, match: str) -> int | None:
    """Index into ``d`` (|delta| values, NaN allowed) chosen by the delta rule, or None."""
    ok = np.isfinite(d)
    if match == "at_most":
        ok &= d <= target
        if not ok.any():
            return None
        cand = np.flatnonzero(ok)
        return int(cand[np.argmax(d[cand])])
    if not ok.any():
        return None
    cand = np.flatnonzero(ok)
    dist = np.abs(d[cand] - target)
    tied = cand[dist <= dist.min() + 1e-12]
    # tie: further out of the money = smaller |delta|
    return int(tied[np.argmin(d[tied])]) if tied.size > 1 else int(tied[0])


_COLS = (
    "root",
    "expiry",
    "strike",
    "right",
    "flag",
    "delta",
    "iv",
    "bid",
    "ask",
    "instrument_id",
    "raw_symbol",
)
_last: list = [None, None]  # (chain, its numpy columns): the rules of one snapshot share them


def _columns(chain: pl.DataFrame) -> dict[str, np.ndarray]:
    if _last[0] is chain:
        return _last[1]
    cols = {c: chain[c].to_numpy() for c in _COLS}
    cols["delta"] = chain["delta"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    cols["iv"] = chain["iv"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    cols["bid"] = chain["bid"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    cols["ask"] = chain["ask"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    cols["expiry"] = chain["expiry"].to_numpy().astype("datetime64[D]")
    _last[0], _last[1] = chain, cols
    return cols


def select_structure(
    chain: pl.DataFrame,
    expiries: pl.DataFrame,
    day: dt.date,
    dte: DTESpec,
    roots: tuple[str, ...],
    legs: tuple[LegSpec, ...],
    match: str = "nearest",
) -> Selection:
    """Pick the expiry and every leg of a structure from a decision snapshot."""
    exp_tbl = expiries.filter(pl.col("root").is_in(list(roots)))
    picked = pick_expiry(exp_tbl, day, dte)
    if picked is None:
        return Selection("", None, -1, float("nan"), (), "no_expiry_in_tolerance")
    root, expiry = picked
    fwd = float(
        exp_tbl.filter((pl.col("root") == root) & (pl.col("expiry") == expiry))["forward"][0]
    )
    ndte = (expiry - day).days
    c = _columns(chain)
    in_exp = (c["root"] == root) & (c["expiry"] == np.datetime64(expiry, "D"))
    usable = in_exp & np.isin(c["flag"], USABLE)
    # a leg we buy may have a zero bid (worth under a tick): it is bought at its ask
    buyable = in_exp & np.isin(c["flag"], (*USABLE, int(QuoteFlag.ZERO_BID)))
    chosen: list[LegChoice] = []
    for leg in legs:
        side = (usable if leg.side == "sell" else buyable) & (c["right"] == leg.right)
        sign = -leg.quantity if leg.side == "sell" else leg.quantity
        if leg.delta is not None:
            pool = side & np.isfinite(c["delta"]) & np.isfinite(c["iv"])
            # a long leg by delta must sit further out of the money than the short leg of its right
            if leg.side == "buy":
                shorts = [x for x in chosen if x.right == leg.right and x.quantity < 0]
                if shorts:
                    ref = shorts[0].strike
                    pool &= c["strike"] < ref if leg.right == "P" else c["strike"] > ref
            idx = np.flatnonzero(pool)
            idx = idx[np.argsort(c["strike"][idx], kind="stable")]
            j = _by_delta(np.abs(c["delta"][idx]), leg.delta, match)
            if j is None:
                return Selection(root, expiry, ndte, fwd, (), f"no_{leg.right}_strike_for_delta")
            row = int(idx[j])
        else:
            assert leg.width_from is not None and leg.width is not None  # validated by LegSpec
            if leg.width_from >= len(chosen):
                return Selection(root, expiry, ndte, fwd, (), "width_from_refers_to_a_later_leg")
            ref_leg = chosen[leg.width_from]
            strike = ref_leg.strike - leg.width if leg.right == "P" else ref_leg.strike + leg.width
            hit = np.flatnonzero(side & (np.abs(c["strike"] - strike) < 1e-6))
            if hit.size == 0:
                return Selection(root, expiry, ndte, fwd, (), "long_strike_not_listed_or_unusable")
            row = int(hit[0])
        chosen.append(
            LegChoice(
                occ=str(c["raw_symbol"][row]),
                instrument_id=int(c["instrument_id"][row]),
                right=leg.right,
                strike=float(c["strike"][row]),
                quantity=int(sign),
                bid=float(c["bid"][row]),
                ask=float(c["ask"][row]),
                delta=float(c["delta"][row]),
                iv=float(c["iv"][row]),
            )
        )
    return Selection(root, expiry, ndte, fwd, tuple(chosen))
