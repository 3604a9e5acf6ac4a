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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from quantlab.chain.snapshot import ChainView, QuoteFlag
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


def pick_expiry(
    expiries: pl.DataFrame, day: dt.date, spec: DTESpec, roots: tuple[str, ...] | None = None
) -> tuple[str, dt.date, float] | None:
    """Choose (root, expiry, forward) from the snapshot's expiry table (``root, expiry, forward``).

    Only expiries with a fitted forward (and, when given, of ``roots``) are eligible.
    """
    rows = _expiry_rows(expiries)
    best: tuple[int, int, str, dt.date, float] | None = None
    for root, expiry, fwd in rows:
        if fwd != fwd or (roots is not None and root not in roots):
            continue
        dte = (expiry - day).days
        if dte < 0 or abs(dte - spec.target) > spec.tolerance:
            continue
        tie = dte if spec.tie_break == "shorter" else -dte
        key = (abs(dte - spec.target), tie, root, expiry, fwd)
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else (best[2], best[3], best[4])


_last_exp: list = [None, None]


def _expiry_rows(expiries: pl.DataFrame) -> list[tuple[str, dt.date, float]]:
    if _last_exp[0] is expiries:
        return _last_exp[1]
    fwd = expiries["forward"].cast(pl.Float64).fill_null(float("nan")).to_list()
    rows = list(zip(expiries["root"].to_list(), expiries["expiry"].to_list(), fwd, strict=True))
    _last_exp[0], _last_exp[1] = expiries, rows
    return rows


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


def _columns(chain: pl.DataFrame) -> dict[str, Any]:
    """Numpy columns of a snapshot chain, grouped by (root, expiry), cached for the next call."""
    if _last[0] is chain:
        return _last[1]
    cols: dict[str, Any] = {
        "strike": chain["strike"].to_numpy(),
        "is_call": (chain["right"] == "C").to_numpy(),
        "flag": chain["flag"].to_numpy(),
        "instrument_id": chain["instrument_id"].to_numpy(),
        "raw_symbol": chain["raw_symbol"].to_list(),
    }
    for name in ("delta", "iv", "bid", "ask"):
        cols[name] = chain[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
    cols["usable"] = np.isin(cols["flag"], USABLE)
    # a leg we buy may have a zero bid (worth under a tick): it is bought at its ask
    cols["buyable"] = cols["usable"] | (cols["flag"] == int(QuoteFlag.ZERO_BID))
    groups: dict[tuple[str, dt.date], np.ndarray] = {}
    keys = chain.select("root", "expiry").with_row_index("i").group_by(["root", "expiry"])
    for root, expiry, g in keys.agg(pl.col("i")).iter_rows():
        groups[(root, expiry)] = np.asarray(g, dtype=np.int64)
    cols["groups"] = groups
    _last[0], _last[1] = chain, cols
    return cols


NO_QUOTE_AT_TIME = "no_quote_at_time"
"""Decision reason: no instrument of the chain has a quote at (or within the quote-age limit
before) the decision time, e.g. an end-of-day store asked at 10:00."""


def has_fresh_quote(flags: np.ndarray) -> bool:
    """Whether any quote of a snapshot exists at the decision time (not missing, not stale)."""
    f = np.asarray(flags)
    return bool(np.any((f != int(QuoteFlag.NO_QUOTE)) & (f != int(QuoteFlag.STALE))))


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
    picked = pick_expiry(expiries, day, dte, tuple(roots))
    if picked is None:
        fresh = "flag" not in chain.columns or has_fresh_quote(chain["flag"].to_numpy())
        reason = "no_expiry_in_tolerance" if fresh else NO_QUOTE_AT_TIME
        return Selection("", None, -1, float("nan"), (), reason)
    root, expiry, fwd = picked
    ndte = (expiry - day).days
    c = _columns(chain)
    rows = c["groups"].get((root, expiry))
    if rows is None:
        return Selection(root, expiry, ndte, fwd, (), "no_quotes_for_expiry")
    sym = c["raw_symbol"]
    group = _Group(
        c["strike"][rows],
        c["is_call"][rows],
        c["delta"][rows],
        c["iv"][rows],
        c["usable"][rows],
        c["buyable"][rows],
        c["bid"][rows],
        c["ask"][rows],
        c["instrument_id"][rows],
        lambda k: str(sym[int(rows[k])]),
    )
    return _choose_legs(group, legs, match, root, expiry, ndte, fwd)


@dataclass
class _Group:
    """One expiry's instruments in chain order (strike, then right), as selection reads them;
    ``memo`` keeps the legs already chosen from it (rules that share their first legs, e.g. the
    same short leg at several widths, choose them once)."""

    strike: np.ndarray
    is_call: np.ndarray
    delta: np.ndarray
    iv: np.ndarray
    usable: np.ndarray
    buyable: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    instrument_id: np.ndarray
    occ: Any  # k -> OCC symbol of row k
    memo: dict[tuple, LegChoice | str] = field(default_factory=dict)


def _leg_key(leg: LegSpec) -> tuple:
    return (leg.right, leg.side, leg.quantity, leg.delta, leg.width_from, leg.width)


def _choose_legs(
    g: _Group,
    legs: tuple[LegSpec, ...],
    match: str,
    root: str,
    expiry: dt.date,
    ndte: int,
    fwd: float,
) -> Selection:
    """Every leg of a structure from one expiry's rows, by the module's rules."""
    chosen: list[LegChoice] = []
    prefix: tuple = (match,)
    for leg in legs:
        prefix = (*prefix, _leg_key(leg))
        got = g.memo.get(prefix)
        if got is None:
            got = g.memo[prefix] = _choose_leg(g, leg, chosen, match)
        if isinstance(got, str):
            return Selection(root, expiry, ndte, fwd, (), got)
        chosen.append(got)
    return Selection(root, expiry, ndte, fwd, tuple(chosen))


def _choose_leg(g: _Group, leg: LegSpec, chosen: list[LegChoice], match: str) -> LegChoice | str:
    """One leg given the legs chosen before it, or the reason there is none."""
    strike, is_call, delta, iv = g.strike, g.is_call, g.delta, g.iv
    side = (g.usable if leg.side == "sell" else g.buyable) & (is_call == (leg.right == "C"))
    sign = -leg.quantity if leg.side == "sell" else leg.quantity
    if leg.delta is not None:
        pool = side & np.isfinite(delta) & np.isfinite(iv)
        # a long leg by delta must sit further out of the money than the short leg of its right
        if leg.side == "buy":
            shorts = [x for x in chosen if x.right == leg.right and x.quantity < 0]
            if shorts:
                ref = shorts[0].strike
                pool &= strike < ref if leg.right == "P" else strike > ref
        idx = np.flatnonzero(pool)
        idx = idx[np.argsort(strike[idx], kind="stable")]
        j = _by_delta(np.abs(delta[idx]), leg.delta, match)
        if j is None:
            return f"no_{leg.right}_strike_for_delta"
        k = int(idx[j])
    else:
        assert leg.width_from is not None and leg.width is not None  # validated by LegSpec
        if leg.width_from >= len(chosen):
            return "width_from_refers_to_a_later_leg"
        ref_leg = chosen[leg.width_from]
        target = ref_leg.strike - leg.width if leg.right == "P" else ref_leg.strike + leg.width
        hit = np.flatnonzero(side & (np.abs(strike - target) < 1e-6))
        if hit.size == 0:
            return "long_strike_not_listed_or_unusable"
        k = int(hit[0])
    return LegChoice(
        occ=g.occ(k),
        instrument_id=int(g.instrument_id[k]),
        right=leg.right,
        strike=float(strike[k]),
        quantity=int(sign),
        bid=float(g.bid[k]),
        ask=float(g.ask[k]),
        delta=float(delta[k]),
        iv=float(iv[k]),
    )


# --------------------------------------------------------------------------- array fast path


def pick_expiry_view(
    view: ChainView, day: dt.date, spec: DTESpec, roots: tuple[str, ...] | None = None
) -> tuple[str, dt.date, float] | None:
    """:func:`pick_expiry` on a :class:`~quantlab.chain.snapshot.ChainView`: the same choice,
    fitting forwards only for the expiries in tolerance, best first, until one fits."""
    key = ("pick_expiry", day, spec.target, spec.tolerance, spec.tie_break, roots)
    if key in view.cache:
        return view.cache[key]
    view.cache[key] = out = _pick_expiry_view(view, day, spec, roots)
    return out


def _pick_expiry_view(
    view: ChainView, day: dt.date, spec: DTESpec, roots: tuple[str, ...] | None
) -> tuple[str, dt.date, float] | None:
    ranked = []
    for i, (root, expiry) in enumerate(view.expiries()):
        if roots is not None and root not in roots:
            continue
        dte = (expiry - day).days
        if dte < 0 or abs(dte - spec.target) > spec.tolerance:
            continue
        tie = dte if spec.tie_break == "shorter" else -dte
        ranked.append((abs(dte - spec.target), tie, i, root, expiry))
    ranked.sort(key=lambda x: x[:3])
    for _, _, _, root, expiry in ranked:
        f = view.fit(root, expiry)
        if f is not None and f.forward == f.forward:
            return root, expiry, f.forward
    return None


def _view_group(view: ChainView, root: str, expiry: dt.date) -> _Group | None:
    key = ("select_group", root, expiry)
    hit = view.cache.get(key)
    if hit is not None:
        return hit
    rr = view.rows(root, expiry)
    if rr is None:
        return None
    a, b = rr
    flag = view.flag[a:b]
    usable = np.isin(flag, USABLE)
    pos = view.position[a:b]
    vols = view.vols(root, expiry)
    sym = view.dq.symbols()
    group = _Group(
        view.strike[a:b],
        view.is_call[a:b],
        vols.delta,
        vols.iv,
        usable,
        usable | (flag == int(QuoteFlag.ZERO_BID)),
        view.bid[a:b],
        view.ask[a:b],
        view.dq.instrument_id[pos],
        lambda k: str(sym[int(pos[k])]),
    )
    view.cache[key] = group
    return group


def select_from_view(
    view: ChainView,
    day: dt.date,
    dte: DTESpec,
    roots: tuple[str, ...],
    legs: tuple[LegSpec, ...],
    match: str = "nearest",
) -> Selection:
    """:func:`select_structure` on a :class:`~quantlab.chain.snapshot.ChainView` (the same
    selection, with implied vols and deltas computed only for the expiry chosen)."""
    picked = pick_expiry_view(view, day, dte, tuple(roots))
    if picked is None:
        reason = "no_expiry_in_tolerance" if has_fresh_quote(view.flag) else NO_QUOTE_AT_TIME
        return Selection("", None, -1, float("nan"), (), reason)
    root, expiry, fwd = picked
    ndte = (expiry - day).days
    group = _view_group(view, root, expiry)
    if group is None:
        return Selection(root, expiry, ndte, fwd, (), "no_quotes_for_expiry")
    return _choose_legs(group, legs, match, root, expiry, ndte, fwd)
