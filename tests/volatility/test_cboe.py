"""The Cboe VIX methodology held to Cboe's own worked example and to hand-computed boards.

Worked example (the reference values are Cboe's, never this module's output)
---------------------------------------------------------------------------
Cboe, "Volatility Index Methodology: Cboe Volatility Index" (the VIX white paper), sample
calculation: near-term expiry 34,484 minutes away (T1 = 0.0656088), R1 = 0.031664 %;
next-term 44,954 minutes (T2 = 0.0855289), R2 = 0.028797 %. Published: F1 = 1962.89996 from
the 1965 strike (call 21.05, put 23.15), F2 = 1962.40006 from the 1960 strike (27.30, 24.90),
K0 = 1960 for both; Q(1960) = (24.25 + 21.30)/2 = 22.775 near and (27.30 + 24.90)/2 = 26.10
next; near strip 1370 put .. 2125 call, next strip 1275 put .. 2200 call; sum of the
individual contributions 0.0006320516 (near) and 0.0008314016 (next), printed to 10 places;
(2/T)·Σ = 0.019267 and 0.019441, (1/T)(F/K0 − 1)² = 0.00003337 and 0.00001753;
σ1² = 0.019233906, σ2² = 0.019423884; VIX = 13.93. The complete SPX quote board below is the
paper's appendix ("Complete SPX data used in sample VIX Index calculation"), as transcribed in
the public repository Jero2244/galicia-options-dashboard (tests/fixtures/cboe_vix_example.json);
the per-strike Q(K) and ΔK spot-checked here agree with a second, independent transcription
of the paper's contribution table. The figures above were cross-checked across several public
re-implementations that quote the paper. (An older edition of the paper used a different
example, T1 = 0.0683486, R1 = 0.000305, VIX about 13.69; this one supersedes it.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlab.errors import InputError
from quantlab.volatility import (
    CALL,
    K0_AVERAGE,
    PUT,
    cboe_index,
    cboe_variance,
    cboe_weights,
)

# --- Cboe's sample board: strike, call bid, call ask, put bid, put ask -------------------------

NEAR_BOARD = """
800 1160.9 1164.4 0 0.1
900 1060.9 1064.5 0 0.1
1000 961.0 964.5 0 0.1
1050 911.0 914.5 0 0.1
1100 861.0 864.6 0 0.05
1125 836.0 839.6 0 0.05
1150 811.0 814.6 0 0.05
1175 786.1 789.6 0 0.05
1200 761.1 764.6 0 0.05
1220 741.1 744.6 0 0.1
1225 736.1 739.6 0 0.05
1240 721.1 724.6 0 0.1
1250 711.1 714.6 0 0.05
1260 701.1 704.6 0 0.1
1270 691.1 694.6 0 0.1
1275 686.1 689.6 0 0.1
1280 681.1 684.6 0 0.1
1290 671.1 674.7 0 0.1
1300 661.1 664.7 0.05 0.1
1305 656.1 659.7 0 0.1
1310 651.1 654.7 0 0.1
1315 646.1 649.7 0 0.1
1320 641.2 644.7 0 0.1
1325 636.2 639.7 0.05 0.1
1330 631.2 634.7 0 0.1
1335 626.2 629.7 0 0.15
1340 621.2 624.7 0 0.15
1345 616.2 619.7 0 0.15
1350 611.2 614.7 0.05 0.15
1355 606.2 609.7 0.05 0.35
1360 601.2 604.7 0 0.35
1365 596.2 599.7 0 0.35
1370 591.2 594.7 0.05 0.35
1375 586.2 589.7 0.1 0.15
1380 581.2 584.7 0.1 0.2
1385 576.2 579.7 0.1 0.35
1390 571.2 574.7 0.1 0.35
1395 566.2 569.7 0.1 0.15
1400 561.2 564.8 0.1 0.15
1405 556.2 559.8 0 0.35
1410 551.2 554.8 0.05 0.4
1415 546.2 549.8 0 0.4
1420 541.2 544.8 0.05 0.4
1425 536.3 539.8 0.15 0.2
1430 531.3 534.8 0.05 0.4
1435 526.3 529.8 0.15 0.4
1440 521.3 524.8 0.05 0.3
1445 516.3 519.8 0.05 0.4
1450 511.3 514.8 0.15 0.25
1455 506.3 509.8 0.05 0.45
1460 501.3 504.8 0.05 0.45
1465 496.3 499.8 0.05 0.45
1470 491.3 494.8 0.05 0.45
1475 486.3 489.9 0.15 0.25
1480 481.3 484.9 0.05 0.45
1485 476.3 479.9 0.2 0.5
1490 471.3 474.9 0.05 0.3
1495 466.4 469.9 0.05 0.5
1500 461.4 464.9 0.25 0.4
1505 456.4 459.9 0.3 0.35
1510 451.4 454.9 0.05 0.55
1515 446.4 449.9 0.05 0.55
1520 441.4 445.0 0.1 0.6
1525 436.4 440.0 0.3 0.4
1530 431.4 435.0 0.05 0.6
1535 426.4 430.0 0.1 0.65
1540 421.4 425.0 0.1 0.65
1545 416.5 420.0 0.1 0.65
1550 411.5 415.0 0.3 0.7
1555 406.5 410.1 0.15 0.7
1560 401.5 405.1 0.15 0.7
1565 396.5 400.1 0.15 0.7
1570 391.5 395.1 0.2 0.75
1575 386.5 390.1 0.35 0.75
1580 381.5 385.1 0.25 0.8
1585 376.6 380.2 0.25 0.8
1590 371.6 375.2 0.25 0.8
1595 366.6 370.2 0.25 0.8
1600 361.6 365.2 0.5 0.85
1605 356.6 360.3 0.3 0.85
1610 351.6 355.3 0.35 0.9
1615 346.7 350.3 0.35 0.9
1620 341.7 345.3 0.35 0.9
1625 336.7 340.4 0.4 0.95
1630 331.7 335.4 0.4 0.95
1635 326.7 330.4 0.45 1.0
1640 321.8 325.4 0.45 1.0
1645 316.8 320.5 0.5 1.05
1650 311.8 315.5 0.5 0.85
1655 306.8 310.5 0.55 1.1
1660 301.9 305.6 0.55 1.1
1665 296.9 300.6 0.6 1.15
1670 291.9 295.7 0.6 1.15
1675 287.0 290.7 0.65 1.2
1680 282.0 285.7 0.7 1.25
1685 277.0 280.8 0.75 1.3
1690 272.1 275.8 0.75 1.3
1695 267.1 270.9 0.8 1.35
1700 262.1 265.9 0.85 1.4
1705 257.2 261.0 0.85 1.4
1710 252.2 256.0 0.9 1.45
1715 247.3 251.1 0.95 1.5
1720 242.3 246.1 1.0 1.55
1725 237.4 241.2 1.05 1.6
1730 232.4 236.3 1.1 1.65
1735 227.5 231.3 1.15 1.7
1740 222.5 226.4 1.2 1.75
1745 217.6 221.5 1.25 1.85
1750 212.6 216.6 1.3 1.9
1755 207.7 211.6 1.4 1.95
1760 202.8 206.7 1.45 2.05
1765 197.8 201.8 1.5 2.15
1770 192.9 196.9 1.6 2.2
1775 188.0 192.0 1.65 2.35
1780 183.1 187.1 1.75 2.4
1785 178.2 182.2 1.85 2.5
1790 173.3 177.3 1.9 2.6
1795 168.4 172.4 2.0 2.75
1800 163.5 167.5 2.15 2.9
1805 158.6 162.6 2.25 3.0
1810 153.8 157.8 2.35 3.2
1815 148.9 152.9 2.5 3.4
1820 144.1 148.1 2.65 3.5
1825 139.2 143.3 3.0 3.6
1830 134.4 138.4 3.0 3.9
1835 129.6 133.6 3.2 4.1
1840 124.8 128.8 3.4 4.4
1845 120.1 124.1 3.6 4.6
1850 115.4 119.3 3.8 4.9
1855 110.6 114.6 4.1 5.2
1860 105.9 109.9 4.4 5.5
1865 101.3 105.2 4.7 5.8
1870 96.6 100.5 5.0 6.2
1875 92.0 95.9 5.4 6.6
1880 87.4 91.3 5.8 7.0
1885 82.9 86.7 6.2 7.5
1890 78.4 82.2 6.7 8.0
1895 74.0 77.7 7.2 8.6
1900 69.6 73.2 7.8 8.8
1905 66.0 68.5 8.5 9.5
1910 61.6 64.1 9.1 10.2
1915 57.4 59.8 9.9 11.3
1920 53.3 55.6 10.7 12.1
1925 49.1 51.2 11.6 12.6
1930 45.2 47.3 12.5 14.0
1935 41.2 43.4 13.6 14.7
1940 37.4 39.5 14.7 15.8
1945 33.7 35.7 15.9 17.2
1950 30.1 32.1 17.7 18.8
1955 26.7 28.5 19.0 20.5
1960 23.4 25.1 20.6 22.0
1965 20.3 21.8 22.3 24.0
1970 17.4 18.8 24.3 25.8
1975 14.6 15.9 26.5 28.1
1980 12.2 13.3 28.9 30.6
1985 9.9 11.0 31.4 33.2
1990 7.9 9.0 34.3 36.5
1995 6.2 7.1 37.4 39.7
2000 4.7 5.2 40.7 43.2
2005 3.4 4.2 44.0 47.7
2010 2.65 3.1 48.0 51.4
2015 1.75 2.3 52.2 56.0
2020 1.2 1.7 56.6 60.4
2025 1.0 1.25 61.2 65.0
2030 0.45 1.0 65.9 69.7
2035 0.25 0.8 70.7 74.4
2040 0.35 0.65 75.6 79.3
2045 0.2 0.6 80.5 84.1
2050 0.2 0.3 85.4 89.0
2055 0.15 0.5 90.4 94.0
2060 0.15 0.3 95.3 98.9
2065 0.15 0.2 100.3 103.9
2070 0.1 0.2 105.3 108.9
2075 0.1 0.2 110.3 113.8
2080 0.05 0.45 115.3 118.8
2085 0.05 0.4 120.3 123.8
2090 0.05 0.15 125.3 128.8
2095 0.05 0.35 130.3 133.8
2100 0.05 0.15 135.3 138.8
2120 0 0.15 155.3 158.8
2125 0.05 0.15 160.3 163.8
2150 0 0.1 185.2 188.8
2175 0 0.05 210.2 213.7
2200 0 0.05 235.2 238.7
2225 0.05 0.1 260.2 263.7
2250 0 0.05 285.2 288.7
"""

NEXT_BOARD = """
1225 735.9 738.8 0 0.1
1250 710.8 713.8 0 0.1
1275 686.0 688.7 0.05 0.1
1300 660.9 663.8 0 0.1
1325 635.9 638.6 0.1 0.2
1350 610.9 613.6 0.1 0.2
1375 585.9 588.7 0.1 0.25
1400 561.0 563.7 0.15 0.25
1425 536.0 538.8 0.2 0.3
1450 511.1 513.8 0.25 0.35
1475 486.1 488.9 0.3 0.4
1500 461.2 464.0 0.35 0.45
1510 451.3 454.0 0.35 0.5
1520 441.3 444.0 0.4 0.5
1525 436.3 439.1 0.4 0.55
1530 431.3 434.1 0.45 0.55
1540 421.4 424.1 0.45 0.6
1550 411.4 414.2 0.5 0.6
1555 406.4 409.2 0.5 0.65
1560 401.4 404.2 0.55 0.65
1565 396.5 399.2 0.55 0.7
1570 391.2 394.0 0.6 0.7
1575 386.5 389.3 0.6 0.75
1580 381.5 384.3 0.6 0.75
1585 376.6 379.3 0.65 0.75
1590 371.3 374.1 0.65 0.8
1595 366.6 369.4 0.7 0.8
1600 361.6 364.4 0.7 0.85
1605 356.7 359.4 0.75 0.85
1610 351.7 354.5 0.75 0.9
1615 346.7 349.5 0.8 0.9
1620 341.8 344.5 0.8 0.95
1625 336.8 339.5 0.85 0.95
1630 331.8 334.6 0.9 1.0
1635 326.9 329.6 0.9 1.05
1640 321.9 324.7 0.95 1.05
1645 316.9 319.7 0.95 1.1
1650 312.0 314.7 1.0 1.15
1655 307.0 309.8 1.05 1.15
1660 302.1 304.8 1.1 1.2
1665 297.1 299.9 1.15 1.25
1670 292.2 294.9 1.15 1.3
1675 287.2 289.9 1.2 1.35
1680 282.3 285.0 1.25 1.4
1685 277.3 280.1 1.3 1.45
1690 272.4 275.1 1.35 1.5
1695 267.4 270.2 1.4 1.55
1700 262.5 265.2 1.45 1.6
1705 257.5 260.3 1.5 1.7
1710 252.6 255.3 1.6 1.75
1715 247.7 250.4 1.65 1.8
1720 242.7 245.5 1.7 1.9
1725 237.8 240.6 1.75 1.95
1730 232.9 235.6 1.85 2.0
1735 228.0 230.7 1.9 2.1
1740 223.4 225.3 2.0 2.2
1745 218.5 220.4 2.1 2.25
1750 213.6 215.5 2.2 2.35
1755 208.7 210.6 2.3 2.45
1760 203.8 205.7 2.4 2.55
1765 198.9 200.8 2.5 2.65
1770 194.0 195.9 2.65 2.8
1775 189.2 191.1 2.75 2.9
1780 184.3 185.8 2.9 3.1
1785 179.4 180.9 3.0 3.2
1790 174.6 176.1 3.1 3.4
1795 169.7 171.2 3.3 3.6
1800 164.9 166.4 3.5 3.7
1805 160.1 161.6 3.7 3.9
1810 155.3 156.7 3.8 4.1
1815 150.5 152.0 4.1 4.3
1820 145.7 147.2 4.3 4.5
1825 140.9 142.4 4.5 4.8
1830 136.2 137.7 4.8 5.0
1835 131.5 132.9 5.0 5.3
1840 126.8 128.2 5.3 5.6
1845 122.1 123.5 5.6 5.9
1850 117.4 118.8 5.9 6.2
1855 112.8 114.2 6.3 6.6
1860 108.2 109.6 6.6 6.9
1865 103.6 105.0 7.0 7.3
1870 99.0 100.4 7.5 7.8
1875 94.5 95.9 8.0 8.3
1880 90.0 91.4 8.4 8.8
1885 85.5 86.9 9.0 9.4
1890 81.1 82.5 9.5 10.0
1895 76.8 78.1 10.2 10.6
1900 72.4 73.7 10.9 11.3
1905 68.2 69.4 11.6 12.0
1910 64.0 65.2 12.4 12.8
1915 59.8 61.1 13.2 13.7
1920 55.7 57.0 14.2 14.6
1925 51.7 53.0 15.2 15.6
1930 47.8 49.1 16.2 16.6
1935 44.6 45.1 17.4 17.8
1940 40.8 41.3 18.6 19.0
1945 37.2 37.7 20.0 20.4
1950 33.7 34.4 21.4 21.8
1955 30.3 30.9 23.0 23.4
1960 27.0 27.6 24.7 25.1
1965 23.8 24.5 26.5 27.3
1970 20.8 21.4 28.5 29.4
1975 18.0 18.6 30.5 31.6
1980 15.5 15.9 33.0 34.0
1985 13.1 13.5 35.5 36.6
1990 10.9 11.3 38.4 39.5
1995 9.0 9.3 41.3 42.5
2000 7.2 7.6 44.5 45.8
2005 5.7 6.0 48.1 49.3
2010 4.5 4.8 51.7 53.0
2015 3.4 3.7 55.8 57.0
2020 2.6 2.8 59.9 61.7
2025 1.95 2.15 64.1 66.1
2030 1.45 1.65 68.6 70.6
2035 1.05 1.25 73.3 75.2
2040 0.8 0.95 78.0 80.0
2045 0.6 0.75 82.0 84.8
2050 0.5 0.65 86.9 89.6
2060 0.3 0.4 96.6 99.4
2070 0.2 0.3 106.7 109.5
2075 0.15 0.25 111.7 114.5
2100 0.1 0.2 136.3 139.1
2125 0.05 0.15 161.5 164.3
2150 0.05 0.15 186.3 189.0
2175 0 0.1 211.3 214.0
2200 0.05 0.1 236.3 239.0
2225 0 0.1 261.3 264.0
2250 0 0.1 286.3 289.0
"""

N_NEAR, N_NEXT = 34_484, 44_954
T_NEAR, T_NEXT = N_NEAR / 525_600, N_NEXT / 525_600
R_NEAR, R_NEXT = 0.00031664, 0.00028797


def _board(text: str) -> tuple[np.ndarray, ...]:
    rows = np.array([[float(x) for x in line.split()] for line in text.strip().splitlines()])
    return tuple(rows[:, j].copy() for j in range(5))


def _at(v, strike: float) -> int:
    hit = np.flatnonzero(v.strikes == strike)
    assert hit.size == 1, f"{strike} not used"
    return int(hit[0])


@pytest.fixture(scope="module")
def near():
    return cboe_variance(*_board(NEAR_BOARD), T=T_NEAR, R=R_NEAR)


@pytest.fixture(scope="module")
def nxt():
    return cboe_variance(*_board(NEXT_BOARD), T=T_NEXT, R=R_NEXT)


def test_white_paper_near_term(near) -> None:
    assert near.ok and near.reason == ""
    assert near.forward_strike == 1965.0
    assert near.forward == pytest.approx(1962.89996, abs=5e-6)
    assert near.forward == pytest.approx(1965 + math.exp(R_NEAR * T_NEAR) * (21.05 - 23.15))
    assert near.k0 == 1960.0
    assert near.prices[_at(near, 1960.0)] == pytest.approx(22.775, abs=1e-12)
    assert near.kinds[_at(near, 1960.0)] == K0_AVERAGE
    assert (near.strikes[0], near.strikes[-1]) == (1370.0, 2125.0)
    assert (near.put_stop, near.call_stop) == ("zero_bids", "zero_bids")
    # Published: contribution sum to 10 places, the two terms, and sigma^2 to 9 places.
    assert near.contributions.sum() == pytest.approx(0.0006320516, abs=1e-10)
    assert near.sum_term == pytest.approx(0.019267, abs=5e-7)
    assert near.forward_term == pytest.approx(0.00003337, abs=5e-9)
    assert near.sigma2 == pytest.approx(0.019233906, abs=1e-8)


def test_white_paper_next_term(nxt) -> None:
    assert nxt.ok
    assert nxt.forward_strike == 1960.0
    assert nxt.forward == pytest.approx(1962.40006, abs=5e-6)
    assert nxt.k0 == 1960.0
    assert nxt.prices[_at(nxt, 1960.0)] == pytest.approx(26.10, abs=1e-12)
    assert (nxt.strikes[0], nxt.strikes[-1]) == (1275.0, 2200.0)
    assert (nxt.put_stop, nxt.call_stop) == ("zero_bids", "zero_bids")
    assert nxt.contributions.sum() == pytest.approx(0.0008314016, abs=1e-10)
    assert nxt.sum_term == pytest.approx(0.019441, abs=5e-7)
    assert nxt.forward_term == pytest.approx(0.00001753, abs=5e-9)
    assert nxt.sigma2 == pytest.approx(0.019423884, abs=1e-8)


def test_white_paper_strike_selection_and_delta_k(near, nxt) -> None:
    # Interior zero bids are skipped without ending the wing, and the gaps they leave are
    # bridged by the surviving neighbours: the paper's own dK column.
    for strike in (1405.0, 1415.0, 2120.0):
        assert strike not in near.strikes
    assert 1300.0 not in nxt.strikes and 2175.0 not in nxt.strikes
    dk_near = {1370.0: 5.0, 1400.0: 7.5, 1410.0: 10.0, 1420.0: 7.5, 2100.0: 15.0, 2125.0: 25.0}
    for strike, dk in dk_near.items():
        assert near.delta_k[_at(near, strike)] == dk
    dk_next = {1275.0: 50.0, 1325.0: 37.5, 1500.0: 17.5, 1520.0: 7.5, 2150.0: 37.5, 2200.0: 50.0}
    for strike, dk in dk_next.items():
        assert nxt.delta_k[_at(nxt, strike)] == dk
    # Strikes beyond two consecutive zero bids are dropped even with a bid (1355/1350 puts and
    # the 2225 call in the near term).
    assert not np.isin([1350.0, 1355.0, 2225.0], near.strikes).any()
    # Q(K) from the paper's contribution table.
    q_near = {1370.0: 0.2, 1385.0: 0.225, 1650.0: 0.675, 2025.0: 1.125, 2125.0: 0.1}
    for strike, q in q_near.items():
        assert near.prices[_at(near, strike)] == pytest.approx(q, abs=1e-12)
    q_next = {1275.0: 0.075, 1325.0: 0.15, 1965.0: 24.15, 2200.0: 0.075}
    for strike, q in q_next.items():
        assert nxt.prices[_at(nxt, strike)] == pytest.approx(q, abs=1e-12)
    # Counts: puts 1370..1955 by 5 less 1405/1415; calls 1965..2100 by 5 plus 2125.
    assert (near.n_puts, near.n_calls, near.strikes.size) == (116, 29, 146)
    assert (nxt.n_puts, nxt.n_calls, nxt.strikes.size) == (96, 25, 122)
    assert (near.kinds[:116] == PUT).all() and (near.kinds[117:] == CALL).all()
    # One strike of the paper's table, recomputed from its formula.
    assert near.contributions[0] == pytest.approx(
        5 / 1370**2 * math.exp(R_NEAR * T_NEAR) * 0.2, rel=1e-14
    )


def test_white_paper_index(near, nxt) -> None:
    vix = cboe_index(near.sigma2, N_NEAR, nxt.sigma2, N_NEXT)
    assert round(vix, 2) == 13.93
    assert vix == pytest.approx(cboe_index(0.019233906, N_NEAR, 0.019423884, N_NEXT), abs=1e-5)


# --- a hand-computed board ------------------------------------------------------------------
#
# R = 5 %, T = 0.1, growth e^{RT} = e^{0.005}.
#   strike   call bid/ask   put bid/ask    note
#    80      20.4 / 20.8    0.05 / 0.15    put used, Q = 0.10, lowest strike: dK = 90 - 80 = 10
#    85      15.5 / 15.9    0.00 / 0.10    lone zero bid: skipped, the put wing goes on
#    90      10.5 / 10.9    0.20 / 0.30    Q = 0.25, dK = (95 - 80) / 2 = 7.5
#    95       6.0 /  6.4    0.80 / 1.00    Q = 0.90, dK = 5
#   100       2.5 /  2.7    2.00 / 2.20    K0: Q = (2.60 + 2.10) / 2 = 2.35; smallest |C - P|
#   105       0.9 /  1.1    5.30 / 5.70    Q = 1.00
#   110       0.3 /  0.4    9.90 / 10.30   Q = 0.35, highest used: dK = 110 - 105 = 5
#   115       0.0 /  0.05  14.90 / 15.30   zero bid
#   120       0.0 /  0.05  19.90 / 20.30   second consecutive zero bid: the call wing ends
#   125       0.05 / 0.10  24.90 / 25.30   has a bid but lies beyond the stop: not used
# F = 100 + e^{0.005} (2.60 - 2.10); K0 = 100.

HAND_K = np.array([80.0, 85, 90, 95, 100, 105, 110, 115, 120, 125])
HAND_CB = np.array([20.4, 15.5, 10.5, 6.0, 2.5, 0.9, 0.3, 0.0, 0.0, 0.05])
HAND_CA = np.array([20.8, 15.9, 10.9, 6.4, 2.7, 1.1, 0.4, 0.05, 0.05, 0.10])
HAND_PB = np.array([0.05, 0.0, 0.20, 0.80, 2.00, 5.30, 9.90, 14.90, 19.90, 24.90])
HAND_PA = np.array([0.15, 0.10, 0.30, 1.00, 2.20, 5.70, 10.30, 15.30, 20.30, 25.30])
HAND_T, HAND_R = 0.1, 0.05


def _hand(**over):
    arrays = {
        "strikes": HAND_K.copy(),
        "call_bid": HAND_CB.copy(),
        "call_ask": HAND_CA.copy(),
        "put_bid": HAND_PB.copy(),
        "put_ask": HAND_PA.copy(),
    }
    forward = over.pop("forward", None)
    for name, (i, value) in over.items():
        arrays[name][i] = value
    return cboe_variance(**arrays, T=HAND_T, R=HAND_R, forward=forward)


def test_hand_board_by_hand() -> None:
    g = math.exp(0.05 * 0.1)
    F = 100 + g * (2.60 - 2.10)
    contributions = [
        10 / 80**2 * g * 0.10,
        7.5 / 90**2 * g * 0.25,
        5 / 95**2 * g * 0.90,
        5 / 100**2 * g * 2.35,
        5 / 105**2 * g * 1.00,
        5 / 110**2 * g * 0.35,
    ]
    sigma2 = 2 / 0.1 * sum(contributions) - 1 / 0.1 * (F / 100 - 1) ** 2
    v = _hand()
    assert v.forward_strike == 100.0 and v.k0 == 100.0
    assert v.forward == pytest.approx(F, abs=1e-12)
    assert v.strikes.tolist() == [80.0, 90.0, 95.0, 100.0, 105.0, 110.0]
    assert v.kinds.tolist() == [PUT, PUT, PUT, K0_AVERAGE, CALL, CALL]
    assert v.delta_k.tolist() == [10.0, 7.5, 5.0, 5.0, 5.0, 5.0]
    np.testing.assert_allclose(v.prices, [0.10, 0.25, 0.90, 2.35, 1.00, 0.35], rtol=0, atol=1e-12)
    np.testing.assert_allclose(v.contributions, contributions, rtol=0, atol=1e-12)
    assert v.sigma2 == pytest.approx(sigma2, abs=1e-12)
    assert (v.n_puts, v.n_calls) == (3, 2)
    assert (v.put_stop, v.call_stop) == ("chain_end", "zero_bids")
    assert (v.T, v.R) == (HAND_T, HAND_R)
    assert v.sum_term - v.forward_term == pytest.approx(v.sigma2, abs=1e-15)


def test_given_forward_overrides_the_parity_forward() -> None:
    # F = 106 puts K0 at 105: Q(105) = (5.50 + 1.00) / 2, puts now run 100, 95, 90, (85), 80.
    g = math.exp(0.05 * 0.1)
    v = _hand(forward=106.0)
    assert v.forward == 106.0 and math.isnan(v.forward_strike) and v.k0 == 105.0
    assert v.strikes.tolist() == [80.0, 90.0, 95.0, 100.0, 105.0, 110.0]
    assert v.prices.tolist()[3:5] == pytest.approx([2.10, 3.25], abs=1e-12)
    weighted_q = (
        10 / 80**2 * 0.10
        + 7.5 / 90**2 * 0.25
        + 5 / 95**2 * 0.90
        + 5 / 100**2 * 2.10
        + 5 / 105**2 * 3.25
        + 5 / 110**2 * 0.35
    )
    expected = 2 / 0.1 * g * weighted_q - 1 / 0.1 * (106 / 105 - 1) ** 2
    assert v.sigma2 == pytest.approx(expected, abs=1e-12)
    # A forward exactly on a strike makes that strike K0.
    assert _hand(forward=105.0).k0 == 105.0


def test_forward_is_the_strike_with_the_smallest_call_put_gap() -> None:
    # Tighten 105 so that |C - P| there (|1.00 - 1.20| = 0.20) beats 100's 0.50.
    v = _hand(put_bid=(5, 1.10), put_ask=(5, 1.30))
    assert v.forward_strike == 105.0
    assert v.forward == pytest.approx(105 + math.exp(0.005) * (1.00 - 1.20), abs=1e-12)
    assert v.k0 == 100.0
    # Only two-sided pairs compete: a zero-bid put at 105 takes it out of the race.
    assert _hand(put_bid=(5, 0.0), put_ask=(5, 1.0)).forward_strike == 100.0


def test_single_zero_bid_is_skipped_and_the_wing_continues() -> None:
    v = _hand()
    assert 85.0 not in v.strikes and 80.0 in v.strikes
    # A missing (NaN) bid counts as a zero bid.
    w = _hand(put_bid=(1, math.nan), put_ask=(1, math.nan))
    assert w.strikes.tolist() == v.strikes.tolist() and w.sigma2 == v.sigma2


def test_two_consecutive_zero_bids_end_the_wing() -> None:
    v = _hand()
    assert 125.0 not in v.strikes and v.call_stop == "zero_bids"
    # Put wing: zero bids at 85 and 80 stop it below 90.
    w = _hand(put_bid=(0, 0.0))
    assert w.strikes[0] == 90.0 and w.put_stop == "zero_bids"
    assert w.delta_k[0] == 95.0 - 90.0
    # A bid between two zero bids resets the run: 115 zero, 120 bid, 125 used.
    u = _hand(call_bid=(8, 0.02), call_ask=(8, 0.04))
    assert u.strikes.tolist()[-3:] == [110.0, 120.0, 125.0] and u.call_stop == "chain_end"
    # A bid with no usable ask has no midpoint (excluded) but is not a zero bid, so it resets
    # the run too: 115 (bid, no ask) skipped, 120 zero, 125 used.
    y = _hand(call_bid=(7, 0.05), call_ask=(7, math.nan))
    assert y.strikes.tolist()[-2:] == [110.0, 125.0] and y.call_stop == "chain_end"
    assert y.delta_k[-2:].tolist() == [(125 - 105) / 2, 125 - 110]


def test_delta_k_uses_surviving_neighbours() -> None:
    # Remove 95 (zero put bid): 90 and 100 become neighbours of each other.
    v = _hand(put_bid=(3, 0.0))
    assert v.strikes.tolist() == [80.0, 90.0, 100.0, 105.0, 110.0]
    assert v.delta_k.tolist() == [10.0, (100 - 80) / 2, (105 - 90) / 2, 5.0, 5.0]
    # Two strikes only: both ends one-sided.
    w = _hand(put_bid=(2, 0.0), call_bid=(6, 0.0))
    assert w.strikes.tolist() == [95.0, 100.0, 105.0]
    assert w.delta_k.tolist() == [5.0, 5.0, 5.0]


def test_no_usable_options_give_nan_with_a_reason() -> None:
    nan = np.full(HAND_K.size, np.nan)
    v = cboe_variance(HAND_K, nan, nan, nan, nan, T=0.1, R=0.0)
    assert math.isnan(v.sigma2) and not v.ok and "forward" in v.reason
    assert v.strikes.size == 0 and math.isnan(v.vol)
    # Forward given but every OTM option has no bid: only K0 survives.
    zeros = np.zeros(HAND_K.size)
    w = cboe_variance(HAND_K, zeros, HAND_CA, zeros, HAND_PA, T=0.1, R=0.0, forward=100.0)
    assert math.isnan(w.sigma2) and "K0" in w.reason
    cb, pb = zeros.copy(), zeros.copy()
    cb[4], pb[4] = 2.5, 2.0
    u = cboe_variance(HAND_K, cb, HAND_CA, pb, HAND_PA, T=0.1, R=0.0, forward=100.0)
    assert math.isnan(u.sigma2) and "besides K0" in u.reason
    # Forward below every strike.
    z = _hand(forward=50.0)
    assert math.isnan(z.sigma2) and "at or below" in z.reason
    empty = np.empty(0)
    assert not cboe_variance(empty, empty, empty, empty, empty, T=0.1, R=0.0).ok


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"call_ask": HAND_CA[:-1]}, "call_ask has 9 values but strikes has 10"),
        ({"put_bid": HAND_PB[:-1]}, "put_bid"),
        ({"strikes": HAND_K[::-1].copy()}, "strictly ascending"),
        ({"strikes": np.r_[80.0, 80.0, HAND_K[2:]]}, "strictly ascending"),
        ({"strikes": np.r_[np.nan, HAND_K[1:]]}, "finite and positive"),
        ({"put_ask": np.r_[-0.1, HAND_PA[1:]]}, "put_ask must be >= 0"),
        ({"T": 0.0}, "T must be a positive"),
        ({"T": -0.01}, "T must be a positive"),
        ({"T": math.nan}, "T must be a positive"),
        ({"R": math.inf}, "R must be"),
        ({"forward": -1.0}, "forward must be"),
    ],
)
def test_bad_input_raises_input_error(kwargs, match) -> None:
    args = {
        "strikes": HAND_K,
        "call_bid": HAND_CB,
        "call_ask": HAND_CA,
        "put_bid": HAND_PB,
        "put_ask": HAND_PA,
        "T": 0.1,
        "R": 0.0,
    }
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        cboe_variance(**args)


# --- the 30-day index -----------------------------------------------------------------------


def test_index_by_hand() -> None:
    # w1 = (50,000 - 43,200) / 20,000 = 0.34, w2 = (43,200 - 30,000) / 20,000 = 0.66
    t1, t2 = 30_000 / 525_600, 50_000 / 525_600
    var30 = (t1 * 0.02 * 0.34 + t2 * 0.03 * 0.66) * 525_600 / 43_200
    assert var30 == pytest.approx((30_000 * 0.02 * 0.34 + 50_000 * 0.03 * 0.66) / 43_200)
    assert cboe_index(0.02, 30_000, 0.03, 50_000) == pytest.approx(
        100 * math.sqrt(var30), rel=1e-14
    )
    assert cboe_weights(30_000, 50_000) == pytest.approx((0.34, 0.66), abs=1e-15)


def test_index_at_exactly_30_days_is_the_near_term() -> None:
    assert cboe_index(0.0225, 43_200, 0.09, 50_000) == pytest.approx(15.0, abs=1e-12)
    assert cboe_index(0.09, 30_000, 0.0225, 43_200) == pytest.approx(15.0, abs=1e-12)


def test_index_extrapolates_outside_the_bracket() -> None:
    # Both terms beyond 30 days: w1 = (60,000 - 43,200) / 10,000 = 1.68, w2 = -0.68.
    w1, w2 = cboe_weights(50_000, 60_000)
    assert (w1, w2) == pytest.approx((1.68, -0.68), abs=1e-14)
    expected = 100 * math.sqrt((50_000 * 0.04 * 1.68 - 60_000 * 0.05 * 0.68) / 43_200)
    assert cboe_index(0.04, 50_000, 0.05, 60_000) == pytest.approx(expected, rel=1e-13)
    # Both terms inside 30 days.
    w1, w2 = cboe_weights(10_000, 20_000)
    assert (w1, w2) == pytest.approx((-2.32, 3.32), abs=1e-14)


minutes = st.floats(1.0, 200_000.0, allow_nan=False)


@given(n1=minutes, gap=st.floats(1.0, 100_000.0), sigma=st.floats(0.01, 2.0))
def test_index_of_equal_variances_is_100_sigma(n1: float, gap: float, sigma: float) -> None:
    n2 = n1 + gap
    w1, w2 = cboe_weights(n1, n2)
    assert w1 + w2 == pytest.approx(1.0, abs=1e-9 * (1 + abs(w1)))
    assert cboe_index(sigma**2, n1, sigma**2, n2) == pytest.approx(
        100 * sigma, rel=1e-9 * (1 + abs(w1))
    )


def test_index_bad_input_and_nan() -> None:
    with pytest.raises(InputError, match="minutes_near must be less than minutes_next"):
        cboe_index(0.02, 50_000, 0.02, 30_000)
    with pytest.raises(InputError, match="minutes_near must be less"):
        cboe_index(0.02, 43_200, 0.02, 43_200)
    with pytest.raises(InputError, match="minutes_near must be a positive"):
        cboe_index(0.02, 0, 0.02, 30_000)
    with pytest.raises(InputError, match="minutes_next must be a positive"):
        cboe_index(0.02, 10, 0.02, math.inf)
    assert math.isnan(cboe_index(math.nan, 30_000, 0.02, 50_000))
    # Extrapolating into a negative variance gives NaN rather than an error.
    assert math.isnan(cboe_index(0.01, 50_000, 0.20, 60_000))


# --- flat-vol Black-76 chains: the model-free variance is sigma^2 ----------------------------


def _flat_chain(F: float, sigma: float, T: float, r: float):
    from quantlab.pricing import black76_price

    s = sigma * math.sqrt(T)
    lo = max(1.0, math.floor(F * math.exp(-9 * s)))
    hi = math.ceil(F * math.exp(9 * s))
    K = np.arange(lo, hi + 1.0, 1.0)
    df = math.exp(-r * T)
    c = np.asarray(black76_price(F, K, T, sigma, df, np.ones(K.size, dtype=bool)))
    p = np.asarray(black76_price(F, K, T, sigma, df, np.zeros(K.size, dtype=bool)))
    cb = np.where(c < 1e-6, 0.0, c)
    pb = np.where(p < 1e-6, 0.0, p)
    return K, cb, c, pb, p


@settings(max_examples=30, deadline=None)
@given(
    F=st.floats(1000.0, 6000.0),
    sigma=st.floats(0.08, 0.8),
    days=st.floats(5.0, 90.0),
    r=st.floats(0.0, 0.06),
)
def test_flat_vol_chain_recovers_sigma_squared(F: float, sigma: float, days: float, r: float):
    # The bounds keep 1-point strikes dense against the distribution (F sigma sqrt(T) >= 9
    # points); at F = 500, sigma = 6 %, 2 days (2.3 points) the strike grid itself is the error.
    T = days / 365
    v = cboe_variance(*_flat_chain(F, sigma, T, r), T=T, R=r)
    assert v.ok
    assert v.forward == pytest.approx(F, rel=1e-9)
    assert v.sigma2 == pytest.approx(sigma**2, rel=0.02)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.5, 20.0), r=st.floats(0.0, 0.06))
def test_variance_is_invariant_to_the_price_scale(scale: float, r: float) -> None:
    # Quoting the index in other units (strikes and premiums times c) leaves sigma^2 unchanged.
    T = 0.08
    K, cb, ca, pb, pa = _flat_chain(100.0, 0.25, T, r)
    base = cboe_variance(K, cb, ca, pb, pa, T=T, R=r)
    scaled = cboe_variance(K * scale, cb * scale, ca * scale, pb * scale, pa * scale, T=T, R=r)
    assert scaled.sigma2 == pytest.approx(base.sigma2, rel=1e-9)
    assert scaled.k0 == pytest.approx(base.k0 * scale, rel=1e-12)
