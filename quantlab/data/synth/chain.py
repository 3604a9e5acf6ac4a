"""Listing of the synthetic chain: expiries, strikes, OCC symbols, instrument ids, open interest.

Listing rules (documented, deterministic given the seed and the day):

* Expiries: SPXW on every session up to ``dte_max`` calendar days ahead; SPX monthlies
  (third Friday, AM-settled, last traded the session before) in the same window; with
  ``vix_bracket`` the two SPXW expiries bracketing 30 calendar days (last <= 30, first > 30) are
  added, always with full wings.
* Strikes: a 5-point grid over a core band and, for full-wing expiries, a 25-point grid out to
  wings where the bids have long gone to zero. Bands are computed on each session from the
  previous close and the implied-vol state at the open (``core``: ``-(0.02 + 6 sigma sqrt T)``
  .. ``+(0.015 + 3.5 sigma sqrt T)``, capped at ``moneyness``; wings: ``-(0.02 + 14 sigma sqrt
  T)`` in [-0.6, -0.1] .. ``+(0.015 + 5 sigma sqrt T)`` in [0.05, 0.3]) and a strike once
  listed stays listed: the day's band is the union of the bands of every session since the
  expiry entered the listing window, as exchanges add strikes when spot moves but never remove
  them.
* Instrument ids are drawn afresh every day (random base plus random gaps over a random
  permutation), as Databento's OPRA ids are only unique within a day.
* Open interest: larger near the money, on round strikes and for longer expiries, persistent
  per contract with small daily noise.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quantlab import calendar
from quantlab.data.importers import occ_symbol
from quantlab.data.synth.market import MarketParams, Skeleton, sigma_implied
from quantlab.errors import InputError


@dataclass(frozen=True)
class Profile:
    """What to list. ``dte_max`` in calendar days, ``moneyness`` caps the 5-point core band."""

    name: str
    dte_max: int
    moneyness: float
    vix_bracket: bool = True
    include_monthly: bool = True
    wings_beyond_dte: int | None = (
        None  # expiries past this DTE get full wings (None: only bracket)
    )

    def __post_init__(self) -> None:
        if self.dte_max < 0:
            raise InputError(f"dte_max must be >= 0 (got {self.dte_max}).")
        if not 0.005 <= self.moneyness <= 0.9:
            raise InputError(f"moneyness must be in [0.005, 0.9] (got {self.moneyness}). Try 0.10.")


PROFILES: dict[str, Profile] = {
    "test": Profile("test", dte_max=3, moneyness=0.04),
    "demo": Profile("demo", dte_max=10, moneyness=0.10),
    "full": Profile("full", dte_max=50, moneyness=0.10, wings_beyond_dte=10),
    "spxw10": Profile(
        "spxw10", dte_max=10, moneyness=0.10, vix_bracket=False, include_monthly=False
    ),
}


@dataclass(frozen=True)
class Expiry:
    root: str
    date: dt.date
    full_wings: bool


@dataclass(frozen=True)
class Chain:
    """Instruments listed on one day (sorted by instrument id)."""

    expiries: list[Expiry]
    exp_idx: npt.NDArray[np.int32]
    strike: npt.NDArray[np.float64]
    is_call: npt.NDArray[np.bool_]
    instrument_id: npt.NDArray[np.uint32]
    raw_symbol: list[str]
    open_interest: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.strike)


def list_expiries(day: dt.date, profile: Profile) -> list[Expiry]:
    """Expiries listed on ``day`` under ``profile`` (SPXW first by date, then SPX monthlies)."""
    horizon = day + dt.timedelta(days=profile.dte_max)
    wb = profile.wings_beyond_dte
    out: list[Expiry] = []
    seen: set[tuple[str, dt.date]] = set()
    for e in calendar.spxw_expiries(day, horizon):
        full = wb is not None and (e - day).days > wb
        out.append(Expiry("SPXW", e, full))
        seen.add(("SPXW", e))
    if profile.vix_bracket:
        far = calendar.spxw_expiries(day, day + dt.timedelta(days=45))
        near_e = [e for e in far if (e - day).days <= 30]
        next_e = [e for e in far if (e - day).days > 30]
        for e in near_e[-1:] + next_e[:1]:
            if ("SPXW", e) in seen:
                out = [
                    Expiry("SPXW", x.date, True) if x.date == e and x.root == "SPXW" else x
                    for x in out
                ]
            else:
                out.append(Expiry("SPXW", e, True))
                seen.add(("SPXW", e))
    if profile.include_monthly:
        for e in calendar.monthly_expiries(day, horizon + dt.timedelta(days=1)):
            if calendar.last_trade_day("SPX", e) >= day and (e - day).days <= profile.dte_max + 1:
                full = wb is not None and (e - day).days > wb
                out.append(Expiry("SPX", e, full))
    out.sort(key=lambda x: (x.root != "SPXW", x.date))
    return out


def _band(
    s_ref: float, sigma: float, t_years: float, profile: Profile, wings: bool
) -> tuple[float, float, float, float]:
    """(core_lo, core_hi, wing_lo, wing_hi) strikes for one session."""
    sd = sigma * math.sqrt(max(t_years, 0.5 / 365.0))
    a5 = min(profile.moneyness, 0.02 + 6.0 * sd)
    b5 = min(profile.moneyness, 0.015 + 3.5 * sd)
    lo, hi = s_ref * math.exp(-a5), s_ref * math.exp(b5)
    if not wings:
        return lo, hi, lo, hi
    aw = min(max(0.02 + 14.0 * sd, 0.10), 0.60)
    bw = min(max(0.015 + 5.0 * sd, 0.05), 0.30)
    return lo, hi, s_ref * math.exp(-aw), s_ref * math.exp(bw)


def strikes_for(
    expiry: Expiry,
    day: dt.date,
    profile: Profile,
    sk: Skeleton,
    p: MarketParams,
) -> npt.NDArray[np.float64]:
    """Strikes listed for ``expiry`` on ``day`` (sorted), the union of bands since listing."""
    listing_days = 45 if expiry.full_wings else profile.dte_max
    first = max(expiry.date - dt.timedelta(days=listing_days), p.epoch)
    first = max(first, day - dt.timedelta(days=60))
    i_day = sk.index(day)
    i0 = sk.index(calendar.next_session(first - dt.timedelta(days=1))) if first <= day else i_day
    core_lo = wing_lo = math.inf
    core_hi = wing_hi = -math.inf
    for i in range(i0, i_day + 1):
        s_ref = float(sk.s_close[i - 1]) if i > 0 else p.spot0
        sig = float(sigma_implied(sk.xs_open[i] + sk.xf_open[i] + sk.xj_open[i], p))
        t = (expiry.date - sk.days[i]).days / 365.0
        c_lo, c_hi, w_lo, w_hi = _band(s_ref, sig, t, profile, expiry.full_wings)
        core_lo, core_hi = min(core_lo, c_lo), max(core_hi, c_hi)
        wing_lo, wing_hi = min(wing_lo, w_lo), max(wing_hi, w_hi)
    core = np.arange(math.ceil(core_lo / 5.0) * 5.0, core_hi + 1e-9, 5.0)
    if not expiry.full_wings:
        return core
    lw = np.arange(math.ceil(wing_lo / 25.0) * 25.0, core[0] - 1e-9, 25.0)
    hw = np.arange(math.floor(wing_hi / 25.0) * 25.0, core[-1] + 1e-9, -25.0)[::-1]
    return np.concatenate([lw, core, hw])


# quantlab.data has one OCC-symbol builder (the importers'); cached here, as the same symbols
# come back every session
_occ = functools.lru_cache(maxsize=1 << 18)(occ_symbol)


def build_chain(day: dt.date, profile: Profile, sk: Skeleton, p: MarketParams, seed: int) -> Chain:
    """All instruments listed on ``day`` with fresh instrument ids, sorted by id."""
    expiries = list_expiries(day, profile)
    exp_idx, strikes, calls = [], [], []
    for j, e in enumerate(expiries):
        ks = strikes_for(e, day, profile, sk, p)
        for is_call in (False, True):
            exp_idx.append(np.full(len(ks), j, dtype=np.int32))
            strikes.append(ks)
            calls.append(np.full(len(ks), is_call))
    ei = np.concatenate(exp_idx)
    k = np.concatenate(strikes)
    c = np.concatenate(calls)
    n = len(k)
    g = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1D, day.toordinal()]))
    order = g.permutation(n)
    gaps = g.integers(1, 64, size=n)
    base = int(g.integers(1_000_000, 600_000_000))
    ids = np.empty(n, dtype=np.uint32)
    ids[order] = (base + np.cumsum(gaps)).astype(np.uint32)
    srt = np.argsort(ids, kind="stable")
    ei, k, c, ids = ei[srt], k[srt], c[srt], ids[srt]
    syms = [
        _occ(expiries[j].root, expiries[j].date, "C" if cc else "P", float(kk))
        for j, cc, kk in zip(ei, c, k, strict=True)
    ]
    oi = open_interest(day, expiries, ei, k, c, syms, sk, p, seed)
    return Chain(expiries, ei, k, c, ids, syms, oi)


@functools.lru_cache(maxsize=1 << 18)
def _persist(seed: int, symbol: str) -> float:
    return zlib.crc32(f"{seed}|{symbol}".encode()) / 2**32


def open_interest(
    day: dt.date,
    expiries: list[Expiry],
    exp_idx: npt.NDArray[np.int32],
    strike: npt.NDArray[np.float64],
    is_call: npt.NDArray[np.bool_],
    symbols: list[str],
    sk: Skeleton,
    p: MarketParams,
    seed: int,
) -> npt.NDArray[np.int64]:
    """Open interest published the morning of ``day`` (contracts)."""
    i = sk.index(day)
    s_ref = float(sk.s_close[i - 1]) if i > 0 else p.spot0
    dte = np.array([(e.date - day).days for e in expiries], dtype=np.float64)[exp_idx]
    sig = float(sigma_implied(sk.xs_open[i] + sk.xf_open[i], p))
    sd = sig * np.sqrt(np.maximum(dte, 0.5) / 365.0)
    k = np.log(strike / s_ref)
    otm = np.where(is_call, k, -k)
    shape = np.exp(-np.maximum(otm, 0.0) / (0.02 + 3.0 * sd) - np.maximum(-otm, 0.0) / (0.01 + sd))
    round_bonus = 1.0 + 2.0 * (np.mod(strike, 100.0) == 0) + 0.7 * (np.mod(strike, 25.0) == 0)
    age = np.minimum(1.0, (30.0 - np.minimum(dte, 30.0)) / 10.0 + 0.3)
    persist = np.array([_persist(seed, s) for s in symbols])
    g = np.random.default_rng(np.random.SeedSequence([int(seed), 0x0E, day.toordinal()]))
    noise = np.exp(0.9 * (persist - 0.5) * 2.0 + 0.15 * g.standard_normal(len(symbols)))
    oi = 3000.0 * shape * round_bonus * age * noise * (1.0 + 0.4 * (np.asarray(is_call) == 0))
    return np.floor(oi).astype(np.int64)
