"""Trading calendar for SPX/SPXW options: sessions, option hours, expiries and settlement times.

Sessions, holidays and early closes come from ``exchange_calendars`` (XNYS: Cboe index options
follow the NYSE holiday schedule). Everything option-specific lives in the constants below, the
one place to change if Cboe's schedule changes (sources: ``docs/SPX_MECHANICS.md``):

===========================  ==========  ===========  ==========================================
constant                     normal      early close  meaning
===========================  ==========  ===========  ==========================================
``OPTION_OPEN``              09:30 ET    09:30 ET     options open (regular session)
``OPTION_CLOSE``             16:15 ET    13:15 ET     non-expiring SPX/SPXW stop trading
``EXPIRING_CLOSE``           16:00 ET    13:00 ET     an expiring SPXW stops; its PM settlement
``AM_SETTLEMENT``            09:30 ET    09:30 ET     SPX monthly AM settlement (special opening
                                                      quotation) on the expiry morning
===========================  ==========  ===========  ==========================================

The 13:00 expiring close on a half day is the equity close; Cboe has not confirmed it for SPXW
(third parties report 13:15 for options), see SPX_MECHANICS.md.

Conventions
-----------
* A *day* is an ET session date (``datetime.date``; ISO strings and datetimes are accepted).
* Functions without suffix return timezone-aware :class:`datetime.datetime` in America/New_York;
  the ``*_ns`` twins return int64 UTC nanoseconds since the epoch (the store's time stamps).
* ``T`` (year fraction) is minutes to settlement / 525,600, see :func:`years_to_settlement`.
* Daylight-saving changes are handled by ``zoneinfo`` (09:30 ET is 14:30 UTC in winter and 13:30
  UTC in summer).

Examples
--------
>>> import datetime as dt
>>> from quantlab import calendar
>>> calendar.is_session(dt.date(2024, 7, 4))
False
>>> calendar.option_close(dt.date(2024, 11, 29)).strftime("%H:%M")
'13:15'
>>> calendar.monthly_expiry(2024, 4)
datetime.date(2024, 4, 19)
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import warnings
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from quantlab.errors import InputError

ET = ZoneInfo("America/New_York")
UTC = dt.UTC

OPTION_OPEN = dt.time(9, 30)
OPTION_CLOSE = dt.time(16, 15)
OPTION_CLOSE_EARLY = dt.time(13, 15)
EXPIRING_CLOSE = dt.time(16, 0)
EXPIRING_CLOSE_EARLY = dt.time(13, 0)
AM_SETTLEMENT = dt.time(9, 30)

#: Roots whose contracts are PM-settled at the close of the expiry day.
PM_ROOTS = frozenset({"SPXW"})
#: Roots whose contracts are AM-settled (special opening quotation) on the expiry morning.
AM_ROOTS = frozenset({"SPX"})

MINUTES_PER_YEAR = 525_600.0
NS_PER_MINUTE = 60_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

DayLike = dt.date | str

__all__ = [
    "AM_SETTLEMENT",
    "ET",
    "EXPIRING_CLOSE",
    "EXPIRING_CLOSE_EARLY",
    "MINUTES_PER_YEAR",
    "OPTION_CLOSE",
    "OPTION_CLOSE_EARLY",
    "OPTION_OPEN",
    "contract_close",
    "contract_close_ns",
    "et_midnights",
    "expiring_close",
    "expiring_close_ns",
    "is_early_close",
    "is_session",
    "last_trade_day",
    "monthly_expiries",
    "monthly_expiry",
    "next_session",
    "option_close",
    "option_close_ns",
    "option_open",
    "option_open_ns",
    "previous_session",
    "quote_minutes_ns",
    "session_table",
    "sessions",
    "settlement",
    "settlement_ns",
    "spxw_expiries",
    "to_ns",
    "use_session_table",
    "years_to_settlement",
]


# --------------------------------------------------------------------------------------------
# calendar data (loaded once, lazily: importing exchange_calendars takes about a second)
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _data() -> tuple[list[dt.date], frozenset[dt.date]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import exchange_calendars as xcals

        cal = xcals.get_calendar("XNYS")
        days = [d.date() for d in cal.sessions]
        early = frozenset(d.date() for d in cal.early_closes)
    return days, early


def session_table() -> tuple[list[dt.date], frozenset[dt.date]]:
    """The sessions and early closes as loaded (picklable: hand it to worker processes)."""
    return _data()


def use_session_table(table: tuple[list[dt.date], frozenset[dt.date]]) -> None:
    """Use ``table`` (from :func:`session_table` in another process) instead of loading the
    exchange calendar here: a spawned worker then skips importing exchange_calendars/pandas."""
    global _data
    days, early = table
    if not days or not isinstance(days[0], dt.date) or not isinstance(early, frozenset):
        raise InputError(
            "use_session_table expects the (sessions, early closes) of session_table()"
        )
    _data = functools.lru_cache(maxsize=1)(lambda: (days, early))


def _as_day(name: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64):
        return dt.date.fromisoformat(str(value.astype("datetime64[D]")))
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise InputError(
        f"{name} must be a date, datetime or ISO string like '2024-03-15' (got {value!r})."
    )


def _check_range(name: str, day: dt.date) -> None:
    days, _ = _data()
    if not days[0] <= day <= days[-1]:
        raise InputError(
            f"{name} {day.isoformat()} is outside the XNYS calendar "
            f"({days[0].isoformat()}..{days[-1].isoformat()}). Upgrade exchange_calendars "
            "for later years."
        )


def _require_session(name: str, day: dt.date) -> None:
    _check_range(name, day)
    if not is_session(day):
        raise InputError(
            f"{name} {day.isoformat()} is not an XNYS session (weekend or holiday). "
            "Use next_session()/previous_session() to move to one."
        )


def to_ns(when: dt.datetime) -> int:
    """Convert a timezone-aware datetime to int64 UTC nanoseconds."""
    if when.tzinfo is None:
        raise InputError(f"when must be timezone-aware (got naive {when!r}).")
    delta = when.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def et_date(ns: int) -> dt.date:
    """The ET calendar date of a UTC-nanosecond time stamp (the one conversion everything uses)."""
    # ET offsets change on whole UTC hours only: one zone lookup per hour
    return _et_date_of_hour(int(ns) // 3_600_000_000_000)


@functools.lru_cache(maxsize=1 << 16)
def _et_date_of_hour(hour: int) -> dt.date:
    return dt.datetime.fromtimestamp(hour * 3600, tz=ET).date()


@functools.lru_cache(maxsize=64)
def et_midnights(first: dt.date, last: dt.date) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``(ns, ordinals)``: UTC ns of the ET midnight starting each calendar day from ``first``
    to ``last``, with each day's ``toordinal()``: the ET date of a stamp in that range is the
    ordinal of the last midnight at or before it (a lookup for compiled loops)."""
    n = (last - first).days + 1
    days = [first + dt.timedelta(days=i) for i in range(max(n, 0))]
    ns = np.array([to_ns(_at(d, dt.time(0))) for d in days], np.int64)
    ordinals = np.array([d.toordinal() for d in days], np.int64)
    ns.flags.writeable = False
    ordinals.flags.writeable = False
    return ns, ordinals


def et_dates(ns: Any) -> npt.NDArray[Any]:
    """:func:`et_date` of an array of UTC-nanosecond stamps, as ``datetime64[D]`` (each distinct
    UTC hour converted once, by the same cached conversion :func:`et_date` uses)."""
    ts = np.asarray(ns).astype(np.int64, copy=False)
    if ts.size == 0:
        return np.empty(0, dtype="datetime64[D]")
    hours, inv = np.unique(ts // 3_600_000_000_000, return_inverse=True)
    days = np.array([_et_day_number(int(h)) for h in hours], np.int64)
    return days.astype("datetime64[D]")[inv.ravel()].reshape(ts.shape)


@functools.lru_cache(maxsize=1 << 16)
def _et_day_number(hour: int) -> int:
    """Days since 1970-01-01 of the ET date of a UTC hour."""
    return (_et_date_of_hour(hour) - _EPOCH_DATE).days


_EPOCH_DATE = dt.date(1970, 1, 1)


def _at(day: dt.date, t: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, t, tzinfo=ET)


# --------------------------------------------------------------------------------------------
# sessions
# --------------------------------------------------------------------------------------------
def sessions(start: DayLike, end: DayLike) -> list[dt.date]:
    """XNYS sessions from ``start`` to ``end`` inclusive (ET dates)."""
    a, b = _as_day("start", start), _as_day("end", end)
    if b < a:
        raise InputError(f"end must be on or after start (got start={a}, end={b}).")
    _check_range("start", a)
    _check_range("end", b)
    days, _ = _data()
    return days[bisect.bisect_left(days, a) : bisect.bisect_right(days, b)]


def is_session(day: DayLike) -> bool:
    """Whether ``day`` is an XNYS trading session (not a weekend or holiday)."""
    d = _as_day("day", day)
    days, _ = _data()
    i = bisect.bisect_left(days, d)
    return i < len(days) and days[i] == d


def is_early_close(day: DayLike) -> bool:
    """Whether ``day`` is a half day (equities close 13:00 ET, options 13:15 ET)."""
    return _as_day("day", day) in _data()[1]


def next_session(day: DayLike) -> dt.date:
    """First session strictly after ``day``."""
    d = _as_day("day", day)
    days, _ = _data()
    i = bisect.bisect_right(days, d)
    if i >= len(days):
        raise InputError(f"day {d} has no next session in the XNYS calendar (ends {days[-1]}).")
    return days[i]


def previous_session(day: DayLike) -> dt.date:
    """Last session strictly before ``day``."""
    d = _as_day("day", day)
    days, _ = _data()
    i = bisect.bisect_left(days, d)
    if i == 0:
        raise InputError(
            f"day {d} has no previous session in the XNYS calendar (starts {days[0]})."
        )
    return days[i - 1]


# --------------------------------------------------------------------------------------------
# option hours
# --------------------------------------------------------------------------------------------
def option_open(day: DayLike) -> dt.datetime:
    """Option open (09:30 ET) of session ``day`` as an ET-aware datetime."""
    d = _as_day("day", day)
    _require_session("day", d)
    return _at(d, OPTION_OPEN)


def option_close(day: DayLike) -> dt.datetime:
    """Close of non-expiring SPX/SPXW options: 16:15 ET, 13:15 ET on early-close days."""
    d = _as_day("day", day)
    _require_session("day", d)
    return _at(d, OPTION_CLOSE_EARLY if is_early_close(d) else OPTION_CLOSE)


def expiring_close(day: DayLike) -> dt.datetime:
    """Close of an expiring SPXW (its PM settlement): 16:00 ET, 13:00 ET on early closes."""
    d = _as_day("day", day)
    _require_session("day", d)
    return _at(d, EXPIRING_CLOSE_EARLY if is_early_close(d) else EXPIRING_CLOSE)


def option_open_ns(day: DayLike) -> int:
    """:func:`option_open` as int64 UTC nanoseconds."""
    if isinstance(day, dt.date) and not isinstance(day, dt.datetime):
        return _open_ns(day)
    return to_ns(option_open(day))


def option_close_ns(day: DayLike) -> int:
    """:func:`option_close` as int64 UTC nanoseconds."""
    if isinstance(day, dt.date) and not isinstance(day, dt.datetime):
        return _close_ns(day)
    return to_ns(option_close(day))


@functools.lru_cache(maxsize=1 << 14)
def _open_ns(day: dt.date) -> int:
    return to_ns(option_open(day))


@functools.lru_cache(maxsize=1 << 14)
def _close_ns(day: dt.date) -> int:
    return to_ns(option_close(day))


def expiring_close_ns(day: DayLike) -> int:
    """:func:`expiring_close` as int64 UTC nanoseconds."""
    return to_ns(expiring_close(day))


# --------------------------------------------------------------------------------------------
# expiries and settlement
# --------------------------------------------------------------------------------------------
def _root(root: str) -> str:
    r = str(root).strip().upper()
    if r not in PM_ROOTS and r not in AM_ROOTS:
        raise InputError(
            f"root must be one of {sorted(PM_ROOTS | AM_ROOTS)} (got {root!r}). "
            "SPXW = PM-settled weeklies/dailies, SPX = AM-settled monthlies."
        )
    return r


def settlement(root: str, expiry: DayLike) -> dt.datetime:
    """Settlement time of a contract as an ET-aware datetime.

    SPXW (PM): the close of the expiry session, 16:00 ET (13:00 ET on a half day).
    SPX (AM): the special opening quotation on the expiry morning, 09:30 ET.
    """
    r = _root(root)
    d = _as_day("expiry", expiry)
    _require_session("expiry", d)
    if r in PM_ROOTS:
        return expiring_close(d)
    return _at(d, AM_SETTLEMENT)


def settlement_ns(root: str, expiry: DayLike) -> int:
    """:func:`settlement` as int64 UTC nanoseconds."""
    if isinstance(expiry, dt.date) and not isinstance(expiry, dt.datetime):
        return _settlement_ns(root, expiry)
    return to_ns(settlement(root, expiry))


@functools.lru_cache(maxsize=1 << 14)
def _settlement_ns(root: str, expiry: dt.date) -> int:
    return to_ns(settlement(root, expiry))


def last_trade_day(root: str, expiry: DayLike) -> dt.date:
    """Last day a contract trades: the expiry for SPXW, the session before it for SPX (AM)."""
    r = _root(root)
    d = _as_day("expiry", expiry)
    _require_session("expiry", d)
    return d if r in PM_ROOTS else previous_session(d)


def contract_close(root: str, expiry: DayLike, day: DayLike) -> dt.datetime:
    """When a contract stops trading on session ``day``.

    An SPXW on its expiry day stops at :func:`expiring_close`; every other live contract
    (including an SPX monthly on its last trade day) trades to :func:`option_close`.
    """
    r = _root(root)
    e = _as_day("expiry", expiry)
    d = _as_day("day", day)
    if d > last_trade_day(r, e):
        raise InputError(
            f"{r} {e} no longer trades on {d} (last trade day {last_trade_day(r, e)})."
        )
    if r in PM_ROOTS and d == e:
        return expiring_close(d)
    return option_close(d)


def contract_close_ns(root: str, expiry: DayLike, day: DayLike) -> int:
    """:func:`contract_close` as int64 UTC nanoseconds."""
    return to_ns(contract_close(root, expiry, day))


def monthly_expiry(year: int, month: int) -> dt.date:
    """Standard SPX monthly expiry: the third Friday, or the session before it if a holiday."""
    if not 1 <= int(month) <= 12:
        raise InputError(f"month must be 1..12 (got {month!r}).")
    first = dt.date(int(year), int(month), 1)
    third_friday = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
    _check_range("monthly expiry", third_friday)
    return third_friday if is_session(third_friday) else previous_session(third_friday)


def spxw_expiries(start: DayLike, end: DayLike) -> list[dt.date]:
    """SPXW expiries between ``start`` and ``end`` inclusive: every weekday session.

    This is today's listing (daily expiries Monday-Friday since May 2022); earlier years had
    Monday/Wednesday/Friday only, which this function does not model.
    """
    return sessions(start, end)


def monthly_expiries(start: DayLike, end: DayLike) -> list[dt.date]:
    """SPX monthly (AM) expiries between ``start`` and ``end`` inclusive."""
    a, b = _as_day("start", start), _as_day("end", end)
    out = []
    y, m = a.year, a.month
    while (y, m) <= (b.year, b.month):
        e = monthly_expiry(y, m)
        if a <= e <= b:
            out.append(e)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def years_to_settlement(ts_ns: Any, settle_ns: Any) -> npt.NDArray[np.float64] | float:
    """Year fraction T = minutes from ``ts_ns`` to ``settle_ns`` / 525,600 (signed, float64).

    Both arguments are int64 UTC nanoseconds (scalars or arrays, broadcast like numpy); a
    scalar pair returns a Python float. Negative values mean the settlement time has passed.

    Examples
    --------
    >>> from quantlab import calendar
    >>> settle = calendar.settlement_ns("SPXW", "2024-03-15")
    >>> t = settle - 60 * 60 * 1_000_000_000  # 15:00 ET
    >>> calendar.years_to_settlement(t, settle) == 60 / 525_600
    True
    """
    a = np.asarray(ts_ns, dtype=np.int64)
    b = np.asarray(settle_ns, dtype=np.int64)
    out = (b - a).astype(np.float64) / (NS_PER_MINUTE * MINUTES_PER_YEAR)
    if out.ndim == 0:
        return float(out)
    return out


def quote_minutes_ns(day: DayLike, *, expiring: bool = False) -> npt.NDArray[np.int64]:
    """Minute-end time stamps of session ``day`` (int64 UTC ns), as cbbo-1m ``ts_recv`` keys.

    From 09:31 ET (the end of the first minute) to :func:`option_close` (or
    :func:`expiring_close` when ``expiring``) inclusive: 405 minutes on a normal day.
    """
    start = option_open_ns(day)
    stop = expiring_close_ns(day) if expiring else option_close_ns(day)
    return np.arange(start + NS_PER_MINUTE, stop + 1, NS_PER_MINUTE, dtype=np.int64)


EVENTS_FILE = Path(__file__).with_name("events.csv")
"""The static event calendar shipped with quantlab (FOMC statement days, CPI releases; sources
and coverage in its header). Users extend it, or pass their own file of the same shape."""


def load_events(path: Path | str | None = None) -> list[dt.date]:
    """Sorted distinct event dates of an events CSV (``#`` comment lines, a ``date`` column)."""
    import polars as pl

    from quantlab.errors import DataError

    p = Path(path) if path is not None else EVENTS_FILE
    if not p.is_file():
        raise DataError(f"event calendar {p} not found.")
    df = pl.read_csv(p, comment_prefix="#", schema_overrides={"date": pl.Utf8})
    if "date" not in df.columns:
        raise DataError(f"event calendar {p} has no 'date' column (got {df.columns}).")
    try:
        days = {dt.date.fromisoformat(s.strip()) for s in df["date"].drop_nulls().to_list()}
    except ValueError as exc:
        raise DataError(f"event calendar {p}: a date is not YYYY-MM-DD ({exc}).") from None
    return sorted(days)
