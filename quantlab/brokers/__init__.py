"""Broker adapters for the live runner: the protocol, and a simulated broker replaying the store."""

from quantlab.brokers.base import (
    TERMINAL,
    AccountSummary,
    Broker,
    ComboLeg,
    Fill,
    Order,
    Position,
)

__all__ = ["TERMINAL", "AccountSummary", "Broker", "ComboLeg", "Fill", "Order", "Position"]
