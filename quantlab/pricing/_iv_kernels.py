"""Black-76 implied volatility and normalised Black price: numba kernels.

The inversion is Peter Jäckel's "Let's Be Rational" (LBR; Wilmott 2015, revised code of 2023):
a four-branch rational initial guess followed by at most two Householder steps on a
branch-specific transformed objective, giving the implied volatility to (close to)
machine precision for every representable price.

Everything works in *normalised* units. For forward ``F``, strike ``K``, total volatility
``s = sigma * sqrt(T)`` and log-moneyness ``x = ln(F/K)``, the normalised call price is

    b(x, s) = exp(x/2) * N(x/s + s/2) - exp(-x/2) * N(x/s - s/2)  =  Black-76 call / sqrt(F*K)

and the undiscounted Black-76 price is ``sqrt(F*K) * b``. A put is a call with ``x -> -x``.
In-the-money options are mapped to the out-of-the-money side by put-call parity, so the
solver only ever sees ``x <= 0`` (an out-of-the-money call) and the *time value*: that is
what keeps in-the-money inversions accurate.

``b(x, s)`` for ``x <= 0`` is evaluated in four regions (Jäckel's regions 1-4), each chosen
to avoid subtractive cancellation:

1. ``h = x/s < -10`` and ``h + t`` well below -10 (``t = s/2``): a 17th-order asymptotic
   expansion of ``N(z)/phi(z)`` (Abramowitz & Stegun 26.2.12);
2. ``t < 2 * eps**(1/16)`` (about 0.21): a 13th-order expansion in ``t``;
3./4. otherwise: Cody's ``erfc``/``erfcx`` (scaled complementary error function),
   arranged to use as few ``exp`` calls as possible.

All kernels are compiled with :func:`quantlab._numba.jit` and also run as plain Python
(``QUANTLAB_DISABLE_NUMBA=1``); they never raise for finite inputs, which is why divisions
and ``log``/``exp`` calls are guarded where their arguments could leave the safe range.

References: P. Jäckel, "Let's be rational", Wilmott (2015) 40-53; W. J. Cody, "Rational
Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-638;
M. J. Wichura, "Algorithm AS 241", Appl. Statist. 37 (1988) 477-484; R. Delbourgo and
J. A. Gregory, "Shape preserving piecewise rational interpolation", SIAM J. Sci. Stat.
Comput. 6 (1985) 967-976.
"""

from __future__ import annotations

import math

import numpy as np

from quantlab._numba import jit, prange
from quantlab.pricing._iv_constants import (
    _ASYMPTOTIC_COEFFS,
    _FASTMATH,
    _INF,
    _NAN,
    ASYMPTOTIC_EXPANSION_THRESHOLD,
    DBL_EPSILON,
    DBL_MAX,
    DBL_MIN,
    FOURTH_ROOT_DBL_EPSILON,
    HALF_LN_TWO_PI,
    MAX_ABS_LOG_MONEYNESS,
    MAX_ITERATIONS,
    MIN_TIME_VALUE_REL,
    ONE_OVER_SQRT_TWO,
    ONE_OVER_SQRT_TWO_PI,
    PI_OVER_SIX,
    SMALL_T_EXPANSION_THRESHOLD,
    SQRT_DBL_MAX,
    SQRT_DBL_MIN,
    SQRT_ONE_OVER_THREE,
    SQRT_PI_OVER_TWO,
    SQRT_THREE,
    SQRT_THREE_OVER_THIRD_ROOT_TWO_PI,
    SQRT_TWO_PI,
    TWO_PI,
    TWO_PI_OVER_SQRT_TWENTY_SEVEN,
)
from quantlab.pricing._special import (
    erfc_cody,
    erfcx_cody,
    inverse_norm_cdf,
    norm_cdf,
)
from quantlab.pricing._status import (
    IV_ABOVE_MAX,
    IV_BELOW_INTRINSIC,
    IV_EXPIRED,
    IV_INVALID_INPUT,
    IV_NO_TIME_VALUE,
    IV_OK,
)

# --------------------------------------------------------------------------------------------
# Rational cubic interpolation (Delbourgo & Gregory), shape preserving
# --------------------------------------------------------------------------------------------
RC_MIN_R = -(1.0 - 1.4901161193847656e-08)  # -(1 - sqrt(DBL_EPSILON))
RC_MAX_R = 2.0 / (DBL_EPSILON * DBL_EPSILON)


@jit(error_model="numpy", fastmath=_FASTMATH)
def _rational_cubic_interpolation(x, x_l, x_r, y_l, y_r, d_l, d_r, r):
    h = x_r - x_l
    if abs(h) <= 0.0:
        return 0.5 * (y_l + y_r)
    t = (x - x_l) / h
    if not (r >= RC_MAX_R):
        omt = 1.0 - t
        t2 = t * t
        omt2 = omt * omt
        num = (
            y_r * t2 * t
            + (r * y_r - h * d_r) * t2 * omt
            + (r * y_l + h * d_l) * t * omt2
            + y_l * omt2 * omt
        )
        return num / (1.0 + (r - 3.0) * t * omt)
    return y_r * t + y_l * (1.0 - t)  # linear limit, no overflow


@jit(error_model="numpy", fastmath=_FASTMATH)
def _minimum_rational_cubic_control_parameter(d_l, d_r, s, prefer_shape_preservation):
    monotonic = d_l * s >= 0.0 and d_r * s >= 0.0
    convex = d_l <= s and s <= d_r
    concave = d_l >= s and s >= d_r
    if not monotonic and not convex and not concave:
        return RC_MIN_R
    d_r_m_d_l = d_r - d_l
    d_r_m_s = d_r - s
    s_m_d_l = s - d_l
    r1 = -DBL_MAX
    r2 = -DBL_MAX
    if monotonic:
        if abs(s) >= DBL_MIN:
            r1 = (d_r + d_l) / s
        elif prefer_shape_preservation:
            r1 = RC_MAX_R
    if convex or concave:
        if abs(s_m_d_l) >= DBL_MIN and abs(d_r_m_s) >= DBL_MIN:
            r2 = max(abs(d_r_m_d_l / d_r_m_s), abs(d_r_m_d_l / s_m_d_l))
        elif prefer_shape_preservation:
            r2 = RC_MAX_R
    elif monotonic and prefer_shape_preservation:
        r2 = RC_MAX_R
    return max(RC_MIN_R, max(r1, r2))


@jit(error_model="numpy", fastmath=_FASTMATH)
def _convex_control_parameter_left(x_l, x_r, y_l, y_r, d_l, d_r, second_derivative_l, prefer):
    """Control parameter matching the second derivative at the left end, kept shape preserving."""
    h = x_r - x_l
    numerator = 0.5 * h * second_derivative_l + (d_r - d_l)
    if abs(numerator) < DBL_MIN:
        r = 0.0
    else:
        denominator = (y_r - y_l) / h - d_l
        if abs(denominator) < DBL_MIN:
            r = RC_MAX_R if numerator > 0.0 else RC_MIN_R
        else:
            r = numerator / denominator
    r_min = _minimum_rational_cubic_control_parameter(d_l, d_r, (y_r - y_l) / h, prefer)
    return max(r, r_min)


@jit(error_model="numpy", fastmath=_FASTMATH)
def _convex_control_parameter_right(x_l, x_r, y_l, y_r, d_l, d_r, second_derivative_r, prefer):
    """Control parameter matching the second derivative at the right end, kept shape preserving."""
    h = x_r - x_l
    numerator = 0.5 * h * second_derivative_r + (d_r - d_l)
    if abs(numerator) < DBL_MIN:
        r = 0.0
    else:
        denominator = d_r - (y_r - y_l) / h
        if abs(denominator) < DBL_MIN:
            r = RC_MAX_R if numerator > 0.0 else RC_MIN_R
        else:
            r = numerator / denominator
    r_min = _minimum_rational_cubic_control_parameter(d_l, d_r, (y_r - y_l) / h, prefer)
    return max(r, r_min)


# --------------------------------------------------------------------------------------------
# Normalised Black function (x <= 0: out-of-the-money call)
# --------------------------------------------------------------------------------------------
@jit(error_model="numpy", fastmath=_FASTMATH)
def _normalised_intrinsic_call(x):
    """max(exp(x/2) - exp(-x/2), 0) without cancellation for small x."""
    if x <= 0.0:
        return 0.0
    x2 = x * x
    if x2 < 98.0 * FOURTH_ROOT_DBL_EPSILON:  # series of 2 sinh(x/2)
        return x * (
            1.0 + x2 * (1.0 / 24.0 + x2 * (1.0 / 1920.0 + x2 * (1.0 / 322560.0 + x2 / 92897280.0)))
        )
    b_max = math.exp(0.5 * x)
    return b_max - 1.0 / b_max


@jit(error_model="numpy", fastmath=_FASTMATH)
def _asymptotic_black_over_vega(h, t):
    """b/vega for h < -10 and h + t < -10 + tau: 17th-order asymptotic series."""
    e = (t / h) * (t / h)
    r = (h + t) * (h - t)
    q = (h / r) * (h / r)
    c = _ASYMPTOTIC_COEFFS
    n_max = c.shape[0] - 1
    total = 0.0
    for n in range(n_max, -1, -1):
        poly = float(c[n, n])
        for i in range(n - 1, -1, -1):
            poly = poly * e + float(c[n, i])
        total = total * q + poly
    return max((t / r) * total, 0.0)


@jit(error_model="numpy", fastmath=_FASTMATH)
def _small_t_black_over_vega(h, t):
    """b/vega for t < tau (about 0.21), h <= 0: expansion of Y(h+t)-Y(h-t) to 13th order in t.

    With Y(z) = N(z)/phi(z), Y' = 1 + zY and Y^(n+1) = z Y^(n) + n Y^(n-1); the odd
    derivatives at h are polynomials in a := 1 + h Y(h) and h^2:
    b/vega = 2t sum_k c_(2k+1) w^k, w = t^2, c_n = Y^(n)(h)/n!.

    Truncation: Y^(n)(h) = int_0^inf u^n exp(hu - u^2/2) du, so integration by parts gives
    Y^(n+2) = (n+1) Y^(n) + h Y^(n+1) <= (n+1) Y^(n) for h <= 0, i.e. every term is positive
    and c_(2k+3) w / c_(2k+1) <= w/(2k+3). Stopping after the w^K term therefore leaves a
    relative error below w^(K+1)/(2K+3)!!; the w thresholds below keep it under 2e-18.
    """
    a = 1.0 + h * SQRT_PI_OVER_TWO * erfcx_cody(-ONE_OVER_SQRT_TWO * h)
    w = t * t
    h2 = h * h
    c3 = (-1.0 + 3.0 * a + a * h2) * (1.0 / 6.0)
    c5 = (-7.0 + 15.0 * a + h2 * (-1.0 + 10.0 * a + a * h2)) * (1.0 / 120.0)
    if w < 5.94e-6:
        return max(2.0 * t * (a + w * (c3 + w * c5)), 0.0)
    c7 = (-57.0 + 105.0 * a + h2 * (-18.0 + 105.0 * a + h2 * (-1.0 + 21.0 * a + a * h2))) * (
        1.0 / 5040.0
    )
    if w < 2.085e-4:
        return max(2.0 * t * (a + w * (c3 + w * (c5 + w * c7))), 0.0)
    c9 = (
        -561.0
        + 945.0 * a
        + h2 * (-285.0 + 1260.0 * a + h2 * (-33.0 + 378.0 * a + h2 * (-1.0 + 36.0 * a + a * h2)))
    ) * (1.0 / 362880.0)
    if w < 1.834e-3:
        return max(2.0 * t * (a + w * (c3 + w * (c5 + w * (c7 + w * c9)))), 0.0)
    c11 = (
        -6555.0
        + 10395.0 * a
        + h2
        * (
            -4680.0
            + 17325.0 * a
            + h2
            * (-840.0 + 6930.0 * a + h2 * (-52.0 + 990.0 * a + h2 * (-1.0 + 55.0 * a + a * h2)))
        )
    ) * (1.0 / 39916800.0)
    if w < 8.04e-3:
        return max(2.0 * t * (a + w * (c3 + w * (c5 + w * (c7 + w * (c9 + w * c11))))), 0.0)
    c13 = (
        -89055.0
        + 135135.0 * a
        + h2
        * (
            -82845.0
            + 270270.0 * a
            + h2
            * (
                -20370.0
                + 135135.0 * a
                + h2
                * (
                    -1926.0
                    + 25740.0 * a
                    + h2 * (-75.0 + 2145.0 * a + h2 * (-1.0 + 78.0 * a + a * h2))
                )
            )
        )
    ) * (1.0 / 6227020800.0)
    series = a + w * (c3 + w * (c5 + w * (c7 + w * (c9 + w * (c11 + w * c13)))))
    return max(2.0 * t * series, 0.0)


@jit(error_model="numpy", fastmath=_FASTMATH)
def _black_cody_and_vega(x, s):
    """(b, vega) for x <= 0 from Cody's erfc/erfcx with the fewest exp() calls (regions 3/4)."""
    h = x / s
    t = 0.5 * s
    q1 = -ONE_OVER_SQRT_TWO * (h + t)
    q2 = -ONE_OVER_SQRT_TWO * (h - t)
    e = math.exp(-0.5 * (h * h + t * t))
    if q1 < 0.46875:
        e_half_x = math.exp(0.5 * x)
        if q2 < 0.46875:
            two_b = e_half_x * erfc_cody(q1) - erfc_cody(q2) / e_half_x
        else:
            two_b = e_half_x * erfc_cody(q1) - e * erfcx_cody(q2)
    elif q2 < 0.46875:
        two_b = e * erfcx_cody(q1) - erfc_cody(q2) / math.exp(0.5 * x)
    else:
        two_b = e * (erfcx_cody(q1) - erfcx_cody(q2))
    return max(0.5 * two_b, 0.0), ONE_OVER_SQRT_TWO_PI * e


@jit(error_model="numpy", fastmath=_FASTMATH)
def _normalised_vega(x, s):
    """db/ds = exp(-((x/s)^2 + (s/2)^2)/2) / sqrt(2 pi)."""
    ax = abs(x)
    if ax <= 0.0:
        return ONE_OVER_SQRT_TWO_PI * math.exp(-0.125 * s * s)
    if s <= 0.0 or s <= ax * SQRT_DBL_MIN:
        return 0.0
    h = x / s
    t = 0.5 * s
    return ONE_OVER_SQRT_TWO_PI * math.exp(-0.5 * (h * h + t * t))


@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def _is_asymptotic_region(x, s):
    # h < eta  and  t < tau + |h| - |eta|, written without dividing by s.
    return x < s * ASYMPTOTIC_EXPANSION_THRESHOLD and 0.5 * s * s + x < s * (
        SMALL_T_EXPANSION_THRESHOLD + ASYMPTOTIC_EXPANSION_THRESHOLD
    )


@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def _black_otm_and_vega(x, s):
    """(b(x,s), db/ds) for x <= 0, s >= 0 (out-of-the-money normalised call)."""
    if s <= 0.0:
        return 0.0, 0.0
    if _is_asymptotic_region(x, s):
        v = _normalised_vega(x, s)
        return _asymptotic_black_over_vega(x / s, 0.5 * s) * v, v
    t = 0.5 * s
    if t < SMALL_T_EXPANSION_THRESHOLD:
        h = x / s
        v = ONE_OVER_SQRT_TWO_PI * math.exp(-0.5 * (h * h + t * t))
        return _small_t_black_over_vega(h, t) * v, v
    return _black_cody_and_vega(x, s)


@jit(error_model="numpy", fastmath=_FASTMATH)
def _black_otm(x, s):
    """b(x, s) for x <= 0, s >= 0."""
    return _black_otm_and_vega(x, s)[0]


@jit(error_model="numpy", fastmath=_FASTMATH)
def _black_otm_over_vega_and_ln_vega(x, s):
    """(b/vega, ln vega) for x <= 0, s > 0: keeps the lowest branch free of underflow."""
    h = x / s
    t = 0.5 * s
    ln_vega = -HALF_LN_TWO_PI - 0.5 * (h * h + t * t)
    if _is_asymptotic_region(x, s):
        return _asymptotic_black_over_vega(h, t), ln_vega
    if t < SMALL_T_EXPANSION_THRESHOLD:
        return _small_t_black_over_vega(h, t), ln_vega
    q1 = -ONE_OVER_SQRT_TWO * (h + t)
    if q1 >= 0.46875:  # then also q2 = q1 + sqrt(2) t >= 0.46875: no exponential needed
        q2 = -ONE_OVER_SQRT_TWO * (h - t)
        return max(SQRT_PI_OVER_TWO * (erfcx_cody(q1) - erfcx_cody(q2)), 0.0), ln_vega
    b = _black_cody_and_vega(x, s)[0]
    return b * math.exp(-ln_vega), ln_vega


@jit(error_model="numpy", fastmath=_FASTMATH)
def black76_normalised_price_scalar(x, s, theta):
    """Normalised Black-76 price b = price / (df * sqrt(F*K)) to near machine precision.

    ``x = ln(F/K)``, ``s = sigma*sqrt(T)`` (total volatility), ``theta = +1`` call, ``-1`` put.
    Computed as normalised intrinsic plus the out-of-the-money value, so deep in- and
    out-of-the-money prices keep full relative accuracy. NaN for NaN input or ``s < 0``;
    ``s = +inf`` gives the upper bound ``exp(theta*x/2)``.
    """
    if not (s >= 0.0) or x != x:
        return _NAN
    xt = x if theta >= 0.0 else -x
    if s == _INF:
        return math.exp(0.5 * xt)
    if abs(xt) == _INF:
        return _INF if xt > 0.0 else 0.0
    return _normalised_intrinsic_call(xt) + _black_otm(-abs(xt), s)


@jit(error_model="numpy", fastmath=_FASTMATH)
def _log_moneyness(F, K):
    """ln(F/K) for positive finite F, K; +-inf when F/K over- or underflows.

    Near the money ``log1p((F-K)/K)`` is used: ``F-K`` is exact there (Sterbenz), so ``x``
    keeps full *relative* accuracy, which matters for near-expiry wings where the price
    depends on ``(x/s)^2``.
    """
    d = F - K
    if abs(d) < 0.5 * K:
        return math.log1p(d / K)
    ratio = F / K
    if ratio == 0.0:
        return -_INF
    if ratio == _INF:
        return _INF
    return math.log(ratio)


@jit(error_model="numpy", fastmath=_FASTMATH)
def black76_price_scalar(F, K, T, sigma, df, is_call):
    """Discounted Black-76 price ``df * Black(F, K, sigma, T)``, accurate for deep OTM/ITM.

    NaN for non-finite input, ``F, K, df <= 0`` or ``sigma, T < 0``; ``sigma*T == 0`` gives
    the discounted intrinsic value.
    """
    if not (
        math.isfinite(F)
        and math.isfinite(K)
        and math.isfinite(T)
        and math.isfinite(sigma)
        and math.isfinite(df)
    ):
        return _NAN
    if F <= 0.0 or K <= 0.0 or df <= 0.0 or sigma < 0.0 or T < 0.0:
        return _NAN
    intrinsic = max(F - K, 0.0) if is_call else max(K - F, 0.0)
    s = sigma * math.sqrt(T)
    if s <= 0.0:
        return df * intrinsic
    x = _log_moneyness(F, K)
    if abs(x) == _INF:  # moneyness beyond the float range: no time value
        return df * intrinsic
    tv = math.sqrt(F) * math.sqrt(K) * _black_otm(-abs(x), s)
    return df * (intrinsic + tv)


# --------------------------------------------------------------------------------------------
# Let's Be Rational: initial guess maps and Householder steps
# --------------------------------------------------------------------------------------------
@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def _householder3_factor(nu, h2, h3):
    return (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu * (1.0 / 6.0)))


@jit(error_model="numpy", fastmath=_FASTMATH)
def _householder4_factor(nu, h2, h3, h4):
    return (1.0 + nu * (h2 + nu * h3 / 6.0)) / (
        1.0 + nu * (1.5 * h2 + nu * (h2 * h2 / 4.0 + h3 / 3.0 + nu * h4 / 24.0))
    )


@jit(error_model="numpy", fastmath=_FASTMATH)
def _lower_map_and_derivatives(x, s):
    """f(beta) = 2pi/sqrt(27) |x| N(-z)^3, z = |x|/(sqrt(3) s), with df/dbeta and d2f/dbeta2.

    Uses the Mills ratio N(-z)/phi(z) = sqrt(pi/2) erfcx(z/sqrt(2)) so that only two
    exponentials are needed.
    """
    ax = abs(x)
    z = SQRT_ONE_OVER_THREE * ax / s
    y = z * z
    s2 = s * s
    mills = SQRT_PI_OVER_TWO * erfcx_cody(ONE_OVER_SQRT_TWO * z)  # N(-z)/phi(z)
    big_phi = ONE_OVER_SQRT_TWO_PI * math.exp(-0.5 * y) * mills  # N(-z)
    e = math.exp(y + 0.125 * s2)
    fpp = (
        PI_OVER_SIX
        * y
        / (s2 * s)
        * big_phi
        * (8.0 * SQRT_THREE * s * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * mills)
        * (e * e)
    )
    phi2 = big_phi * big_phi
    fp = TWO_PI * y * phi2 * e
    f = TWO_PI_OVER_SQRT_TWENTY_SEVEN * ax * (phi2 * big_phi)
    return f, fp, fpp


@jit(error_model="numpy", fastmath=_FASTMATH)
def _inverse_lower_map(x, f):
    if f <= 0.0:
        return 0.0
    u = SQRT_THREE_OVER_THIRD_ROOT_TWO_PI * np.cbrt(f / abs(x))
    return abs(x / (SQRT_THREE * inverse_norm_cdf(u)))


@jit(error_model="numpy", fastmath=_FASTMATH)
def _upper_map_and_derivatives(x, s):
    """f(beta) = N(-s/2) with df/dbeta and d2f/dbeta2."""
    f = norm_cdf(-0.5 * s)
    w = (x / s) * (x / s)
    fp = -0.5 * math.exp(0.5 * w)
    fpp = SQRT_PI_OVER_TWO * math.exp(w + 0.125 * s * s) * w / s
    return f, fp, fpp


@jit(error_model="numpy", fastmath=_FASTMATH)
def _normalised_implied_vol_otm(beta, x, b_max, max_iter):
    """Total implied volatility s with b(x, s) = beta for x <= 0 and 0 < beta < exp(x/2).

    ``b_max`` must be ``exp(x/2)``. Returns NaN when the iteration meets a numerically
    degenerate state (never seen for inputs that pass :func:`implied_vol_scalar`'s checks).
    """
    s_left = DBL_MIN
    s_right = DBL_MAX
    ds = -DBL_MAX
    # At s_c = sqrt(2|x|) (inflexion point of b(s)) we have x/s + s/2 = 0, hence in closed form
    # b_c = exp(x/2)/2 - exp(-x/2) N(-s_c)  and  b'(s_c) = exp(x/2)/sqrt(2 pi).
    s_c = math.sqrt(-2.0 * x)
    b_c = 0.5 * b_max - 0.5 * erfc_cody(math.sqrt(-x)) / b_max
    v_c = ONE_OVER_SQRT_TWO_PI * b_max
    if beta < b_c:
        s_l = s_c - b_c / v_c
        if not (s_l > 0.0):  # only for |x| ~ 1e-20 and below: fall back to a linear guess
            s = s_c * beta / b_c
            s_right = s_c
        else:
            b_l, v_l = _black_otm_and_vega(x, s_l)
            if beta < b_l:
                # Lowest segment: interpolate the transformed map f(beta), then iterate on
                # g(s) = 1/ln(b(s)) - 1/ln(beta).
                f_l, fp_l, fpp_l = _lower_map_and_derivatives(x, s_l)
                r_ll = _convex_control_parameter_right(0.0, b_l, 0.0, f_l, 1.0, fp_l, fpp_l, True)
                f = _rational_cubic_interpolation(beta, 0.0, b_l, 0.0, f_l, 1.0, fp_l, r_ll)
                if not (f > 0.0):  # quadratic through f(0)=0, f'(0)=1, f(b_l)
                    tt = beta / b_l
                    f = (f_l * tt + b_l * (1.0 - tt)) * tt
                s = _inverse_lower_map(x, f)
                s_right = s_l
                ln_beta = math.log(beta)
                inv_ln_beta = 1.0 / ln_beta
                iterations = 0
                while iterations < max_iter and abs(ds) > DBL_EPSILON * s:
                    if not (s > 0.0):
                        return _NAN
                    bx, ln_vega = _black_otm_over_vega_and_ln_vega(x, s)
                    if not (bx > 0.0):
                        return _NAN
                    ln_b = math.log(bx) + ln_vega
                    bpob = 1.0 / bx  # b'/b
                    inv_s = 1.0 / s
                    h = x * inv_s
                    h_over_s = h * inv_s
                    b_hh2 = h * h_over_s - 0.25 * s  # b''/b'
                    nu = (ln_beta - ln_b) * ln_b * inv_ln_beta * bx
                    lam = 1.0 / ln_b
                    otlam = 1.0 + 2.0 * lam
                    hh2 = b_hh2 - bpob * otlam
                    c = 3.0 * h_over_s * h_over_s
                    b_hh3 = b_hh2 * b_hh2 - c - 0.25
                    sq_bpob = bpob * bpob
                    bppob = b_hh2 * bpob
                    mu = 6.0 * lam * (1.0 + lam)
                    hh3 = b_hh3 + sq_bpob * (2.0 + mu) - bppob * 3.0 * otlam
                    if x < -190.0:
                        hh4 = (
                            (b_hh2 * (b_hh3 - 0.5) - (b_hh2 - 2.0 * inv_s) * 2.0 * c)
                            - bpob
                            * (
                                sq_bpob * (6.0 + lam * (22.0 + lam * (36.0 + lam * 24.0)))
                                - bppob * (12.0 + 6.0 * mu)
                            )
                            - bppob * b_hh2 * 3.0 * otlam
                            - b_hh3 * bpob * 4.0 * otlam
                        )
                        ds = nu * _householder4_factor(nu, hh2, hh3, hh4)
                    else:
                        ds = nu * _householder3_factor(nu, hh2, hh3)
                    s_new = max(s_left, min(s_right, s + ds))
                    ds = s_new - s
                    s = s_new
                    iterations += 1
                return s
            # Lower-middle segment: rational cubic in (beta, s) between (b_l, s_l) and (b_c, s_c).
            r_lm = _convex_control_parameter_right(
                b_l, b_c, s_l, s_c, 1.0 / v_l, 1.0 / v_c, 0.0, False
            )
            s = _rational_cubic_interpolation(beta, b_l, b_c, s_l, s_c, 1.0 / v_l, 1.0 / v_c, r_lm)
            s_left = s_l
            s_right = s_c
    else:
        s_u = s_c + (b_max - b_c) / v_c if v_c > DBL_MIN else s_c
        b_u, v_u = _black_otm_and_vega(x, s_u)
        if beta <= b_u:
            # Upper-middle segment.
            r_um = _convex_control_parameter_left(
                b_c, b_u, s_c, s_u, 1.0 / v_c, 1.0 / v_u, 0.0, False
            )
            s = _rational_cubic_interpolation(beta, b_c, b_u, s_c, s_u, 1.0 / v_c, 1.0 / v_u, r_um)
            s_left = s_c
            s_right = s_u
        else:
            # Highest segment: interpolate f(beta) = N(-s/2), then (for beta > b_max/2) iterate
            # on g(s) = ln(b_max - beta) - ln(b_max - b(s)) with b_max - b computed directly.
            f_u, fp_u, fpp_u = _upper_map_and_derivatives(x, s_u)
            f = -DBL_MAX
            if fpp_u > -SQRT_DBL_MAX and fpp_u < SQRT_DBL_MAX:
                r_uu = _convex_control_parameter_left(b_u, b_max, f_u, 0.0, fp_u, -0.5, fpp_u, True)
                f = _rational_cubic_interpolation(beta, b_u, b_max, f_u, 0.0, fp_u, -0.5, r_uu)
            if f <= 0.0:  # quadratic through f(b_u), f(b_max)=0, f'(b_max)=-1/2
                hh = b_max - b_u
                tt = (beta - b_u) / hh
                f = (f_u * (1.0 - tt) + 0.5 * hh * tt) * (1.0 - tt)
            s = -2.0 * inverse_norm_cdf(f)
            s_left = s_u
            if beta > 0.5 * b_max:
                beta_bar = b_max - beta
                iterations = 0
                while iterations < max_iter and abs(ds) > DBL_EPSILON * s:
                    if not (s > 0.0 and s < _INF):
                        return _NAN
                    h = x / s
                    t = 0.5 * s
                    gp = (2.0 / SQRT_TWO_PI) / (
                        erfcx_cody((t + h) * ONE_OVER_SQRT_TWO)
                        + erfcx_cody((t - h) * ONE_OVER_SQRT_TWO)
                    )
                    b_bar = _normalised_vega(x, s) / gp
                    if not (b_bar > 0.0):
                        return _NAN
                    g = math.log(beta_bar / b_bar)
                    b_hh2 = (h * h) / s - s / 4.0
                    c = 3.0 * (h / s) * (h / s)
                    b_hh3 = b_hh2 * b_hh2 - c - 0.25
                    nu = -g / gp
                    hh2 = b_hh2 + gp
                    hh3 = b_hh3 + gp * (2.0 * gp + 3.0 * b_hh2)
                    if x < -580.0:
                        hh4 = (b_hh2 * (b_hh3 - 0.5) - (b_hh2 - 2.0 / s) * 2.0 * c) + gp * (
                            6.0 * gp * (gp + 2.0 * b_hh2) + 3.0 * b_hh2 * b_hh2 + 4.0 * b_hh3
                        )
                        ds = nu * _householder4_factor(nu, hh2, hh3, hh4)
                    else:
                        ds = nu * _householder3_factor(nu, hh2, hh3)
                    s_new = max(s_left, min(s_right, s + ds))
                    ds = s_new - s
                    s = s_new
                    iterations += 1
                return s
    # Middle segments: g(s) = b(s) - beta.
    iterations = 0
    while iterations < max_iter and abs(ds) > DBL_EPSILON * s:
        if not (s > 0.0 and s < _INF):
            return _NAN
        b, bp = _black_otm_and_vega(x, s)
        if not (bp > 0.0):
            return _NAN
        nu = (beta - b) / bp
        inv_s = 1.0 / s
        h = x * inv_s
        h_over_s = h * inv_s
        hh2 = h * h_over_s - 0.25 * s  # b(2)/b'
        hh3 = hh2 * hh2 - 3.0 * h_over_s * h_over_s - 0.25  # b(3)/b'
        ds = nu * _householder3_factor(nu, hh2, hh3)
        s_new = max(s_left, min(s_right, s + ds))
        ds = s_new - s
        s = s_new
        iterations += 1
    return s


# --------------------------------------------------------------------------------------------
# Public kernels
# --------------------------------------------------------------------------------------------
@jit(error_model="numpy", fastmath=_FASTMATH)
def implied_vol_scalar(price, F, K, T, df, is_call):
    """Black-76 implied volatility of one option; returns ``(sigma, status)``.

    ``price`` is the discounted premium ``df * Black76(F, K, sigma, T)``. ``status`` is an
    :class:`~quantlab.pricing._status.IVStatus` code; ``sigma`` is NaN unless it is OK (0).
    """
    if not (
        math.isfinite(price)
        and math.isfinite(F)
        and math.isfinite(K)
        and math.isfinite(T)
        and math.isfinite(df)
    ):
        return _NAN, IV_INVALID_INPUT
    if F <= 0.0 or K <= 0.0 or df <= 0.0:
        return _NAN, IV_INVALID_INPUT
    if T <= 0.0:
        return _NAN, IV_EXPIRED
    if is_call:
        intrinsic = max(F - K, 0.0)
        upper = F
    else:
        intrinsic = max(K - F, 0.0)
        upper = K
    if price <= df * intrinsic:
        return _NAN, IV_BELOW_INTRINSIC
    if price >= df * upper:
        return _NAN, IV_ABOVE_MAX
    # Out-of-the-money equivalent by put-call parity: the (undiscounted) time value.
    time_value = price / df - intrinsic
    if not (time_value >= MIN_TIME_VALUE_REL * F):
        return _NAN, IV_NO_TIME_VALUE
    x_otm = -abs(_log_moneyness(F, K))
    if not (x_otm >= -MAX_ABS_LOG_MONEYNESS):
        return _NAN, IV_NO_TIME_VALUE
    fk = F * K
    sqrt_fk = math.sqrt(fk) if fk > DBL_MIN and fk < DBL_MAX else math.sqrt(F) * math.sqrt(K)
    beta = time_value / sqrt_fk
    b_max = math.exp(0.5 * x_otm)
    if beta >= b_max:
        return _NAN, IV_ABOVE_MAX
    s = _normalised_implied_vol_otm(beta, x_otm, b_max, MAX_ITERATIONS)
    if not (s > 0.0 and s < _INF):
        return _NAN, IV_NO_TIME_VALUE
    return s / math.sqrt(T), IV_OK


@jit(error_model="numpy", fastmath=_FASTMATH)
def implied_vol_1d(price, F, K, T, df, is_call, out_sigma, out_status):
    """Serial loop of :func:`implied_vol_scalar` over equal-length contiguous 1-D arrays."""
    for i in range(price.shape[0]):
        sig, st = implied_vol_scalar(price[i], F[i], K[i], T[i], df[i], is_call[i])
        out_sigma[i] = sig
        out_status[i] = st


@jit(parallel=True, error_model="numpy", fastmath=_FASTMATH)
def implied_vol_1d_par(price, F, K, T, df, is_call, out_sigma, out_status):
    """Parallel (prange) version of :func:`implied_vol_1d`."""
    for i in prange(price.shape[0]):
        sig, st = implied_vol_scalar(price[i], F[i], K[i], T[i], df[i], is_call[i])
        out_sigma[i] = sig
        out_status[i] = st


@jit(error_model="numpy", fastmath=_FASTMATH)
def black76_price_1d(F, K, T, sigma, df, is_call, out):
    """Serial loop of :func:`black76_price_scalar` over equal-length contiguous 1-D arrays."""
    for i in range(F.shape[0]):
        out[i] = black76_price_scalar(F[i], K[i], T[i], sigma[i], df[i], is_call[i])


@jit(parallel=True, error_model="numpy", fastmath=_FASTMATH)
def black76_price_1d_par(F, K, T, sigma, df, is_call, out):
    """Parallel (prange) version of :func:`black76_price_1d`."""
    for i in prange(F.shape[0]):
        out[i] = black76_price_scalar(F[i], K[i], T[i], sigma[i], df[i], is_call[i])


__all__ = [
    "black76_normalised_price_scalar",
    "black76_price_1d",
    "black76_price_1d_par",
    "black76_price_scalar",
    "erfc_cody",
    "erfcx_cody",
    "implied_vol_1d",
    "implied_vol_1d_par",
    "implied_vol_scalar",
    "inverse_norm_cdf",
    "norm_cdf",
]
