"""Strategy specification: what to trade, when, and how it is managed (strict YAML)."""

from quantlab.strategy.spec import (
    DTESpec,
    EntrySpec,
    FilterSpec,
    LegSpec,
    ManagementSpec,
    RiskSpec,
    SizingSpec,
    StrategySpec,
)

__all__ = [
    "DTESpec",
    "EntrySpec",
    "FilterSpec",
    "LegSpec",
    "ManagementSpec",
    "RiskSpec",
    "SizingSpec",
    "StrategySpec",
]
