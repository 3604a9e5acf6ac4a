"""Execution models shared by the backtester and the live runner: fills and fees."""

from quantlab.execution.fees import FeeSchedule
from quantlab.execution.fills import FillModel, tick_size

__all__ = ["FeeSchedule", "FillModel", "tick_size"]
