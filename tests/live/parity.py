"""The backtest's trades as a live replay of some days sees them at the end of its last day.

A backtest's ``end`` is its last entry day: a trade still open then is followed to its exit
while the store has data (``end_of_data`` only where the data ends). The shared synthetic store
goes on after the live tests' days, so a live replay that stops on ``last`` holds open exactly
the trades the backtest closes after ``last`` or runs into the end of the data.
"""

from __future__ import annotations

import datetime as dt

import polars as pl


def closed_by(trades: pl.DataFrame, last: dt.date) -> pl.DataFrame:
    """The trades closed by the end of ``last``, by ``trade_id``."""
    done = (pl.col("exit_reason") != "end_of_data") & (pl.col("exit_date") <= last)
    return trades.filter(done).sort("trade_id")


def open_after(trades: pl.DataFrame, last: dt.date) -> set[str]:
    """The ``trade_id`` of the trades still open at the end of ``last``."""
    still = (pl.col("exit_reason") == "end_of_data") | (pl.col("exit_date") > last)
    return set(trades.filter(still)["trade_id"])
