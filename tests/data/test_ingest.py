"""DBN -> Parquet ingest: real Databento files (DBN v2 and v3), hand-made edge cases, atomicity.

Hand-made DBN files are written with databento_dbn's own record layouts (``Msg._dtypes``) and
``Metadata.encode()``, then read back through ``databento.DBNStore`` like any download.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from quantlab import calendar, pricing
from quantlab.calendar import et_dates
from quantlab.data import layout, read
from quantlab.data import store as st
from quantlab.data.ingest import ingest
from quantlab.data.synth import true_vol
from quantlab.errors import DataError
from tests.conftest import TEST_WEEK, SyntheticStore

REPO = Path(__file__).resolve().parents[2]
DBN_ROOT = REPO / ".." / "shared" / "data" / "databento"
V3 = DBN_ROOT / "OPRA.PILLAR"
V2 = DBN_ROOT / "OPRA.PILLAR_v2_2023"
NS = 1_000_000_000
UNDEF_PRICE = np.iinfo(np.int64).max


def _need_real() -> None:
    if not V3.is_dir() or not V2.is_dir():
        pytest.skip(f"real Databento test files not found under {DBN_ROOT}")


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a store (Parquet only) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*.parquet"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- DBN writer


def write_dbn(path: Path, schema: str, records: list[dict], *, version: int = 3) -> Path:
    """Encode ``records`` (field -> value dicts) as a .dbn.zst file of ``schema``."""
    import databento_dbn as dbn
    import zstandard

    cls = {"definition": dbn.InstrumentDefMsg, "cbbo-1m": dbn.CBBOMsg, "statistics": dbn.StatMsg}[
        schema
    ]
    dtype = np.dtype(cls._dtypes)
    arr = np.zeros(len(records), dtype=dtype)
    arr["length"] = dtype.itemsize // 4
    arr["rtype"] = int(dbn.RType.from_schema(dbn.Schema.from_str(schema)))
    arr["publisher_id"] = 30
    if schema == "definition":
        arr["contract_multiplier"] = np.iinfo(np.int32).max
        arr["strike_price"] = UNDEF_PRICE
    if schema == "cbbo-1m":
        arr["price"] = UNDEF_PRICE
        arr["bid_px_00"] = arr["ask_px_00"] = UNDEF_PRICE
    if schema == "statistics":
        arr["price"] = UNDEF_PRICE
        arr["stat_type"] = 9
    for i, rec in enumerate(records):
        for k, v in rec.items():
            arr[k][i] = v
    meta = dbn.Metadata(
        dataset="OPRA.PILLAR",
        schema=dbn.Schema.from_str(schema),
        start=0,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        end=1,
        symbols=[],
        partial=[],
        not_found=[],
        mappings=[],
        version=version,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(bytes(meta.encode()) + arr.tobytes()))
    return path


def et_ns(day: dt.date, hh: int, mm: int, ss: int = 0) -> int:
    from zoneinfo import ZoneInfo

    t = dt.datetime.combine(day, dt.time(hh, mm, ss), tzinfo=ZoneInfo("America/New_York"))
    return read.to_ns(t)


def occ(root: str, expiry: dt.date, right: str, strike: float) -> str:
    return f"{root:<6}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"


def make_day(
    raw: Path,
    day: dt.date,
    *,
    n_strikes: int = 3,
    seed: int = 0,
    extra_quotes: list[dict] | None = None,
) -> dict[int, str]:
    """Definition, cbbo-1m and statistics files of one SPX session at the layout paths."""
    rng = np.random.default_rng(seed)
    defs, quotes, stats = [], [], []
    ids: dict[int, str] = {}
    iid = 100
    for root, expiry in (("SPXW", day), ("SPX", day + dt.timedelta(days=30))):
        for k in range(n_strikes):
            for right in "CP":
                strike = 4700.0 + 5 * k
                sym = occ(root, expiry, right, strike)
                ids[iid] = sym
                defs.append(
                    {
                        "instrument_id": iid,
                        "ts_recv": et_ns(day, 6, 30),
                        "ts_event": et_ns(day, 6, 30),
                        "raw_symbol": sym.encode(),
                        "underlying": b"SPX",
                        "instrument_class": right.encode(),
                        "strike_price": int(strike * NS),
                        "expiration": int(np.datetime64(expiry, "ns").astype(np.int64)),
                    }
                )
                for pub in (22, 31):  # OI repeated per publisher
                    stats.append(
                        {
                            "instrument_id": iid,
                            "ts_recv": et_ns(day, 6, 31),
                            "ts_event": et_ns(day, 6, 31),
                            "quantity": 1000 + iid,
                            "publisher_id": pub,
                        }
                    )
                for m in range(0, 30, 3):
                    end = et_ns(day, 9, 31 + m)
                    bid = round(float(rng.uniform(1, 20)), 2)
                    quotes.append(
                        {
                            "instrument_id": iid,
                            "ts_recv": end,
                            "ts_event": end - 25 * NS,
                            "bid_px_00": round(bid * 100) * 10_000_000,
                            "ask_px_00": round((bid + 0.2) * 100) * 10_000_000,
                            "bid_sz_00": 10,
                            "ask_sz_00": 12,
                        }
                    )
                iid += 1
    quotes += extra_quotes or []
    quotes.sort(key=lambda r: r["ts_recv"])
    write_dbn(layout.raw_file(raw, "SPX", day, "definition"), "definition", defs)
    write_dbn(layout.raw_file(raw, "SPX", day, "cbbo-1m"), "cbbo-1m", quotes)
    write_dbn(layout.raw_file(raw, "SPX", day, "statistics"), "statistics", stats)
    return ids


DAYS = (dt.date(2024, 3, 13), dt.date(2024, 3, 14), dt.date(2024, 3, 15))


@pytest.fixture(scope="session")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_real()
    root = tmp_path_factory.mktemp("real_store")
    ingest([V3, V2], root)
    return root


@pytest.fixture(scope="session")
def raw_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder holding only raw DBN files for three sessions (copy before ingesting)."""
    root = tmp_path_factory.mktemp("raw_days")
    for i, d in enumerate(DAYS):
        make_day(root, d, seed=i)
    return root


@pytest.fixture(scope="session")
def reference_store(raw_days: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reference") / "store"
    shutil.copytree(raw_days / "raw", root / "raw")
    ingest(None, root)
    return root


# --------------------------------------------------------------------------- real files


def test_real_definition_v3(real_store: Path) -> None:
    inst = st.read_partition(real_store, "instruments", "AAPL", "2025-02-20")
    assert inst is not None and inst.height == 1
    row = inst.row(0, named=True)
    assert row["raw_symbol"] == "AAPL  250221C00250000"
    assert row["root"] == "AAPL" and row["underlying"] == "AAPL"
    assert row["strike"] == 250.0 and row["right"] == "C"
    assert row["expiry"] == dt.date(2025, 2, 21)
    assert row["multiplier"] == 100 and row["settlement"] == "PM"
    assert row["instrument_id"] == 16783963


def test_real_definition_v2(real_store: Path) -> None:
    inst = st.read_partition(real_store, "instruments", "AAPL", "2023-03-28")
    assert inst is not None
    row = inst.row(0, named=True)
    assert row["raw_symbol"] == "AAPL  230331C00157500"
    assert (row["strike"], row["right"], row["expiry"]) == (157.5, "C", dt.date(2023, 3, 31))


def test_real_cbbo_values_and_time_key(real_store: Path) -> None:
    import databento as db

    arr = db.DBNStore.from_file(V3 / "test_data.cbbo-1m.dbn.zst").to_ndarray()
    q = st.read_partition(real_store, "quotes", "AAPL", "2025-02-20")
    assert q is not None and q.height == arr.size == 4
    # ts is ts_recv (end of the minute), never ts_event
    assert q["ts"].to_list() == arr["ts_recv"].astype(np.int64).tolist()
    assert (q["ts"].to_numpy() % (60 * NS) == 0).all()
    first = q.row(0, named=True)
    assert first["bid"] is None and first["ask"] is None  # undefined prices -> null
    assert q["bid"].to_list()[1:] == [0.32, 0.43, 0.34]
    assert q["ask"].to_list()[1:] == [0.34, 0.45, 0.36]
    assert q["bid_size"].to_list()[1:] == [104, 1, 62]


def test_real_open_interest_deduplicated(real_store: Path) -> None:
    for day, iid, oi in (("2025-02-20", 16783963, 57924), ("2023-03-28", 2142, 10181)):
        df = st.read_partition(real_store, "open_interest", "AAPL", day)
        assert df is not None
        assert df["instrument_id"].to_list() == [iid]  # 4 publisher records -> 1 row
        assert df["open_interest"].to_list() == [oi]


def test_real_manifest_and_skip(real_store: Path) -> None:
    files = st.read_manifest(real_store, "raw_files")
    assert set(files["schema"]) == {"definition", "cbbo-1m", "statistics"}
    assert set(files["dbn_version"]) == {2, 3}
    assert files.filter(pl.col("schema") == "cbbo-1m")["records"].to_list() == [4]
    assert files["sha256"].str.len_chars().to_list() == [64] * files.height
    again = ingest([V3, V2], real_store)
    assert again.ingested == [] and len(again.skipped) == files.height
    assert any("tbbo" in why for _, why in again.ignored)


def test_real_duckdb_views(real_store: Path) -> None:
    con = st.connect(real_store)
    n, oi = con.execute(
        "SELECT count(*), max(o.open_interest) FROM quotes q JOIN open_interest o "
        "USING (underlying, date, instrument_id) WHERE underlying = 'AAPL'"
    ).fetchone()
    assert (n, oi) == (4, 57924)
    assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)


def test_et_dates_across_dst() -> None:
    ts = np.array(
        [
            et_ns(dt.date(2024, 3, 8), 23, 59),
            et_ns(dt.date(2024, 3, 11), 0, 1),
            et_ns(dt.date(2024, 11, 4), 19, 30),
        ]
    )
    assert et_dates(ts).astype(object).tolist() == [
        dt.date(2024, 3, 8),
        dt.date(2024, 3, 11),
        dt.date(2024, 11, 4),
    ]


# --------------------------------------------------------------------------- corrupt input


@pytest.mark.parametrize("kind", ["zst", "dbn"])
def test_truncated_file_raises_and_leaves_store(
    real_store: Path, tmp_path: Path, kind: str
) -> None:
    import zstandard

    store = tmp_path / "store"
    shutil.copytree(real_store, store)
    before = _files(store)
    src = (V3 / "test_data.cbbo-1m.dbn.zst").read_bytes()
    bad_dir = tmp_path / "in"
    bad_dir.mkdir()
    (bad_dir / "good.definition.dbn.zst").write_bytes(
        (V3 / "test_data.definition.dbn.zst").read_bytes()
    )
    if kind == "zst":
        bad = bad_dir / "bad.cbbo-1m.dbn.zst"
        bad.write_bytes(src[: len(src) - 40])
    else:
        raw = zstandard.ZstdDecompressor().stream_reader(src).read()
        bad = bad_dir / "bad.cbbo-1m.dbn"
        bad.write_bytes(raw[: len(raw) - 30])  # cut inside the last record
    with pytest.raises(DataError, match=r"bad\.cbbo-1m"):
        ingest([bad_dir], store, force=True)
    assert _files(store) == before


def test_garbage_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "x.dbn"
    bad.write_bytes(b"not a dbn file at all" * 10)
    with pytest.raises(DataError, match=r"x\.dbn"):
        ingest([bad], tmp_path / "store")


# --------------------------------------------------------------------------- hand-made days


def test_handmade_ingest_contents(reference_store: Path) -> None:
    assert st.list_days(reference_store, "quotes", "SPX") == list(DAYS)
    inst = st.read_partition(reference_store, "instruments", "SPX", DAYS[0])
    assert inst is not None and inst.height == 12
    assert set(zip(inst["root"], inst["settlement"], strict=True)) == {
        ("SPXW", "PM"),
        ("SPX", "AM"),
    }
    oi = st.read_partition(reference_store, "open_interest", "SPX", DAYS[0])
    assert oi is not None and oi.height == 12  # two publishers -> one row each
    assert (oi["open_interest"] == oi["instrument_id"].cast(pl.Int64) + 1000).all()
    q = st.read_partition(reference_store, "quotes", "SPX", DAYS[0])
    assert q is not None and q.height == 12 * 10
    assert st.read_partition(reference_store, "quarantine", "SPX", DAYS[0]) is None


def test_idempotent_byte_identical(reference_store: Path, raw_days: Path, tmp_path: Path) -> None:
    ref = _files(reference_store)
    # a second store from the same raw files
    other = tmp_path / "other"
    shutil.copytree(raw_days / "raw", other / "raw")
    rep = ingest(None, other)
    assert len(rep.ingested) == 9
    assert _files(other) == ref
    # forced re-ingest over an existing store
    rep = ingest(None, other, force=True)
    assert len(rep.ingested) == 9
    assert _files(other) == ref
    # nothing new: everything skipped, nothing written
    rep = ingest(None, other)
    assert rep.ingested == [] and rep.partitions == [] and len(rep.skipped) == 9


def test_definitions_then_quotes_in_separate_runs(
    raw_days: Path, reference_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s"
    shutil.copytree(raw_days / "raw", store / "raw")
    d = DAYS[1]
    ingest([layout.raw_file(store, "SPX", d, "definition")], store)
    rep = ingest([layout.raw_file(store, "SPX", d, "cbbo-1m")], store)
    assert rep.quarantined == {}
    q = st.read_partition(store, "quotes", "SPX", d)
    assert q is not None and q.equals(st.read_partition(reference_store, "quotes", "SPX", d))


def test_quarantine_and_kept_states(tmp_path: Path) -> None:
    d = dt.date(2024, 3, 20)
    m = et_ns(d, 10, 0)
    extra = [
        {"instrument_id": 999, "ts_recv": m, "bid_px_00": NS, "ask_px_00": 2 * NS},  # unknown
        {"instrument_id": 100, "ts_recv": m, "bid_px_00": -NS, "ask_px_00": NS},  # negative
        {"instrument_id": 101, "ts_recv": m, "bid_px_00": 2 * NS, "ask_px_00": NS},  # crossed
        {"instrument_id": 102, "ts_recv": m, "bid_px_00": 0, "ask_px_00": NS // 20},  # zero bid
        {"instrument_id": 103, "ts_recv": m, "bid_px_00": NS, "ask_px_00": NS},  # locked
        {"instrument_id": 104, "ts_recv": m, "bid_px_00": NS, "ask_px_00": 2 * NS},
        {"instrument_id": 104, "ts_recv": m, "bid_px_00": 3 * NS, "ask_px_00": 4 * NS},  # dup
    ]
    make_day(tmp_path, d, extra_quotes=extra)
    rep = ingest(None, tmp_path)
    assert rep.quarantined == {"duplicate": 1, "negative_price": 1, "no_definition": 1}
    qr = st.read_partition(tmp_path, "quarantine", "SPX", d)
    assert qr is not None
    by = {r["reason"]: r for r in qr.iter_rows(named=True)}
    assert by["no_definition"]["instrument_id"] == 999 and by["no_definition"]["bid"] == 1.0
    assert by["negative_price"]["bid"] == -1.0
    assert by["duplicate"]["bid"] == 1.0  # the first of the two was set aside
    q = st.read_partition(tmp_path, "quotes", "SPX", d)
    assert q is not None
    at = {r["instrument_id"]: r for r in q.filter(pl.col("ts") == m).iter_rows(named=True)}
    assert (at[101]["bid"], at[101]["ask"]) == (2.0, 1.0)  # crossed kept
    assert at[102]["bid"] == 0.0 and at[103]["bid"] == at[103]["ask"] == 1.0
    assert at[104]["bid"] == 3.0  # last record of the repeated minute kept
    assert 999 not in q["instrument_id"].to_list()


def test_quote_time_is_minute_end_not_ts_event(tmp_path: Path) -> None:
    """cbbo-1m ts_recv (minute end) keys the quote; a snapshot just before it must not see it."""
    d = dt.date(2024, 3, 21)
    end = et_ns(d, 11, 0)
    extra = [
        {
            "instrument_id": 100,
            "ts_recv": end,
            "ts_event": end - 45 * NS,
            "bid_px_00": 77 * NS,
            "ask_px_00": 78 * NS,
            "bid_sz_00": 1,
            "ask_sz_00": 1,
        }
    ]
    make_day(tmp_path, d, extra_quotes=extra)
    ingest(None, tmp_path)
    q = st.read_partition(tmp_path, "quotes", "SPX", d)
    assert q is not None
    assert q.filter(pl.col("bid") == 77.0)["ts"].to_list() == [end]
    for t in (end - 45 * NS, end - 1):  # at the last trade, and 1 ns before the minute ends
        row = read.chain_at(tmp_path, "SPX", t).filter(pl.col("instrument_id") == 100)
        assert row["bid"].item() != 77.0
    row = read.chain_at(tmp_path, "SPX", end).filter(pl.col("instrument_id") == 100)
    assert row["bid"].item() == 77.0 and row["age_s"].item() == 0.0


def test_kill_mid_ingest_leaves_whole_partitions(
    raw_days: Path, reference_store: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    store = tmp_path / "store"
    shutil.copytree(raw_days / "raw", store / "raw")
    # the child slows every partition write down (a wrapper installed by this test's code, not
    # a hook in production code) so that it can be killed between two writes
    code = (
        "import time\n"
        "from quantlab.data import store as st\n"
        "from quantlab.data.ingest import ingest\n"
        "write = st.write_partition\n"
        "def slow(*args, **kwargs):\n"
        "    path = write(*args, **kwargs)\n"
        "    time.sleep(0.4)\n"
        "    return path\n"
        "st.write_partition = slow\n"
        f"ingest(None, {str(store)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if len(list((store / "parquet").rglob("part-0.parquet"))) >= 3:
                break
            if proc.poll() is not None:
                pytest.fail("ingest finished before it could be killed")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    written = list(store.rglob("part-0.parquet"))
    assert 3 <= len(written) < len(_files(reference_store))
    ref = _files(reference_store)
    for p in written:  # every partition present is whole and identical to a clean run's
        pq.read_table(p)
        assert p.read_bytes() == ref[str(p.relative_to(store))]
    rep = ingest(None, store)  # rerun completes the job
    assert rep.ingested
    assert _files(store) == ref
    assert not list(store.rglob("*.tmp"))


# --------------------------------------------------------------------------- synthetic market


@pytest.fixture(scope="session")
def synth_store(synthetic_store: SyntheticStore) -> Path:
    """The shared synthetic "test" week (read only)."""
    root = synthetic_store(**TEST_WEEK)
    days = calendar.sessions(TEST_WEEK["start"], TEST_WEEK["end"])
    assert st.list_days(root, "quotes", "SPX") == days
    return root


# the first session after the switch to daylight saving time, and a monthly expiry day
@pytest.mark.parametrize("day", [dt.date(2024, 3, 11), dt.date(2024, 3, 15)])
def test_synthetic_round_trip_forward_and_vol(synth_store: Path, day: dt.date) -> None:
    """Parity forwards and OTM mid vols from the ingested chain match the generator's truth."""
    truth = pl.read_parquet(layout.truth_file(synth_store, "SPX", day))
    minutes = read.load_day(synth_store, "SPX", day).minutes()
    checked = 0
    for m in (45, 250):
        ts = int(minutes[m])
        snap = read.chain_at(synth_store, "SPX", ts)
        for (root, expiry), g in snap.group_by(["root", "expiry"]):
            tr = truth.filter(
                (pl.col("ts_recv") == ts) & (pl.col("root") == root) & (pl.col("expiry") == expiry)
            )
            assert tr.height == 1, (root, expiry)
            T, df, F = tr["T"][0], tr["df"][0], tr["forward"][0]
            pairs = g.filter(pl.col("right") == "C").join(
                g.filter(pl.col("right") == "P"), on="strike", suffix="_p"
            )
            fit = pricing.implied_forward(
                pairs["strike"],
                pairs["bid"],
                pairs["ask"],
                pairs["bid_p"],
                pairs["ask_p"],
                T,
                r=-np.log(df) / T,
            )
            assert abs(fit.forward - F) < 0.05, (root, expiry, fit.forward, F)
            otm = g.filter(
                (pl.col("bid") > 0)
                & (pl.col("ask") - pl.col("bid") < 1.0)
                & (
                    ((pl.col("right") == "C") & (pl.col("strike") >= F))
                    | ((pl.col("right") == "P") & (pl.col("strike") < F))
                )
            )
            mid = ((otm["bid"] + otm["ask"]) / 2).to_numpy()
            iv = pricing.implied_vol(
                mid, F, otm["strike"].to_numpy(), T, df, (otm["right"] == "C").to_numpy()
            )
            err = np.abs(iv - true_vol(tr, otm["strike"].to_numpy()))
            assert np.nanmedian(err) < 0.002 and np.nanmax(err[mid > 1.0]) < 0.005
            checked += 1
    assert checked >= 4


def test_vanished_raw_file_keeps_its_rows(raw_days: Path, tmp_path: Path) -> None:
    store = tmp_path / "s"
    d = DAYS[2]
    shutil.copytree(raw_days / "raw", store / "raw")
    ingest(None, store)
    before = st.read_partition(store, "quotes", "SPX", d)
    assert before is not None
    new = {
        "instrument_id": 100,
        "ts_recv": et_ns(d, 15, 0),
        "bid_px_00": 5 * NS,
        "ask_px_00": 6 * NS,
    }
    layout.raw_file(store, "SPX", d, "cbbo-1m").unlink()  # the old file is gone ...
    extra = write_dbn(store / "raw" / "more" / "extra.cbbo-1m.dbn.zst", "cbbo-1m", [new])
    rep = ingest([extra], store)  # ... and a file with one more quote arrives
    assert len(rep.ingested) == 1
    after = st.read_partition(store, "quotes", "SPX", d)
    assert after is not None and after.height == before.height + 1
    assert after.filter(pl.col("ts") == new["ts_recv"])["bid"].to_list() == [5.0]


def test_fixed_file_removes_stale_quarantine(tmp_path: Path) -> None:
    d = dt.date(2024, 3, 22)
    bad = [{"instrument_id": 999, "ts_recv": et_ns(d, 10, 0), "bid_px_00": NS, "ask_px_00": NS}]
    make_day(tmp_path, d, extra_quotes=bad)
    ingest(None, tmp_path)
    assert st.read_partition(tmp_path, "quarantine", "SPX", d) is not None
    make_day(tmp_path, d)  # the same day without the bad record (same definitions)
    rep = ingest(None, tmp_path)
    assert rep.quarantined == {}
    assert st.read_partition(tmp_path, "quarantine", "SPX", d) is None
    copy = tmp_path / "copy.dbn.zst"  # a copy of an ingested file is skipped
    shutil.copy(layout.raw_file(tmp_path, "SPX", d, "cbbo-1m"), copy)
    assert ingest([copy], tmp_path).skipped == [copy.resolve()]
