"""Feature definitions: names, meanings, parameters and the versioned :class:`FeatureSet`.

Every feature of a stage-1 candidate is computed from data stamped at or before the candidate's
``entry_ts`` (quotes are keyed on the END of their minute, so a quote stamped ``entry_ts`` is
usable; nothing later is). The static event calendar (``events.csv``) lists scheduled events,
known in advance, so reading a future event date is not look-ahead.

A :class:`FeatureSet` is a name plus :class:`FeatureParams`; its ``version`` is a hash of the
set's name, the feature names and dtypes, the parameters, :data:`CODE_VERSION` and the event calendar's content.
Change any of them and the features are rebuilt under a new version (the old ones stay).

Feature table
-------------
=====================  ==============================================================================
name                   definition
=====================  ==============================================================================
dte                    calendar days from the entry date to the expiry
T                      minutes from entry to the expiry's settlement / 525,600
short_delta_abs        max ``|delta|`` over the short legs (stage-1 snapshot delta)
long_delta_abs         max ``|delta|`` over the long legs
width                  max over rights of (highest - lowest strike among that right's legs)
credit_mid             ``-sum(qty * mid)`` at entry (positive = credit received), per 1 lot
credit_to_width        ``credit_mid / width``
leg{j}_rel_spread      leg ``j`` (stage-1 leg order, j = 0..3): ``(ask - bid) / mid``; NaN past n_legs
max_quote_age_s        oldest leg quote at entry, seconds (DayQuotes snapshot at entry_ts)
atm_iv                 candidate expiry's implied vol at ``k = ln(K/F) = 0``, linear in ``k`` between
                       the two strikes bracketing the forward (OTM-side vols of the decision snapshot)
term_slope             ``atm_iv`` of the nearest expiry with dte >= ``term_min_dte`` minus ``atm_iv``
                       of the candidate's expiry (NaN if none is listed that far out)
put_skew_25d           candidate expiry's put IV at ``|delta| = skew_delta``, linear in ``|delta|``,
                       minus ``atm_iv``
vix30                  30-day Cboe-style index (×100): :func:`quantlab.volatility.cboe_variance` of
                       the near and next expiries (see below) on the raw quotes at entry, combined
                       with :func:`quantlab.volatility.cboe_index`; ``T`` = minutes to
                       :func:`quantlab.calendar.settlement_ns` / 525,600
rv_30m                 realised vol of the spot proxy over the last ``rv_window_min`` minutes
rv_day                 realised vol of the spot proxy from the day's first sample to entry
rv_5d, rv_20d          close-to-close realised vol over the previous 5 / 20 sessions (all returns
                       must exist, else NaN), annualised with 252 sessions
iv_minus_rv5d          ``atm_iv - rv_5d``
move_since_open        ``ln(S_entry / S_first)`` (first sample of the day)
overnight_gap          ``ln(S_first / S_last of the previous session)``
weekday                Monday = 0 .. Friday = 4
days_to_monthly        calendar days to the next SPX monthly expiry (third Friday), 0 on the day
minutes_since_open     minutes from 09:30 ET to entry
is_event_day           1 if the entry date is in ``events.csv`` (FOMC / CPI), else 0
days_to_next_event     calendar days to the next listed event on or after the entry date (NaN: none)
=====================  ==============================================================================

Spot proxy ``S``: per minute, the put-call-parity forward of the nearest PM (SPXW) expiry that
does not expire that day, discounted to the present (``S = F exp(-r T)``: removes the carry
difference when the expiry used changes between days), from the median of ``K + (C - P) / df``
over the ``forward_pairs`` two-sided, fresh (age <= ``max_age_s``) strike pairs with the smallest
``|C - P|`` at that minute. Intraday realised vol subsamples this series every ``rv_step_min``
minutes backwards from entry and annualises with 252 × 390 minutes:
``sqrt(sum r^2 / elapsed_minutes * 252 * 390)``.

VIX pair (Cboe's rule, with daily expiries): expiries (either root) with more than 23 and less
than 37 days to settlement; near = the last of them settling at or before 30 days (the first
one if none does), next = the one after it. ``cboe_index`` interpolates (or, when both lie on
the same side of 30 days, extrapolates) total variance in minutes. NaN when fewer than two such
expiries are listed or a variance is NaN.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from quantlab import calendar
from quantlab.errors import InputError

CODE_VERSION = "features-1"
"""Bumped whenever the computation of an existing feature changes."""

EVENTS_FILE = calendar.EVENTS_FILE

MAX_LEGS = 4

# name -> (polars dtype name, one-line meaning); order is the column order
FEATURES: dict[str, tuple[str, str]] = {
    "dte": ("Int32", "calendar days to expiry"),
    "T": ("Float64", "years to settlement (minutes / 525,600)"),
    "short_delta_abs": ("Float64", "max |delta| of the short legs"),
    "long_delta_abs": ("Float64", "max |delta| of the long legs"),
    "width": ("Float64", "widest wing, index points"),
    "credit_mid": ("Float64", "credit at mid per 1 lot, index points"),
    "credit_to_width": ("Float64", "credit_mid / width"),
    **{f"leg{j}_rel_spread": ("Float64", f"(ask - bid) / mid of leg {j}") for j in range(MAX_LEGS)},
    "max_quote_age_s": ("Float64", "oldest leg quote at entry, seconds"),
    "atm_iv": ("Float64", "ATM implied vol of the candidate's expiry"),
    "term_slope": ("Float64", "ATM IV (nearest expiry >= term_min_dte) - atm_iv"),
    "put_skew_25d": ("Float64", "put IV at |delta| = skew_delta - atm_iv"),
    "vix30": ("Float64", "30-day Cboe-method index (x100)"),
    "rv_30m": ("Float64", "realised vol, last rv_window_min minutes"),
    "rv_day": ("Float64", "realised vol since the first sample of the day"),
    "rv_5d": ("Float64", "close-to-close realised vol, previous rv_days_short sessions"),
    "rv_20d": ("Float64", "close-to-close realised vol, previous rv_days_long sessions"),
    "iv_minus_rv5d": ("Float64", "atm_iv - rv_5d"),
    "move_since_open": ("Float64", "ln(S_entry / S_first)"),
    "overnight_gap": ("Float64", "ln(S_first / S_prev_close)"),
    "weekday": ("Int32", "Monday = 0"),
    "days_to_monthly": ("Int32", "calendar days to the next monthly expiry"),
    "minutes_since_open": ("Float64", "minutes since 09:30 ET"),
    "is_event_day": ("Int32", "1 on an events.csv date"),
    "days_to_next_event": ("Float64", "calendar days to the next event (0 on one)"),
}


@dataclass(frozen=True)
class FeatureParams:
    """Parameters of the feature computations (all enter the version hash)."""

    rate: float = 0.045
    max_age_s: float = 300.0
    forward_pairs: int = 3
    rv_step_min: int = 5
    rv_window_min: int = 30
    rv_days_short: int = 5
    rv_days_long: int = 20
    term_min_dte: int = 25
    skew_delta: float = 0.25
    vix_min_days: float = 23.0
    vix_max_days: float = 37.0

    def __post_init__(self) -> None:
        checks = (
            ("max_age_s", self.max_age_s > 0, "> 0 seconds, e.g. 300"),
            ("forward_pairs", self.forward_pairs >= 1, ">= 1, e.g. 3"),
            ("rv_step_min", self.rv_step_min >= 1, ">= 1 minute, e.g. 5"),
            ("rv_window_min", self.rv_window_min >= self.rv_step_min, ">= rv_step_min"),
            ("rv_days_short", self.rv_days_short >= 1, ">= 1 session"),
            ("rv_days_long", self.rv_days_long >= 1, ">= 1 session"),
            ("term_min_dte", self.term_min_dte >= 1, ">= 1 day"),
            ("skew_delta", 0.0 < self.skew_delta < 0.5, "in (0, 0.5), e.g. 0.25"),
            ("vix_max_days", self.vix_max_days > self.vix_min_days >= 0, "> vix_min_days >= 0"),
        )
        for name, ok, expect in checks:
            if not ok:
                raise InputError(
                    f"FeatureParams.{name} must be {expect} (got {getattr(self, name)!r})."
                )


def _events_digest(path: Path) -> str:
    if not path.is_file():
        return "no-events"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned set of feature definitions.

    Parameters
    ----------
    name : str
        Human name (letters, digits, ``_`` and ``-``), used in the Parquet folder name.
    params : FeatureParams
        Computation parameters.
    events_file : Path
        The event calendar (CSV with a ``date`` column); its content enters the version.

    Examples
    --------
    >>> a = FeatureSet("core")
    >>> b = FeatureSet("core", FeatureParams(rv_window_min=60))
    >>> a.version != b.version and len(a.version) == 12
    True
    """

    name: str = "core"
    params: FeatureParams = field(default_factory=FeatureParams)
    events_file: Path = EVENTS_FILE

    def __post_init__(self) -> None:
        ok = bool(self.name) and all(c.isalnum() or c in "_-" for c in self.name)
        if not ok:
            raise InputError(
                f"FeatureSet name must be non-empty letters, digits, '_' or '-' "
                f"(got {self.name!r}); it names a folder."
            )

    @property
    def columns(self) -> list[str]:
        """Feature column names, in order."""
        return list(FEATURES)

    @property
    def version(self) -> str:
        """12-hex hash of the set's name, feature names/dtypes, parameters, code version and
        the events file's content."""
        blob = json.dumps(
            {
                "name": self.name,
                "features": [[k, v[0]] for k, v in FEATURES.items()],
                "params": asdict(self.params),
                "code": CODE_VERSION,
                "events": _events_digest(Path(self.events_file)),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def folder_name(self) -> str:
        """``<name>-<version>``: the Parquet folder under ``<store>/features``."""
        return f"{self.name}-{self.version}"


DEFAULT = FeatureSet()
"""The default feature set (``core`` with default :class:`FeatureParams`)."""
