"""The synthetic underlying (minute path, stochastic volatility, jumps) and its implied-vol surface.

Model
-----
Time runs in *business time*: one session is ``1/252`` year, split into an overnight share
(``overnight_share``, more over weekends/holidays) and the trading minutes, weighted with an
intraday U shape (busier open and close; the 15 minutes after 16:00 carry a small weight: the
cash index has closed, the "spot" there is the futures-implied index level).

* Implied-vol state ``sigma_now = vol_base * exp(x_slow + x_fast + x_jump)``: two
  Ornstein-Uhlenbeck log factors (slow: months, fast: days), both negatively correlated with
  spot returns (``rho_slow``, ``rho_fast``; the regression of d ln IV on the log return is about
  -12, Table 5a), plus upward volatility jumps (rate ``vol_jump_rate`` a year, exponential size,
  half-life ``ln 2 / jump_kappa`` ≈ 7 sessions as after Feb 2018, Table 5b) that come with a
  spot drop.
* Spot: ``d ln S = (mu - sigma_real**2 / 2) dt + sigma_real dW`` + jumps, with an overnight gap;
  ``mu`` carries a weak pull (``level_pull``, half-life about 1.4 years) toward a reference trend
  ``spot0 * exp(trend * years)`` so that levels stay realistic whatever the seed.
* Planted effect (volatility clusters after vol jumps): the *realised* volatility is
  ``sigma_real = vrp * sigma_now * (1 + cluster_boost * c)`` where ``c`` is set to 1 at a
  volatility jump and halves every ``cluster_half_life`` sessions (4), while the implied surface
  only knows ``sigma_now``. In calm times realised runs at about 0.8x implied (``vrp``: the usual
  variance risk premium, selling options earns); in the sessions after a vol jump realised runs
  at 1.5-1.8x ``sigma_now`` for a day or two (measured over seeds 1-4, 2015-2025: the next five
  sessions' realised vol over the implied state at the jump day's close has a median of
  0.94-1.13 after a jump against 0.80-0.83 otherwise, although implied itself has jumped), so
  short puts sold then are stopped out far more often than their premium pays for. A
  meta-labeler can find it from point-in-time features such as the change of ATM IV over the
  last 1-3 sessions or the sessions since the last large IV jump. The truth file records
  ``cluster`` and ``vol_jump`` so the effect can be verified.
* Detectability, and :data:`PLANTED`: at the default strength the effect is realistic and rare
  (about 5 vol jumps a year), so a store of a few months holds one or two clusters, and the
  outcome of a day's trades is mostly that day's path: a meta-labeler cannot learn it from a
  CI-sized store. Measured with the set-up below (61 sessions, seeds 1-3): the labels show it
  (wins 55-65% in quiet sessions, 19-22% in the 6-12 clustered ones) but the purged-CV AUC is
  0.45-0.55, chance. :data:`PLANTED` concentrates it for tests
  and demos of meta-labeling: jumps 60 a year (``vol_jump_rate``) but smaller (``vol_jump_mean``
  0.15, ``vol_jump_spot`` 0.004, so the average IV uplift and the spot drift from jump drops
  stay moderate), clusters a session long (``cluster_half_life`` 1) and strong
  (``cluster_boost`` 4: realised 2.5x implied right after a jump), calm sessions realising half
  of implied (``vrp`` 0.5). Quiet and clustered sessions then alternate every few days. Over
  2024-01-02..03-28 (61 sessions, seeds 1-3), a 0-DTE 15-delta iron condor held to settlement
  with a 100% stop wins 55-66% of its trades entered at cluster < 0.3 against 5-9% of those
  entered at cluster >= 0.3, and a purged-CV meta-labeler reaches AUC 0.71-0.82 on
  point-in-time features (the day's realised vol first), shuffled labels 0.48-0.50
  (``tests/ml/test_planted_effect.py``).
* Surface (sticky moneyness in k = ln K/F, parameters per minute and expiry): ATM total variance
  ``w = theta**2 tau + (sigma_now**2 - theta**2)(1 - exp(-kappa tau))/kappa`` over the business
  time ``tau`` to settlement (mean reversion to ``term_level``: upward term structure in calm
  markets, inverted after spikes), quoted as the calendar IV ``atm = sqrt(w / T)`` with
  ``T = minutes / 525,600``. Smile: ``sigma(k) = atm + beta (rho k + sqrt((k - m)**2 + delta**2)
  - sqrt(m**2 + delta**2))`` with ATM slope ``s0 = skew_coef * T**-skew_power *
  (atm / 0.13)**skew_level_power`` (Table 1c: -0.46 T^-0.35), put wing slope ``put_wing * s0``,
  call wing slope ``-call_wing * s0``, smile width ``delta = smile_width * sqrt(w)``.

Determinism: the daily skeleton (open/close state of every session) is simulated from ``epoch``
with one random stream per (seed, session date); the minute path of a day is a bridge between
that day's skeleton points drawn from a second per-(seed, date) stream. So any date range
regenerates identical days, whatever the start.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quantlab import calendar
from quantlab.errors import InputError

F64 = npt.NDArray[np.float64]

YEAR_NS = calendar.NS_PER_MINUTE * calendar.MINUTES_PER_YEAR
REGULAR_MINUTES = 390  # 09:30-16:00
POST_MINUTES = 15  # 16:00-16:15 (options only)


@dataclass(frozen=True)
class MarketParams:
    """Parameters of the synthetic market (all rates annualised, business time 252/yr)."""

    epoch: dt.date = dt.date(2015, 1, 2)
    spot0: float = 2058.2
    mu: float = 0.095
    trend: float = 0.085
    level_pull: float = 0.5
    rate: float = 0.045
    div_yield: float = 0.013
    vol_base: float = 0.11
    slow_kappa: float = 3.0
    slow_sd: float = 0.28
    fast_kappa: float = 30.0
    fast_sd: float = 0.13
    rho_slow: float = -0.6
    rho_fast: float = -0.85
    vol_jump_rate: float = 5.0
    vol_jump_mean: float = 0.45
    jump_kappa: float = 25.0
    vol_jump_spot: float = 0.012
    spot_jump_rate: float = 6.0
    spot_jump_sd: float = 0.005
    vrp: float = 0.8
    cluster_boost: float = 1.0
    cluster_half_life: float = 4.0
    overnight_share: float = 0.2
    weekend_extra: float = 0.15
    post_weight: float = 0.3
    term_level: float = 0.16
    term_kappa: float = 10.0
    skew_coef: float = -0.46
    skew_power: float = 0.35
    skew_level_power: float = 0.6
    put_wing: float = 1.15
    call_wing: float = 0.15
    smile_width: float = 1.3
    soq_noise: float = 0.0007


PLANTED = MarketParams(
    vrp=0.5,
    vol_jump_rate=60.0,
    vol_jump_mean=0.15,
    vol_jump_spot=0.004,
    cluster_boost=4.0,
    cluster_half_life=1.0,
)
"""The planted effect concentrated so that a meta-labeler finds it on ~60 sessions (see the
module notes, "Detectability"); pass it as ``synthesize(..., params=PLANTED)``."""


# --------------------------------------------------------------------------------------------
# business-time weights
# --------------------------------------------------------------------------------------------
def minute_weights(n_regular: int, p: MarketParams) -> F64:
    """Business-time weight of each quote minute (regular minutes then 15 post-close minutes).

    A regular day's weights sum to ``(1 - overnight_share) / 252``; a half day gets its share.
    """
    i = np.arange(n_regular, dtype=np.float64)
    shape = 1.0 + 1.2 * np.exp(-i / 15.0) + 0.6 * np.exp(-(n_regular - 1 - i) / 20.0)
    j = np.arange(REGULAR_MINUTES, dtype=np.float64)
    full = 1.0 + 1.2 * np.exp(-j / 15.0) + 0.6 * np.exp(-(REGULAR_MINUTES - 1 - j) / 20.0)
    unit = (1.0 - p.overnight_share) / 252.0 / full.sum()
    post = np.full(POST_MINUTES, p.post_weight)
    return np.concatenate([shape, post]) * unit


def night_weight(prev_day: dt.date, day: dt.date, p: MarketParams) -> float:
    """Business time of the overnight gap before ``day`` (more over weekends and holidays)."""
    gap = (day - prev_day).days
    return p.overnight_share / 252.0 * (1.0 + p.weekend_extra * (gap - 1))


def n_regular_minutes(day: dt.date) -> int:
    """Regular (index) minutes of a session: 390, or 210 on a half day."""
    return 210 if calendar.is_early_close(day) else REGULAR_MINUTES


# --------------------------------------------------------------------------------------------
# daily skeleton
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Skeleton:
    """Open/close state of every session from the epoch (arrays aligned with ``days``)."""

    days: tuple[dt.date, ...]
    s_open: F64
    s_close: F64
    xs_open: F64
    xs_close: F64
    xf_open: F64
    xf_close: F64
    xj_open: F64  # jump factor at the open (before today's jump)
    c_open: F64  # cluster state at the open
    jump_size: F64  # vol jump today (0 = none)
    jump_frac: F64  # where in the day (fraction of business time)
    spot_jump: F64  # total spot log jump today
    soq: F64  # special opening quotation (AM settlement value) of the day
    diff_day: F64  # diffusive log return of the day (bridge target)
    mu: F64  # drift of the day

    def index(self, day: dt.date) -> int:
        i = bisect.bisect_left(self.days, day)
        if i >= len(self.days) or self.days[i] != day:
            raise InputError(f"{day} is not a session of the synthetic skeleton.")
        return i


def _stream(seed: int, tag: int, day: dt.date) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag, day.toordinal()]))


def sigma_implied(x: F64 | float, p: MarketParams) -> F64 | float:
    return p.vol_base * np.exp(x)


def sigma_realised(x: F64 | float, c: F64 | float, p: MarketParams) -> F64 | float:
    return p.vrp * p.vol_base * np.exp(x) * (1.0 + p.cluster_boost * np.asarray(c))


def skeleton(seed: int, upto: dt.date, p: MarketParams = MarketParams()) -> Skeleton:
    """Daily skeleton from ``p.epoch`` to at least ``upto`` (one random stream per session).

    Computed to the end of ``upto``'s year and cached; a session's values never depend on how
    far the skeleton was computed.
    """
    if upto < p.epoch:
        raise InputError(
            f"the synthetic market starts at its epoch {p.epoch} (got a date {upto}). "
            "Pick dates on or after the epoch, or build MarketParams(epoch=..., spot0=...)."
        )
    try:
        last = calendar.previous_session(calendar.next_session(dt.date(upto.year, 12, 31)))
    except InputError:  # the calendar ends within this year
        last = upto
    return _skeleton(int(seed), max(last, upto), p)


@functools.lru_cache(maxsize=4)
def _skeleton(seed: int, upto: dt.date, p: MarketParams) -> Skeleton:
    if upto < p.epoch:
        raise InputError(
            f"the synthetic market starts at its epoch {p.epoch} (got a date {upto}). "
            "Pick dates on or after the epoch, or build MarketParams(epoch=..., spot0=...)."
        )
    days = tuple(calendar.sessions(p.epoch, upto))
    n = len(days)
    out = {k: np.zeros(n) for k in Skeleton.__dataclass_fields__ if k != "days"}
    s, xs, xf, xj, c = p.spot0, 0.0, 0.0, 0.0, 0.0
    prev = calendar.previous_session(days[0])
    decay_c = 0.5 ** (1.0 / p.cluster_half_life)
    for i, day in enumerate(days):
        g = _stream(seed, 0xA, day)
        z = g.standard_normal(8)
        u = g.random(6)
        # drift with a weak pull (half-life years) toward the reference trend, so that the
        # level stays realistic (about 4,700 in 2024) whatever the seed
        ref = math.log(p.spot0) + p.trend * (day - p.epoch).days / 365.25
        mu = p.mu + p.level_pull * (ref - math.log(s))
        out["mu"][i] = mu
        # overnight
        bn = night_weight(prev, day, p)
        sr = float(sigma_realised(xs + xf + xj, c, p))
        s *= math.exp((mu - 0.5 * sr * sr) * bn + sr * math.sqrt(bn) * z[0])
        xs = xs * math.exp(-p.slow_kappa * bn) + p.slow_sd * math.sqrt(
            1 - math.exp(-2 * p.slow_kappa * bn)
        ) * (p.rho_slow * z[0] + math.sqrt(1 - p.rho_slow**2) * z[1])
        xf = xf * math.exp(-p.fast_kappa * bn) + p.fast_sd * math.sqrt(
            1 - math.exp(-2 * p.fast_kappa * bn)
        ) * (p.rho_fast * z[0] + math.sqrt(1 - p.rho_fast**2) * z[2])
        xj *= math.exp(-p.jump_kappa * bn)
        c *= decay_c
        out["s_open"][i], out["xs_open"][i], out["xf_open"][i] = s, xs, xf
        out["xj_open"][i], out["c_open"][i] = xj, c
        out["soq"][i] = s * math.exp(p.soq_noise * z[7])
        # the day
        bd = float(minute_weights(n_regular_minutes(day), p).sum())
        sr = float(sigma_realised(xs + xf + xj, c, p))
        diff = sr * math.sqrt(bd) * z[3]
        jump = 0.0
        jfrac = 0.0
        if u[0] < p.vol_jump_rate / 252.0:
            jump = -p.vol_jump_mean * math.log(max(u[1], 1e-12))
            jfrac = u[2]
        sjump = 0.0
        if jump > 0:
            sjump -= p.vol_jump_spot * (jump / p.vol_jump_mean) * (0.5 + u[3])
        if u[4] < p.spot_jump_rate / 252.0:
            sjump += p.spot_jump_sd * z[4] - 0.002
        s *= math.exp((mu - 0.5 * sr * sr) * bd + diff + sjump)
        zs = diff / (sr * math.sqrt(bd))
        xs = xs * math.exp(-p.slow_kappa * bd) + p.slow_sd * math.sqrt(
            1 - math.exp(-2 * p.slow_kappa * bd)
        ) * (p.rho_slow * zs + math.sqrt(1 - p.rho_slow**2) * z[5])
        xf = xf * math.exp(-p.fast_kappa * bd) + p.fast_sd * math.sqrt(
            1 - math.exp(-2 * p.fast_kappa * bd)
        ) * (p.rho_fast * zs + math.sqrt(1 - p.rho_fast**2) * z[6])
        xj = xj * math.exp(-p.jump_kappa * bd) + jump * math.exp(-p.jump_kappa * bd * (1 - jfrac))
        if jump > 0:
            c = 1.0
        out["s_close"][i], out["xs_close"][i], out["xf_close"][i] = s, xs, xf
        out["jump_size"][i], out["jump_frac"][i], out["spot_jump"][i] = jump, jfrac, sjump
        out["diff_day"][i] = diff
        prev = day
    return Skeleton(days=days, **out)


# --------------------------------------------------------------------------------------------
# one day at minute resolution
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayPath:
    """Minute path of one session (arrays over quote minutes 09:31 .. option close)."""

    day: dt.date
    ts: npt.NDArray[np.int64]  # minute ends, UTC ns
    weights: F64  # business time of each minute
    spot: F64
    x: F64  # total log vol factor after the minute
    cluster: F64
    sigma_now: F64  # implied vol state (trading time)
    sigma_real: F64  # realised vol used for the minute's step
    vol_jump: F64  # jump size booked in this minute (0 almost always)
    n_regular: int
    s_open: float
    soq: float


def _bridge(inc: F64, target: float, weight: F64) -> F64:
    """Shift increments so they sum to ``target``, in proportion to ``weight``."""
    return inc + (target - inc.sum()) * weight / weight.sum()


def day_path(seed: int, day: dt.date, p: MarketParams = MarketParams()) -> DayPath:
    """Minute path of ``day``: a bridge between its skeleton open and close."""
    sk = skeleton(seed, day, p)
    i = sk.index(day)
    n_reg = n_regular_minutes(day)
    w = minute_weights(n_reg, p)
    n = len(w)
    ts = calendar.quote_minutes_ns(day)
    if len(ts) != n:  # pragma: no cover - calendar and weights disagree
        raise InputError(f"minute grid of {day} has {len(ts)} minutes, expected {n}.")
    g = _stream(seed, 0xB, day)
    z = g.standard_normal((3, n))
    cw = np.cumsum(w)
    bd = cw[-1]
    # vol factors: OU steps, bridged to the skeleton close
    zs = z[0]
    zx_s = p.rho_slow * zs + math.sqrt(1 - p.rho_slow**2) * z[1]
    zx_f = p.rho_fast * zs + math.sqrt(1 - p.rho_fast**2) * z[2]

    def ou(x0: float, x1: float, kappa: float, sd: float, shocks: F64) -> F64:
        a = np.exp(-kappa * w)
        b = sd * np.sqrt(1 - a * a) * shocks
        out = np.empty(n)
        x = x0
        for m in range(n):
            x = x * a[m] + b[m]
            out[m] = x
        return out + (x1 - out[-1]) * cw / bd

    xs = ou(sk.xs_open[i], sk.xs_close[i], p.slow_kappa, p.slow_sd, zx_s)
    xf = ou(sk.xf_open[i], sk.xf_close[i], p.fast_kappa, p.fast_sd, zx_f)
    xj = sk.xj_open[i] * np.exp(-p.jump_kappa * cw)
    jump = np.zeros(n)
    c = np.full(n, sk.c_open[i])
    jm = n  # minute of today's jumps (none)
    if sk.jump_size[i] > 0 or sk.spot_jump[i] != 0:
        jm = int(np.searchsorted(cw, sk.jump_frac[i] * bd))
        jm = min(jm, n_reg - 1)
    if sk.jump_size[i] > 0:
        jump[jm] = sk.jump_size[i]
        xj = xj + np.where(
            np.arange(n) >= jm, sk.jump_size[i] * np.exp(-p.jump_kappa * (cw - cw[jm])), 0
        )
        c[jm:] = 1.0
    x = xs + xf + xj
    x_prev = np.concatenate([[sk.xs_open[i] + sk.xf_open[i] + sk.xj_open[i]], x[:-1]])
    c_prev = np.concatenate([[sk.c_open[i]], c[:-1]])
    sr = np.asarray(sigma_realised(x_prev, c_prev, p))
    inc = sr * np.sqrt(w) * zs
    inc = _bridge(inc, float(sk.diff_day[i]), sr * sr * w)
    sr_open = float(sigma_realised(x_prev[0], c_prev[0], p))
    drift = (sk.mu[i] - 0.5 * sr_open * sr_open) * w
    logs = np.log(sk.s_open[i]) + np.cumsum(drift + inc)
    if sk.spot_jump[i] != 0:
        logs[jm:] += sk.spot_jump[i]
    return DayPath(
        day=day,
        ts=ts,
        weights=w,
        spot=np.exp(logs),
        x=x,
        cluster=c,
        sigma_now=np.asarray(sigma_implied(x, p)),
        sigma_real=sr,
        vol_jump=jump,
        n_regular=n_reg,
        s_open=float(sk.s_open[i]),
        soq=float(sk.soq[i]),
    )


# --------------------------------------------------------------------------------------------
# business time to settlement, surface parameters
# --------------------------------------------------------------------------------------------
def business_time_to(path: DayPath, expiries: list[tuple[str, dt.date]], p: MarketParams) -> F64:
    """Business time (years) from each minute end to each expiry's settlement: ``[n_min, n_exp]``."""
    day = path.day
    cw = np.cumsum(path.weights)
    end_today = cw[-1]
    out = np.empty((len(cw), len(expiries)))
    # cumulative business time at the open of future sessions
    last = max(e for _, e in expiries)
    future = calendar.sessions(calendar.next_session(day), last) if last > day else []
    b_open: dict[dt.date, float] = {}
    b = end_today
    prev = day
    for s in future:
        b += night_weight(prev, s, p)
        b_open[s] = b
        b += float(minute_weights(n_regular_minutes(s), p).sum())
        prev = s
    for j, (root, e) in enumerate(expiries):
        if root == "SPXW":
            if e == day:
                settle = cw[path.n_regular - 1]
            else:
                settle = b_open[e] + float(
                    minute_weights(n_regular_minutes(e), p)[: n_regular_minutes(e)].sum()
                )
        else:
            settle = b_open[e]
        out[:, j] = np.maximum(settle - cw, 0.0)
    return out


@dataclass(frozen=True)
class Surface:
    """Per (minute, expiry) forward, discount and smile parameters (arrays ``[n_min, n_exp]``)."""

    T: F64
    forward: F64
    df: F64
    atm: F64
    beta: F64
    rho: F64
    m: F64
    delta: F64
    var: F64  # ATM total variance w


def surface(
    path: DayPath,
    expiries: list[tuple[str, dt.date]],
    p: MarketParams = MarketParams(),
) -> Surface:
    """Forwards, discount factors and smile parameters for every minute and expiry."""
    settle = np.array([calendar.settlement_ns(r, e) for r, e in expiries], dtype=np.int64)
    T = np.maximum((settle[None, :] - path.ts[:, None]).astype(np.float64) / YEAR_NS, 0.0)
    tau = business_time_to(path, expiries, p)
    fwd = path.spot[:, None] * np.exp((p.rate - p.div_yield) * T)
    df = np.exp(-p.rate * T)
    s2 = path.sigma_now[:, None] ** 2
    th2 = p.term_level**2
    k = p.term_kappa
    with np.errstate(divide="ignore", invalid="ignore"):
        mr = np.where(tau > 0, -np.expm1(-k * tau) / k, 0.0)
        w = th2 * tau + (s2 - th2) * mr
        atm = np.where(T > 0, np.sqrt(w / np.where(T > 0, T, 1.0)), 0.0)
    beta, rho, m, delta = smile_params(atm, T, w, p)
    return Surface(T=T, forward=fwd, df=df, atm=atm, beta=beta, rho=rho, m=m, delta=delta, var=w)


def smile_params(atm: F64, T: F64, w: F64, p: MarketParams) -> tuple[F64, F64, F64, F64]:
    """Hyperbolic smile parameters (beta, rho, m, delta) from ATM vol, T and total variance."""
    t_sk = np.maximum(T, 0.25 / 365.0)
    s0 = (
        p.skew_coef * t_sk ** (-p.skew_power) * (np.maximum(atm, 0.01) / 0.13) ** p.skew_level_power
    )
    put = p.put_wing * s0
    call = -p.call_wing * s0
    beta = 0.5 * (call - put)
    rho = (call + put) / (call - put)
    u = rho - s0 / beta
    delta = np.maximum(p.smile_width * np.sqrt(np.maximum(w, 0.0)), 1e-3)
    m = delta * u / np.sqrt(1 - u * u)
    return beta, rho, m, delta


def smile_vol(
    k: F64 | float,
    atm: F64 | float,
    beta: F64 | float,
    rho: F64 | float,
    m: F64 | float,
    delta: F64 | float,
) -> F64:
    """Implied vol at log-moneyness ``k`` (floored at 30% of ATM)."""
    k, atm, beta, rho, m, delta = map(np.asarray, (k, atm, beta, rho, m, delta))
    v = atm + beta * (rho * k + np.sqrt((k - m) ** 2 + delta**2) - np.sqrt(m * m + delta**2))
    return np.maximum(v, 0.3 * atm)
