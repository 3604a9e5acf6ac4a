"""Importers (LEAN minute zips, end-of-day chain CSVs) checked against the real files.

Reference values are read straight out of the files in ``shared/data/real`` (see
``shared/data/README.md`` and ``docs/MARKET_FACTS.md`` sections 4 and 6), not copied from our
own output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from quantlab.data import layout, quality, settlements
from quantlab.data import store as st
from quantlab.data.importers import (
    decode_instrument_id,
    import_eod,
    import_lean,
    occ_symbol,
    read_eod,
)
from quantlab.data.importers._common import instrument_ids
from quantlab.errors import DataError, InputError

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
if not REAL.is_dir():
    pytest.skip(f"real market data not found at {REAL}", allow_module_level=True)

LEAN = REAL / "lean"
OPT = LEAN / "indexoption" / "usa" / "minute"
IDX = LEAN / "index" / "usa" / "minute" / "spx"
ET = ZoneInfo("America/New_York")
NS = 1_000_000_000


def et_ns(day: dt.date, h: int, m: int) -> int:
    return int(dt.datetime.combine(day, dt.time(h, m), tzinfo=ET).timestamp()) * NS


def member_rows(zip_path: Path, member: str) -> list[list[str]]:
    with zipfile.ZipFile(zip_path) as zf:
        text = zf.read(member).decode()
    return [line.split(",") for line in text.splitlines() if line.strip()]


def partition_hashes(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("part-0.parquet"))
    }


def ids_by_symbol(store: Path, day: str) -> dict[str, int]:
    inst = st.read_partition(store, "instruments", "SPX", day)
    assert inst is not None
    return dict(zip(inst["raw_symbol"].to_list(), inst["instrument_id"].to_list(), strict=True))


@pytest.fixture(scope="module")
def lean_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    store = tmp_path_factory.mktemp("lean")
    summary = import_lean([LEAN], store)
    return store, summary


@pytest.fixture(scope="module")
def eod_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    store = tmp_path_factory.mktemp("eod")
    out = {
        "hod": import_eod(REAL / "SPXW_2018-01_02_hod.csv", store),
        "datashop": import_eod(REAL / "spxw20190626.csv", store, format="datashop"),
        "wide": import_eod(REAL / "spxw.csv", store),
    }
    return store, out


# ------------------------------------------------------------------------------ LEAN quotes
def test_first_bar_is_keyed_on_its_end(lean_store) -> None:
    store, _ = lean_store
    zp = OPT / "spxw" / "20210104_quote_european.zip"
    row = member_rows(zp, "20210104_spxw_minute_quote_european_call_37000000_20210104.csv")[0]
    assert row[0] == "34200000"  # 09:30:00 ET, the bar's START
    ids = ids_by_symbol(store, "2021-01-04")
    iid = ids["SPXW  210104C03700000"]
    q = st.read_partition(store, "quotes", "SPX", "2021-01-04")
    first = q.filter(pl.col("instrument_id") == iid).sort("ts").row(0, named=True)
    day = dt.date(2021, 1, 4)
    assert first["ts"] == et_ns(day, 9, 31)  # end of the 09:30 bar
    assert first["ts"] == int(dt.datetime(2021, 1, 4, 14, 31, tzinfo=dt.UTC).timestamp()) * NS
    assert first["bid"] == pytest.approx(int(row[4]) / 10_000)  # bid CLOSE
    assert first["ask"] == pytest.approx(int(row[9]) / 10_000)  # ask CLOSE
    assert (first["bid_size"], first["ask_size"]) == (int(row[5]), int(row[10]))
    assert decode_instrument_id(day, iid) == ("SPXW", day, "C", 3700.0)


def test_empty_bid_is_null_and_spx_is_am_monthly(lean_store) -> None:
    store, _ = lean_store
    zp = OPT / "spx" / "20210104_quote_european.zip"
    row = member_rows(zp, "20210104_spx_minute_quote_european_call_42500000_20210115.csv")[0]
    assert row[1:6] == ["", "", "", "", "0"]
    inst = st.read_partition(store, "instruments", "SPX", "2021-01-04")
    spx = inst.filter(pl.col("raw_symbol") == "SPX   210115C04250000").row(0, named=True)
    assert (spx["root"], spx["settlement"], spx["expiry"], spx["strike"], spx["right"]) == (
        "SPX",
        "AM",
        dt.date(2021, 1, 15),
        4250.0,
        "C",
    )
    assert spx["multiplier"] == 100 and spx["underlying"] == "SPX"
    q = st.read_partition(store, "quotes", "SPX", "2021-01-04")
    first = q.filter(pl.col("instrument_id") == spx["instrument_id"]).sort("ts").row(0, named=True)
    assert first["bid"] is None and first["bid_size"] == 0
    assert first["ask"] == pytest.approx(int(row[9]) / 10_000) and first["ask_size"] == int(row[10])
    assert set(inst.filter(pl.col("root") == "SPXW")["settlement"]) == {"PM"}


def test_quote_rows_per_day_match_the_files(lean_store) -> None:
    store, _ = lean_store
    for zp in sorted(OPT.glob("*/*_quote_european.zip")):
        day = dt.datetime.strptime(zp.name[:8], "%Y%m%d").date()
        with zipfile.ZipFile(zp) as zf:
            lines = sum(
                sum(1 for ln in zf.read(n).decode().splitlines() if ln.strip())
                for n in zf.namelist()
            )
        expected = lines
        for other in OPT.glob(f"*/{zp.name}"):
            if other != zp:  # both spx and spxw files on that day land in one partition
                with zipfile.ZipFile(other) as zf:
                    expected += sum(
                        sum(1 for ln in zf.read(n).decode().splitlines() if ln.strip())
                        for n in zf.namelist()
                    )
        quotes = st.read_partition(store, "quotes", "SPX", day)
        quar = st.read_partition(store, "quarantine", "SPX", day)
        assert quotes.height + quar.height == expected, day
        assert quotes.select("instrument_id", "ts").is_duplicated().sum() == 0


def test_crossed_bars_are_kept_like_ingest_keeps_them(lean_store) -> None:
    store, _ = lean_store
    crossed = 0
    for day in st.list_days(store, "quotes", "SPX"):
        q = st.read_partition(store, "quotes", "SPX", day)
        crossed += int((q["bid"] > q["ask"]).sum())
        assert st.read_partition(store, "quarantine", "SPX", day).height == 0
    assert crossed == 56  # MARKET_FACTS section 4: 56 crossed bars, a stale bid carried in


def test_hole_on_2023_06_26_stays_a_hole(lean_store) -> None:
    store, _ = lean_store
    day = dt.date(2023, 6, 26)
    q = st.read_partition(store, "quotes", "SPX", day)
    inside = q.filter((pl.col("ts") > et_ns(day, 10, 29)) & (pl.col("ts") < et_ns(day, 11, 40)))
    assert inside.height == 0
    gaps = q.sort("instrument_id", "ts").with_columns(pl.col("ts").diff().over("instrument_id"))
    assert gaps["ts"].max() == 71 * 60 * NS  # bar ending 10:29, next one ending 11:40
    assert q["ts"].max() == et_ns(day, 17, 0)  # the curb session runs to 16:59 (start)


# ------------------------------------------------------------------------ open interest
def test_open_interest_rows(lean_store) -> None:
    store, _ = lean_store
    ids = ids_by_symbol(store, "2021-01-04")
    oi = st.read_partition(store, "open_interest", "SPX", "2021-01-04")
    spx_zip = OPT / "spx" / "20210104_openinterest_european.zip"
    n_spx = len(zipfile.ZipFile(spx_zip).namelist())
    spxw_zip = OPT / "spxw" / "20210104_openinterest_european.zip.zip"  # doubled suffix
    n_spxw = len(zipfile.ZipFile(spxw_zip).namelist())
    assert oi.height == n_spx + n_spxw == 18
    want = member_rows(
        spx_zip, "20210104_spx_minute_openinterest_european_put_32000000_20210115.csv"
    )
    got = oi.filter(pl.col("instrument_id") == ids["SPX   210115P03200000"]).row(0, named=True)
    assert got["open_interest"] == int(want[-1][1])
    assert got["ts"] == et_ns(dt.date(2021, 1, 4), 6, 30)  # 23,400,000 ms after midnight ET
    want = member_rows(
        spxw_zip, "20210104_spxw_minute_openinterest_european_put_38200000_20210106.csv"
    )
    got = oi.filter(pl.col("instrument_id") == ids["SPXW  210106P03820000"]).row(0, named=True)
    assert got["open_interest"] == int(want[-1][1])
    # the 3820 puts exist only in the OI file; they are still instruments
    assert "SPXW  210104P03820000" in ids


# ----------------------------------------------------------------------- index bars
def test_index_bars_shift_from_us_central(lean_store) -> None:
    store, _ = lean_store
    for name, day, n in (
        ("20210104_trade.zip", dt.date(2021, 1, 4), 411),
        ("20230626_trade.zip", dt.date(2023, 6, 26), 390),
        ("20230703_trade.zip", dt.date(2023, 7, 3), 210),
    ):
        rows = member_rows(IDX / name, f"{name[:8]}_spx_minute_trade.csv")
        assert rows[0][0] == "30600000"  # 08:30 US/Central = the 09:30 ET open
        bars = st.read_partition(store, "underlying_bars", "SPX", day)
        assert bars.height == n == len(rows)
        first = bars.row(0, named=True)
        assert first["ts"] == et_ns(day, 9, 31)  # 08:30 CT bar, stamped at its end
        assert (first["open"], first["close"]) == (float(rows[0][1]), float(rows[0][4]))
        assert first["open"] > 3000  # not scaled by 10,000
    early = st.read_partition(store, "underlying_bars", "SPX", "2023-07-03")
    assert early["ts"].max() == et_ns(dt.date(2023, 7, 3), 13, 0)  # half day


def test_summary_notes_skips(lean_store) -> None:
    _, summary = lean_store
    notes = "\n".join(summary.notes)
    assert "option trade bars are not imported" in notes
    assert "daily/spx.zip" in notes
    assert {d.day for d in summary.days} >= {dt.date(2021, 1, 4), dt.date(2023, 6, 26)}


# ---------------------------------------------------------------- idempotence / merging
def test_lean_import_is_idempotent_and_order_free(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    files = [
        OPT / "spx" / "20210104_quote_european.zip",
        OPT / "spxw" / "20210104_quote_european.zip",
        OPT / "spxw" / "20210104_openinterest_european.zip.zip",
        IDX / "20210104_trade.zip",
    ]
    day = dt.date(2021, 1, 4)
    # one partition per table; ``settlements`` holds the parity estimate of SPXW 2021-01-04
    # (a Monday expiry) from that day's quotes
    tables = {
        "instruments",
        "quotes",
        "quarantine",
        "open_interest",
        "underlying_bars",
        "settlements",
    }
    import_lean(files, a)
    first = partition_hashes(a)
    assert set(first) == {
        str(layout.partition_file(a, t, "SPX", day).relative_to(a)) for t in tables
    }
    import_lean(files, a)
    assert partition_hashes(a) == first
    for f in reversed(files):  # one file per run, other order: merged into the same partitions
        import_lean([f], b)
    assert partition_hashes(b) == first

    def listed(store: Path) -> dict[str, str]:
        man = st.read_manifest(store).filter(pl.col("date") == day)
        assert man.height == len(tables), man  # one manifest row per partition, none repeated
        return dict(zip(man["table"], man["file_sha256"], strict=True))

    assert set(listed(a)) == tables
    assert listed(a) == listed(b)
    est = settlements.read(a)
    assert est.select("root", "expiry", "source").rows() == [("SPXW", day, "parity_estimate")]
    assert est.equals(settlements.read(b))


def test_refuses_to_merge_into_non_imported_partition(tmp_path: Path) -> None:
    empty = pl.DataFrame(schema=st.INSTRUMENTS_SCHEMA)
    st.write_partition(tmp_path, "instruments", "SPX", "2021-01-04", empty, source="ingest:dbn")
    with pytest.raises(DataError, match="not by an importer"):
        import_lean([OPT / "spx" / "20210104_quote_european.zip"], tmp_path)


def test_lean_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        import_lean([tmp_path / "nope.zip"], tmp_path)
    odd = tmp_path / "notes.zip"
    odd.write_bytes(b"")
    with pytest.raises(InputError, match="not a LEAN daily minute zip"):
        import_lean([odd], tmp_path)
    bad = tmp_path / "20210104_quote_european.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("20210105_spxw_minute_quote_european_call_37000000_20210106.csv", "1,2\n")
    bad.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="dated 2021-01-05 but the zip is for 2021-01-04"):
        import_lean([bad], tmp_path / "s")


# ------------------------------------------------------------------------------ EOD
def test_hod_bom_and_leading_space_header(eod_store) -> None:
    raw = (REAL / "SPXW_2018-01_02_hod.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b", exchange," in raw[:100]
    _, snap, fmt, _ = read_eod(REAL / "SPXW_2018-01_02_hod.csv")
    assert fmt == "hod" and snap == dt.time(16, 0)
    store, out = eod_store
    counts = {d.day: d.quotes for d in out["hod"].days}
    assert len(counts) == 40
    assert counts[dt.date(2018, 1, 2)] == 330 and counts[dt.date(2018, 1, 5)] == 342
    # first data line: SPXW,2695.79,W,SPXW180131C01200000,,call,01/31/2018,01/02/2018,1200,
    #                  1395.46,1483.6,1503.2,0,6007,...
    ids = ids_by_symbol(store, "2018-01-02")
    iid = ids["SPXW  180131C01200000"]
    q = st.read_partition(store, "quotes", "SPX", "2018-01-02").filter(
        pl.col("instrument_id") == iid
    )
    assert q.rows() == [(et_ns(dt.date(2018, 1, 2), 16, 0), iid, 1483.6, 1503.2, 0, 0)]
    oi = st.read_partition(store, "open_interest", "SPX", "2018-01-02")
    assert oi.filter(pl.col("instrument_id") == iid)["open_interest"].to_list() == [6007]
    expiries = set()
    for d in counts:
        expiries |= set(st.read_partition(store, "instruments", "SPX", d)["expiry"].to_list())
    assert expiries == {dt.date(2018, 1, 31), dt.date(2018, 2, 28)}


def test_hod_zero_prices(eod_store) -> None:
    store, _ = eod_store
    raw = pl.read_csv(REAL / "SPXW_2018-01_02_hod.csv", infer_schema_length=0)
    zero_ask = raw.filter(pl.col("ask").cast(pl.Float64) == 0).height
    zero_bid = raw.filter(pl.col("bid").cast(pl.Float64) == 0).height
    nulls_ask = nulls_bid = zeros_bid = 0
    for day in st.list_days(store, "quotes", "SPX"):
        if day.year == 2018:
            q = st.read_partition(store, "quotes", "SPX", day)
            nulls_ask += q["ask"].null_count()
            nulls_bid += q["bid"].null_count()
            zeros_bid += int((q["bid"] == 0).sum())
    assert (zero_bid, zero_ask) == (1902, 15)
    # an ask of 0 is no offer -> null, with its 0 bid; other 0 bids stay 0.0 (a zero bid)
    assert (nulls_bid, nulls_ask, zeros_bid) == (15, 15, 1902 - 15)


def test_datashop_1545_snapshot(eod_store) -> None:
    store, out = eod_store
    day = dt.date(2019, 6, 26)
    assert [d.quotes for d in out["datashop"].days] == [10384]
    ids = ids_by_symbol(store, "2019-06-26")
    q = st.read_partition(store, "quotes", "SPX", day)
    assert set(q["ts"]) == {et_ns(day, 15, 45)}
    # 2019-06-26,2019-06-26,1700,C,78,1209.1,78,1229.2,...  and  ...,1700,P,0,0,1699,0.05,...,24
    call = q.filter(pl.col("instrument_id") == ids["SPXW  190626C01700000"]).row(0)
    assert call[2:] == (1209.1, 1229.2, 78, 78)
    put = q.filter(pl.col("instrument_id") == ids["SPXW  190626P01700000"]).row(0)
    assert put[2:] == (0.0, 0.05, 0, 1699)  # a zero bid is kept as 0.0
    oi = st.read_partition(store, "open_interest", "SPX", day)
    assert (
        oi.filter(pl.col("instrument_id") == ids["SPXW  190626P01700000"])["open_interest"][0] == 24
    )
    inst = st.read_partition(store, "instruments", "SPX", day)
    assert inst["expiry"].n_unique() == 30 and set(inst["root"]) == {"SPXW"}


def test_wide_duplicate_block_is_quarantined(eod_store) -> None:
    store, out = eod_store
    day = dt.date(2025, 9, 3)
    raw = pl.read_csv(REAL / "spxw.csv", infer_schema_length=0)
    dup_rows = raw.filter(pl.struct("Date", "ExpDate", "Strike").is_duplicated())
    assert set(dup_rows["ExpDate"]) == {"2025-09-10"} and dup_rows.height == 352
    inst = st.read_partition(store, "instruments", "SPX", day)
    q = st.read_partition(store, "quotes", "SPX", day)
    quar = st.read_partition(store, "quarantine", "SPX", day)
    assert inst.height == q.height == 2 * raw.height - 352
    assert quar.height == 352 and set(quar["reason"]) == {"duplicate_block"}
    assert set(q["ts"]) == {et_ns(day, 16, 0)}  # no time in the file: 16:00 ET assumed
    notes = "\n".join(out["wide"].notes)
    assert "352 repeated SPXW 2025-09-10 contract rows (file lines 656-831" in notes
    # first block kept: 2025-09-03,2025-09-10,2600,...,PutBid 0,PutAsk 0.05,... (file line 480)
    first = raw.filter(pl.col("ExpDate") == "2025-09-10").row(0, named=True)
    ids = ids_by_symbol(store, "2025-09-03")
    put = q.filter(pl.col("instrument_id") == ids["SPXW  250910P02600000"]).row(0, named=True)
    assert put["ask"] == float(first["PutAsk"])
    dup = quar.filter(pl.col("instrument_id") == ids["SPXW  250910P02600000"]).row(0, named=True)
    second = raw.filter(pl.col("ExpDate") == "2025-09-10").row(176, named=True)  # line 656
    assert (dup["ask"], dup["ts"]) == (float(second["PutAsk"]), et_ns(day, 16, 0))


def test_datashop_request_on_wide_file_reads_it_as_wide(tmp_path: Path) -> None:
    summary = import_eod(REAL / "spxw.csv", tmp_path, format="datashop")
    assert summary.source == "import:eod:wide"
    assert any("read as 'wide'" in n for n in summary.notes)


def test_wide_relabel_policy(tmp_path: Path) -> None:
    summary = import_eod(REAL / "spxw.csv", tmp_path, duplicates="relabel")
    inst = st.read_partition(tmp_path, "instruments", "SPX", "2025-09-03")
    assert inst.filter(pl.col("expiry") == dt.date(2025, 9, 11)).height == 352
    assert st.read_partition(tmp_path, "quarantine", "SPX", "2025-09-03").height == 0
    assert any("as expiry 2025-09-11" in n for n in summary.notes)


def test_eod_import_is_idempotent(tmp_path: Path) -> None:
    import_eod(REAL / "spxw.csv", tmp_path)
    first = partition_hashes(tmp_path)
    import_eod(REAL / "spxw.csv", tmp_path)
    assert partition_hashes(tmp_path) == first and len(first) == 4


def test_eod_underlying_price_is_the_settlement_until_official_values_arrive(
    eod_store, tmp_path: Path
) -> None:
    store = Path(shutil.copytree(eod_store[0], tmp_path / "store"))
    closes = {dt.date(2018, 1, 31): 2823.81, dt.date(2018, 2, 28): 2713.83}  # Cboe SPX closes
    for day, close in closes.items():  # the file's 16:00 underlying price, within 0.15
        found = settlements.lookup(store, "SPXW", day)
        assert found is not None and found.source == "vendor_underlying"
        assert abs(found.value - close) <= 0.15, found
    gaps = quality.settlement_gaps(store).filter(pl.col("expiry").is_in(list(closes)))
    assert gaps.select("root", "best_source").rows() == [("SPXW", "vendor_underlying")] * 2
    official = tmp_path / "official.csv"
    official.write_text(
        "root,expiry,value\n" + "".join(f"SPXW,{d},{v}\n" for d, v in closes.items())
    )
    settlements.import_csv(store, official)
    for day, close in closes.items():
        found = settlements.lookup(store, "SPXW", day)
        assert found is not None and (found.source, found.value) == ("official", close)
    assert quality.settlement_gaps(store).filter(pl.col("expiry").is_in(list(closes))).is_empty()


def test_eod_errors(tmp_path: Path) -> None:
    anon = tmp_path / "chain.csv"
    shutil.copy(REAL / "spxw.csv", anon)
    with pytest.raises(InputError, match="pass root="):
        import_eod(anon, tmp_path / "s")
    with pytest.raises(InputError, match="looks like the 'wide' layout"):
        import_eod(anon, tmp_path / "s", format="hod", root="SPXW")
    with pytest.raises(InputError, match="duplicates must be"):
        import_eod(anon, tmp_path / "s", duplicates="drop")
    bad = tmp_path / "spxw_bad.csv"
    bad.write_text(
        "Date,ExpDate,Strike,CallBid,CallAsk,PutBid,PutAsk\n2025-09-03,2025-09-10,6400,abc,1,1,2\n"
    )
    with pytest.raises(DataError, match="'CallBid' has 'abc' on line 2"):
        import_eod(bad, tmp_path / "s")


# ------------------------------------------------------------------------- ids / CLI
@given(
    root=hs.sampled_from(["SPX", "SPXW"]),
    right=hs.sampled_from(["C", "P"]),
    dte=hs.integers(0, 4095),
    strike8=hs.integers(1, (1 << 18) - 1),
)
def test_instrument_id_round_trip(root: str, right: str, dte: int, strike8: int) -> None:
    day = dt.date(2024, 3, 15)
    expiry = day + dt.timedelta(days=dte)
    ids = instrument_ids(
        day,
        pl.Series([root]),
        pl.Series([expiry]),
        pl.Series([right]),
        pl.Series([strike8 / 8]),
    )
    assert decode_instrument_id(day, ids[0]) == (root, expiry, right, strike8 / 8)


def test_occ_symbol() -> None:
    assert occ_symbol("SPXW", dt.date(2024, 1, 19), "P", 4700) == "SPXW  240119P04700000"
    assert occ_symbol("SPX", dt.date(2021, 1, 15), "C", 3212.5) == "SPX   210115C03212500"


def test_cli_import_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from quantlab.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "data",
            "import-lean",
            str(OPT / "spxw" / "20230626_quote_european.zip"),
            "--store",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "2023-06-26: 4 instruments, 1501 quotes" in res.output
    res = runner.invoke(
        app,
        [
            "data",
            "import-eod",
            str(REAL / "spxw20190626.csv"),
            "--format",
            "datashop",
            "--store",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "15:45 ET" in res.output
    assert layout.partition_file(tmp_path, "quotes", "SPX", "2019-06-26").is_file()
    res = runner.invoke(
        app,
        ["data", "import-eod", str(REAL / "spxw.csv"), "--format", "hod", "--store", str(tmp_path)],
    )
    assert res.exit_code == 1 and "error:" in res.output
