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
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.pricing import black76_greeks, implied_forward, implied_vol
from quantlab.pricing.black76 import PARALLEL_MIN
from quantlab.pricing.implied_vol import PARALLEL_THRESHOLD
from quantlab.pricing.kernels import b76_greeks_1d, implied_vol_1d

NS_PER_MIN = calendar.NS_PER_MINUTE
MIN_PER_YEAR = 525_600.0
N_PAIRS = 8  # near-the-money call/put pairs of the parity forward fit


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
    chain: pl.DataFrame, ts: int, *, rate: float, max_age_s: float = 300.0, n_pairs: int = N_PAIRS
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
    day = calendar.et_date(ts)
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
        rows.append(
            {
                "root": root,
                "expiry": expiry,
                "T": t,
                "forward": fit.forward,
                "df": df,
                "forward_stderr": fit.stderr,
                "pairs_used": fit.n_used,
                "reason": fit.reason,
            }
        )
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
        np.where(np.isfinite(fwd), fwd, 1.0),
        strike,
        np.where(np.isfinite(T), T, 0.0),
        np.where(np.isfinite(iv), iv, 0.0),
        np.where(np.isfinite(dfs), dfs, 1.0),
        is_call,
    )
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
    exp_schema = {
        "root": pl.Utf8,
        "expiry": pl.Date,
        "T": pl.Float64,
        "forward": pl.Float64,
        "df": pl.Float64,
        "forward_stderr": pl.Float64,
        "pairs_used": pl.Int64,
        "reason": pl.Utf8,
    }
    expiries = pl.DataFrame(rows, schema=exp_schema)
    return Snapshot(ts=ts, chain=out, expiries=expiries)


# --------------------------------------------------------------------------- array fast path

_PRICED = (int(QuoteFlag.OK), int(QuoteFlag.LOCKED), int(QuoteFlag.STALE))


@dataclass(frozen=True)
class ExpiryFit:
    """One expiry of a :class:`ChainView`: ``T``, ``df`` and the parity fit (``forward`` is NaN
    when the fit failed)."""

    root: str
    expiry: dt.date
    T: float
    df: float
    forward: float
    ok: bool


@dataclass(frozen=True)
class ExpiryVols:
    """Implied vol and delta of every instrument of one expiry of a :class:`ChainView` (rows in
    chain order: strike, then right), NaN where there is none."""

    iv: np.ndarray
    delta: np.ndarray


def _groups(dq: Any, sel: np.ndarray) -> list[tuple[str, dt.date, int, int]]:
    """``(root, expiry, start, stop)`` row ranges of ``sel`` (positions in DayQuotes chain order:
    expiry, root, strike, right) per root and expiry, listed by (root, expiry)."""
    if sel.size == 0:
        return []
    roots = dq.root[sel]
    exps = dq.expiry[sel]
    cut = np.flatnonzero((roots[1:] != roots[:-1]) | (exps[1:] != exps[:-1])) + 1
    starts = np.concatenate([[0], cut]).tolist()
    stops = np.concatenate([cut, [sel.size]]).tolist()
    out = [
        (str(roots[a]), exps[a].astype(object), a, b) for a, b in zip(starts, stops, strict=True)
    ]
    return sorted(out, key=lambda g: (g[0], g[1]))


def _iv(
    price: np.ndarray, F: float, K: np.ndarray, t: float, df: float, is_call: np.ndarray
) -> np.ndarray:
    """:func:`~quantlab.pricing.implied_vol` of one expiry (the same serial kernel, called
    without the argument conversion of the public function)."""
    n = price.shape[0]
    if n >= PARALLEL_THRESHOLD:
        return implied_vol(price, F, K, t, df, is_call)  # type: ignore[return-value]
    sigma = np.empty(n)
    status = np.empty(n, np.int8)
    implied_vol_1d(
        np.ascontiguousarray(price, np.float64),
        np.full(n, float(F)),
        np.ascontiguousarray(K, np.float64),
        np.full(n, float(t)),
        np.full(n, float(df)),
        np.ascontiguousarray(is_call, np.bool_),
        sigma,
        status,
    )
    return sigma


def _delta(
    F: float, K: np.ndarray, t: float, sigma: np.ndarray, df: float, is_call: np.ndarray
) -> np.ndarray:
    """Black-76 delta of one expiry: :func:`~quantlab.pricing.black76_greeks` (the same serial
    kernel; the public function, with its checks, when an input is out of its domain)."""
    n = K.shape[0]
    if (
        n >= PARALLEL_MIN
        or not (F > 0 and df > 0 and t >= 0)
        or n == 0
        or K.min() <= 0
        or sigma.min() < 0
    ):
        g = black76_greeks(np.full(n, F), K, np.full(n, t), sigma, np.full(n, df), is_call)
        return g["delta"]
    outs = [np.empty(n) for _ in range(4)]
    b76_greeks_1d(
        np.full(n, float(F)),
        np.ascontiguousarray(K, np.float64),
        np.full(n, float(t)),
        np.ascontiguousarray(sigma, np.float64),
        np.full(n, float(df)),
        np.ascontiguousarray(is_call, np.bool_),
        *outs,
    )
    return outs[1]


class ChainView:
    """The decision snapshot of :func:`build_snapshot`, computed from a day's quote arrays and
    only for the expiries asked about.

    ``ChainView(dq, ts, sel, rate=..., max_age_s=...)`` over a
    :class:`quantlab.data.read.DayQuotes` gives, for every expiry it is asked about, the same
    numbers as ``build_snapshot(dq.snapshot(ts, sel), ts, rate=..., max_age_s=...)``: the same
    flags, the same parity forward (the same :func:`quantlab.pricing.implied_forward` call on the
    same pairs), the same out-of-the-money implied vols and deltas (the same elementwise pricing
    kernels on the same inputs). It skips the polars frames and the expiries no rule looks at,
    which is what a backtest decision needs; ``sel`` must be positions in the DayQuotes' chain
    order (as :meth:`~quantlab.data.read.DayQuotes.select` returns them).

    Attributes
    ----------
    ts : int
        Decision time (UTC ns); nothing stamped after it is used.
    position, bid, ask, age_s, flag : numpy arrays aligned with ``sel``
        Instrument position, the last quote at or before ``ts`` (NaN when none), its age in
        seconds and its :class:`QuoteFlag`.
    """

    def __init__(
        self,
        dq: Any,
        ts: int,
        sel: np.ndarray,
        *,
        rate: float,
        max_age_s: float = 300.0,
        n_pairs: int = N_PAIRS,
    ) -> None:
        self.dq = dq
        self.ts = int(ts)
        self.rate = rate
        self.n_pairs = n_pairs
        sel = np.asarray(sel, dtype=np.int64)
        self.position = sel
        idx = dq.snapshot_index(self.ts, sel)
        has = idx >= 0
        if dq.n_rows == 0:
            bid = np.full(idx.shape, np.nan)
            ask = np.full(idx.shape, np.nan)
            qts = np.full(idx.shape, -1, np.int64)
        else:
            r_ts, r_bid, r_ask = dq.rows(np.where(has, idx, 0))
            bid = np.where(has, r_bid, np.nan)
            ask = np.where(has, r_ask, np.nan)
            qts = np.where(has, r_ts, -1)
        self.bid = bid
        self.ask = ask
        self.age_s = np.where(has, (np.asarray(self.ts, np.int64) - qts) / 1_000_000_000, np.nan)
        self.flag = flag_quotes(bid, ask, self.age_s, max_age_s)
        self.strike = dq.strike[sel]
        self.is_call = dq.is_call[sel]
        key = ("chain_groups", sel.tobytes())
        self._groups = dq.derived(key, lambda: _groups(dq, sel))
        self._rows = {(r, e): (a, b) for r, e, a, b in self._groups}
        self._expiries = [(r, e) for r, e, _, _ in self._groups]
        self._fits: dict[tuple[str, dt.date], ExpiryFit | None] = {}
        self._vols: dict[tuple[str, dt.date], ExpiryVols] = {}
        self.cache: dict[Any, Any] = {}  # derived per-view lookups of callers (selection)

    def expiries(self) -> list[tuple[str, dt.date]]:
        """``(root, expiry)`` of every listed expiry, ordered by root then expiry (the rows of
        :attr:`Snapshot.expiries`, before dropping those already settled)."""
        return self._expiries

    def rows(self, root: str, expiry: dt.date) -> tuple[int, int] | None:
        """``(start, stop)``: the rows of one expiry in the arrays of this view."""
        return self._rows.get((root, expiry))

    def fit(self, root: str, expiry: dt.date) -> ExpiryFit | None:
        """Time to settlement and parity forward of one expiry (None once it has settled, or
        when not listed); computed on first use."""
        k = (root, expiry)
        if k in self._fits:
            return self._fits[k]
        rr = self._rows.get(k)
        out = None if rr is None else self._fit(root, expiry, *rr)
        self._fits[k] = out
        return out

    def _fit(self, root: str, expiry: dt.date, a: int, b: int) -> ExpiryFit | None:
        settle = calendar.settlement_ns(str(root), expiry)
        minutes = (settle - self.ts) / NS_PER_MIN
        if minutes <= 0:
            return None
        t = minutes / MIN_PER_YEAR
        df = float(np.exp(-self.rate * t))
        strike, is_call, flag = self.strike[a:b], self.is_call[a:b], self.flag[a:b]
        bid, ask = self.bid[a:b], self.ask[a:b]
        idx = np.arange(b - a)
        calls = idx[is_call]
        puts = idx[~is_call]
        ks = np.intersect1d(strike[calls], strike[puts])
        ci = calls[np.searchsorted(strike[calls], ks)]
        pi = puts[np.searchsorted(strike[puts], ks)]
        fresh = (flag[ci] == QuoteFlag.OK) & (flag[pi] == QuoteFlag.OK)
        fit = implied_forward(
            ks,
            bid[ci],
            ask[ci],
            bid[pi],
            ask[pi],
            t,
            r=self.rate,
            fresh=fresh,
            n_pairs=self.n_pairs,
        )
        return ExpiryFit(root, expiry, t, df, fit.forward, fit.ok)

    def vols(self, root: str, expiry: dt.date) -> ExpiryVols:
        """Implied vols (from each strike's out-of-the-money side) and deltas of one expiry's
        rows; all NaN when its forward could not be fitted."""
        k = (root, expiry)
        hit = self._vols.get(k)
        if hit is not None:
            return hit
        a, b = self._rows[k]
        n = b - a
        iv = np.full(n, np.nan)
        delta = np.full(n, np.nan)
        f = self.fit(root, expiry)
        if f is not None and f.ok:
            F, t, df = f.forward, f.T, f.df
            K, is_call, flag = self.strike[a:b], self.is_call[a:b], self.flag[a:b]
            priced = np.isin(flag, _PRICED)
            mid = np.where(priced, 0.5 * (self.bid[a:b] + self.ask[a:b]), np.nan)
            otm = np.where(is_call, K >= F, K < F)
            src = np.flatnonzero(otm & priced)
            if src.size:
                v = _iv(mid[src], F, K[src], t, df, is_call[src])
                order = np.argsort(K[src], kind="stable")
                ks_src = K[src][order]
                pos = np.minimum(np.searchsorted(ks_src, K), ks_src.size - 1)
                hit_k = ks_src[pos] == K
                iv[hit_k] = v[order][pos[hit_k]]
                ok = np.isfinite(iv)
                delta = np.where(ok, _delta(F, K, t, np.where(ok, iv, 0.0), df, is_call), np.nan)
        out = ExpiryVols(iv, delta)
        self._vols[k] = out
        return out
