"""Importers for market data people already own, into the Parquet store.

* :func:`import_lean`: LEAN (QuantConnect) minute zips: SPX/SPXW option quote bars, open
  interest, SPX index bars.
* :func:`import_eod`: end-of-day chain CSVs (HistoricalOptionData, Cboe DataShop, and the
  wide one-row-per-strike layout).

Both write through :func:`quantlab.data.store.write_partition`, one ET day at a time, with
instrument ids derived from the contract (see :mod:`quantlab.data.importers._common`).
"""

from __future__ import annotations

from quantlab.data.importers._common import (
    DaySummary,
    ImportSummary,
    decode_instrument_id,
    occ_symbol,
)
from quantlab.data.importers.eod_csv import import_eod, read_eod
from quantlab.data.importers.lean import (
    import_lean,
    read_index_bars,
    read_open_interest,
    read_option_quotes,
)

__all__ = [
    "DaySummary",
    "ImportSummary",
    "decode_instrument_id",
    "import_eod",
    "import_lean",
    "occ_symbol",
    "read_eod",
    "read_index_bars",
    "read_open_interest",
    "read_option_quotes",
]
