"""The one trade-record schema shared by the backtester and the live runner, and the
candidate-decision schema (every proposed candidate, taken or not, with its reason).

All money is in dollars unless a column says ``_per_share`` (option premium units; one SPX
contract is 100 shares). Times are int64 UTC nanoseconds; dates are ET session dates.
"""

from __future__ import annotations

import polars as pl

LEG = pl.Struct(
    {
        "occ": pl.Utf8,  # OCC raw symbol, the identity across days
        "root": pl.Utf8,
        "expiry": pl.Date,
        "right": pl.Utf8,
        "strike": pl.Float64,
        "quantity": pl.Int32,  # signed per spread: -1 sold, +1 bought
        "instrument_id_entry": pl.UInt32,  # Databento id on the entry day
        "instrument_id_exit": pl.UInt32,  # id on the exit day (ids change daily)
        "entry_price": pl.Float64,  # fill per share
        "exit_price": pl.Float64,  # fill per share (intrinsic at settlement)
    }
)

TRADE_SCHEMA: dict[str, pl.DataType] = {
    "trade_id": pl.Utf8(),
    "candidate_id": pl.Utf8(),
    "strategy": pl.Utf8(),
    "config_hash": pl.Utf8(),
    "entry_ts": pl.Int64(),
    "exit_ts": pl.Int64(),
    "entry_date": pl.Date(),
    "exit_date": pl.Date(),
    "entry_time": pl.Utf8(),  # ET "HH:MM" of the decision
    "root": pl.Utf8(),
    "expiry": pl.Date(),
    "dte": pl.Int32(),
    "structure": pl.Utf8(),
    "delta_target": pl.Float64(),
    "short_delta": pl.Float64(),  # actual |delta| of the (first) short leg at entry
    "width": pl.Float64(),  # points between short and long strikes (widest wing)
    "forward": pl.Float64(),  # parity forward of the expiry at entry
    "legs": pl.List(LEG),
    "contracts": pl.Int32(),
    "credit_per_share": pl.Float64(),  # net credit filled at entry (max profit)
    "exit_cost_per_share": pl.Float64(),  # cost to close filled (or settlement value)
    "max_loss_per_share": pl.Float64(),  # worst payoff at expiry, net of the credit
    "max_loss": pl.Float64(),  # dollars at risk: max_loss_per_share * 100 * contracts
    "fees": pl.Float64(),  # entry + exit commissions and fees, dollars
    "pnl": pl.Float64(),  # dollars, net of fees
    "exit_reason": pl.Utf8(),  # take_profit | stop_loss | time_exit | settlement | end_of_data
    "mae_per_share": pl.Float64(),  # max adverse excursion of the mid P&L during the trade
    "mfe_per_share": pl.Float64(),  # max favourable excursion
    # at settlement: the value used, where it came from (quantlab.data.settlements.SOURCES)
    # and, for an estimate, its standard error; null for other exits
    "settlement_source": pl.Utf8(),
    "settlement_value": pl.Float64(),
    "settlement_std_error": pl.Float64(),
    "data_checksum": pl.Utf8(),  # checksum of the sessions of the trade's life + its settlement
}

DECISION_SCHEMA: dict[str, pl.DataType] = {
    "candidate_id": pl.Utf8(),
    "strategy": pl.Utf8(),
    "config_hash": pl.Utf8(),
    "entry_ts": pl.Int64(),
    "entry_date": pl.Date(),
    "entry_time": pl.Utf8(),
    "expiry": pl.Date(),
    "dte": pl.Int32(),
    "credit_per_share": pl.Float64(),
    "decision": pl.Utf8(),  # taken | rejected | skipped
    "reason": pl.Utf8(),  # why (filter or risk rule); "" when taken
}

EXIT_REASONS = ("take_profit", "stop_loss", "time_exit", "settlement", "end_of_data")


def empty_trades() -> pl.DataFrame:
    return pl.DataFrame(schema=TRADE_SCHEMA)


def empty_decisions() -> pl.DataFrame:
    return pl.DataFrame(schema=DECISION_SCHEMA)
