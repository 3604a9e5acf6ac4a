"""Numba kernel that turns the surface into minute quotes (one pass per instrument).

Random numbers come from a counter-based hash (splitmix64 of day key, instrument, minute,
draw), so the result does not depend on thread scheduling and no global RNG is touched.

Quote rules (MARKET_FACTS Tables 2a, 2b, 4a, 4b):

* theo = Black-76 price on the smile (``quantlab.pricing``'s scalar kernel); width from the OTM
  price-width curve ``WIDTH_PX`` / ``WIDTH_W`` (after rounding: 2 ticks up to $3, 0.20 at
  $3-10, 0.30 at $10-30, 0.40-0.60 above), plus an ITM add-on
  ``itm_coef * S * ((|delta| - 0.6) / 0.4) ** 1.5`` (deep ITM $5-16 at S = 6,000), times a
  per-instrument factor and the time-of-day multiplier (first 15 min 1.3x, last 30 min 1.2x,
  an expiring contract's last 30 min 2.4x, after 16:00 1.27x).
* bid rounded down, ask up, to the SPX ticks (0.05 under $3, 0.10 at/above $3); a bid under one
  tick becomes one tick, and only a value under one tick gets a zero bid (price 0, size 0)
  with a 0.05/0.10 ask (Table 2a: zero bids only for |delta| < 0.02).
* The market maker requotes only when theo moved by more than ``hyst`` ticks since the last
  quote or the width regime changed; a minute whose rounded bid, ask and sizes are unchanged and
  had no trade emits no record (cbbo-1m semantics).
* Rare crossed/locked quotes (a stale bid 0-2 ticks above the ask) on cheap contracts, mostly
  expiring ones after 15:00 (``cross_p`` per minute and expiry); rare one-sided deep-ITM quotes
  (no offer: ask undefined, size 0) in the first 15 minutes.
* Trades at bid, ask or mid now and then; the last trade is carried forward (price, size,
  ts_event), as Databento's cbbo-1m does.
"""

from __future__ import annotations

import math

import numpy as np

from quantlab._numba import jit, prange
from quantlab.pricing.kernels import b76_price_scalar

# width BEFORE rounding to ticks (rounding bid down and ask up adds about one tick on average)
WIDTH_PX = np.array([0.0, 0.05, 0.5, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e9])
WIDTH_W = np.array([0.03, 0.04, 0.05, 0.06, 0.09, 0.15, 0.25, 0.38, 0.65, 0.65])
SIZE_PX = np.array([0.0, 0.1, 0.75, 2.0, 6.0, 20.0, 60.0, 200.0, 1e9])
SIZE_N = np.array([1100.0, 1000.0, 750.0, 450.0, 300.0, 80.0, 25.0, 10.0, 10.0])

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@jit
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@jit
def uniform(key: np.uint64, i: int, m: int, d: int) -> float:
    """Uniform in [0, 1) from (key, instrument, minute, draw)."""
    z = key + np.uint64(i) * np.uint64(0x9E3779B97F4A7C15)
    z = _mix(
        z
        + np.uint64(m) * np.uint64(0xD1B54A32D192ED03)
        + np.uint64(d) * np.uint64(0x8CB92BA72F3D8DD7)
    )
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit
def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@jit
def _interp(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    n = xs.shape[0]
    if x <= xs[0]:
        return ys[0]
    for j in range(1, n):
        if x < xs[j]:
            f = (x - xs[j - 1]) / (xs[j] - xs[j - 1])
            return ys[j - 1] + f * (ys[j] - ys[j - 1])
    return ys[n - 1]


@jit
def smile_vol_nb(k: float, atm: float, beta: float, rho: float, mm: float, dl: float) -> float:
    v = atm + beta * (rho * k + math.sqrt((k - mm) ** 2 + dl * dl) - math.sqrt(mm * mm + dl * dl))
    return max(v, 0.3 * atm)


@jit
def black76_nb(
    f: float, k: float, t: float, vol: float, df: float, call: bool
) -> tuple[float, float]:
    """Discounted Black-76 price (quantlab.pricing's scalar kernel) and forward delta."""
    price = b76_price_scalar(f, k, t, vol, df, call)
    sd = vol * math.sqrt(t) if t > 0.0 else 0.0
    if sd < 1e-12:
        if call:
            return price, 1.0 if f > k else 0.0
        return price, -1.0 if k > f else 0.0
    d1 = math.log(f / k) / sd + 0.5 * sd
    return price, (_ncdf(d1) if call else _ncdf(d1) - 1.0)


@jit
def _tick_c(price_c: int) -> int:
    return 5 if price_c < 300 else 10


@jit(parallel=True)
def quote_kernel(
    key,
    strike,
    is_call,
    exp_idx,
    n_live,
    wmult,
    smult,
    spot,
    fwd,
    dfac,
    tyears,
    atm,
    beta,
    rho,
    mm,
    dl,
    tmult,
    cross_p,
    width_px,
    width_w,
    size_px,
    size_n,
    itm_coef,
    hyst,
    p_size,
    bid_o,
    ask_o,
    bsz_o,
    asz_o,
    emit_o,
    tpx_o,
    tsz_o,
    tms_o,
):  # pragma: no cover - compiled
    n_inst = strike.shape[0]
    for i in prange(n_inst):
        e = exp_idx[i]
        kk = strike[i]
        call = is_call[i]
        last_theo = -1.0
        last_tm = -1.0
        pb = -2
        pa = -2
        qb = -2
        qa = -2
        pbs = 0
        pas = 0
        tpx = -1
        tsz = 0
        tms = -1
        for m in range(n_live[i]):
            t = tyears[m, e]
            f = fwd[m, e]
            if t > 0.0:
                vol = smile_vol_nb(
                    math.log(kk / f), atm[m, e], beta[m, e], rho[m, e], mm[m, e], dl[m, e]
                )
            else:
                vol = 0.0
            theo, delta = black76_nb(f, kk, t, vol, dfac[m, e], call)
            ad = abs(delta)
            tick = 0.05 if theo < 3.0 else 0.10
            requote = (
                last_theo < 0.0 or abs(theo - last_theo) > hyst * tick or tmult[m, e] != last_tm
            )
            if requote:
                last_theo = theo
                last_tm = tmult[m, e]
                w = _interp(theo, width_px, width_w)
                if ad > 0.6:
                    w += itm_coef * spot[m] * ((ad - 0.6) / 0.4) ** 1.5
                w *= wmult[i] * tmult[m, e]
                b = theo - 0.5 * w
                a = theo + 0.5 * w
                tb = 5 if b < 3.0 else 10
                bid_c = math.floor(b * 100.0 / tb + 1e-7) * tb
                if bid_c < 5:  # zero bids only when the value is under one tick
                    bid_c = 5 if theo >= 0.05 else 0
                ta = 5 if a < 3.0 else 10
                ask_c = math.ceil(a * 100.0 / ta - 1e-7) * ta
                if ask_c < 5:
                    ask_c = 5
                if ask_c <= bid_c:
                    ask_c = bid_c + _tick_c(bid_c)
                if ad > 0.97 and m < 15 and uniform(key, i, m, 5) < 0.01:
                    ask_c = -1  # one-sided: nobody offers deep ITM at the open
                qb = bid_c
                qa = ask_c
            bid_c = qb
            ask_c = qa
            # rare stale bid -> crossed / locked (cheap contracts)
            if cross_p[m, e] > 0.0 and theo < 0.5 and ask_c >= 10:
                if uniform(key, i, m, 6) < cross_p[m, e]:
                    u = uniform(key, i, m, 7)
                    j = 0 if u < 0.4 else (1 if u < 0.8 else 2)
                    bid_c = ask_c + j * 5
            changed = bid_c != pb or ask_c != pa
            bs = pbs
            as_ = pas
            ps = p_size if qb > 0 else 0.1 * p_size
            if changed or uniform(key, i, m, 1) < ps:
                sbase = _interp(theo, size_px, size_n) * smult[i]
                if changed or uniform(key, i, m, 2) < 0.5:
                    bs = max(1, int(sbase * (0.3 + 1.4 * uniform(key, i, m, 3))))
                if changed or uniform(key, i, m, 2) >= 0.5:
                    as_ = max(1, int(sbase * (0.3 + 1.4 * uniform(key, i, m, 4))))
            if bid_c == 0:
                bs = 0
            if ask_c < 0:
                as_ = 0
            traded = False
            if bid_c > 0 and ask_c > bid_c:
                p_tr = 0.01 + 0.12 * 4.0 * ad * (1.0 - ad)
                if uniform(key, i, m, 8) < p_tr:
                    u = uniform(key, i, m, 9)
                    if u < 0.4:
                        tpx = bid_c
                    elif u < 0.8:
                        tpx = ask_c
                    else:
                        tk = _tick_c(bid_c)
                        tpx = ((bid_c + ask_c) // (2 * tk)) * tk
                    tsz = 1 + int(20.0 * uniform(key, i, m, 10) ** 3)
                    tms = m * 60000 + int(59999.0 * uniform(key, i, m, 11))
                    traded = True
            emit = m == 0 or changed or bs != pbs or as_ != pas or traded
            emit_o[m, i] = emit
            if emit:
                bid_o[m, i] = bid_c
                ask_o[m, i] = ask_c
                bsz_o[m, i] = bs
                asz_o[m, i] = as_
                tpx_o[m, i] = tpx
                tsz_o[m, i] = tsz
                tms_o[m, i] = tms
            pb = bid_c
            pa = ask_c
            pbs = bs
            pas = as_


@jit
def compact_kernel(
    emit,
    bid,
    ask,
    bsz,
    asz,
    tpx,
    tsz,
    tms,
    ts,
    ids,
    open_ns,
    head,
    w3,
    undef_px,
    undef_ts,
    xcbo,
    out,
    start,
):  # pragma: no cover - compiled
    """Pack emitted (minute, instrument) cells into CbboMsg rows, minute-major.

    ``out`` is the record array viewed as little-endian uint64 ``[n, 10]`` (80-byte records):
    word 0 = length | rtype << 8 | publisher_id << 16 | instrument_id << 32, 1 = ts_event,
    2 = price, 3 = size | _reserved1 << 32 | side << 40 | flags << 48, 4 = ts_recv,
    5 = _reserved3, 6 = bid_px_00, 7 = ask_px_00, 8 = bid_sz | ask_sz << 32,
    9 = bid_pb | ask_pb << 32. ``head`` and ``w3`` hold the constant parts of words 0 and 3.
    """
    n_min, n_inst = emit.shape
    j = start
    for m in range(n_min):
        for i in range(n_inst):
            if not emit[m, i]:
                continue
            out[j, 0] = head | (np.uint64(ids[i]) << np.uint64(32))
            p = tpx[m, i]
            if p >= 0:
                t = np.int64(tms[m, i])
                out[j, 1] = np.uint64(open_ns + t * 1_000_000 + (t * 7919) % 1_000_000)
                out[j, 2] = np.uint64(np.int64(p) * 10_000_000)
                out[j, 3] = w3 | np.uint64(tsz[m, i])
            else:
                out[j, 1] = undef_ts
                out[j, 2] = np.uint64(undef_px)
                out[j, 3] = w3
            out[j, 4] = np.uint64(ts[m])
            out[j, 5] = np.uint64(0)
            out[j, 6] = np.uint64(np.int64(bid[m, i]) * 10_000_000)
            a = ask[m, i]
            out[j, 7] = np.uint64(np.int64(a) * 10_000_000) if a >= 0 else np.uint64(undef_px)
            out[j, 8] = np.uint64(bsz[m, i]) | (np.uint64(asz[m, i]) << np.uint64(32))
            pb = np.uint64(xcbo) if bsz[m, i] > 0 else np.uint64(0)
            pa = np.uint64(xcbo) if asz[m, i] > 0 else np.uint64(0)
            out[j, 9] = pb | (pa << np.uint64(32))
            j += 1
    return j
