"""The market the loopback TWS stub serves (:mod:`tests.live.tws_stub`): the SPX index and an
option chain around a spot level, priced with Black-Scholes at a settable clock.

Contracts: SPX (``IND``, CBOE, conId :data:`INDEX_CONID`); SPXW (PM-settled) on the next
``n_spxw`` sessions and one SPX (AM-settled) monthly, each with the same strikes, OCC local
symbols and conIds counting from :data:`FIRST_OPTION_CONID`. For the AM monthly, IB's
``lastTradeDateOrContractMonth`` is the last trading day (the session before the OCC expiry).
Quotes: flat volatility, tick-rounded around the model value (0.05 below 3.00, 0.10 above),
no bid when the bid would round below 0.05; ``overrides`` pins a contract's bid/ask.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from quantlab import calendar

INDEX_CONID = 416904
FIRST_OPTION_CONID = 600_000_001
_YEAR_NS = 365.0 * 86_400e9


@dataclass(frozen=True)
class StubContract:
    """One instrument as the stub lists it."""

    con_id: int
    sec_type: str  # "IND" | "OPT"
    symbol: str
    trading_class: str
    local_symbol: str
    last_trade: str = ""  # lastTradeDateOrContractMonth as IB reports it (YYYYMMDD)
    expiry: dt.date | None = None  # the OCC expiry date
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = "SMART"

    def wire11(self, exchange: str | None = None) -> list[Any]:
        """conId .. tradingClass as ``execDetails``/``position`` write them (11 fields)."""
        strike = self.strike if self.sec_type == "OPT" else 0.0
        return [
            self.con_id,
            self.symbol,
            self.sec_type,
            self.last_trade,
            strike,
            self.right,
            self.multiplier,
            exchange or self.exchange,
            "USD",
            self.local_symbol,
            self.trading_class,
        ]


def occ_symbol(root: str, expiry: dt.date, right: str, strike: float) -> str:
    """The 21-character OCC symbol, e.g. ``SPXW  240305P05000000``."""
    return f"{root:<6}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


class MarketModel:
    """SPX and an option chain around ``spot`` priced with Black-Scholes at ``now_ns``.

    Parameters
    ----------
    day : date
        The session the model trades (``now_ns`` defaults to 10:00 ET that day).
    spot, vol, rate : float
        Index level, flat implied volatility, continuously compounded rate.
    strikes : iterable of float
        Strikes listed for every expiry.
    n_spxw : int
        SPXW expiries: this session and the next ``n_spxw - 1``.
    monthly : bool
        List the SPX (AM) monthly expiry after ``day`` too.
    """

    def __init__(
        self,
        day: dt.date,
        *,
        spot: float = 5000.0,
        vol: float = 0.15,
        rate: float = 0.045,
        strikes: Iterable[float] = range(4700, 5301, 25),
        n_spxw: int = 4,
        monthly: bool = True,
        now_ns: int | None = None,
    ) -> None:
        self.day, self.spot, self.vol, self.rate = day, float(spot), float(vol), float(rate)
        self.prior_close = self.spot - 10.0
        self.now_ns = (
            now_ns
            if now_ns is not None
            else calendar.to_ns(dt.datetime.combine(day, dt.time(10, 0), tzinfo=calendar.ET))
        )
        self.overrides: dict[int, tuple[float, float]] = {}
        self.index = StubContract(INDEX_CONID, "IND", "SPX", "SPX", "SPX", exchange="CBOE")
        self.contracts: dict[int, StubContract] = {INDEX_CONID: self.index}
        self.expiries: list[tuple[str, dt.date, str]] = []  # (root, OCC expiry, IB last trade)
        d = day
        for _ in range(n_spxw):
            self.expiries.append(("SPXW", d, f"{d:%Y%m%d}"))
            d = calendar.next_session(d)
        if monthly:
            m = calendar.monthly_expiry(day.year, day.month)
            if m <= day:
                nxt = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
                m = calendar.monthly_expiry(nxt.year, nxt.month)
            last = calendar.last_trade_day("SPX", m)
            self.expiries.append(("SPX", m, f"{last:%Y%m%d}"))
        self.strikes = sorted(float(k) for k in strikes)
        cid = FIRST_OPTION_CONID
        for root, expiry, last in self.expiries:
            for k in self.strikes:
                for right in ("C", "P"):
                    c = StubContract(
                        cid,
                        "OPT",
                        "SPX",
                        root,
                        occ_symbol(root, expiry, right, k),
                        last,
                        expiry,
                        k,
                        right,
                        "100",
                    )
                    self.contracts[cid] = c
                    cid += 1

    def by_occ(self, occ: str) -> StubContract:
        """The listed option with OCC symbol ``occ`` (KeyError when not listed)."""
        for c in self.contracts.values():
            if c.local_symbol == occ:
                return c
        raise KeyError(occ)

    def theo(self, c: StubContract) -> float:
        """Black-Scholes value of option ``c`` at ``now_ns`` (intrinsic once settled)."""
        assert c.expiry is not None
        t = (calendar.settlement_ns(c.trading_class, c.expiry) - self.now_ns) / _YEAR_NS
        fwd = self.spot * math.exp(self.rate * max(t, 0.0))
        intrinsic = max(fwd - c.strike, 0.0) if c.right == "C" else max(c.strike - fwd, 0.0)
        if t <= 0:
            return intrinsic
        s = self.vol * math.sqrt(t)
        d1 = (math.log(fwd / c.strike) + 0.5 * s * s) / s
        d2 = d1 - s
        df = math.exp(-self.rate * t)
        if c.right == "C":
            return df * (fwd * _ncdf(d1) - c.strike * _ncdf(d2))
        return df * (c.strike * _ncdf(-d2) - fwd * _ncdf(-d1))

    def quote(self, con_id: int) -> tuple[float, float, int, int]:
        """``(bid, ask, bid_size, ask_size)``; a zero bid means no bid (size 0)."""
        if con_id in self.overrides:
            b, a = self.overrides[con_id]
            return b, a, (10 if b > 0 else 0), (10 if a > 0 else 0)
        theo = self.theo(self.contracts[con_id])
        tick = 0.05 if theo < 3.0 else 0.10
        half = max(0.05, 0.02 * theo)
        bid = math.floor((theo - half) / tick + 1e-9) * tick
        ask = max(math.ceil((theo + half) / tick - 1e-9) * tick, 0.05)
        bid = round(bid, 2) if bid >= 0.05 else 0.0
        return bid, round(ask, 2), (10 if bid > 0 else 0), 10

    def mid(self, con_id: int) -> float:
        bid, ask, _, _ = self.quote(con_id)
        return 0.5 * (bid + ask)
