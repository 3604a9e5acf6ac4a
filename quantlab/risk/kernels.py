"""Numba kernels of position risk: each leg's implied vol along a trade's quote path, the
position's greeks, a second-order P&L attribution minute by minute, and scenario revaluation.

Conventions (the whole package):

- A position is a combo of legs with signed quantities per combo unit (``qty`` < 0 sold); its
  value per share is ``sum(qty_m x price_m)`` (a credit spread is worth a negative amount), its
  greeks the same sums of the legs' Black-76 greeks. Callers scale by 100 shares x contracts.
- The underlying is the expiry's put-call-parity forward ``F`` (stage 1 stores it at every
  path minute): delta is dV/dF, gamma d2V/dF2, vega dV/dsigma (per 1.00 of vol), theta
  dV/dt per year of calendar time at fixed ``F`` and vols (``r V - vega sigma / 2T``: the
  discount factor's drift plus the decay of time value).
- A leg's implied vol is solved from its own mid. Put-call parity at the path's forward makes
  that the vol of the out-of-the-money side at the same strike (the one the decision snapshot
  uses) up to that side's own quote noise; where a leg's mid is unusable, its bid is zero (a
  value under a tick: the snapshot's ``ZERO_BID``, no vol) or its vol cannot be solved (a mid
  below intrinsic value), the leg's last vol is carried.
- A row is an observation when every leg has an ask (the mark rule of
  :func:`quantlab.strategy.kernels.close_cost`) and the forward is known; the mid of a leg is
  ``(max(bid, 0) + ask) / 2``.
"""

from __future__ import annotations

import math

import numpy as np

from quantlab._numba import jit
from quantlab.money import SHARES_PER_CONTRACT
from quantlab.pricing.kernels import b76_greeks_one, b76_price_scalar, implied_vol_scalar

G_DELTA, G_GAMMA, G_VEGA, G_THETA, G_VALUE = range(5)
G_SIZE = 5
#: attribution terms of one step (per share of one combo unit)
A_DELTA, A_GAMMA, A_VEGA, A_THETA, A_ACTUAL = range(5)
A_SIZE = 5
NS_PER_YEAR = 525_600.0 * 60e9  # the snapshot's year: 525,600 minutes
VOL_FLOOR = 0.01
SESSION_GAP_NS = (
    3_600 * 1_000_000_000
)  # path minutes further apart: a session ended between  # a scenario never takes a leg's vol below 1 vol point


@jit(inline="always")
def year_frac(ts, settle_ns):
    """Years from ``ts`` to settlement (the snapshot's ``T``: minutes / 525,600)."""
    return (settle_ns - ts) / NS_PER_YEAR


@jit
def leg_greeks(F, T, df, rate, strike, is_call, iv, out):
    """``out[G_*]`` of one long option at vol ``iv`` (NaN when ``iv`` is NaN)."""
    tmp = np.empty((4, 1))
    _greeks_into(F, T, df, rate, strike, is_call, iv, tmp, 0, out)


@jit(inline="always")
def _greeks_into(F, T, df, rate, strike, is_call, iv, tmp, m, out):
    """One option's ``G_*`` into ``out`` (``tmp``: ``[4, >m]`` scratch of the pricing kernel)."""
    b76_greeks_one(F, strike, max(T, 0.0), iv, df, is_call, m, tmp[0], tmp[1], tmp[2], tmp[3])
    p, v = tmp[0, m], tmp[3, m]
    out[G_DELTA] = tmp[1, m]
    out[G_GAMMA] = tmp[2, m]
    out[G_VEGA] = v
    out[G_THETA] = rate * p - (v * iv / (2.0 * T) if T > 0.0 else 0.0)
    out[G_VALUE] = p


@jit
def legs_greeks(F, T, df, rate, qty, strike, is_call, n_legs, iv, tmp, legs, out):
    """Each leg's ``G_*`` into ``legs[m]`` and the position's (the sums of ``qty[m] x``
    those, per share of one combo unit) into ``out``; ``tmp`` is ``[4, n_legs]`` scratch."""
    for k in range(G_SIZE):
        out[k] = 0.0
    for m in range(n_legs):
        _greeks_into(F, T, df, rate, strike[m], is_call[m], iv[m], tmp, m, legs[m])
        for k in range(G_SIZE):
            out[k] += qty[m] * legs[m, k]


@jit
def position_greeks(F, T, df, rate, qty, strike, is_call, n_legs, iv, out):
    """``out[G_*]``: the sums over legs ``m < n_legs`` of ``qty[m] x`` leg greeks at
    ``iv[m]`` (per share of one combo unit)."""
    n = max(n_legs, 1)
    legs_greeks(
        F, T, df, rate, qty, strike, is_call, n_legs, iv, np.empty((4, n)),
        np.empty((n, G_SIZE)), out,
    )  # fmt: skip


@jit
def borrow_vols(iv, strike, n_legs):
    """A leg with no vol of its own (its bid was zero whenever it was read: a value under a
    tick) takes the vol of the trade's nearest-strike leg that has one (a flat smile between
    them: on a put wing that undervalues the protection, so scenario losses err high)."""
    for m in range(n_legs):
        if iv[m] == iv[m]:
            continue
        best = -1
        for q in range(n_legs):
            if iv[q] == iv[q] and (
                best < 0 or abs(strike[q] - strike[m]) < abs(strike[best] - strike[m])
            ):
                best = q
        if best >= 0:
            iv[m] = iv[best]


@jit
def observe(bid, ask, F, T, df, strike, is_call, n_legs, iv, mid):
    """Read one path row (cents): each leg's mid into ``mid`` (dollars) and its vol into ``iv``
    (the last one carried where it cannot be solved). False (nothing changes) when a leg has
    no ask or ``F`` is unknown."""
    if not (F == F) or T <= 0.0:
        return False
    for m in range(n_legs):
        if ask[m] <= 0:
            return False
    for m in range(n_legs):
        mid[m] = (max(bid[m], 0) + ask[m]) / 200.0
        if bid[m] > 0:  # a zero bid is a value under a tick: no vol (the snapshot's rule)
            s, status = implied_vol_scalar(mid[m], F, strike[m], T, df, is_call[m])
            if status == 0 and s == s and s > 0.0:
                iv[m] = s
    return True


@jit
def path_risk(
    ts, bid, ask, fwd, entry_ts, entry_fwd, entry_bid, entry_ask, entry_iv, qty, strike,
    is_call, n_legs, settle_ns, settle_value, rate, greeks, ivs, terms, valid, entry_greeks,
    closes_only,
):  # fmt: skip
    """One trade from its entry over path rows ``0..n-1`` (``ts``, cents ``bid``/``ask``,
    forward ``fwd``) and, when ``settle_value`` is not NaN, its cash settlement (row ``n``).

    At each row: the position greeks (``greeks[i, G_*]``, per share of one combo unit, carried
    from the last observation on rows that are not one), each leg's vol (``ivs[i, m]``), and
    the attribution of the step from the previous observation (``terms[i, A_*]``: delta
    ``D dF``, gamma ``G dF^2 / 2`` and vega ``sum_m qty_m vega_m dsigma_m`` with the greeks of
    the previous observation, theta the model value's change over the step's time at the
    previous observation's forward and vols (revalued: a weekend's three days decay as they
    do, not at Friday's theta), and the actual change of the position's mid value; zeros and ``valid[i]`` False on rows that are not observations). The entry
    (``entry_*``, vols from the decision snapshot) is the first observation; at settlement the
    value is the legs' intrinsic values at ``settle_value`` (no vol: its step has no vega).
    ``entry_greeks`` gets the greeks at the entry. With ``closes_only`` only each session's
    last row and the last row are read (a daily attribution: the other rows carry the greeks
    and have no terms)."""
    nl = n_legs
    n = ts.shape[0]
    iv = entry_iv[:nl].copy()
    mid = np.empty(nl)
    g = np.empty(G_SIZE)
    vega_legs = np.empty(nl)
    tmp = np.empty((4, max(nl, 1)))
    legs = np.empty((max(nl, 1), G_SIZE))
    T = year_frac(entry_ts, settle_ns)
    df = math.exp(-rate * T)
    observe(entry_bid, entry_ask, entry_fwd, T, df, strike, is_call, nl, iv, mid)
    borrow_vols(iv, strike, nl)
    st = np.empty(3)  # forward, time, value of the last observation
    st[0], st[1] = entry_fwd, entry_ts
    st[2] = 0.0
    for m in range(nl):
        st[2] += qty[m] * (max(entry_bid[m], 0) + entry_ask[m]) / 200.0
    iv0 = iv.copy()
    _last_greeks(st[0], T, df, rate, qty, strike, is_call, nl, iv, g, vega_legs, tmp, legs)
    for k in range(G_SIZE):
        entry_greeks[k] = g[k]
    for i in range(n):
        T = year_frac(ts[i], settle_ns)
        df = math.exp(-rate * T)
        close = i == n - 1 or ts[i + 1] - ts[i] > SESSION_GAP_NS
        ok = (close or not closes_only) and observe(
            bid[i], ask[i], fwd[i], T, df, strike, is_call, nl, iv, mid
        )
        borrow_vols(iv, strike, nl)
        valid[i] = ok
        for k in range(A_SIZE):
            terms[i, k] = 0.0
        if ok:
            v1 = 0.0
            for m in range(nl):
                v1 += qty[m] * mid[m]
            decay = _value_at(st[0], T, df, qty, strike, is_call, nl, iv0) - g[G_VALUE]
            _step(g, vega_legs, qty, nl, iv, iv0, fwd[i], ts[i], v1, decay, st, terms[i])
            for m in range(nl):
                iv0[m] = iv[m]
            _last_greeks(st[0], T, df, rate, qty, strike, is_call, nl, iv, g, vega_legs, tmp, legs)
        for k in range(G_SIZE):
            greeks[i, k] = g[k]
        for m in range(ivs.shape[1]):
            ivs[i, m] = iv[m] if m < nl else np.nan
    if settle_value == settle_value:
        v1 = 0.0
        for m in range(nl):
            x = settle_value - strike[m] if is_call[m] else strike[m] - settle_value
            v1 += qty[m] * max(x, 0.0)
        decay = _value_at(st[0], 0.0, 1.0, qty, strike, is_call, nl, iv0) - g[G_VALUE]
        _step(g, vega_legs, qty, nl, iv0, iv0, settle_value, settle_ns, v1, decay, st, terms[n])
        valid[n] = True
        for k in range(G_SIZE):
            greeks[n, k] = 0.0
        for m in range(ivs.shape[1]):
            ivs[n, m] = np.nan


@jit(inline="always")
def _last_greeks(F, T, df, rate, qty, strike, is_call, nl, iv, g, vega_legs, tmp, legs):
    """The position greeks and each leg's vega at an observation."""
    legs_greeks(F, T, df, rate, qty, strike, is_call, nl, iv, tmp, legs, g)
    for m in range(nl):
        vega_legs[m] = legs[m, G_VEGA]


@jit(inline="always")
def _value_at(F, T, df, qty, strike, is_call, nl, iv):
    """The position's model value per share at forward ``F``, time ``T``, vols ``iv``."""
    v = 0.0
    for m in range(nl):
        v += qty[m] * b76_price_scalar(F, strike[m], max(T, 0.0), iv[m], df, is_call[m])
    return v


@jit(inline="always")
def _step(g, vega_legs, qty, nl, iv, iv0, F1, t1, v1, decay, st, out):
    """The attribution terms of the step from the last observation ``st`` (forward, time,
    value) to ``(F1, t1, v1)``, its theta the time ``decay`` (revalued); ``st`` moves on."""
    dF = F1 - st[0]
    out[A_DELTA] = g[G_DELTA] * dF
    out[A_GAMMA] = 0.5 * g[G_GAMMA] * dF * dF
    vega = 0.0
    for m in range(nl):
        vega += qty[m] * vega_legs[m] * (iv[m] - iv0[m])
    out[A_VEGA] = vega
    out[A_THETA] = decay
    out[A_ACTUAL] = v1 - st[2]
    st[0], st[1], st[2] = F1, t1, v1


@jit
def paths_risk(
    starts, path_row, upto, path_ts, path_bid, path_ask, path_fwd, entry_ts, entry_fwd,
    entry_bid, entry_ask, entry_iv, qty, strike, is_call, n_legs, settle_ns, settle_value,
    rate, greeks, ivs, terms, valid, entry_greeks, closes_only,
):  # fmt: skip
    """:func:`path_risk` of trades ``t`` (path rows ``path_row[t] .. + upto[t]``), each into
    its block ``starts[t] .. starts[t + 1]`` of the outputs (``upto[t] + 1`` rows: the last
    one is its settlement step, zeros when it did not settle)."""
    for t in range(path_row.shape[0]):
        a = path_row[t]
        b = a + upto[t]
        o = starts[t]
        e = starts[t + 1]
        for k in range(A_SIZE):
            terms[e - 1, k] = 0.0
        valid[e - 1] = False
        path_risk(
            path_ts[a:b], path_bid[a:b], path_ask[a:b], path_fwd[a:b], entry_ts[t],
            entry_fwd[t], entry_bid[t], entry_ask[t], entry_iv[t], qty[t], strike[t],
            is_call[t], n_legs[t], settle_ns[t], settle_value[t], rate, greeks[o:e],
            ivs[o:e], terms[o:e], valid[o:e], entry_greeks[t], closes_only,
        )  # fmt: skip
        if not valid[e - 1]:
            for k in range(G_SIZE):
                greeks[e - 1, k] = greeks[e - 2, k] if e - 2 >= o else np.nan
            for m in range(ivs.shape[1]):
                ivs[e - 1, m] = np.nan


@jit
def dollar_greeks(g, F, contracts, out):
    """The book's units (``K_*`` of :mod:`quantlab.strategy.book_kernels`) of position greeks
    ``g`` (per share of one combo unit) for ``contracts`` at forward ``F``: dollars per SPX
    point, per 1 % move (``x F / 100``), per vol point, and gamma per 1 % squared
    (``x (F / 100)^2``: half of it times a move in % squared is the gamma P&L)."""
    shares = contracts * SHARES_PER_CONTRACT
    out[0] = g[G_DELTA] * shares
    out[1] = out[0] * F / 100.0
    out[2] = g[G_VEGA] * shares / 100.0
    out[3] = g[G_GAMMA] * shares * (F / 100.0) ** 2


@jit
def dollar_rows(g, F, contracts, out):
    """:func:`dollar_greeks` of each row of ``g`` (``G_*`` per share of one combo unit) at
    forward ``F[i]`` for ``contracts[i]`` (columns 0-3), the theta per calendar day in dollars
    (column 4: ``Theta / 365`` x shares) and the gamma per SPX point (column 5: the dollar
    delta's change per point)."""
    d = np.empty(4)
    for i in range(g.shape[0]):
        shares = contracts[i] * SHARES_PER_CONTRACT
        dollar_greeks(g[i], F[i], contracts[i], d)
        for k in range(4):
            out[i, k] = d[k]
        out[i, 4] = g[i, G_THETA] * shares / 365.0
        out[i, 5] = g[i, G_GAMMA] * shares


@jit
def state_at(bid, ask, F, T, df, strike, is_call, n_legs, entry_fwd, entry_iv, iv):
    """A trade's forward and legs' vols at one minute, the rule the book's greek limits use in
    the backtest and live alike: the expiry's parity forward then (the entry's when unknown),
    each leg's vol from its mid then (its entry vol where the leg has no ask or no vol
    solves). Returns the forward; fills ``iv``."""
    for m in range(n_legs):
        iv[m] = entry_iv[m]
    f = F if F == F else entry_fwd
    if T <= 0.0:
        return f
    for m in range(n_legs):
        if ask[m] > 0 and bid[m] > 0:
            mid = (bid[m] + ask[m]) / 200.0
            s, status = implied_vol_scalar(mid, f, strike[m], T, df, is_call[m])
            if status == 0 and s == s and s > 0.0:
                iv[m] = s
    return f


@jit
def add_position(F, T, df, rate, qty, strike, is_call, n_legs, iv, contracts, spot, vol, k, scen):
    """Add one position's dollar greeks (``k``, :func:`dollar_greeks`; with a fifth slot, the
    theta per calendar day) and its scenario P&L in dollars (``scen``, flattened
    ``[spot, vol]``; skipped when ``scen`` is empty)."""
    g = np.empty(G_SIZE)
    borrow_vols(iv, strike, n_legs)
    position_greeks(F, T, df, rate, qty, strike, is_call, n_legs, iv, g)
    d = np.empty(4)
    dollar_greeks(g, F, contracts, d)
    for i in range(4):
        k[i] += d[i]
    if k.shape[0] > 4:
        k[4] += g[G_THETA] * contracts * SHARES_PER_CONTRACT / 365.0
    if scen.shape[0] == 0:
        return
    v = np.empty((spot.shape[0], vol.shape[0]))
    scenario_values(F, T, df, qty, strike, is_call, n_legs, iv, spot, vol, v)
    shares = contracts * SHARES_PER_CONTRACT
    for a in range(spot.shape[0]):
        for b in range(vol.shape[0]):
            scen[a * vol.shape[0] + b] += v[a, b] * shares


@jit
def entry_risk(ts, settle_ns, rate, fwd, qty, strike, is_call, n_legs, iv, spot, vol, k, scen):
    """One contract's dollar greeks (``k[j]``) and scenario P&L (``scen[j]``, when it has
    columns) of each candidate ``j`` at its entry: its forward and legs' vols from the decision
    snapshot."""
    for j in range(ts.shape[0]):
        T = year_frac(ts[j], settle_ns[j])
        df = math.exp(-rate * T)
        for i in range(k.shape[1]):
            k[j, i] = 0.0
        for i in range(scen.shape[1]):
            scen[j, i] = 0.0
        add_position(
            fwd[j], T, df, rate, qty[j], strike[j], is_call[j], n_legs[j], iv[j], 1, spot, vol,
            k[j], scen[j],
        )  # fmt: skip


@jit
def scenario_values(F, T, df, qty, strike, is_call, n_legs, iv, spot, vol, out):
    """``out[a, b]``: the change of the position's value per share of one combo unit when the
    forward moves by the fraction ``spot[a]`` and every leg's vol by ``vol[b]`` (sticky
    strike: each strike keeps its own vol plus the shift, floored at :data:`VOL_FLOOR`), at
    once (same ``T``), by full Black-76 revaluation."""
    base = _value_at(F, T, df, qty, strike, is_call, n_legs, iv)
    shifted = np.empty(max(n_legs, 1))
    for b in range(vol.shape[0]):
        for m in range(n_legs):
            shifted[m] = max(iv[m] + vol[b], VOL_FLOOR)
        for a in range(spot.shape[0]):
            v = _value_at(F * (1.0 + spot[a]), T, df, qty, strike, is_call, n_legs, shifted)
            out[a, b] = v - base


__all__ = [
    "A_SIZE",
    "G_SIZE",
    "NS_PER_YEAR",
    "VOL_FLOOR",
    "add_position",
    "borrow_vols",
    "dollar_greeks",
    "dollar_rows",
    "entry_risk",
    "leg_greeks",
    "legs_greeks",
    "observe",
    "path_risk",
    "paths_risk",
    "position_greeks",
    "scenario_values",
    "state_at",
    "year_frac",
]
