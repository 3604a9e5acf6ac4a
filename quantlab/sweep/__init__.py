"""Parameter sweeps over the backtester: grid or random search, shared stage 1, per-config stage 2,
MLflow and DuckDB tracking, and overfitting controls (deflated Sharpe ratio, PBO)."""

from quantlab.sweep.config import SweepConfig, expand

__all__ = ["SweepConfig", "expand"]
