"""Statistics for research results: performance metrics and overfitting diagnostics.

:mod:`quantlab.stats.metrics` defines every performance metric once (Sharpe, Sortino, Calmar,
annualised return and volatility, drawdowns, trade statistics) with its conventions, the
zero-volatility rule among them. :mod:`quantlab.stats.overfitting`: the deflated Sharpe ratio
(Bailey & López de Prado 2014), the probabilistic Sharpe ratio (2012) and the probability of
backtest overfitting by combinatorially symmetric cross-validation (Bailey, Borwein, López de
Prado & Zhu 2017). numpy in, floats and frozen dataclasses out.
"""

from __future__ import annotations

from quantlab.stats.overfitting import (
    EULER_GAMMA,
    MAX_COMBINATIONS,
    DeflatedSharpe,
    PBOResult,
    deflated_sharpe_from_matrix,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
)

__all__ = [
    "EULER_GAMMA",
    "MAX_COMBINATIONS",
    "DeflatedSharpe",
    "PBOResult",
    "deflated_sharpe_from_matrix",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "pbo_cscv",
    "probabilistic_sharpe_ratio",
    "sharpe_ratio",
]
