"""Tests for the synthetic OPRA market (quantlab.data.synth): real DBN files, realism, truth."""

from __future__ import annotations

import datetime as dt
import re
import struct
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab import calendar
from quantlab.data import layout, settlements
from quantlab.data import store as st
from quantlab.data.ingest import ingest
from quantlab.data.synth import PROFILES, MarketParams, synthesize, true_vol
from quantlab.data.synth import dbn_writer as dbw
from quantlab.data.synth.day import OI_PUBLISHERS
from quantlab.errors import InputError

db = pytest.importorskip("databento")

SEED = 11
DAYS = (dt.date(2024, 3, 8), dt.date(2024, 3, 11))  # Friday EST, Monday EDT (DST 03-10)
HALF_DAY = dt.date(2024, 11, 29)
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "databento"
OCC = re.compile(r"^(SPXW|SPX )  (\d{6})([CP])(\d{8})$")
PX = 1e-9


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize(DAYS[0], DAYS[1], SEED, root, profile="test")
    synthesize(HALF_DAY, HALF_DAY, SEED, root, profile="test")
    return root


def _read(store: Path, day: dt.date, schema: str):
    return db.DBNStore.from_file(layout.raw_file(store, "SPX", day, schema))


def _defs(store: Path, day: dt.date) -> pl.DataFrame:
    a = _read(store, day, "definition").to_ndarray()
    return pl.DataFrame(
        {
            "instrument_id": a["instrument_id"],
            "raw_symbol": [s.decode() for s in a["raw_symbol"]],
            "cls": [s.decode() for s in a["instrument_class"]],
            "strike": a["strike_price"] * PX,
            "expiration": a["expiration"].astype(np.int64),
            "asset": [s.decode() for s in a["asset"]],
        }
    ).with_columns(
        pl.from_epoch("expiration", time_unit="ns").dt.date().alias("expiry"),
    )


def _quotes(store: Path, day: dt.date) -> pl.DataFrame:
    a = _read(store, day, "cbbo-1m").to_ndarray()
    undef = np.iinfo(np.int64).max
    bid = np.where(a["bid_px_00"] == undef, np.nan, a["bid_px_00"] * PX)
    ask = np.where(a["ask_px_00"] == undef, np.nan, a["ask_px_00"] * PX)
    return pl.DataFrame(
        {
            "ts": a["ts_recv"].astype(np.int64),
            "instrument_id": a["instrument_id"],
            "bid": bid,
            "ask": ask,
            "bid_sz": a["bid_sz_00"],
            "ask_sz": a["ask_sz_00"],
        }
    ).join(_defs(store, day), on="instrument_id", how="left")


def _truth(store: Path, day: dt.date) -> pl.DataFrame:
    return pl.read_parquet(layout.truth_file(store, "SPX", day))


# ---------------------------------------------------------------------------------------------
# the files are real DBN
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("schema", ["definition", "cbbo-1m", "statistics"])
def test_files_decode_with_databento(store: Path, schema: str) -> None:
    for day in (*DAYS, HALF_DAY):
        st = _read(store, day, schema)
        m = st.metadata
        assert m.dataset == "OPRA.PILLAR"
        assert str(m.schema) == schema
        assert str(m.stype_in) == "parent" and str(m.stype_out) == "instrument_id"
        assert list(m.symbols) == ["SPX.OPT", "SPXW.OPT"]
        assert m.version == 3
        assert m.start == calendar.to_ns(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC))
        assert m.end - m.start == 86_400 * 10**9
        df = st.to_df()
        assert len(df) > 100
        assert df["symbol"].notna().all()  # mappings resolve every instrument id


def test_record_layouts_match_databento() -> None:
    import databento_dbn as dbn

    for ours, theirs in (
        (dbw.CBBO_DTYPE, dbn.CBBOMsg),
        (dbw.DEFINITION_DTYPE, dbn.InstrumentDefMsg),
        (dbw.STAT_DTYPE, dbn.StatMsg),
    ):
        size = theirs.size_hint() if callable(theirs.size_hint) else theirs.size_hint
        assert ours.itemsize == size
        ref = getattr(theirs, "_dtypes", None)
        if ref is not None:
            assert [n for n, _ in ref] == list(ours.names)
            assert np.dtype(ref).itemsize == ours.itemsize


@pytest.mark.skipif(not SHARED.exists(), reason="shared/data/databento (real DBN samples) absent")
def test_layouts_and_defaults_match_real_files() -> None:
    import zstandard

    for schema, dtype in (
        ("definition", dbw.DEFINITION_DTYPE),
        ("cbbo-1m", dbw.CBBO_DTYPE),
        ("statistics", dbw.STAT_DTYPE),
    ):
        f = SHARED / "OPRA.PILLAR" / f"test_data.{schema}.dbn.zst"
        raw = zstandard.ZstdDecompressor().stream_reader(f.open("rb")).read()
        n_meta = struct.unpack("<I", raw[4:8])[0] + 8
        ours = np.frombuffer(raw[n_meta:], dtype=dtype)
        theirs = list(db.DBNStore.from_file(f))
        assert len(ours) == len(theirs)
        for name in ("instrument_id", "ts_recv", "publisher_id"):
            assert [int(getattr(r, name)) for r in theirs] == ours[name].tolist()
        if schema == "definition":
            rec = ours[0]
            for name, value in dbw.DEFINITION_DEFAULTS.items():
                if name not in ("underlying_id",):
                    assert rec[name] == value, name


# ---------------------------------------------------------------------------------------------
# definitions, ids, statistics
# ---------------------------------------------------------------------------------------------
def test_definitions_follow_databento_conventions(store: Path) -> None:
    a = _read(store, DAYS[0], "definition").to_ndarray()
    d = _defs(store, DAYS[0])
    for sym, cls, k, exp, asset in d.select(
        "raw_symbol", "cls", "strike", "expiry", "asset"
    ).rows():
        mt = OCC.match(sym)
        assert mt, sym
        assert mt.group(1).strip() == asset
        assert dt.datetime.strptime(mt.group(2), "%y%m%d").date() == exp
        assert mt.group(3) == cls
        assert int(mt.group(4)) == round(k * 1000)
    assert (a["expiration"] % (86_400 * 10**9) == 0).all()  # midnight UTC
    assert (a["contract_multiplier"] == np.iinfo(np.int32).max).all()
    assert (a["min_price_increment"] == np.iinfo(np.int64).max).all()
    assert set(a["underlying"].tolist()) == {b"SPX"}
    assert (a["strike_price"] % 5_000_000_000 == 0).all()
    assert (a["ts_recv"] < calendar.option_open_ns(DAYS[0])).all()


def test_instrument_ids_change_across_days(store: Path) -> None:
    a, b = _defs(store, DAYS[0]), _defs(store, DAYS[1])
    both = a.join(b, on="raw_symbol", suffix="_2")
    assert both.height > 100
    assert (both["instrument_id"] != both["instrument_id_2"]).mean() > 0.99
    assert a["instrument_id"].n_unique() == a.height


def test_open_interest_repeated_per_publisher(store: Path) -> None:
    s = _read(store, DAYS[0], "statistics").to_ndarray()
    d = _defs(store, DAYS[0])
    assert set(s["stat_type"].tolist()) == {9}
    assert set(s["publisher_id"].tolist()) == set(OI_PUBLISHERS)
    assert len(s) == len(OI_PUBLISHERS) * d.height
    st = pl.DataFrame({"id": s["instrument_id"], "q": s["quantity"]})
    per = st.group_by("id").agg(pl.len(), pl.col("q").n_unique().alias("nq"))
    assert (per["len"] == len(OI_PUBLISHERS)).all() and (per["nq"] == 1).all()
    assert (s["ts_recv"].astype(np.int64) < calendar.option_open_ns(DAYS[0])).all()
    assert st["q"].max() > 1000


# ---------------------------------------------------------------------------------------------
# time stamps and sessions
# ---------------------------------------------------------------------------------------------
def _quoted(q: pl.DataFrame) -> pl.DataFrame:
    return q.filter(pl.col("ask").is_not_nan() | pl.col("bid").is_not_nan())


def test_ts_recv_on_minute_ends_within_session(store: Path) -> None:
    for day in (*DAYS, HALF_DAY):
        q = _quoted(_quotes(store, day))
        ts = q["ts"].to_numpy()
        assert (ts % calendar.NS_PER_MINUTE == 0).all()
        assert ts.min() == calendar.option_open_ns(day) + calendar.NS_PER_MINUTE
        assert ts.max() == calendar.option_close_ns(day)
        assert (np.diff(ts) >= 0).all()  # sorted by time
        expiring = q.filter((pl.col("expiry") == day) & (pl.col("asset") == "SPXW"))
        assert expiring.height > 0
        assert expiring["ts"].max() == calendar.expiring_close_ns(day)


def test_dst_first_quote_in_utc(store: Path) -> None:
    first = [_quoted(_quotes(store, d))["ts"].min() for d in DAYS]
    hm = [dt.datetime.fromtimestamp(t / 1e9, tz=dt.UTC).strftime("%H:%M") for t in first]
    assert hm == ["14:31", "13:31"]


def test_half_day_closes_at_1315(store: Path) -> None:
    q = _quoted(_quotes(store, HALF_DAY))
    last = dt.datetime.fromtimestamp(q["ts"].max() / 1e9, tz=calendar.ET)
    assert last.strftime("%H:%M") == "13:15"


def test_pre_open_empty_records(store: Path) -> None:
    q = _quotes(store, DAYS[0])
    pre = q.filter(pl.col("ts") < calendar.option_open_ns(DAYS[0]))
    assert pre.height > 0
    assert pre["bid"].is_nan().all() and pre["ask"].is_nan().all()


# ---------------------------------------------------------------------------------------------
# quotes
# ---------------------------------------------------------------------------------------------
def _two_sided(q: pl.DataFrame) -> pl.DataFrame:
    return q.filter(
        (pl.col("bid") > 0) & pl.col("ask").is_not_nan() & (pl.col("bid") < pl.col("ask"))
    )


def test_tick_grid(store: Path) -> None:
    q = _quoted(_quotes(store, DAYS[1]))
    ok = q.filter(pl.col("bid") < pl.col("ask"))
    for col in ("bid", "ask"):
        c = np.round(ok[col].drop_nans().to_numpy() * 100).astype(np.int64)
        assert (c % 5 == 0).all()
        assert (c[c >= 300] % 10 == 0).all()
    bad = q.filter(pl.col("bid") >= pl.col("ask"))
    assert bad.height < 0.001 * q.height  # crossed/locked quotes are rare


def test_zero_bid_wings(store: Path) -> None:
    q = _quoted(_quotes(store, DAYS[0]))
    zb = q.filter(pl.col("bid") == 0)
    assert zb.height > 0
    assert (zb["bid_sz"] == 0).all()
    asks = np.round(zb["ask"].drop_nans().to_numpy(), 2)
    assert np.isin(asks, [0.05, 0.10]).mean() > 0.9


def test_widths_match_market_facts(store: Path) -> None:
    """Median OTM width per mid bucket inside Table 2a's p10-p90 range."""
    q = _two_sided(_quotes(store, DAYS[0]))
    tr = _truth(store, DAYS[0]).select("ts_recv", "root", "expiry", "forward")
    q = q.join(tr, left_on=["ts", "asset", "expiry"], right_on=["ts_recv", "root", "expiry"])
    otm = q.filter(
        pl.when(pl.col("cls") == "C")
        .then(pl.col("strike") >= pl.col("forward"))
        .otherwise(pl.col("strike") < pl.col("forward"))
    ).with_columns(mid=(pl.col("bid") + pl.col("ask")) / 2, w=pl.col("ask") - pl.col("bid"))
    table = [
        (0, 0.5, 0.05, 0.15),
        (0.5, 1, 0.05, 0.15),
        (1, 3, 0.10, 0.20),
        (3, 10, 0.10, 0.30),
        (10, 30, 0.20, 0.40),
        (30, 1e9, 0.30, 1.00),
    ]
    for lo, hi, wlo, whi in table:
        b = otm.filter((pl.col("mid") > lo) & (pl.col("mid") <= hi))
        if b.height < 50:
            continue
        med = float(b["w"].median())
        assert wlo - 1e-9 <= med <= whi + 1e-9, (lo, hi, med)


def test_put_call_parity_near_the_money(store: Path) -> None:
    q = _two_sided(_quotes(store, DAYS[1]))
    tr = _truth(store, DAYS[1]).select("ts_recv", "root", "expiry", "forward", "df")
    q = q.with_columns(mid=(pl.col("bid") + pl.col("ask")) / 2, w=pl.col("ask") - pl.col("bid"))
    c = q.filter(pl.col("cls") == "C").select("ts", "asset", "expiry", "strike", "mid", "w")
    p = q.filter(pl.col("cls") == "P").select("ts", "asset", "expiry", "strike", "mid", "w")
    pair = c.join(p, on=["ts", "asset", "expiry", "strike"], suffix="_p").join(
        tr, left_on=["ts", "asset", "expiry"], right_on=["ts_recv", "root", "expiry"]
    )
    pair = pair.filter((pl.col("strike") / pl.col("forward") - 1).abs() < 0.01)
    assert pair.height > 500
    err = (pair["mid"] - pair["mid_p"] - pair["df"] * (pair["forward"] - pair["strike"])).abs()
    half = 0.5 * (pair["w"] + pair["w_p"])
    assert (err <= half + 1e-9).mean() > 0.99


def test_forward_recovered_from_quotes(store: Path) -> None:
    from quantlab.pricing import implied_forward

    day = DAYS[1]
    q = _quoted(_quotes(store, day))
    tr = _truth(store, day)
    t_noon = calendar.to_ns(dt.datetime.combine(day, dt.time(12, 0), tzinfo=calendar.ET))
    last = q.filter(pl.col("ts") <= t_noon).sort("ts").group_by("instrument_id").last()
    errors = []
    for (root, exp), g in last.group_by(["asset", "expiry"]):
        row = tr.filter(
            (pl.col("ts_recv") == t_noon) & (pl.col("root") == root) & (pl.col("expiry") == exp)
        )
        if row.height == 0 or exp == day:
            continue
        cc = g.filter(pl.col("cls") == "C").select("strike", "bid", "ask")
        pp = g.filter(pl.col("cls") == "P").select("strike", "bid", "ask")
        j = cc.join(pp, on="strike", suffix="_p").sort("strike")
        fit = implied_forward(
            j["strike"],
            j["bid"],
            j["ask"],
            j["bid_p"],
            j["ask_p"],
            float(row["T"][0]),
            r=MarketParams().rate,
        )
        errors.append(abs(fit.forward - float(row["forward"][0])))
    assert errors and max(errors) < 0.15, errors


def test_true_vol_matches_quote_ivs(store: Path) -> None:
    from quantlab.pricing import implied_vol

    day = DAYS[0]
    q = _two_sided(_quotes(store, day))
    tr = _truth(store, day)
    t = calendar.to_ns(dt.datetime.combine(day, dt.time(11, 0), tzinfo=calendar.ET))
    snap = q.filter(pl.col("ts") == t).join(
        tr, left_on=["ts", "asset", "expiry"], right_on=["ts_recv", "root", "expiry"]
    )
    snap = snap.filter(
        (pl.col("T") > 1.5 / 365) & ((pl.col("strike") / pl.col("forward")).log().abs() < 0.02)
    )
    assert snap.height > 20
    mid = ((snap["bid"] + snap["ask"]) / 2).to_numpy()
    iv = implied_vol(
        mid, snap["forward"], snap["strike"], snap["T"], snap["df"], snap["cls"] == "C"
    )
    truth = true_vol(snap, snap["strike"].to_numpy())
    assert np.nanmedian(np.abs(iv - truth)) < 0.005
    keyed = true_vol(
        tr,
        snap["strike"].to_numpy(),
        ts_recv=snap["ts"].to_numpy(),
        root=snap["asset"].to_numpy(),
        expiry=snap["expiry"].to_numpy(),
    )
    np.testing.assert_allclose(keyed, truth)


def test_thirty_day_bracket_and_monthly_listed(store: Path) -> None:
    for day in DAYS:
        d = _defs(store, day)
        dte = sorted({(e - day).days for e in d.filter(pl.col("asset") == "SPXW")["expiry"]})
        assert any(x <= 30 for x in dte if x > 20) and any(x > 30 for x in dte)
    d = _defs(store, DAYS[1])
    assert dt.date(2024, 3, 15) in d.filter(pl.col("asset") == "SPX")["expiry"].to_list()
    # the bracket expiries carry full wings: far OTM puts with zero bids
    far = max(d.filter(pl.col("asset") == "SPXW")["expiry"])
    ks = d.filter(pl.col("expiry") == far)["strike"]
    tr = _truth(store, DAYS[1])
    assert ks.min() < 0.8 * float(tr["spot"][0])


# ---------------------------------------------------------------------------------------------
# truth, determinism, errors, CLI
# ---------------------------------------------------------------------------------------------
def test_truth_columns_and_consistency(store: Path) -> None:
    tr = _truth(store, DAYS[0])
    p = MarketParams()
    expected = {
        "ts_recv",
        "root",
        "expiry",
        "spot",
        "forward",
        "df",
        "T",
        "tau",
        "atm_vol",
        "smile_beta",
        "smile_rho",
        "smile_m",
        "smile_delta",
        "sigma_now",
        "sigma_real",
        "cluster",
        "vol_jump",
        "settlement_value",
    }
    assert expected <= set(tr.columns)
    live = tr.filter(pl.col("T") > 0)
    f = live["spot"] * ((p.rate - p.div_yield) * live["T"]).exp()
    np.testing.assert_allclose(live["forward"], f, rtol=1e-12)
    np.testing.assert_allclose(live["df"], (-p.rate * live["T"]).exp(), rtol=1e-12)
    assert live["atm_vol"].is_between(0.03, 1.5).all()
    exp_today = tr.filter((pl.col("expiry") == DAYS[0]) & (pl.col("root") == "SPXW"))
    assert exp_today["settlement_value"].n_unique() == 1
    assert exp_today["ts_recv"].max() == calendar.expiring_close_ns(DAYS[0])


def _close_spot(truth: pl.DataFrame, root: str, day: dt.date) -> float:
    """The truth's spot at the settlement time of a PM expiry (16:00 ET, 13:00 on half days)."""
    spot = truth.filter(pl.col("ts_recv") == calendar.settlement_ns(root, day))["spot"].unique()
    assert spot.len() == 1
    return float(spot[0])


def test_index_bars_and_settlements_written_and_listed(tmp_path: Path) -> None:
    # a third Friday: SPXW settles at the close, the SPX monthly at the open
    day = dt.date(2024, 3, 15)
    rep = synthesize(day, day, SEED, tmp_path, profile="test")
    truth = _truth(tmp_path, day)
    bars = st.read_partition(tmp_path, "underlying_bars", "SPX", day)
    assert bars is not None and bars.height == 390  # 09:31 .. 16:00, keyed on the minute end
    assert bars["ts"][-1] == calendar.settlement_ns("SPXW", day)
    spot = truth.select("ts_recv", "spot").unique()
    both = bars.join(spot, left_on="ts", right_on="ts_recv", how="left")
    assert both["close"].equals(both["spot"], check_names=False)  # close = the true spot

    rows = settlements.read(tmp_path)
    assert rows.select("root", "expiry", "style", "source").rows() == [
        ("SPX", day, "AM", "index"),
        ("SPXW", day, "PM", "index"),
    ]
    value = dict(zip(rows["root"], rows["value"], strict=True))
    assert value["SPXW"] == _close_spot(truth, "SPXW", day)
    soq = truth.filter((pl.col("root") == "SPX") & (pl.col("expiry") == day))
    soq = soq.filter(pl.col("settlement_value").is_not_nan())
    assert soq.height == 1 and value["SPX"] == soq["settlement_value"][0]
    for root in ("SPXW", "SPX"):
        found = settlements.lookup(tmp_path, root, day)
        assert found is not None and (found.source, found.value) == ("index", value[root])

    man = st.read_manifest(tmp_path)
    assert sorted(man.select("table", "date").rows()) == [
        ("settlements", day),
        ("underlying_bars", day),
    ]
    for table, sha in man.select("table", "file_sha256").iter_rows():
        path = layout.partition_file(tmp_path, table, "SPX", day)
        assert path in rep.files and sha == st.sha256_file(path)

    ingest(None, tmp_path)  # the quotes' parity estimates join the index values, never replace
    rows = settlements.read(tmp_path)
    assert set(rows.select("root", "source").rows()) == {
        (r, s) for r in ("SPX", "SPXW") for s in ("index", "parity_estimate")
    }
    found = settlements.lookup(tmp_path, "SPXW", day)
    assert found is not None and (found.source, found.value) == ("index", value["SPXW"])


def test_half_day_and_weekly_settlements(store: Path) -> None:
    rows = settlements.read(store)
    assert rows.select("root", "expiry", "source").rows() == [
        ("SPXW", d, "index") for d in (*DAYS, HALF_DAY)
    ]  # no monthly among them, so no SPX row
    for d, v in zip(rows["expiry"], rows["value"], strict=True):
        assert v == _close_spot(_truth(store, d), "SPXW", d)
    half = settlements.lookup(store, "SPXW", HALF_DAY)
    assert half is not None and half.source == "index"
    assert dt.datetime.fromtimestamp(half.asof_ts / 1e9, calendar.ET).time() == dt.time(13, 0)


def test_deterministic_and_subrange_identical(store: Path, tmp_path: Path) -> None:
    synthesize(DAYS[1], DAYS[1], SEED, tmp_path, profile="test")
    for schema in layout.RAW_SCHEMAS:
        a = layout.raw_file(store, "SPX", DAYS[1], schema).read_bytes()
        b = layout.raw_file(tmp_path, "SPX", DAYS[1], schema).read_bytes()
        assert a == b, schema
    assert _truth(store, DAYS[1]).equals(_truth(tmp_path, DAYS[1]))
    for table in ("underlying_bars", "settlements"):
        a = layout.partition_file(store, table, "SPX", DAYS[1]).read_bytes()
        assert a == layout.partition_file(tmp_path, table, "SPX", DAYS[1]).read_bytes(), table
    other = tmp_path / "other"
    synthesize(DAYS[1], DAYS[1], SEED + 1, other, profile="test")
    a = layout.raw_file(store, "SPX", DAYS[1], "cbbo-1m").read_bytes()
    assert a != layout.raw_file(other, "SPX", DAYS[1], "cbbo-1m").read_bytes()


def test_bad_arguments_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="underlying"):
        synthesize("2024-03-08", "2024-03-08", 1, tmp_path, underlying="NDX")
    with pytest.raises(InputError, match="seed"):
        synthesize("2024-03-08", "2024-03-08", -1, tmp_path)
    with pytest.raises(InputError, match="profile"):
        synthesize("2024-03-08", "2024-03-08", 1, tmp_path, profile="huge")
    with pytest.raises(InputError, match="epoch"):
        synthesize("2010-03-08", "2010-03-08", 1, tmp_path, profile="test")
    with pytest.raises(InputError, match="moneyness"):
        synthesize("2024-03-08", "2024-03-08", 1, tmp_path, moneyness=5.0)
    assert set(PROFILES) >= {"test", "demo", "full"}


def test_cli_synth(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from quantlab.data.cli import app

    res = CliRunner().invoke(
        app,
        [
            "synth",
            "--start",
            "2024-03-08",
            "--end",
            "2024-03-08",
            "--seed",
            str(SEED),
            "--store",
            str(tmp_path),
            "--profile",
            "test",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "quotes/s" in res.output
    assert layout.raw_file(tmp_path, "SPX", "2024-03-08", "cbbo-1m").exists()


def test_quote_kernel_numba_equals_python() -> None:
    """The compiled kernel and its plain-Python twin give identical quotes (STYLE: arch)."""
    from quantlab.data.synth import _kernels as K
    from quantlab.data.synth import day as D
    from quantlab.data.synth import market as mk
    from quantlab.data.synth.chain import Chain, build_chain

    if not hasattr(K.quote_kernel, "py_func"):
        pytest.skip("numba disabled: the kernel already is plain Python")
    day, p = DAYS[0], MarketParams()
    path = mk.day_path(SEED, day, p)
    full = build_chain(day, PROFILES["test"], mk.skeleton(SEED, day, p), p, SEED)
    sel = np.arange(0, len(full), max(1, len(full) // 12))
    chain = Chain(
        full.expiries,
        full.exp_idx[sel],
        full.strike[sel],
        full.is_call[sel],
        full.instrument_id[sel],
        [full.raw_symbol[i] for i in sel],
        full.open_interest[sel],
    )
    surf = mk.surface(path, [(e.root, e.date) for e in chain.expiries], p)
    tmult, cross_p = D._time_multipliers(path, chain)
    n, n_min = len(sel), len(path.ts)
    ins = (
        np.uint64(12345),
        chain.strike,
        chain.is_call,
        chain.exp_idx,
        np.full(n, n_min, np.int32),
        np.ones(n),
        np.ones(n),
        path.spot,
        surf.forward,
        surf.df,
        surf.T,
        surf.atm,
        surf.beta,
        surf.rho,
        surf.m,
        surf.delta,
        tmult,
        cross_p,
        K.WIDTH_PX,
        K.WIDTH_W,
        K.SIZE_PX,
        K.SIZE_N,
        D.ITM_COEF,
        D.HYSTERESIS_TICKS,
        D.SIZE_CHANGE_P,
    )

    def run(fn):
        outs = [
            np.zeros((n_min, n), t)
            for t in (
                np.int32,
                np.int32,
                np.uint32,
                np.uint32,
                np.bool_,
                np.int32,
                np.uint32,
                np.int32,
            )
        ]
        fn(*ins, *outs)
        return outs

    for a, b in zip(run(K.quote_kernel), run(K.quote_kernel.py_func), strict=True):
        np.testing.assert_array_equal(a, b)


def test_kernel_black76_matches_pricing() -> None:
    from quantlab.data.synth._kernels import black76_nb, smile_vol_nb
    from quantlab.data.synth.market import smile_vol
    from quantlab.pricing import black76_greeks

    rng = np.random.default_rng(0)
    for _ in range(50):
        f, k = 5000.0, float(rng.uniform(4500, 5500))
        t, v, df = float(rng.uniform(1e-4, 0.2)), float(rng.uniform(0.05, 0.6)), 0.99
        call = bool(rng.integers(2))
        price, delta = black76_nb(f, k, t, v, df, call)
        ref = black76_greeks(f, k, t, v, df, call)
        assert price == pytest.approx(float(ref["price"]), rel=1e-12, abs=1e-10)
        # quantlab.pricing's delta is discounted (dV/dF); the kernel's is the forward delta
        assert delta * df == pytest.approx(float(ref["delta"]), abs=1e-10)
        args = (float(rng.normal(0, 0.1)), 0.15, 0.8, -0.8, 0.03, 0.02)
        assert smile_vol_nb(*args) == pytest.approx(float(smile_vol(*args)), rel=1e-14)
