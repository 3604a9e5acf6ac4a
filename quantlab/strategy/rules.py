"""Entry filters and the vocabulary of decisions (what each reason means and its kind).

Every candidate a rule proposes gets one decision: ``taken``, ``rejected`` (something about the
candidate itself: no structure found, a filter, the meta-labeler, undefined risk) or ``skipped``
(the candidate was fine but the portfolio's state said no: an earlier window was used, a risk
rule, a size of zero, a kill switch). :func:`decision_kind` is the one mapping.

Entry filters run in this order, the first that fails names the decision:

1. ``event_day``: ``filters.skip_event_days`` and the entry date is in the event calendar;
2. ``vix_unavailable`` / ``vix_out_of_range``: a ``vix_min``/``vix_max`` band and the 30-day
   index at the decision time missing or outside it;
3. ``no_credit``: the net credit through the fill model is missing or not positive;
4. ``min_bid``: a leg to sell bids below ``min_bid`` (cents);
5. ``max_rel_spread``: a leg to sell has ``(ask - bid) / mid`` above ``max_rel_spread``;
6. ``min_credit``: the credit is below ``min_credit`` (cents);
7. ``undefined_risk``: the structure can lose without bound;
8. ``credit_not_below_width``: the credit is at or above the most the structure can cost at
   expiry (a quote no one fills; the max loss would be zero).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

import numpy as np

from quantlab.money import CENTS_PER_DOLLAR, NO_NET, exact_units
from quantlab.strategy.book_kernels import D_REASONS
from quantlab.strategy.spec import StrategySpec
from quantlab.strategy.structure import UNBOUNDED

FILTER_REASONS = (
    "",
    "event_day",
    "vix_unavailable",
    "vix_out_of_range",
    "no_credit",
    "min_bid",
    "max_rel_spread",
    "min_credit",
    "undefined_risk",
    "credit_not_below_width",
)
_CODE = {r: i for i, r in enumerate(FILTER_REASONS)}

#: the book's own reasons (portfolio state, not the candidate): the decision kind "skipped"
SKIP_REASONS = frozenset(r for r in D_REASONS if r)
TAKEN, REJECTED, SKIPPED = "taken", "rejected", "skipped"


def decision_kind(reason: str) -> str:
    """``taken`` for an empty reason, ``skipped`` for portfolio-state reasons, else ``rejected``."""
    if not reason:
        return TAKEN
    return SKIPPED if reason in SKIP_REASONS else REJECTED


def meta_label_reason(p: float, threshold: float) -> str:
    """The meta-labeler's verdict: "" when ``p >= threshold``, else ``meta_labeler p=0.41<0.55``
    (with digits enough to tell the two apart)."""
    if p >= threshold:
        return ""
    d = 2
    while d < 6 and round(p, d) >= round(threshold, d):
        d += 1
    return f"meta_labeler p={p:.{d}f}<{threshold:.{d}f}"


def entry_filter_codes(
    spec: StrategySpec,
    days: Sequence[dt.date],
    credit_c: np.ndarray,
    bid_c: np.ndarray,
    ask_c: np.ndarray,
    qty: np.ndarray,
    hi_c: np.ndarray,
    vix: np.ndarray,
    events: Collection[dt.date] = (),
) -> np.ndarray:
    """The entry filters of ``n`` candidates at once: an index into :data:`FILTER_REASONS` each
    (0 = passes). Shared by the backtester (all candidates of a config) and the live runner
    (one).

    Parameters
    ----------
    days : sequence of date, length n
        Entry dates (ET).
    credit_c : int64[n]
        Net credit per share through the fill model, cents (``NO_NET`` = none).
    bid_c, ask_c : int[n, L]
        Legs' entry quotes in cents (``NO_PRICE`` = none; columns beyond a candidate's legs have
        ``qty == 0``).
    qty : int[n, L]
        Signed quantity per leg (< 0 sold, 0 = no leg).
    hi_c : int64[n]
        Most the structure can cost to close at expiry (cents; ``UNBOUNDED`` = no bound).
    vix : float64[n]
        30-day index at the decision time (NaN = unknown).
    events : collection of date
        Event days (used when ``filters.skip_event_days``).
    """
    f = spec.filters
    n = len(credit_c)
    out = np.zeros(n, np.int8)

    def mark(mask: np.ndarray, reason: str) -> None:
        out[(out == 0) & mask] = _CODE[reason]

    if f.skip_event_days and events:
        ev = set(events)
        mark(np.array([d in ev for d in days], bool), "event_day")
    if f.vix_min is not None or f.vix_max is not None:
        v = np.asarray(vix, np.float64)
        mark(~np.isfinite(v), "vix_unavailable")
        bad = np.zeros(n, bool)
        with np.errstate(invalid="ignore"):
            if f.vix_min is not None:
                bad |= v < f.vix_min
            if f.vix_max is not None:
                bad |= v > f.vix_max
        mark(bad, "vix_out_of_range")
    credit = np.asarray(credit_c, np.int64)
    mark((credit == NO_NET) | (credit <= 0), "no_credit")
    sold = np.asarray(qty) < 0
    b = np.asarray(bid_c, np.int64)
    a = np.asarray(ask_c, np.int64)
    mark(np.any(sold & (b < cents_of(f.min_bid, "filters.min_bid")), axis=1), "min_bid")
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = 2.0 * (a - b) / (a + b)
        wide = ~np.isfinite(rel) | (a + b <= 0) | (rel > f.max_rel_spread)
    mark(np.any(sold & wide, axis=1), "max_rel_spread")
    mark(credit < cents_of(f.min_credit, "filters.min_credit"), "min_credit")
    hi = np.asarray(hi_c, np.int64)
    mark(hi >= UNBOUNDED, "undefined_risk")
    mark(credit >= hi, "credit_not_below_width")
    return out


def entry_filter_reason(
    spec: StrategySpec,
    day: dt.date,
    credit_c: int,
    bid_c: Sequence[int] | np.ndarray,
    ask_c: Sequence[int] | np.ndarray,
    qty: Sequence[int] | np.ndarray,
    hi_c: int,
    vix: float,
    events: Collection[dt.date] = (),
) -> str:
    """:func:`entry_filter_codes` of one candidate, as its reason ("" = passes): the live
    runner's call at an entry minute."""
    code = entry_filter_codes(
        spec,
        [day],
        np.array([credit_c], np.int64),
        np.asarray(bid_c, np.int64)[None, :],
        np.asarray(ask_c, np.int64)[None, :],
        np.asarray(qty, np.int64)[None, :],
        np.array([hi_c], np.int64),
        np.array([vix], np.float64),
        events,
    )
    return FILTER_REASONS[int(code[0])]


def cents_of(dollars: float, name: str) -> int:
    """A dollar amount from a config as whole cents (an error names it if it is not)."""
    return exact_units(dollars, CENTS_PER_DOLLAR, name, "cents")


__all__ = [
    "FILTER_REASONS",
    "REJECTED",
    "SKIPPED",
    "SKIP_REASONS",
    "TAKEN",
    "cents_of",
    "decision_kind",
    "entry_filter_codes",
    "entry_filter_reason",
    "meta_label_reason",
]
