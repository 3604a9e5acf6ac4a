"""Position risk: greeks along a trade's path, P&L attribution, scenario revaluation, and the
book's greeks the decision book's limits read.

- :mod:`quantlab.risk.kernels`: the numba kernels (conventions in its docstring);
- :mod:`quantlab.risk.greeks`: greeks and attribution of a backtest's trades and book;
- :mod:`quantlab.risk.scenarios`: the scenario grid (sticky strike);
- :mod:`quantlab.risk.book`: the book's greeks from a chain snapshot (the live runner).
"""
