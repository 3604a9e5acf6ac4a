"""Quarantine rules and the per-day quality report (plus the ``check`` / ``sql`` commands)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as hs
from typer.testing import CliRunner

from quantlab import calendar
from quantlab.data import quality
from quantlab.data import store as st
from quantlab.data.cli import app

DAY = dt.date(2024, 3, 14)
MINUTES = calendar.quote_minutes_ns(DAY)


def _quotes(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["ts", "instrument_id", "bid", "ask"], orient="row")


def test_split_quotes_rules() -> None:
    nan = float("nan")
    q = _quotes(
        [
            (10, 1, 1.0, 1.2),  # clean
            (None, 1, 1.0, 1.2),  # undefined ts
            (10, 9, 1.0, 1.2),  # unknown instrument
            (20, 1, nan, 1.2),  # NaN
            (30, 1, -0.05, 1.2),  # negative
            (40, 2, 1.0, 1.1),  # duplicate (first) ...
            (40, 2, 1.5, 1.6),  # ... the last one is kept
            (50, 2, 2.0, 1.0),  # crossed: kept
            (60, 2, 0.0, 0.05),  # zero bid: kept
            (70, 2, None, 0.05),  # one-sided: kept
            (-1, 9, -1.0, nan),  # first matching rule wins: undefined_ts
        ]
    ).with_columns(extra=pl.int_range(pl.len()))
    good, bad = quality.split_quotes(q, known_ids=[1, 2])
    assert good["extra"].to_list() == [0, 6, 7, 8, 9]
    assert bad.columns[:6] == list(st.QUARANTINE_SCHEMA) and "extra" in bad.columns
    assert dict(zip(bad["extra"], bad["reason"], strict=True)) == {
        1: "undefined_ts",
        2: "no_definition",
        3: "nan_price",
        4: "negative_price",
        5: "duplicate",
        10: "undefined_ts",
    }
    assert set(bad["table"]) == {"quotes"}
    # without known ids the definition rule is skipped
    good2, bad2 = quality.split_quotes(q, None)
    assert 2 in good2["extra"].to_list() and "no_definition" not in bad2["reason"].to_list()


@given(
    rows=hs.lists(
        hs.tuples(
            hs.integers(0, 5),
            hs.integers(0, 3),
            hs.one_of(hs.none(), hs.floats(-1, 5)),
            hs.one_of(hs.none(), hs.floats(-1, 5)),
        ),
        max_size=30,
    )
)
def test_split_quotes_partitions_rows(rows: list[tuple]) -> None:
    """Every input row ends up in exactly one output; clean rows are unique per key."""
    q = _quotes(rows).with_columns(row=pl.int_range(pl.len()))
    good, bad = quality.split_quotes(q, known_ids=[0, 1, 2])
    assert sorted(good["row"].to_list() + bad["row"].to_list()) == list(range(len(rows)))
    assert not good.select(["instrument_id", "ts"]).is_duplicated().any()
    assert (good["bid"].fill_null(0) >= 0).all() and (good["ask"].fill_null(0) >= 0).all()


@pytest.fixture(scope="module")
def qstore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four instruments over one session with known defects."""
    root = tmp_path_factory.mktemp("quality")
    inst = pl.DataFrame(
        [
            (
                DAY,
                i,
                f"SPXW  240314C0{5000 + i:04d}000",
                "SPXW",
                "SPX",
                DAY,
                "PM",
                float(5000 + i),
                "C",
                100,
            )
            for i in range(1, 6)
        ],
        schema=st.INSTRUMENTS_SCHEMA,
        orient="row",
    )
    recs = []
    keep = np.ones(MINUTES.size, bool)
    keep[100:103] = False  # three minutes with no record for the whole chain
    for m in np.flatnonzero(keep):
        t = int(MINUTES[m])
        recs.append((t, 1, 1.0 + m % 2 * 0.05, 1.2))  # id 1 updates every minute
        if m % 2 == 0:
            recs.append((t, 2, 2.0, 2.1))
        if m == 5:
            recs.append((t, 3, 3.0, 3.1))  # id 3 quotes once, then goes stale
    recs += [
        (int(MINUTES[10]) + 1, 2, 2.5, 2.0),  # crossed
        (int(MINUTES[11]) + 1, 2, 2.0, 2.0),  # locked
        (int(MINUTES[12]) + 1, 2, 0.0, 0.05),  # zero bid
        (int(MINUTES[13]) + 1, 2, None, 0.05),  # one-sided
        (int(MINUTES[14]) + 1, 2, None, None),
    ]  # empty
    q = pl.DataFrame(recs, schema=["ts", "instrument_id", "bid", "ask"], orient="row").with_columns(
        bid_size=pl.lit(1), ask_size=pl.lit(1)
    )
    st.write_partition(root, "instruments", "SPX", DAY, inst, source="t")
    st.write_partition(root, "quotes", "SPX", DAY, q, source="t")
    qr = pl.DataFrame(
        {
            "table": ["quotes"] * 3,
            "ts": [1, 2, 3],
            "instrument_id": [9, 9, 1],
            "reason": ["no_definition", "no_definition", "negative_price"],
            "bid": [1.0, 1.0, -1.0],
            "ask": [None, None, 1.0],
        }
    )
    st.write_partition(root, "quarantine", "SPX", DAY, qr, source="t")
    return root


def test_check_day_counts(qstore: Path) -> None:
    r = quality.check_day(qstore, "SPX", DAY)
    assert r["instruments"] == 5 and r["quoted_instruments"] == 3 and r["never_quoted"] == 2
    assert (r["crossed"], r["locked"], r["zero_bid"], r["one_sided"], r["empty"]) == (1, 1, 1, 1, 1)
    assert r["nan_price"] == 0
    assert r["session_minutes"] == 405 and r["missing_minutes"] == 3
    assert r["stale_instruments"] == 1  # id 3; id 2 updates every other minute
    assert r["quarantined"] == 3
    assert r["quarantined_by_reason"] == {"negative_price": 1, "no_definition": 2}
    assert quality.check_day(qstore, "SPX", DAY, stale_minutes=1)["stale_instruments"] == 2


def test_check_days_frame(qstore: Path) -> None:
    df = quality.check_days(qstore)
    assert df.height == 1 and df["date"][0] == DAY
    assert df["quarantined_by_reason"][0] == "negative_price=1, no_definition=2"


def test_cli_check_and_sql(qstore: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["check", "--store", str(qstore), "--date", DAY.isoformat()])
    assert res.exit_code == 0, res.output
    assert "missing_minutes" in res.output and "stale_instruments" in res.output
    res = runner.invoke(app, ["check", "--store", str(qstore)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["sql", "SELECT count(*) AS n FROM quotes WHERE instrument_id = 3", "--store", str(qstore)],
    )
    assert res.exit_code == 0 and "1" in res.output
    res = runner.invoke(app, ["sql", "SELECT * FROM nope", "--store", str(qstore)])
    assert res.exit_code == 1 and "error" in res.output
