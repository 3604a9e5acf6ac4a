"""A realistic synthetic SPX/SPXW OPRA market written as real Databento DBN files.

``synthesize(start, end, seed, store)`` writes, for every ET session in the range, the files a
Databento OPRA.PILLAR download (parent symbology ``SPX.OPT``, ``SPXW.OPT``) would give:

* ``layout.raw_file(store, "SPX", day, "definition")``: one ``InstrumentDefMsg`` per listed
  contract (06:30 ET, OCC raw symbols, ``expiration`` = midnight UTC of the expiry, strike x1e-9);
* ``... "cbbo-1m"``: ``CbboMsg`` records keyed on the END of each minute (``ts_recv`` 09:31 ..
  16:15 ET, an expiring SPXW to 16:00, half days 13:15 / 13:00), only for minutes in which the
  quote or last trade changed; a few empty pre-open records (every price undefined), as in real
  files;
* ``... "statistics"``: open interest (``stat_type`` 9) before the open, each record repeated
  once per publisher in :data:`quantlab.data.synth.day.OI_PUBLISHERS` (de-duplicate on ingest);

Quote conventions (as in the real files, see ``dbn_writer``): header ``publisher_id`` 30 (OPRA),
venue of the best bid/offer in ``bid_pb_00``/``ask_pb_00`` = 22 (XCBO); a zero bid is
``bid_px_00`` = 0 with ``bid_sz_00`` = 0 (its ask 0.05 or 0.10); a missing offer (rare, deep ITM
at the open) is ``ask_px_00`` = UNDEF_PRICE with size 0; ``price``/``size``/``ts_event`` carry the
session's last trade (undefined before the first one); a few quotes are crossed or locked by 1-2
ticks (a stale bid on cheap contracts, mostly expiring ones after 15:00).

plus, straight into the Parquet store (recorded in the manifest), the index minute bars
(``underlying_bars``: one bar per regular minute keyed on its end, close = the true spot; the
first bar opens at the special opening quotation) and the ``index`` settlement values of the
expiries settling that day (``settlements``: SPXW at the close, 16:00 ET or 13:00 on a half
day; the SPX monthly at the open), read off those bars by
:func:`quantlab.data.settlements.index_settlement`, the function
:func:`~quantlab.data.settlements.lookup` uses. And the truth at
``layout.truth_file(store, "SPX", day)`` (Parquet), one row per (minute, expiry) while the
expiry is quoted:

==================  ==========================================================================
column              meaning
==================  ==========================================================================
ts_recv             minute end, int64 UTC ns (the quote time)
root, expiry        ``SPXW``/``SPX`` and the expiry date (``SPX`` AM-settlement rows: see below)
spot                true index level (after 16:00: the futures-implied level)
forward, df, T      true forward to settlement, discount factor ``exp(-r T)``, T = minutes/525,600
tau                 business time to settlement (years of 252 sessions)
atm_vol             true implied vol at k = ln K/F = 0 (calendar-time Black-76 vol)
smile_*             smile parameters (beta, rho, m, delta): see :func:`true_vol`
sigma_now           implied-vol state (trading time); sigma_real: realised vol of the minute
cluster, vol_jump   planted vol-cluster state (1 right after a vol jump) and jump size booked
settlement_value    settlement value for an expiry settling this day (SPXW: spot at 16:00;
                    SPX AM: the special opening quotation, on an extra row at 09:30 ET), else NaN
==================  ==========================================================================

The model and the planted effect for meta-labeling (realised vol exceeds implied for several
sessions after a volatility jump) are described in :mod:`quantlab.data.synth.market`; listing in
:mod:`quantlab.data.synth.chain`; quoting in :mod:`quantlab.data.synth._kernels`; byte layouts in
:mod:`quantlab.data.synth.dbn_writer`. Every day's randomness derives from ``(seed, date)``:
same seed and dates give byte-identical DBN files, and a sub-range regenerates the same days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantlab import calendar
from quantlab.data.synth.chain import PROFILES, Profile
from quantlab.data.synth.market import MarketParams, smile_vol
from quantlab.errors import InputError

__all__ = [
    "PROFILES",
    "MarketParams",
    "Profile",
    "SynthReport",
    "synthesize",
    "true_vol",
]


@dataclass(frozen=True)
class SynthReport:
    """What :func:`synthesize` wrote."""

    days: list[dt.date]
    files: list[Path]
    n_instruments: int
    n_quotes: int
    bytes_written: int
    seconds: float

    @property
    def quotes_per_second(self) -> float:
        return self.n_quotes / self.seconds if self.seconds > 0 else float("nan")


def _profile(profile: str | Profile, dte_max: int | None, moneyness: float | None) -> Profile:
    if isinstance(profile, Profile):
        prof = profile
    else:
        if profile not in PROFILES:
            raise InputError(
                f"profile must be one of {sorted(PROFILES)} (got {profile!r}). "
                "'test' is tiny, 'demo' is SPXW <= 10 DTE +-10% plus the 30-day pair."
            )
        prof = PROFILES[profile]
    changes: dict[str, Any] = {}
    if dte_max is not None:
        changes["dte_max"] = int(dte_max)
    if moneyness is not None:
        changes["moneyness"] = float(moneyness)
    return dataclasses.replace(prof, **changes) if changes else prof


def synthesize(
    start: dt.date | str,
    end: dt.date | str,
    seed: int,
    store: Path | str,
    underlying: str = "SPX",
    *,
    profile: str | Profile = "demo",
    dte_max: int | None = None,
    moneyness: float | None = None,
    params: MarketParams | None = None,
    zstd_level: int = 3,
    on_day: Callable[[Any], None] | None = None,
) -> SynthReport:
    """Write a synthetic OPRA market for every session from ``start`` to ``end`` inclusive.

    Parameters
    ----------
    start, end
        ET session dates (ISO strings or dates); non-sessions in the range are skipped.
    seed
        Master seed; each day uses streams derived from ``(seed, date)``.
    store
        Data store root (see :mod:`quantlab.data.layout`).
    underlying
        Only ``"SPX"`` (SPX and SPXW options) is modelled.
    profile, dte_max, moneyness
        Listing profile (``"test"``, ``"demo"``, ``"full"``, ``"spxw10"`` or a
        :class:`Profile`) and overrides of its maximum DTE (calendar days) and core moneyness.
    params
        Market model parameters (:class:`MarketParams`).
    zstd_level
        zstd compression level of the DBN files.
    on_day
        Called with each day's :class:`~quantlab.data.synth.day.DayResult` (progress bars).

    Returns
    -------
    SynthReport

    Examples
    --------
    >>> import tempfile
    >>> from quantlab.data.synth import synthesize
    >>> rep = synthesize("2024-03-08", "2024-03-08", seed=1, store=tempfile.mkdtemp(),
    ...                  profile="test")
    >>> len(rep.files)  # 3 DBN files, truth, index bars, settlement values
    6
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    from quantlab.data.synth.day import DayResult, build_day

    _check_args(underlying, seed, zstd_level)
    prof = _profile(profile, dte_max, moneyness)
    p = params or MarketParams()
    days = calendar.sessions(start, end)
    t0 = time.perf_counter()
    files: list[Path] = []
    totals = [0, 0, 0]

    def done(res: DayResult) -> None:
        files.extend(res.files)
        _record(Path(store), res.day, res.partitions)  # day by day: a stopped run stays listed
        totals[0] += res.n_instruments
        totals[1] += res.n_quotes
        totals[2] += res.bytes_written
        if on_day is not None:
            on_day(res)

    # compression and writing of day d overlap the simulation of day d + 1 (one day in flight,
    # so memory stays at about two days of records)
    pending: Future[DayResult] | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        for day in days:
            payload = build_day(day, seed=int(seed), store=Path(store), profile=prof, params=p)
            if pending is not None:
                done(pending.result())
            pending = pool.submit(payload.write, int(zstd_level))
        if pending is not None:
            done(pending.result())
    n_inst, n_q, nbytes = totals
    return SynthReport(days, files, n_inst, n_q, nbytes, time.perf_counter() - t0)


def _check_args(underlying: str, seed: Any, zstd_level: int) -> None:
    if str(underlying).upper() != "SPX":
        raise InputError(
            f"underlying must be 'SPX' (got {underlying!r}); only SPX/SPXW is modelled."
        )
    if not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer (got {seed!r}).")
    if not 1 <= int(zstd_level) <= 22:
        raise InputError(f"zstd_level must be 1..22 (got {zstd_level!r}).")


def _record(store: Path, day: dt.date, parts: tuple[tuple[str, Path, int, str, str], ...]) -> None:
    """Record the Parquet partitions one day wrote in the store manifest, in one connection."""
    from quantlab.data import store as st

    if not parts:
        return
    with st.open_manifest(store) as con:
        for table, path, n, src, sums in parts:
            st.record_partition(con, table, "SPX", day, path, n, src, sums)


def true_vol(
    truth: Any, strike: Any, *, ts_recv: Any = None, root: Any = None, expiry: Any = None
) -> np.ndarray:
    """True implied vol of strikes against truth rows.

    ``truth`` is the truth table (polars DataFrame) or a subset of it. With only ``strike``,
    ``truth`` and ``strike`` must align row by row (one strike per truth row, or a scalar).
    With ``ts_recv``, ``root`` and ``expiry`` (arrays aligned with ``strike``), each strike is
    matched to its truth row first.

    Examples
    --------
    >>> import polars as pl
    >>> row = pl.DataFrame({"forward": [5000.0], "atm_vol": [0.12], "smile_beta": [1.0],
    ...                     "smile_rho": [-0.87], "smile_m": [0.02], "smile_delta": [0.02]})
    >>> float(true_vol(row, 5000.0)[0])
    0.12
    """
    import polars as pl

    df = truth if isinstance(truth, pl.DataFrame) else pl.DataFrame(truth)
    k = np.atleast_1d(np.asarray(strike, dtype=np.float64))
    if ts_recv is not None:
        if root is None or expiry is None:
            raise InputError("true_vol: pass ts_recv, root and expiry together (or none of them).")
        keys = pl.DataFrame(
            {
                "ts_recv": np.atleast_1d(np.asarray(ts_recv, dtype=np.int64)),
                "root": np.atleast_1d(np.asarray(root, dtype=str)),
                "expiry": pl.Series(np.atleast_1d(np.asarray(expiry, dtype="datetime64[D]"))).cast(
                    pl.Date
                ),
                "_strike": k,
            }
        )
        df = keys.join(df, on=["ts_recv", "root", "expiry"], how="left", maintain_order="left")
        k = df["_strike"].to_numpy()
    f = df["forward"].to_numpy()
    return np.asarray(
        smile_vol(
            np.log(k / f),
            df["atm_vol"].to_numpy(),
            df["smile_beta"].to_numpy(),
            df["smile_rho"].to_numpy(),
            df["smile_m"].to_numpy(),
            df["smile_delta"].to_numpy(),
        ),
        dtype=np.float64,
    )
