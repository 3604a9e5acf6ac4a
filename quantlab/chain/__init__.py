"""Chain analytics at a decision time, shared by the backtester, the feature store and live."""

from quantlab.chain.snapshot import QuoteFlag, Snapshot, build_snapshot

__all__ = ["QuoteFlag", "Snapshot", "build_snapshot"]
