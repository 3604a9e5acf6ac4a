"""Constants of the implied-vol kernels (module globals are frozen into compiled code)."""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------------------------
# Constants (module globals are frozen into the compiled code by numba)
# --------------------------------------------------------------------------------------------
DBL_EPSILON = 2.220446049250313e-16
DBL_MIN = 2.2250738585072014e-308
DBL_MAX = 1.7976931348623157e308
SQRT_DBL_MIN = 1.4916681462400413e-154
SQRT_DBL_MAX = 1.3407807929942596e154
FOURTH_ROOT_DBL_EPSILON = 1.220703125e-04
SIXTEENTH_ROOT_DBL_EPSILON = 0.10511205190671433

SQRT_TWO_PI = 2.5066282746310002
ONE_OVER_SQRT_TWO_PI = 0.3989422804014327
ONE_OVER_SQRT_TWO = 0.7071067811865476
SQRT_PI_OVER_TWO = 1.2533141373155003
HALF_LN_TWO_PI = 0.9189385332046728
TWO_PI = 6.283185307179586
PI_OVER_SIX = 0.5235987755982988
SQRT_THREE = 1.7320508075688772
SQRT_ONE_OVER_THREE = 0.5773502691896257
TWO_PI_OVER_SQRT_TWENTY_SEVEN = 1.2091995761561452  # 2*pi/sqrt(27)
SQRT_THREE_OVER_THIRD_ROOT_TWO_PI = 0.9386434874273836  # sqrt(3)/cbrt(2*pi)

# Region boundaries of the normalised Black function.
ASYMPTOTIC_EXPANSION_THRESHOLD = -10.0  # eta
SMALL_T_EXPANSION_THRESHOLD = 2.0 * SIXTEENTH_ROOT_DBL_EPSILON  # tau

#: Number of Householder iterations after the rational initial guess (LBR uses two).
MAX_ITERATIONS = 2

#: Time value below ``MIN_TIME_VALUE_REL * F`` is reported as NO_TIME_VALUE.
MIN_TIME_VALUE_REL = 1e-12
#: ``|ln(F/K)|`` beyond which the solver does not go (exp() ranges of the initial guess).
MAX_ABS_LOG_MONEYNESS = 500.0

#: LLVM fast-math flags for every kernel. Only fused multiply-add contraction (about 10%
#: faster): no flag that assumes away NaN/inf or reorders sums. Results differ from the plain
#: Python run (QUANTLAB_DISABLE_NUMBA=1) by a few ulps at most.
_FASTMATH = {"contract"}
# ``inline="always"`` (numba IR inlining) is used only on the small hot helpers (Cody's
# rational functions, erfc/erfcx, the Black dispatcher): that buys ~8% speed for ~9 s of cold
# compile; inlining everything gives no more speed and ~60 s of compile.

_NAN = math.nan
_INF = math.inf


def _asymptotic_coefficients() -> np.ndarray:
    """Coefficients of the asymptotic series A(h,t) = sum_n q^n sum_i C[n,i] e^i.

    With Y(z) = N(z)/phi(z) ~ sum_n (-1)^(n+1) (2n-1)!! z^-(2n+1) (A&S 26.2.12),
    r = (h+t)(h-t), q = (h/r)^2, e = (t/h)^2, one finds
    (r/t) [Y(h+t) - Y(h-t)] = sum_n (-1)^n (2n-1)!! 2 sum_i binom(2n+1, 2i+1) e^i q^n.
    Seventeen orders give N(z) to 1.6e-16 relative accuracy for z <= -10.
    """
    n_max = 17
    c = np.zeros((n_max + 1, n_max + 1))
    double_factorial = 1  # (2n-1)!!, exact integer
    for n in range(n_max + 1):
        if n > 0:
            double_factorial *= 2 * n - 1
        sign = -1 if n % 2 else 1
        for i in range(n + 1):
            c[n, i] = float(sign * 2 * double_factorial * math.comb(2 * n + 1, 2 * i + 1))
    return c


_ASYMPTOTIC_COEFFS = _asymptotic_coefficients()
