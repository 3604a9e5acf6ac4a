"""Point-in-time reads: chain_at, quotes_between, the day cache, kernels, store API and views."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from quantlab import calendar
from quantlab.data import _read_kernels as K
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import DataError, InputError

ET = ZoneInfo("America/New_York")
DAY = dt.date(2024, 3, 14)
NS = 1_000_000_000
MIN = 60 * NS
MINUTES = calendar.quote_minutes_ns(DAY)


def build_day(seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """60 instruments (SPXW 0DTE + SPXW weekly + SPX monthly), sparse minute quotes."""
    rng = np.random.default_rng(seed)
    rows = []
    iid = 500
    for root, expiry in (
        ("SPXW", DAY),
        ("SPXW", dt.date(2024, 3, 15)),
        ("SPX", dt.date(2024, 3, 15)),
    ):
        for k in range(10):
            for right in "CP":
                strike = 5100.0 + 5 * k
                sym = f"{root:<6}{expiry:%y%m%d}{right}{int(strike * 1000):08d}"
                rows.append(
                    (
                        DAY,
                        iid,
                        sym,
                        root,
                        "SPX",
                        expiry,
                        "AM" if root == "SPX" else "PM",
                        strike,
                        right,
                        100,
                    )
                )
                iid += 1
    inst = pl.DataFrame(rows, schema=st.INSTRUMENTS_SCHEMA, orient="row")
    ids = inst["instrument_id"].to_numpy()
    recs = []
    for j, i in enumerate(ids):
        if j == 7:  # never quoted
            continue
        first = 40 if j == 8 else 0  # starts quoting late
        m = np.flatnonzero(rng.random(MINUTES.size) < 0.4)
        m = np.union1d(m[m >= first], [first])
        bid = np.round(rng.uniform(0.5, 30, m.size), 2)
        bid[rng.random(m.size) < 0.05] = np.nan  # some undefined bids
        recs.append(
            pl.DataFrame(
                {
                    "ts": MINUTES[m],
                    "instrument_id": np.full(m.size, i, np.uint32),
                    "bid": bid,
                    "ask": np.round(np.nan_to_num(bid, nan=0.0) + 0.1, 2),
                    "bid_size": rng.integers(1, 100, m.size).astype(np.uint32),
                    "ask_size": rng.integers(1, 100, m.size).astype(np.uint32),
                }
            )
        )
    quotes = pl.concat(recs).with_columns(pl.col("bid").fill_nan(None))
    return inst, quotes


@pytest.fixture(scope="session")
def day_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame, pl.DataFrame]:
    root = tmp_path_factory.mktemp("read_store")
    inst, quotes = build_day()
    st.write_partition(root, "instruments", "SPX", DAY, inst, source="test")
    st.write_partition(
        root, "quotes", "SPX", DAY, quotes.sample(fraction=1.0, shuffle=True, seed=1), source="test"
    )
    return root, inst, quotes


def brute_chain(quotes: pl.DataFrame, t: int) -> pl.DataFrame:
    return (
        quotes.filter(pl.col("ts") <= t)
        .sort("ts")
        .group_by("instrument_id")
        .agg(pl.all().last())
        .rename({"ts": "quote_ts"})
    )


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    read.clear_cache()


# --------------------------------------------------------------------------- chain_at


@given(k=hs.integers(-30, MINUTES.size + 30), off=hs.sampled_from([0, -1, 1, 17 * NS]))
def test_chain_at_matches_brute_force(day_store, k: int, off: int) -> None:
    root, inst, quotes = day_store
    t = int(MINUTES[0] + k * MIN + off)
    if read.session_date(t) != DAY:
        return
    snap = read.chain_at(root, "SPX", t)
    assert snap.height == inst.height
    ref = brute_chain(quotes, t)
    got = snap.join(ref, on="instrument_id", how="left", suffix="_ref")
    for c in ("bid", "ask", "bid_size", "quote_ts"):
        a, b = got[c], got[f"{c}_ref"]
        if c in ("bid_size",):
            b = b.fill_null(0)
        assert ((a == b) | (a.is_null() & b.is_null())).all(), c
    assert (got["quote_ts"].drop_nulls() <= t).all()
    age = got.filter(pl.col("quote_ts").is_not_null())
    assert np.allclose(age["age_s"].to_numpy(), (t - age["quote_ts"].to_numpy()) / NS)


def test_chain_at_ignores_later_quotes(day_store, tmp_path: Path) -> None:
    """Perturbing every quote stamped after t leaves the snapshot at t unchanged."""
    _, inst, quotes = day_store
    root = tmp_path / "s"
    st.write_partition(root, "instruments", "SPX", DAY, inst, source="test")
    st.write_partition(root, "quotes", "SPX", DAY, quotes, source="test")
    t = int(MINUTES[120]) + 30 * NS
    before = read.chain_at(root, "SPX", t)
    later = pl.col("ts") > t
    perturbed = quotes.with_columns(
        bid=pl.when(later).then(pl.col("bid") + 100).otherwise(pl.col("bid")),
        ask=pl.when(later).then(pl.col("ask") + 100).otherwise(pl.col("ask")),
    )
    extra = pl.DataFrame(
        {
            "ts": [t + 1],
            "instrument_id": [inst["instrument_id"][7]],
            "bid": [9.0],
            "ask": [9.5],
            "bid_size": [1],
            "ask_size": [1],
        },
        schema=st.QUOTES_SCHEMA,
    )  # a quote 1 ns after t for an unquoted one
    st.write_partition(root, "quotes", "SPX", DAY, pl.concat([perturbed, extra]), source="test")
    after = read.chain_at(root, "SPX", t)  # the cache notices the rewritten partition
    assert after.equals(before)
    assert not read.chain_at(root, "SPX", t + 1).equals(before)


def test_forward_fill_and_age(day_store) -> None:
    root, inst, quotes = day_store
    iid = int(inst["instrument_id"][3])
    mine = quotes.filter(pl.col("instrument_id") == iid).sort("ts")
    ts = mine["ts"].to_numpy()
    gaps = np.flatnonzero(np.diff(ts) > MIN)
    i = int(gaps[0])
    t = int(ts[i]) + MIN + 10 * NS  # one minute and 10 s after the quote, before the next
    row = read.chain_at(root, "SPX", t).filter(pl.col("instrument_id") == iid)
    assert row["quote_ts"].item() == ts[i]
    assert row["age_s"].item() == pytest.approx(70.0)
    assert row["bid"].item() == mine["bid"][i]


def test_unquoted_and_late_instruments(day_store) -> None:
    root, inst, _ = day_store
    snap = read.chain_at(root, "SPX", int(MINUTES[10]))
    never = snap.filter(pl.col("instrument_id") == inst["instrument_id"][7])
    late = snap.filter(pl.col("instrument_id") == inst["instrument_id"][8])
    for r in (never, late):
        assert r["bid"].item() is None and r["quote_ts"].item() is None
        assert r["age_s"].item() is None and r["bid_size"].item() == 0
    early = read.chain_at(root, "SPX", int(MINUTES[0]) - 1)
    assert early["quote_ts"].null_count() == early.height  # before the first minute ends


def test_filters_and_columns(day_store) -> None:
    root, _, _ = day_store
    t = int(MINUTES[200])
    snap = read.chain_at(root, "SPX", t, expirations=[dt.date(2024, 3, 15)], roots="SPX")
    assert snap.height == 20 and set(snap["root"]) == {"SPX"}
    assert set(snap["settlement"]) == {"AM"}
    assert snap.columns == [*read.META_COLUMNS, *read.QUOTE_COLUMNS]
    full = read.chain_at(root, "SPX", t)
    assert full.filter(pl.col("root") == "SPX").equals(snap)
    # chain order: expiry, root, strike, right
    assert full.select(["expiry", "root", "strike", "right"]).equals(
        full.select(["expiry", "root", "strike", "right"]).sort(
            ["expiry", "root", "strike", "right"]
        )
    )
    aware = dt.datetime.fromtimestamp(t / NS, tz=ET)
    assert read.chain_at(root, "SPX", aware).equals(full)
    assert read.chain_at(root, "SPX", aware.isoformat()).equals(full)
    assert read.chain_at(root, "SPX", np.datetime64(t, "ns")).equals(full)


def test_errors(day_store) -> None:
    root, _, _ = day_store
    with pytest.raises(InputError, match="timezone-aware"):
        read.chain_at(root, "SPX", dt.datetime(2024, 3, 14, 12, 0))
    with pytest.raises(DataError, match="no instruments partition for SPX on 2024-03-15"):
        read.chain_at(root, "SPX", int(MINUTES[0]) + 86_400 * NS)
    with pytest.raises(DataError, match="instrument_id 1 is not listed"):
        read.quotes_between(root, [1], int(MINUTES[0]), int(MINUTES[-1]))
    with pytest.raises(InputError, match="end must not be before start"):
        read.quotes_between(root, [500], int(MINUTES[5]), int(MINUTES[0]))


# --------------------------------------------------------------------------- quotes_between


def test_quotes_between_raw(day_store) -> None:
    root, inst, quotes = day_store
    legs = [int(x) for x in inst["instrument_id"][[12, 2, 13, 3]]]
    t0, t1 = int(MINUTES[50]), int(MINUTES[300])
    got = read.quotes_between(root, legs, t0, t1)
    ref = quotes.filter(pl.col("instrument_id").is_in(legs) & pl.col("ts").is_between(t0, t1))
    order = {v: i for i, v in enumerate(legs)}
    ref = (
        ref.with_columns(o=pl.col("instrument_id").replace_strict(order))
        .sort(["o", "ts"])
        .drop("o")
    )
    assert got.equals(ref.select(got.columns))


def test_quotes_between_ffill_equals_snapshots(day_store) -> None:
    root, inst, _ = day_store
    legs = [int(x) for x in inst["instrument_id"][[0, 1, 8, 30]]]
    t0, t1 = int(MINUTES[0]) - 10 * MIN, int(MINUTES[-1])
    ff = read.quotes_between(root, legs, t0, t1, ffill=True)
    assert ff.height == 4 * MINUTES.size
    assert ff.columns == [
        "instrument_id",
        "ts",
        "bid",
        "ask",
        "bid_size",
        "ask_size",
        "quote_ts",
        "age_s",
    ]
    for m in (0, 39, 40, 200, MINUTES.size - 1):
        t = int(MINUTES[m])
        snap = read.chain_at(root, "SPX", t).filter(pl.col("instrument_id").is_in(legs))
        rows = ff.filter(pl.col("ts") == t)
        joined = rows.join(snap, on="instrument_id", suffix="_s")
        for c in ("bid", "ask", "quote_ts", "age_s"):
            a, b = joined[c], joined[f"{c}_s"]
            assert ((a == b) | (a.is_null() & b.is_null())).all(), (m, c)


# --------------------------------------------------------------------------- DayQuotes / kernels


def test_numpy_views_and_batch(day_store) -> None:
    root, _, _quotes = day_store
    dq = read.load_day(root, "SPX", DAY)
    assert read.load_day(root, "SPX", DAY) is dq  # cached
    arrs = dq.arrays()
    assert arrs["ts"].dtype == np.int64 and arrs["lo"].size == len(dq)
    t = int(MINUTES[100]) + 5
    a = dq.snapshot_arrays(t)
    snap = read.chain_at(root, "SPX", t)
    assert np.array_equal(a["bid"], snap["bid"].to_numpy(), equal_nan=True)
    grid = MINUTES[::7]
    g = dq.grid_index(grid)
    for i in (0, 5, len(grid) - 1):
        assert np.array_equal(g[i], dq.snapshot_index(int(grid[i])))
    sel = dq.select(roots=["SPXW"], expirations=[DAY])
    assert sel.size == 20 and (dq.root[sel] == "SPXW").all()
    pos = dq.positions(dq.instrument_id[[5, 2]])
    assert pos.tolist() == [5, 2]


@given(seed=hs.integers(0, 10_000))
def test_kernels_match_python_twins(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_inst = int(rng.integers(1, 8))
    counts = rng.integers(0, 12, n_inst)
    hi = np.cumsum(counts).astype(np.int64)
    lo = (hi - counts).astype(np.int64)
    ts = np.concatenate([np.sort(rng.choice(100, c, replace=False)) for c in counts]).astype(
        np.int64
    )
    sel = rng.permutation(n_inst).astype(np.int64)
    t = np.int64(rng.integers(-5, 105))
    a, b = np.empty(n_inst, np.int64), np.empty(n_inst, np.int64)
    K.last_at_or_before_nb(ts, lo, hi, sel, t, a)
    K.last_at_or_before_python(ts, lo, hi, sel, t, b)
    assert np.array_equal(a, b)
    for j, k in enumerate(sel):  # brute force
        ok = np.flatnonzero(ts[lo[k] : hi[k]] <= t)
        assert a[j] == (lo[k] + ok[-1] if ok.size else -1)
    grid = np.sort(rng.integers(-5, 105, 9)).astype(np.int64)
    g1, g2 = np.empty((9, n_inst), np.int64), np.empty((9, n_inst), np.int64)
    K.grid_indices_nb(ts, lo, hi, sel, grid, g1)
    K.grid_indices_python(ts, lo, hi, sel, grid, g2)
    assert np.array_equal(g1, g2)


def test_numba_disabled_gives_same_snapshot(day_store) -> None:
    root, _, _ = day_store
    t = int(MINUTES[77]) + 3
    code = (
        "import sys; from quantlab.data import read; "
        f"s = read.chain_at({str(root)!r}, 'SPX', {t}); "
        "sys.stdout.write(str(s['bid'].fill_null(-1).sum()) + ' ' + str(s['quote_ts'].sum()))"
    )
    env = {**os.environ, "QUANTLAB_DISABLE_NUMBA": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    s = read.chain_at(root, "SPX", t)
    assert out == f"{s['bid'].fill_null(-1).sum()} {s['quote_ts'].sum()}"


# --------------------------------------------------------------------------- store API


def test_write_partition_validation(tmp_path: Path) -> None:
    q = pl.DataFrame(
        {
            "ts": [1, 2],
            "instrument_id": [1, 1],
            "bid": [1.0, None],
            "ask": [1.1, None],
            "bid_size": [1, 0],
            "ask_size": [1, 0],
        }
    )
    with pytest.raises(DataError, match="missing column 'ask'"):
        st.write_partition(tmp_path, "quotes", "SPX", DAY, q.drop("ask"), source="t")
    with pytest.raises(DataError, match="unexpected column 'x'"):
        st.write_partition(tmp_path, "quotes", "SPX", DAY, q.with_columns(x=1), source="t")
    with pytest.raises(DataError, match="'bid_size' must be UInt32"):
        st.write_partition(tmp_path, "quotes", "SPX", DAY, q.with_columns(bid_size=-1), source="t")
    with pytest.raises(DataError, match="duplicate key"):
        st.write_partition(tmp_path, "quotes", "SPX", DAY, q.with_columns(ts=5), source="t")
    with pytest.raises(DataError, match="NaN"):
        st.write_partition(
            tmp_path, "quotes", "SPX", DAY, q.with_columns(bid=pl.lit(float("nan"))), source="t"
        )
    with pytest.raises(DataError, match="'ts' has 1 null"):
        st.write_partition(
            tmp_path, "quotes", "SPX", DAY, q.with_columns(ts=pl.Series([1, None])), source="t"
        )
    with pytest.raises(InputError, match="table must be one of"):
        st.write_partition(tmp_path, "trades", "SPX", DAY, q, source="t")
    assert not (tmp_path / "parquet").exists() or not list(tmp_path.rglob("*.parquet"))
    inst, _ = build_day()
    with pytest.raises(DataError, match="'right' has value 'X'"):
        st.write_partition(
            tmp_path, "instruments", "SPX", DAY, inst.with_columns(right=pl.lit("X")), source="t"
        )
    with pytest.raises(DataError, match="partition is 2024-03-15"):
        st.write_partition(tmp_path, "instruments", "SPX", "2024-03-15", inst, source="t")


def test_write_read_list_and_manifest(tmp_path: Path) -> None:
    bars = pl.DataFrame(
        {
            "ts": [3, 1, 2],
            "open": [1.0, 2, 3],
            "high": [1.0, 2, 3],
            "low": [1.0, 2, 3],
            "close": [1.0, 2, 3],
        }
    )
    for d in ("2024-03-15", "2024-03-14"):
        p = st.write_partition(
            tmp_path, "underlying_bars", "spx", d, bars, source="unit", checksum="abc"
        )
    assert p == tmp_path / "parquet/underlying_bars/underlying=SPX/date=2024-03-14/part-0.parquet"
    back = st.read_partition(tmp_path, "underlying_bars", "SPX", "2024-03-15")
    assert back is not None and back["ts"].to_list() == [1, 2, 3]  # sorted on write
    assert st.read_partition(tmp_path, "underlying_bars", "SPX", "2024-03-16") is None
    assert st.list_days(tmp_path, "underlying_bars", "SPX") == [DAY, dt.date(2024, 3, 15)]
    assert st.partition_metadata(p)["quantlab.source"] == "unit"
    man = st.read_manifest(tmp_path)
    assert man.height == 2 and set(man["checksum"]) == {"abc"}
    # workers write without the manifest; the parent rebuilds it from the files
    st.write_partition(
        tmp_path, "underlying_bars", "SPX", "2024-03-18", bars, source="w", manifest=False
    )
    assert st.sync_manifest(tmp_path) == 3
    assert st.read_manifest(tmp_path).height == 3
    con = st.connect(tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT date) FROM underlying_bars").fetchone() == (
        9,
        3,
    )
    assert con.execute("SELECT count(*) FROM quotes").fetchone() == (0,)  # empty view
    assert st.list_days(str(tmp_path), "underlying_bars", "SPX") == st.list_days(
        tmp_path, "underlying_bars", "SPX"
    )
    assert not list(tmp_path.rglob("*.tmp"))


def test_rewrite_is_deterministic(tmp_path: Path) -> None:
    _inst, quotes = build_day()
    a = st.write_partition(tmp_path / "a", "quotes", "SPX", DAY, quotes, source="t")
    b = st.write_partition(tmp_path / "b", "quotes", "SPX", DAY, quotes.reverse(), source="t")
    assert a.read_bytes() == b.read_bytes()
    meta = st.partition_metadata(a)
    import json

    off = json.loads(meta["quantlab.offsets"])
    back = pl.read_parquet(a)
    assert back["instrument_id"].to_numpy()[off["starts"]].tolist() == off["ids"]
