"""Point-in-time features of ONE candidate at its decision time (the live runner's gate).

The live runner's meta-labeler gate needs, at an entry, the same feature row that
:func:`~quantlab.features.build_features` computes for the backtester's stage-1 candidates (the
rows the model was trained on). :class:`CandidateFeatures` computes it with the very same code
(:func:`quantlab.features.build._compute_day` over a one-candidate frame, and the same spot-proxy
cache), so the live row and the stored row of a candidate are equal value for value; the test
``tests/live/test_live_metalabeler.py`` checks it.

Data needed at decision time ``t`` (all of it stamped at or before ``t``)
-----------------------------------------------------------------------
The features read a quote store (``<store>/quotes`` partitions, :mod:`quantlab.data.read`):

* the decision day's chain snapshot at ``t``: the candidate's expiry (ATM IV, 25-delta skew),
  the nearest expiry with dte >= ``term_min_dte`` (term slope), the expiries 23-37 days out
  (``vix30``) and the legs' quote ages;
* the day's spot proxy up to ``t``: parity pairs of the nearest non-expiring SPXW expiry, every
  minute since the open (``rv_30m``, ``rv_day``, ``move_since_open``, ``overnight_gap``);
* the spot-proxy close of the previous ``rv_days_long + 1`` sessions (``rv_5d``, ``rv_20d``,
  ``overnight_gap``).

With the simulated broker the store it replays is exactly that. A live broker (IBKR) must
record the chain snapshots the runner takes into the same store layout (one quotes partition
per session: the whole chain of those expiries, once a minute, from the open) and keep the
previous sessions' partitions (or their closes); until it does, a missing partition raises
:class:`~quantlab.errors.DataError` and the runner skips the entry (it never trades an
unfiltered candidate when a filter is configured).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from quantlab import calendar
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import DataError, InputError
from quantlab.features.build import _compute_day, _SpotCache
from quantlab.features.definitions import DEFAULT, MAX_LEGS, FeatureSet

_LEG = pl.Struct(
    {
        "occ": pl.Utf8,
        "right": pl.Utf8,
        "strike": pl.Float64,
        "quantity": pl.Int32,
        "delta": pl.Float64,
    }
)
_CAND_SCHEMA: dict[str, Any] = {
    "candidate_id": pl.Utf8,
    "entry_ts": pl.Int64,
    "entry_date": pl.Date,
    "root": pl.Utf8,
    "expiry": pl.Date,
    "dte": pl.Int32,
    "legs": pl.List(_LEG),
}


@dataclass
class _EntryArrays:
    """The stage-1 arrays :func:`_compute_day` reads (one row, padded to ``MAX_LEGS``)."""

    qty: np.ndarray
    entry_bid: np.ndarray
    entry_ask: np.ndarray


class CandidateFeatures:
    """Feature rows of single candidates at their decision time, from a quote store.

    Parameters
    ----------
    store : path
        The quote store holding the decision day (and the previous sessions).
    feature_set : FeatureSet
        The set the model was trained on (its parameters drive the computation).
    underlying : str
        Store partition of the quotes.

    Examples
    --------
    >>> cf = CandidateFeatures("data", FeatureSet("core"))  # doctest: +SKIP
    >>> row = cf.from_selection(sel, ts, candidate_id)  # doctest: +SKIP
    """

    def __init__(
        self, store: st.StoreLike, feature_set: FeatureSet = DEFAULT, *, underlying: str = "SPX"
    ) -> None:
        if not isinstance(feature_set, FeatureSet):
            raise InputError(
                f"feature_set must be a FeatureSet (got {type(feature_set).__name__})."
            )
        self.store, self.feature_set, self.underlying = store, feature_set, underlying
        self.events = calendar.load_events(feature_set.events_file)
        self._spot = _SpotCache(store, underlying, feature_set)

    def row(
        self,
        *,
        candidate_id: str,
        entry_ts: int,
        root: str,
        expiry: dt.date,
        dte: int,
        legs: Sequence[Mapping[str, Any]],
    ) -> pl.DataFrame:
        """The feature row of one candidate decided at ``entry_ts`` (int64 UTC ns).

        Parameters
        ----------
        candidate_id, entry_ts, root, expiry, dte
            The candidate as stage 1 records it.
        legs : sequence of mappings
            Per leg, in the structure's order: ``occ``, ``right``, ``strike``, ``quantity``
            (signed), ``delta`` (the decision snapshot's), ``bid`` and ``ask`` at entry.

        Returns
        -------
        polars.DataFrame
            One row: ``candidate_id, entry_ts, entry_date`` and the feature columns, exactly as
            :func:`~quantlab.features.build_features` stores them.

        Raises
        ------
        DataError
            The store does not hold the decision day's quotes.
        """
        if not 1 <= len(legs) <= MAX_LEGS:
            raise InputError(f"a candidate has 1..{MAX_LEGS} legs (got {len(legs)}).")
        ts = int(entry_ts)
        day = read.session_date(ts)
        if day not in self._spot.stored:
            self._spot.stored = set(st.list_days(self.store, "quotes", self.underlying))
            if day not in self._spot.stored:
                raise DataError(
                    f"no {self.underlying} quotes for {day} in {st.store_root(self.store)}: the "
                    "features of a live candidate are computed from the recorded chain."
                )
        qty = np.zeros((1, MAX_LEGS), np.int32)
        eb = np.full((1, MAX_LEGS), np.nan)
        ea = np.full((1, MAX_LEGS), np.nan)
        for j, leg in enumerate(legs):
            qty[0, j] = int(leg["quantity"])
            eb[0, j], ea[0, j] = float(leg["bid"]), float(leg["ask"])
        cand = pl.DataFrame(
            [
                {
                    "candidate_id": candidate_id,
                    "entry_ts": ts,
                    "entry_date": day,
                    "root": root,
                    "expiry": expiry,
                    "dte": dte,
                    "legs": [
                        {k: leg[k] for k in ("occ", "right", "strike", "quantity", "delta")}
                        for leg in legs
                    ],
                }
            ],
            schema=_CAND_SCHEMA,
        )
        return _compute_day(
            self.store,
            self.underlying,
            day,
            cand,
            np.zeros(1, np.int64),
            _EntryArrays(qty, eb, ea),
            self.feature_set,
            self.events,
            self._spot,
        )

    def from_selection(self, sel: Any, entry_ts: int, candidate_id: str) -> pl.DataFrame:
        """:meth:`row` of a :class:`~quantlab.backtest.select.Selection` (the live runner's)."""
        if not sel.ok or sel.expiry is None:
            raise InputError(f"no structure was selected ({sel.reason!r}); nothing to featurize.")
        legs = [
            {
                "occ": lg.occ,
                "right": lg.right,
                "strike": lg.strike,
                "quantity": lg.quantity,
                "delta": lg.delta,
                "bid": lg.bid,
                "ask": lg.ask,
            }
            for lg in sel.legs
        ]
        return self.row(
            candidate_id=candidate_id,
            entry_ts=entry_ts,
            root=sel.root,
            expiry=sel.expiry,
            dte=sel.dte,
            legs=legs,
        )


def matrix(rows: pl.DataFrame, columns: Sequence[str]) -> Any:
    """Feature rows as the float64 pandas frame a registered model's ``predict`` takes
    (nulls as NaN, the column order of ``columns``)."""
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise InputError(f"feature rows lack the model's columns {missing}.")
    df = rows.select([pl.col(c).cast(pl.Float64).fill_null(math.nan) for c in columns])
    return df.to_pandas()


__all__ = ["CandidateFeatures", "matrix"]
