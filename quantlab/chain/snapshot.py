"""The decision snapshot: a cleaned chain with forwards, implied vols and deltas at time t.

Input is the chain as of t (every instrument's last quote stamped at or before t, as
:func:`quantlab.data.read.chain_at` returns it). Nothing stamped after t is used.

Cleaning rules (each quote gets one :class:`QuoteFlag`; flagged rows stay in the frame):

============  =====================================================================
flag          rule and consequence
============  =====================================================================
OK            two-sided, bid <= ask, fresh
NO_QUOTE      no quote yet this session: unusable
STALE         quote older than ``max_age_s``: not used for forwards or as a leg
CROSSED       bid > ask (a stale side carried into the bar): unusable
ZERO_BID      bid <= 0 (value under a tick): no implied vol, never a leg to sell;
              usable to buy only at its ask
ONE_SIDED     bid or ask missing: unusable
LOCKED        bid == ask > 0: kept (mid = the price), but not used for the forward
============  =====================================================================

Per expiry and root (AM and PM roots are never mixed in one fit): the forward from put-call
parity (:func:`quantlab.pricing.implied_forward`) over fresh two-sided pairs with
``df = exp(-rate * T)``; ``T`` = minutes from t to the expiry's settlement time / 525,600;
each strike's implied vol from its own out-of-the-money side (puts below the forward, calls at
or above), used for both rights at that strike; Black-76 delta (dV/dF, discounted) at that vol.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.pricing import black76_greeks, implied_forward, implied_vol

NS_PER_MIN = 60_000_000_000
MIN_PER_YEAR = 525_600.0


class QuoteFlag(IntEnum):
    OK = 0
    NO_QUOTE = 1
    STALE = 2
    CROSSED = 3
    ZERO_BID = 4
    ONE_SIDED = 5
    LOCKED = 6


@dataclass(frozen=True)
class Snapshot:
    """A decision snapshot: ``chain`` (one row per instrument) and ``expiries`` (one per expiry)."""

    ts: int
    chain: pl.DataFrame
    expiries: pl.DataFrame


def flag_quotes(
    bid: np.ndarray, ask: np.ndarray, age_s: np.ndarray, max_age_s: float
) -> np.ndarray:
    """One :class:`QuoteFlag` per quote (first matching rule in the table's order)."""
    flag = np.full(bid.shape[0], QuoteFlag.OK, dtype=np.int8)
    no_quote = ~np.isfinite(age_s)
    one_sided = ~(np.isfinite(bid) & np.isfinite(ask)) | (ask <= 0)
    zero_bid = ~one_sided & (bid <= 0)
    crossed = ~one_sided & ~zero_bid & (bid > ask)
    locked = ~one_sided & ~zero_bid & (bid == ask)
    stale = age_s > max_age_s
    for mask, value in (
        (locked, QuoteFlag.LOCKED),
        (zero_bid, QuoteFlag.ZERO_BID),
        (one_sided, QuoteFlag.ONE_SIDED),
        (crossed, QuoteFlag.CROSSED),
        (stale, QuoteFlag.STALE),
        (no_quote, QuoteFlag.NO_QUOTE),
    ):
        flag[mask] = value
    return flag


def build_snapshot(
    chain: pl.DataFrame, ts: int, *, rate: float, max_age_s: float = 300.0, n_pairs: int = 8
) -> Snapshot:
    """Clean the chain and add ``T``, ``forward``, ``df``, ``mid``, ``iv``, ``delta`` per instrument.

    Parameters
    ----------
    chain : polars.DataFrame
        Columns ``instrument_id, raw_symbol, root, expiry, strike, right, bid, ask, age_s``
        (as :func:`quantlab.data.read.chain_at` returns).
    ts : int
        Decision time, UTC nanoseconds.
    rate : float
        Continuously compounded rate for the discount factor.
    max_age_s : float
        Quotes older than this are stale.
    """
    day = dt.datetime.fromtimestamp(ts / 1e9, tz=calendar.ET).date()
    base = chain.sort(["root", "expiry", "strike", "right"])
    bid = base["bid"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    ask = base["ask"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    age = base["age_s"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    flag = flag_quotes(bid, ask, age, max_age_s)
    n = base.height
    T = np.full(n, np.nan)
    fwd = np.full(n, np.nan)
    dfs = np.full(n, np.nan)
    iv = np.full(n, np.nan)
    iv_status = np.full(n, -1, dtype=np.int8)
    strike = base["strike"].to_numpy()
    is_call = (base["right"] == "C").to_numpy()
    mid = np.where(
        np.isin(flag, (QuoteFlag.OK, QuoteFlag.LOCKED, QuoteFlag.STALE)), 0.5 * (bid + ask), np.nan
    )
    rows = []
    keys = base.select("root", "expiry").with_row_index("i")
    for (root, expiry), grp in keys.group_by(["root", "expiry"], maintain_order=True):
        idx = grp["i"].to_numpy()
        settle = calendar.settlement_ns(str(root), expiry)
        minutes = (settle - ts) / NS_PER_MIN
        if minutes <= 0:
            continue
        t = minutes / MIN_PER_YEAR
        df = float(np.exp(-rate * t))
        K = strike[idx]
        calls = idx[is_call[idx]]
        puts = idx[~is_call[idx]]
        ks = np.intersect1d(strike[calls], strike[puts])
        ci = calls[np.searchsorted(strike[calls], ks)]
        pi = puts[np.searchsorted(strike[puts], ks)]
        fresh = (flag[ci] == QuoteFlag.OK) & (flag[pi] == QuoteFlag.OK)
        fit = implied_forward(
            ks, bid[ci], ask[ci], bid[pi], ask[pi], t, r=rate, fresh=fresh, n_pairs=n_pairs
        )
        rows.append({"root": root, "expiry": expiry, "T": t, "forward": fit.forward, "df": df,
                     "forward_stderr": fit.stderr, "pairs_used": fit.n_used, "reason": fit.reason})  # fmt: skip
        T[idx] = t
        dfs[idx] = df
        if not fit.ok:
            continue
        F = fit.forward
        fwd[idx] = F
        # implied vol from each strike's out-of-the-money side, shared by both rights
        otm = np.where(is_call[idx], K >= F, K < F)
        src = idx[otm & np.isin(flag[idx], (QuoteFlag.OK, QuoteFlag.LOCKED, QuoteFlag.STALE))]
        if src.size == 0:
            continue
        v, s = implied_vol(mid[src], F, strike[src], t, df, is_call[src], return_status=True)
        order = np.argsort(strike[src], kind="stable")
        ks_src = strike[src][order]
        pos = np.minimum(np.searchsorted(ks_src, K), ks_src.size - 1)
        hit = ks_src[pos] == K
        iv[idx[hit]] = v[order][pos[hit]]
        iv_status[idx[hit]] = s[order][pos[hit]]
    greeks = black76_greeks(
        np.where(np.isfinite(fwd), fwd, 1.0), strike, np.where(np.isfinite(T), T, 0.0),
        np.where(np.isfinite(iv), iv, 0.0), np.where(np.isfinite(dfs), dfs, 1.0), is_call,
    )  # fmt: skip
    delta = np.where(np.isfinite(iv) & np.isfinite(fwd), greeks["delta"], np.nan)
    out = base.with_columns(
        pl.Series("flag", flag, dtype=pl.Int8),
        pl.Series("mid", mid, nan_to_null=True),
        pl.Series("T", T, nan_to_null=True),
        pl.Series("forward", fwd, nan_to_null=True),
        pl.Series("df", dfs, nan_to_null=True),
        pl.Series("iv", iv, nan_to_null=True),
        pl.Series("iv_status", iv_status, dtype=pl.Int8),
        pl.Series("delta", delta, nan_to_null=True),
        ((pl.col("expiry") - pl.lit(day)).dt.total_days()).alias("dte"),
    )
    exp_schema = {"root": pl.Utf8, "expiry": pl.Date, "T": pl.Float64, "forward": pl.Float64, "df": pl.Float64,
                  "forward_stderr": pl.Float64, "pairs_used": pl.Int64, "reason": pl.Utf8}  # fmt: skip
    expiries = pl.DataFrame(rows, schema=exp_schema)
    return Snapshot(ts=ts, chain=out, expiries=expiries)
