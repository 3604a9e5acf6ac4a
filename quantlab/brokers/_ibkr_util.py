"""Helpers of the IBKR adapter: its errors, request pacing, OCC <-> IB contracts, status mapping
and log redaction of account ids (see :mod:`quantlab.brokers.ibkr`)."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from quantlab import calendar
from quantlab.brokers.base import ComboLeg
from quantlab.errors import ConfigError

IB_LOGGERS = ("ib_async", "ib_async.ib", "ib_async.client", "ib_async.wrapper", "ib_async.Decoder")
MARKET_DATA_DENIED = frozenset({354, 10089, 10090, 10168, 10186})
"""IB error codes that mean 'no live market data subscription for this request'."""
DELAYED_NOTICE = 10167  # "Requested market data is not subscribed. Displaying delayed market data."
LINK_LOST, LINK_RESTORED = 1100, frozenset({1101, 1102})


def mask_account(account: str) -> str:
    """An account id fit for a message: its first two characters only (``DU***``)."""
    return f"{account[:2]}***" if account else "<none>"


def check_account(account: str, live: bool) -> None:
    """Refuse an account that does not look like an IB paper account unless ``live``.

    IB paper-trading accounts start with ``D`` (``DU...``, ``DF...``); anything else is a
    real-money account.
    """
    if not account or not account.strip():
        raise ConfigError("the IBKR account id is empty.")
    if not account.startswith("D") and not live:
        raise ConfigError(
            f"IBKR account {mask_account(account)} does not look like a paper account (paper "
            "account ids start with 'D', e.g. 'DU...'): trading real money needs the explicit "
            "--live flag (IBKRBroker(live=True))."
        )


class Pacer:
    """Token bucket for outgoing API messages: never more than ``per_s`` in any second.

    Each token spent returns to the bucket ``1 + slack`` seconds after it was spent (a sliding
    window, which is IB's own rule of 50 messages per second; the slack absorbs scheduling
    jitter between this process and the gateway). :meth:`acquire` blocks, through ``sleep``,
    until ``n`` tokens are free.

    Parameters
    ----------
    per_s : float
        Messages per second (IB's limit is 50).
    slack : float
        Seconds added to the one-second window.
    clock, sleep : callables
        Monotonic seconds and a sleep that keeps the client's event loop running.
    """

    def __init__(
        self,
        per_s: float,
        *,
        slack: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if not per_s >= 1.0:
            raise ConfigError(f"pacing_per_s must be >= 1 message per second (got {per_s!r}).")
        self.capacity = int(per_s)
        self.window = 1.0 + float(slack)
        self.clock, self.sleep = clock, sleep
        self.sent: deque[float] = deque()
        self.waited = 0.0  # seconds spent waiting for tokens (for reports)

    def acquire(self, n: int = 1) -> None:
        """Take ``n`` tokens (in chunks of the bucket size when ``n`` is larger)."""
        while n > 0:
            k = min(n, self.capacity)
            while True:
                now = self.clock()
                while self.sent and self.sent[0] <= now - self.window:
                    self.sent.popleft()
                over = len(self.sent) + k - self.capacity
                if over <= 0:
                    break
                wait = self.sent[over - 1] + self.window - now
                self.waited += max(wait, 0.0)
                self.sleep(max(wait, 0.001))
            self.sent.extend([now] * k)
            n -= k


def occ_root(occ: str) -> str:
    return occ[:6].strip()


def bag_legs(legs: Iterable[ComboLeg], con_ids: Iterable[int]) -> list[Any]:
    """ib_async ``ComboLeg`` list of a combo: ratio = |ratio|, action BUY (> 0) / SELL (< 0)."""
    from ib_async import ComboLeg as IBLeg

    return [
        IBLeg(
            conId=int(cid),
            ratio=abs(int(leg.ratio)),
            action="BUY" if leg.ratio > 0 else "SELL",
            exchange="SMART",
        )
        for leg, cid in zip(legs, con_ids, strict=True)
    ]


def trade_status(trade: Any) -> str:
    """IB order status -> ``submitted | filled | cancelled | rejected``.

    ``Filled`` -> filled; ``Cancelled``/``ApiCancelled`` -> cancelled, or rejected when the
    last error logged on the order is not a cancel confirmation (202), or submitted (state
    unknown, poll again) after 161/10148 "cannot cancel"; ``Inactive`` -> rejected;
    everything else (PendingSubmit, PreSubmitted, Submitted, PendingCancel, ...) -> submitted.
    """
    s = trade.orderStatus.status
    if s == "Filled":
        return "filled"
    if s in ("Cancelled", "ApiCancelled"):
        codes = [e.errorCode for e in trade.log if e.errorCode]
        if codes and codes[-1] in (161, 10148):
            # "cannot cancel, order state ...": ib_async marks it Cancelled on the client side
            # only; the order may well be filled: unknown until TWS reports, so keep polling
            return "submitted"
        return "rejected" if codes and codes[-1] != 202 else "cancelled"
    if s == "Inactive":
        return "rejected"
    return "submitted"


def reject_reason(trade: Any) -> str:
    errs = [e for e in trade.log if e.errorCode]
    return f"IB error {errs[-1].errorCode}: {errs[-1].message}" if errs else ""


def exec_ns(fill: Any) -> int:
    """An ib_async fill's execution time as int64 UTC ns."""
    t = fill.execution.time
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return calendar.to_ns(t)


def tick_px(value: float, side: str) -> float:
    """A ticker's bid/ask as the chain stores it: NaN when never quoted; IB's -1 ("no bid /
    no ask") becomes a zero bid, or a missing ask."""
    if value is None or not math.isfinite(value):
        return math.nan
    if value < 0:
        return 0.0 if side == "bid" else math.nan
    return float(value)


class Redactor(logging.Filter):
    """Replaces known account ids in ib_async's log records (it logs positions, fills and
    account values with the account id in them)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self.secrets.update(v for v in values if v)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            hit = False
            for s in self.secrets:
                if s in msg:
                    msg, hit = msg.replace(s, mask_account(s)), True
            if hit:
                record.msg, record.args = msg, ()
        return True

    def install(self) -> None:
        for name in IB_LOGGERS:
            lg = logging.getLogger(name)
            if self not in lg.filters:
                lg.addFilter(self)


REDACTOR = Redactor()
"""The one filter on ib_async's loggers (installed by the first IBKRBroker)."""
