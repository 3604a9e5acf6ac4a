"""Tests for quantlab.calendar: sessions, option hours, DST, expiries and settlement."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from quantlab import calendar as cal
from quantlab.errors import InputError

NS_MIN = 60_000_000_000


def _utc_hm(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%H:%M")


def test_holiday_is_not_a_session() -> None:
    assert not cal.is_session(dt.date(2024, 7, 4))
    assert cal.is_session("2024-07-05")
    assert cal.next_session("2024-07-03") == dt.date(2024, 7, 5)
    assert cal.previous_session("2024-07-05") == dt.date(2024, 7, 3)
    assert dt.date(2024, 7, 4) not in cal.sessions("2024-07-01", "2024-07-08")
    assert cal.sessions("2024-07-01", "2024-07-08") == [
        dt.date(2024, 7, d) for d in (1, 2, 3, 5, 8)
    ]


def test_weekend_not_a_session_and_errors() -> None:
    assert not cal.is_session("2024-03-09")
    with pytest.raises(InputError, match="not an XNYS session"):
        cal.option_open("2024-03-09")
    with pytest.raises(InputError, match="end must be on or after start"):
        cal.sessions("2024-03-10", "2024-03-01")
    with pytest.raises(InputError, match="root must be one of"):
        cal.settlement_ns("XSP", "2024-03-15")
    with pytest.raises(InputError, match="ISO string"):
        cal.is_session("not a date")


def test_early_close() -> None:
    day = dt.date(2024, 11, 29)
    assert cal.is_early_close(day)
    assert not cal.is_early_close("2024-11-27")
    assert cal.option_close(day).strftime("%H:%M") == "13:15"
    assert cal.expiring_close(day).strftime("%H:%M") == "13:00"
    assert cal.settlement("SPXW", day).strftime("%H:%M") == "13:00"
    # 13:15 ET = 18:15 UTC in November (EST)
    assert _utc_hm(cal.option_close_ns(day)) == "18:15"
    assert _utc_hm(cal.expiring_close_ns(day)) == "18:00"
    assert len(cal.quote_minutes_ns(day)) == 225  # 09:31 .. 13:15
    assert len(cal.quote_minutes_ns(day, expiring=True)) == 210


def test_dst_change() -> None:
    # 2024-03-08 (EST) vs 2024-03-11 (EDT, DST began 2024-03-10)
    assert _utc_hm(cal.option_open_ns("2024-03-08")) == "14:30"
    assert _utc_hm(cal.option_open_ns("2024-03-11")) == "13:30"
    assert cal.option_open("2024-03-11").strftime("%H:%M") == "09:30"
    assert _utc_hm(cal.option_close_ns("2024-03-11")) == "20:15"
    diff = cal.option_open_ns("2024-03-11") - cal.option_open_ns("2024-03-08")
    assert diff == (3 * 24 - 1) * 60 * NS_MIN


def test_quote_minutes_normal_day() -> None:
    m = cal.quote_minutes_ns("2024-03-11")
    assert len(m) == 405
    assert m[0] == cal.option_open_ns("2024-03-11") + NS_MIN
    assert m[-1] == cal.option_close_ns("2024-03-11")
    e = cal.quote_minutes_ns("2024-03-11", expiring=True)
    assert e[-1] == cal.expiring_close_ns("2024-03-11")
    assert np.all(np.diff(m) == NS_MIN)


def test_monthly_expiry() -> None:
    assert cal.monthly_expiry(2024, 3) == dt.date(2024, 3, 15)
    assert not cal.is_session("2024-03-29")  # Good Friday
    assert cal.monthly_expiry(2024, 4) == dt.date(2024, 4, 19)
    # Good Friday on the third Friday: 2025-04-18 -> Thursday 2025-04-17
    assert cal.monthly_expiry(2025, 4) == dt.date(2025, 4, 17)
    assert cal.monthly_expiries("2024-01-01", "2024-04-30") == [
        dt.date(2024, 1, 19),
        dt.date(2024, 2, 16),
        dt.date(2024, 3, 15),
        dt.date(2024, 4, 19),
    ]
    with pytest.raises(InputError, match="month"):
        cal.monthly_expiry(2024, 13)


def test_spxw_expiries_are_weekday_sessions() -> None:
    ex = cal.spxw_expiries("2024-03-25", "2024-04-05")
    assert dt.date(2024, 3, 29) not in ex
    assert len(ex) == 9
    assert all(d.weekday() < 5 for d in ex)


def test_settlement_and_last_trade_day() -> None:
    # SPXW: PM at 16:00 ET on expiry (EDT -> 20:00 UTC)
    s = cal.settlement_ns("SPXW", "2024-03-15")
    assert _utc_hm(s) == "20:00"
    assert cal.last_trade_day("SPXW", "2024-03-15") == dt.date(2024, 3, 15)
    # SPX monthly: AM, 09:30 ET on the expiry morning, last trade the session before
    a = cal.settlement("SPX", "2024-03-15")
    assert a.strftime("%Y-%m-%d %H:%M") == "2024-03-15 09:30"
    assert cal.last_trade_day("SPX", "2024-03-15") == dt.date(2024, 3, 14)
    assert cal.last_trade_day("spx", "2024-04-19") == dt.date(2024, 4, 18)
    assert cal.contract_close("SPX", "2024-03-15", "2024-03-14").strftime("%H:%M") == "16:15"
    assert cal.contract_close("SPXW", "2024-03-15", "2024-03-15").strftime("%H:%M") == "16:00"
    assert cal.contract_close("SPXW", "2024-03-18", "2024-03-15").strftime("%H:%M") == "16:15"
    with pytest.raises(InputError, match="no longer trades"):
        cal.contract_close("SPX", "2024-03-15", "2024-03-15")


def test_years_to_settlement() -> None:
    settle = cal.settlement_ns("SPXW", "2024-03-15")
    t1500 = cal.to_ns(dt.datetime(2024, 3, 15, 15, 0, tzinfo=cal.ET))
    assert cal.years_to_settlement(t1500, settle) == 60 / 525_600
    ts = cal.quote_minutes_ns("2024-03-15", expiring=True)
    t = cal.years_to_settlement(ts, settle)
    assert isinstance(t, np.ndarray) and t.dtype == np.float64
    assert t[-1] == 0.0
    np.testing.assert_allclose(t[:-1], (len(ts) - 1 - np.arange(len(ts) - 1)) / 525_600)
    # across the DST weekend: Fri 16:00 EST -> Mon 16:00 EDT is 71 hours
    fri = cal.settlement_ns("SPXW", "2024-03-08")
    mon = cal.settlement_ns("SPXW", "2024-03-11")
    assert cal.years_to_settlement(fri, mon) == 71 * 60 / 525_600


def test_to_ns_rejects_naive() -> None:
    with pytest.raises(InputError, match="timezone-aware"):
        cal.to_ns(dt.datetime(2024, 1, 2, 9, 30))


def test_session_table_round_trips_to_a_worker() -> None:
    import subprocess
    import sys

    table = cal.session_table()
    code = (
        "import pickle, sys; from quantlab import calendar; "
        "calendar.use_session_table(pickle.loads(sys.stdin.buffer.read())); "
        "import datetime as dt; print(calendar.is_session(dt.date(2024, 3, 29)), "
        "calendar.is_early_close(dt.date(2024, 11, 29)), "
        "'exchange_calendars' in sys.modules)"
    )
    import pickle

    out = (
        subprocess.run(
            [sys.executable, "-c", code], input=pickle.dumps(table), capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    assert out == ["False", "True", "False"]  # Good Friday, the day after Thanksgiving
    with pytest.raises(InputError, match="session_table"):
        cal.use_session_table(([], frozenset()))
