"""Broker adapters for the live runner: the protocol, a simulated broker replaying the store, and
Interactive Brokers through ib_async (:mod:`quantlab.brokers.ibkr`, imported on first use)."""

from typing import Any

from quantlab.brokers.base import (
    TERMINAL,
    AccountSummary,
    Broker,
    ComboLeg,
    Fill,
    Order,
    Position,
)

_IBKR = ("IBKRBroker", "BrokerError", "BrokerDisconnected")


def __getattr__(name: str) -> Any:
    if name in _IBKR:
        from quantlab.brokers import ibkr

        return getattr(ibkr, name)
    raise AttributeError(f"module 'quantlab.brokers' has no attribute {name!r}")


__all__ = [
    "TERMINAL",
    "AccountSummary",
    "Broker",
    "BrokerDisconnected",
    "BrokerError",
    "ComboLeg",
    "Fill",
    "IBKRBroker",
    "Order",
    "Position",
]
