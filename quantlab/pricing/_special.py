"""Special functions for the implied-vol and normalised-Black kernels, accurate to ~1e-16.

W. J. Cody's rational Chebyshev approximations of erfc and erfcx (Math. Comp. 23 (1969)
631-637), the standard normal CDF built on them, and the inverse normal CDF (AS 241,
Wichura 1988). Split out of ``_iv_kernels`` to keep modules small; numba compiles them inline.
"""

from __future__ import annotations

import math

from quantlab._numba import jit
from quantlab.pricing._iv_constants import (
    _FASTMATH,
    _INF,
    _NAN,
    DBL_EPSILON,
    DBL_MAX,
    ONE_OVER_SQRT_TWO,
    ONE_OVER_SQRT_TWO_PI,
)


# --------------------------------------------------------------------------------------------
# Cody's erfc / erfcx (rational Chebyshev approximations, ~18 significant digits)
# --------------------------------------------------------------------------------------------
@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def _cody_small(ysq):
    """R(y^2) with erf(y) = y * R(y^2) for |y| <= 0.46875."""
    xnum = 0.185777706184603153 * ysq
    xden = ysq
    xnum = (xnum + 3.1611237438705656) * ysq
    xden = (xden + 23.6012909523441209) * ysq
    xnum = (xnum + 113.864154151050156) * ysq
    xden = (xden + 244.024637934444173) * ysq
    xnum = (xnum + 377.485237685302021) * ysq
    xden = (xden + 1282.61652607737228) * ysq
    return (xnum + 3209.37758913846947) / (xden + 2844.23683343917062)


@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def _cody_mid(y):
    """erfcx(y) for 0.46875 <= y <= 4."""
    xnum = 2.15311535474403846e-8 * y
    xden = y
    xnum = (xnum + 0.564188496988670089) * y
    xden = (xden + 15.7449261107098347) * y
    xnum = (xnum + 8.88314979438837594) * y
    xden = (xden + 117.693950891312499) * y
    xnum = (xnum + 66.1191906371416295) * y
    xden = (xden + 537.181101862009858) * y
    xnum = (xnum + 298.635138197400131) * y
    xden = (xden + 1621.38957456669019) * y
    xnum = (xnum + 881.95222124176909) * y
    xden = (xden + 3290.79923573345963) * y
    xnum = (xnum + 1712.04761263407058) * y
    xden = (xden + 4362.61909014324716) * y
    xnum = (xnum + 2051.07837782607147) * y
    xden = (xden + 3439.36767414372164) * y
    return (xnum + 1230.33935479799725) / (xden + 1230.33935480374942)


@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def _cody_large(y):
    """erfcx(y) for y > 4 (no exponential involved)."""
    ysq = 1.0 / (y * y)
    xnum = 0.0163153871373020978 * ysq
    xden = ysq
    xnum = (xnum + 0.305326634961232344) * ysq
    xden = (xden + 2.56852019228982242) * ysq
    xnum = (xnum + 0.360344899949804439) * ysq
    xden = (xden + 1.87295284992346047) * ysq
    xnum = (xnum + 0.125781726111229246) * ysq
    xden = (xden + 0.527905102951428412) * ysq
    xnum = (xnum + 0.0160837851487422766) * ysq
    xden = (xden + 0.0605183413124413191) * ysq
    r = ysq * (xnum + 6.58749161529837803e-4) / (xden + 0.00233520497626869185)
    return (0.56418958354775628695 - r) / y


@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def _exp_minus_sq(y):
    """exp(-y*y) computed as exp(-a*a) * exp(-(y-a)(y+a)) with a = trunc(16y)/16 (Cody)."""
    a = math.floor(y * 16.0) / 16.0
    return math.exp(-a * a) * math.exp(-(y - a) * (y + a))


@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def erfc_cody(x):
    """Complementary error function erfc(x), Cody's algorithm."""
    y = abs(x)
    if y <= 0.46875:
        ysq = y * y if y > 1.11e-16 else 0.0
        return 1.0 - x * _cody_small(ysq)
    if y <= 4.0:
        r = _cody_mid(y) * _exp_minus_sq(y)
    elif y >= 26.543:
        r = 0.0
    else:
        r = _cody_large(y) * _exp_minus_sq(y)
    if x < 0.0:
        return 2.0 - r
    return r


@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def erfcx_cody(x):
    """Scaled complementary error function exp(x*x) * erfc(x), Cody's algorithm."""
    y = abs(x)
    if y <= 0.46875:
        ysq = y * y if y > 1.11e-16 else 0.0
        return (1.0 - x * _cody_small(ysq)) * math.exp(ysq)
    if y <= 4.0:
        r = _cody_mid(y)
    elif y >= 6.71e7:
        r = 0.56418958354775628695 / y if y < 2.53e307 else 0.0
    else:
        r = _cody_large(y)
    if x < 0.0:
        if x < -26.628:
            return DBL_MAX
        a = -math.floor(-x * 16.0) / 16.0
        e = math.exp(a * a) * math.exp((x - a) * (x + a))
        return e + e - r
    return r


@jit(error_model="numpy", fastmath=_FASTMATH)
def norm_cdf(z):
    """Standard normal CDF, accurate in the far left tail (asymptotic series below -10)."""
    if z <= -10.0:
        total = 1.0
        if z >= -67108864.0:  # -1/sqrt(DBL_EPSILON)
            zsq = z * z
            i = 1.0
            g = 1.0
            a = DBL_MAX
            while True:
                last_a = a
                u = (4.0 * i - 3.0) / zsq
                v = u * ((4.0 * i - 1.0) / zsq)
                a = g * (u - v)
                total -= a
                g *= v
                i += 1.0
                a = abs(a)
                if not (last_a > a and a >= abs(total * DBL_EPSILON)):
                    break
        return -ONE_OVER_SQRT_TWO_PI * math.exp(-0.5 * z * z) * total / z
    return 0.5 * erfc_cody(-z * ONE_OVER_SQRT_TWO)


@jit(error_model="numpy", fastmath=_FASTMATH, inline="always")
def _horner7(r, c0, c1, c2, c3, c4, c5, c6, c7):
    return ((((((c7 * r + c6) * r + c5) * r + c4) * r + c3) * r + c2) * r + c1) * r + c0


@jit(error_model="numpy", fastmath=_FASTMATH)
def inverse_norm_cdf(u):
    """Standard normal quantile, Wichura's AS241 (PPND16, about 16 digits)."""
    if u <= 0.0:
        return -_INF if u == 0.0 else _NAN
    if u >= 1.0:
        return _INF if u == 1.0 else _NAN
    q = u - 0.5
    if abs(q) <= 0.425:  # central region
        r = 0.180625 - q * q
        num = _horner7(
            r,
            3.387132872796366608,
            133.14166789178437745,
            1971.5909503065514427,
            13731.693765509461125,
            45921.953931549871457,
            67265.770927008700853,
            33430.575583588128105,
            2509.0809287301226727,
        )
        den = _horner7(
            r,
            1.0,
            42.313330701600911252,
            687.1870074920579083,
            5394.1960214247511077,
            21213.794301586595867,
            39307.89580009271061,
            28729.085735721942674,
            5226.495278852545561,
        )
        return q * num / den
    r = math.sqrt(-math.log(u if q < 0.0 else 1.0 - u))
    if r < 5.0:  # intermediate tail
        r -= 1.6
        num = _horner7(
            r,
            1.42343711074968357734,
            4.6303378461565452959,
            5.7694972214606914055,
            3.64784832476320460504,
            1.27045825245236838258,
            0.24178072517745061177,
            0.0227238449892691845833,
            7.7454501427834140764e-4,
        )
        den = _horner7(
            r,
            1.0,
            2.05319162663775882187,
            1.6763848301838038494,
            0.68976733498510000455,
            0.14810397642748007459,
            0.0151986665636164571966,
            5.475938084995344946e-4,
            1.05075007164441684324e-9,
        )
    else:  # far tail
        r -= 5.0
        num = _horner7(
            r,
            6.6579046435011037772,
            5.4637849111641143699,
            1.7848265399172913358,
            0.29656057182850489123,
            0.026532189526576123093,
            0.0012426609473880784386,
            2.71155556874348757815e-5,
            2.01033439929228813265e-7,
        )
        den = _horner7(
            r,
            1.0,
            0.59983220655588793769,
            0.13692988092273580531,
            0.0148753612908506148525,
            7.868691311456132591e-4,
            1.8463183175100546818e-5,
            1.4215117583164458887e-7,
            2.04426310338993978564e-15,
        )
    ret = num / den
    return -ret if q < 0.0 else ret
