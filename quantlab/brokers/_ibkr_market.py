"""Market data of the IBKR adapter: contracts, option parameters, chain snapshots, streaming
quotes for held legs, delayed-data fallback and settlement values (mixed into
:class:`quantlab.brokers.ibkr.IBKRBroker`, whose connection and pacing it uses).

IB allows about 100 simultaneous market-data lines: the chain scan uses one-shot snapshots
(``reqMktData(snapshot=True)`` through ``reqTickers``) of the strikes within ``strike_window``
points of the index, for at most ``max_expiries`` expiries, in batches no larger than the free
lines and the pacing budget; only legs the runner holds or works orders in are streamed.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import polars as pl

from quantlab import calendar
from quantlab.brokers._ibkr_util import occ_root, tick_px
from quantlab.errors import BrokerError, InputError
from quantlab.strategy.occ import parse_occ

if TYPE_CHECKING:
    from ib_async import IB, Contract, Ticker

    from quantlab.strategy.spec import DTESpec

log = logging.getLogger("quantlab.brokers.ibkr")
_CHAIN_SCHEMA = {
    "instrument_id": pl.UInt32,
    "raw_symbol": pl.Utf8,
    "root": pl.Utf8,
    "expiry": pl.Date,
    "settlement": pl.Utf8,
    "strike": pl.Float64,
    "right": pl.Utf8,
    "multiplier": pl.Int32,
    "bid": pl.Float64,
    "ask": pl.Float64,
    "bid_size": pl.UInt32,
    "ask_size": pl.UInt32,
    "quote_ts": pl.Int64,
    "age_s": pl.Float64,
}
SETTLE_DELAY_NS = 15 * calendar.NS_PER_MINUTE  # the closing print is final by then


DELAYED_LAG_NS = 15 * 60 * 1_000_000_000
"""IB's delayed market data (types 3 and 4) is about 15 minutes old: chain rows say so in
``quote_ts``/``age_s``, so the strategy's ``max_quote_age_s`` filter refuses them for trading."""


class MarketDataMixin:
    """Contracts and market data; see the module docstring."""

    ib: IB
    roots: tuple[str, ...]
    dte: DTESpec | None
    max_expiries: int
    strike_window: float
    max_lines: int
    quote_timeout: float
    stream_idle_s: float
    market_data_type: int
    _denied: set[int]
    _index: Contract | None
    _params: tuple[dt.date, dict[str, list[str]], list[float]] | None
    _by_occ: dict[str, Contract]
    _by_expiry: dict[tuple[str, str, str], dict[float, Contract]]
    _streams: dict[str, list[Any]]  # occ -> [contract, ticker, last requested (monotonic)]
    _chain_cache: tuple[Any, pl.DataFrame] | None
    _settlements: dict[tuple[str, dt.date], float]

    _pacer: Any

    # provided by IBKRBroker (connection, clock, pacing, errors, positions)
    def now(self) -> int:
        raise NotImplementedError

    def _wait_until(self, cond: Any, timeout: float) -> bool:
        raise NotImplementedError

    def _ensure(self) -> None:
        raise NotImplementedError

    def _pace(self, n: int = 1) -> None:
        raise NotImplementedError

    def _req(self, what: str, fn: Any, *args: Any) -> Any:
        raise NotImplementedError

    def _recent_error(self, contract: Any) -> str:
        raise NotImplementedError

    def _held_occs(self) -> set[str]:
        raise NotImplementedError

    # -- contracts --------------------------------------------------------------------------
    def index_contract(self) -> Contract:
        """``Index('SPX', 'CBOE')``, qualified once (conId cached)."""
        if self._index is None:
            from ib_async import Index

            idx = Index("SPX", "CBOE", "USD")
            self._pace(1)
            got = self._req("qualify Index('SPX', 'CBOE')", self.ib.qualifyContracts, idx)
            if not got or got[0] is None:
                raise BrokerError(
                    f"IB could not qualify Index('SPX', 'CBOE'){self._recent_error(idx)}"
                )
            self._index = idx
        return self._index

    def option_params(
        self, day: dt.date | None = None
    ) -> dict[str, tuple[list[dt.date], list[float]]]:
        """Expirations and strikes per trading class (SPX, SPXW) from ``reqSecDefOptParams``
        (exchange SMART, else CBOE), cached for the session ``day``."""
        day = day or _et_day(self.now())
        if self._params is None or self._params[0] != day:
            idx = self.index_contract()
            self._pace(1)
            rows = self._req(
                "reqSecDefOptParams SPX", self.ib.reqSecDefOptParams, "SPX", "", "IND", idx.conId
            )
            exps: dict[str, list[str]] = {}
            strikes: set[float] = set()
            for exch in ("SMART", "CBOE"):
                for r in rows:
                    if (
                        r.exchange == exch
                        and r.tradingClass in ("SPX", "SPXW")
                        and r.tradingClass not in exps
                    ):
                        exps[r.tradingClass] = sorted(r.expirations)
                        strikes.update(float(k) for k in r.strikes)
            if not exps:
                raise BrokerError(
                    f"IB returned no SPX/SPXW option parameters for SPX (conId {idx.conId})."
                )
            self._params = (day, exps, sorted(strikes))
        _, exps, listed = self._params
        return {tc: ([_ymd(e) for e in v], list(listed)) for tc, v in exps.items()}

    def contract_for(self, occ: str) -> Contract:
        """The qualified IB option of an OCC symbol (IB's localSymbol), conId cached."""
        hit = self._by_occ.get(occ)
        if hit is not None:
            return hit
        parse_occ(occ)  # InputError for a malformed symbol
        from ib_async import Contract as IBContract

        q = IBContract(
            secType="OPT",
            symbol="SPX",
            localSymbol=occ,
            exchange="SMART",
            currency="USD",
            tradingClass=occ_root(occ),
        )
        self._pace(1)
        got = self._req(f"qualify {occ!r}", self.ib.qualifyContracts, q)
        if not got or got[0] is None:
            raise BrokerError(
                f"IB has no security definition for option {occ!r}{self._recent_error(q)}"
            )
        self._by_occ[occ] = q
        return q

    def instrument_ids(self, occs: list[str], ts: int) -> dict[str, int]:
        """IB conIds of OCC symbols (the ``instrument_id`` of this broker's chain snapshots),
        from the qualified-contract cache: no chain scan for a trade record."""
        return {occ: int(self.contract_for(occ).conId) for occ in occs}

    def _expiry_contracts(self, root: str, expiry: str, right: str) -> dict[float, Contract]:
        """Every listed option of one (trading class, expiration, right): one contract-details
        request (strike left open), cached."""
        key = (root, expiry, right)
        if key not in self._by_expiry:
            from ib_async import Option

            q = Option("SPX", expiry, 0.0, right, "SMART", currency="USD", tradingClass=root)
            self._pace(1)
            details = self._req(
                f"contract details {root} {expiry} {right}", self.ib.reqContractDetails, q
            )
            table: dict[float, Contract] = {}
            for d in details:
                c = d.contract
                if c is not None and c.localSymbol and c.tradingClass == root:
                    c.exchange = "SMART"
                    table[float(c.strike)] = c
                    self._by_occ.setdefault(c.localSymbol, c)
            self._by_expiry[key] = table
        return self._by_expiry[key]

    # -- snapshots --------------------------------------------------------------------------
    def _batch_size(self) -> int:
        return max(1, min(self._pacer_capacity(), self.max_lines - len(self._streams)))

    def _pacer_capacity(self) -> int:
        return int(self._pacer.capacity)

    def _snapshot(self, contracts: list[Contract]) -> list[Ticker | None]:
        """One-shot quotes of ``contracts`` (None where no tick arrived), in batches; falls back
        to delayed data when IB says live data is not subscribed."""
        out: dict[int, Ticker | None] = {}
        todo = list(contracts)
        for attempt in range(2):
            denied: list[Contract] = []
            size = self._batch_size()
            for i in range(0, len(todo), size):
                batch = todo[i : i + size]
                self._denied.clear()
                t0 = dt.datetime.now(dt.UTC)
                self._pace(len(batch))
                tickers = self._req(
                    f"snapshot of {len(batch)} contracts", self.ib.reqTickers, *batch
                )
                for c, t in zip(batch, tickers, strict=True):
                    fresh = t.time is not None and t.time >= t0
                    out[c.conId] = t if fresh else None
                    if c.conId in self._denied:
                        denied.append(c)
            if not denied or attempt or not self._fall_back_to_delayed():
                break
            todo = denied
        return [out.get(c.conId) for c in contracts]

    def _fall_back_to_delayed(self) -> bool:
        """Switch to delayed data (type 3, or 4 from frozen) once; False when already there."""
        if self.market_data_type not in (1, 2):
            return False
        self.market_data_type = 3 if self.market_data_type == 1 else 4
        log.warning(
            "IB: live market data is not subscribed; falling back to delayed data "
            "(reqMarketDataType %d)",
            self.market_data_type,
        )
        self._pace(1)
        self.ib.reqMarketDataType(self.market_data_type)
        return True

    def spot(self) -> float:
        """The SPX index now: last price, else the previous close."""
        t = self._snapshot([self.index_contract()])[0]
        for v in (getattr(t, "last", math.nan), getattr(t, "close", math.nan)):
            if v is not None and math.isfinite(v) and v > 0:
                return float(v)
        raise BrokerError(
            "IB sent no SPX index price (last/close): is the index data "
            "subscribed (or delayed data enabled)?"
        )

    def _plan(self, day: dt.date, ts: int, expirations: Any, roots: Any) -> list[tuple[str, str]]:
        """(trading class, expiration) pairs to snapshot, the preferred first."""
        params = self.option_params(day)
        want_roots = tuple(roots) if roots is not None else self.roots
        want_exp = (
            None
            if expirations is None
            else {
                e if isinstance(e, dt.date) else dt.date.fromisoformat(str(e))
                for e in ([expirations] if isinstance(expirations, (str, dt.date)) else expirations)
            }
        )
        cands = []
        for root in want_roots:
            for e in params.get(root, ([], []))[0]:
                n = (e - day).days
                if n < 0 or (want_exp is not None and e not in want_exp):
                    continue
                if root == "SPX" and n == 0 and ts >= calendar.settlement_ns("SPX", e):
                    continue  # AM-settled this morning
                if want_exp is None and self.dte is not None:
                    if abs(n - self.dte.target) > self.dte.tolerance:
                        continue
                    tie = n if self.dte.tie_break == "shorter" else -n
                    key: tuple[int, ...] = (abs(n - self.dte.target), tie)
                elif want_exp is None:
                    if n > 7:
                        continue
                    key = (n, 0)
                else:
                    key = (0, n)
                cands.append((key, root, f"{e:%Y%m%d}"))
        cands.sort()
        keep = cands if want_exp is not None else cands[: self.max_expiries]
        return [(root, e) for _, root, e in keep]

    def chain_snapshot(
        self, underlying: str, ts: int, *, expirations: Any = None, roots: Any = None
    ) -> pl.DataFrame:
        """The chain now, as :func:`quantlab.data.read.chain_at` shapes it, for the strikes
        within ``strike_window`` points of the index and the expiries the strategy can pick
        (``dte`` and ``max_expiries``; or exactly ``expirations`` / ``roots`` when given).
        ``quote_ts`` is when the snapshot was taken (``age_s`` 0); null prices when IB sent no
        quote. A second call for the same minute returns the same frame."""
        if underlying.upper() != "SPX":
            raise InputError(
                f"the IBKR adapter trades SPX options (got underlying {underlying!r})."
            )
        now = self.now()
        if ts > now + calendar.NS_PER_MINUTE:
            raise InputError(f"chain at {ts} is after the broker clock {now} (look-ahead).")
        key = (ts // calendar.NS_PER_MINUTE, repr(expirations), repr(roots))
        if self._chain_cache is not None and self._chain_cache[0] == key:
            return self._chain_cache[1]
        self._ensure()
        day = _et_day(ts)
        spot = self.spot()
        contracts: list[Contract] = []
        for root, exp in self._plan(day, ts, expirations, roots):
            for right in ("C", "P"):
                table = self._expiry_contracts(root, exp, right)
                contracts += [c for k, c in table.items() if abs(k - spot) <= self.strike_window]
        tickers = self._snapshot(contracts)
        taken = self.now()
        rows = []
        for c, t in zip(contracts, tickers, strict=True):
            root, expiry, right, strike = parse_occ(c.localSymbol)
            bid = tick_px(t.bid, "bid") if t is not None else math.nan
            ask = tick_px(t.ask, "ask") if t is not None else math.nan
            quoted = not (math.isnan(bid) and math.isnan(ask))
            lag_ns = DELAYED_LAG_NS if self.market_data_type in (3, 4) else 0
            rows.append(
                {
                    "instrument_id": int(c.conId),
                    "raw_symbol": c.localSymbol,
                    "root": root,
                    "expiry": expiry,
                    "settlement": "AM" if root in calendar.AM_ROOTS else "PM",
                    "strike": strike,
                    "right": right,
                    "multiplier": int(c.multiplier or 100),
                    "bid": None if math.isnan(bid) else bid,
                    "ask": None if math.isnan(ask) else ask,
                    "bid_size": _size(t.bidSize) if t is not None and bid > 0 else 0,
                    "ask_size": _size(t.askSize) if t is not None and ask == ask else 0,
                    "quote_ts": (taken - lag_ns) if quoted else None,
                    "age_s": lag_ns / 1e9 if quoted else None,
                }
            )
        frame = pl.DataFrame(rows, schema=_CHAIN_SCHEMA).sort(["expiry", "root", "strike", "right"])
        self._chain_cache = (key, frame)
        return frame

    # -- streaming quotes for held legs ------------------------------------------------------
    def quotes(self, legs: list[str]) -> tuple[list[float], list[float]]:
        """Latest (bid, ask) per OCC symbol from streaming subscriptions (NaN when none).

        A leg is subscribed on first request; subscriptions of legs no longer requested, held
        or worked in an open order (or idle ``stream_idle_s``) are cancelled first, so the
        lines in use stay within ``max_lines``.
        """
        self._ensure()
        stamp = time.monotonic()
        self._prune_streams(set(legs), stamp)
        new = []
        for occ in legs:
            if occ in self._streams:
                self._streams[occ][2] = stamp
                continue
            c = self.contract_for(occ)
            if len(self._streams) >= self.max_lines:
                raise BrokerError(
                    f"{len(self._streams)} market-data lines in use (max_lines "
                    f"{self.max_lines}): cannot stream {occ!r}."
                )
            self._subscribe(occ, c, stamp)
            new.append(occ)
        if new:
            self._await_ticks(new)
            denied = [o for o in new if self._streams[o][0].conId in self._denied]
            if denied and self._fall_back_to_delayed():
                for occ in denied:
                    self._cancel_stream(occ)
                    self._subscribe(occ, self.contract_for(occ), stamp)
                self._await_ticks(denied)
        else:
            self.ib.sleep(0)
        bids = [tick_px(self._streams[o][1].bid, "bid") for o in legs]
        asks = [tick_px(self._streams[o][1].ask, "ask") for o in legs]
        return bids, asks

    def _subscribe(self, occ: str, c: Contract, stamp: float) -> None:
        self._denied.discard(c.conId)
        self._pace(1)
        self._streams[occ] = [c, self.ib.reqMktData(c, "", False, False), stamp]

    def _await_ticks(self, occs: list[str]) -> None:
        """Wait (``quote_timeout`` at most) until each of ``occs`` has a quote or is denied
        (``_wait_until``: a plain ``waitOnUpdate`` loop can miss the update that fills it)."""

        def ready() -> bool:
            return all(
                self._streams[o][0].conId in self._denied
                or not (math.isnan(self._streams[o][1].bid) and math.isnan(self._streams[o][1].ask))
                for o in occs
            )

        self._wait_until(ready, self.quote_timeout)

    def _cancel_stream(self, occ: str) -> None:
        c, _, _ = self._streams.pop(occ)
        if self.ib.isConnected():
            self._pace(1)
            self.ib.cancelMktData(c)

    def _prune_streams(self, requested: set[str], stamp: float) -> None:
        if not self._streams:
            return
        keep = requested | self._held_occs()
        for occ, (_, _, last) in list(self._streams.items()):
            if occ not in keep or stamp - last > self.stream_idle_s:
                self._cancel_stream(occ)

    def release(self, occs: list[str] | None = None) -> None:
        """Cancel the streaming subscriptions of ``occs`` (all when None)."""
        for occ in list(self._streams) if occs is None else occs:
            if occ in self._streams:
                self._cancel_stream(occ)

    def streaming(self) -> list[str]:
        """OCC symbols streamed now (one market-data line each)."""
        return list(self._streams)

    # -- settlement -------------------------------------------------------------------------
    def set_settlement(self, root: str, expiry: dt.date, value: float) -> None:
        """Record an official settlement value (e.g. the SPX SOQ for an AM monthly)."""
        self._settlements[(root.upper(), expiry)] = float(value)

    def settlement_value(self, root: str, expiry: object) -> float:
        """Settlement value of an expiry, NaN unless known: one recorded with
        :meth:`set_settlement`, or for a PM-settled (SPXW) expiry the SPX closing value (the
        index last 15 minutes after the close on the expiry day; its previous close on the next
        session). AM settlements (SOQ) are not in the API feed: NaN unless recorded."""
        exp = expiry if isinstance(expiry, dt.date) else dt.date.fromisoformat(str(expiry))
        r = root.upper()
        if (r, exp) in self._settlements:
            return self._settlements[(r, exp)]
        now = self.now()
        if r not in calendar.PM_ROOTS or now < calendar.settlement_ns(r, exp):
            return math.nan
        today = _et_day(now)
        if today == exp and now >= calendar.settlement_ns(r, exp) + SETTLE_DELAY_NS:
            field = "last"
        elif today > exp and calendar.next_session(exp) == today:
            field = "close"
        else:
            return math.nan
        self._ensure()
        t = self._snapshot([self.index_contract()])[0]
        v = getattr(t, field, math.nan) if t is not None else math.nan
        if v is None or not math.isfinite(v) or v <= 0:
            return math.nan
        self._settlements[(r, exp)] = float(v)
        return float(v)


def _et_day(ns: int) -> dt.date:
    return calendar.et_date(ns)


def _ymd(s: str) -> dt.date:
    return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))


def _size(v: Any) -> int:
    return int(v) if v is not None and math.isfinite(v) and v > 0 else 0
