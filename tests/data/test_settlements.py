"""Official settlement values through the CLI (``quantlab data import-settlements``) and the
settlement section of ``quantlab data check``, on one tiny synthetic day.

The stores: the shared synthetic "test" week, which ends on 2024-03-15 (a third Friday: SPXW
settles at the close, the SPX monthly at the open), its DBN files ingested (a) into the
synthetic store itself, which then holds ``index`` values, and (b, the files of 03-15 only)
into a store of its own, which holds only the ``parity_estimate`` values ingest derives from
the quotes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from quantlab.data import layout, quality, settlements
from quantlab.data import store as st
from quantlab.data.cli import app
from quantlab.data.ingest import ingest
from tests.conftest import TEST_WEEK, SyntheticStore

DAY = dt.date(2024, 3, 15)  # the last session of TEST_WEEK


@pytest.fixture(scope="module")
def stores(
    synthetic_store: SyntheticStore, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    synth = synthetic_store(**TEST_WEEK)  # shared: read only
    parity = tmp_path_factory.mktemp("parity")
    ingest([layout.raw_day_dir(synth, "SPX", DAY)], parity)
    return {"synth": synth, "parity": parity}


@pytest.fixture
def parity_store(stores: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the store holding parity estimates only (tests write into it)."""
    return Path(shutil.copytree(stores["parity"], tmp_path / "store"))


def _files(store: Path) -> dict[str, str]:
    """sha256 of every file in the store (Parquet partitions and the manifest)."""
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and "locks" not in p.parts
    }


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


# ------------------------------------------------------------------ import-settlements


def test_import_settlements_overrides_parity_estimate(parity_store: Path, tmp_path: Path) -> None:
    before = {r: settlements.lookup(parity_store, r, DAY) for r in ("SPXW", "SPX")}
    assert all(s is not None and s.source == "parity_estimate" for s in before.values())
    good = _csv(
        tmp_path / "official.csv",
        "Root,Expiry,Value,Note\n"
        f"SPXW,{DAY},{before['SPXW'].value + 1.25:.2f},close\n"
        f"SPX,{DAY},{before['SPX'].value - 0.75:.2f},SET\n",
    )
    code, out = _run("import-settlements", str(good), "--store", str(parity_store))
    assert code == 0, out
    assert "2 official settlement value(s)" in out and "(2 new, 0 changed" in out
    for root, shift in (("SPXW", 1.25), ("SPX", -0.75)):
        found = settlements.lookup(parity_store, root, DAY)
        assert found is not None and found.source == "official"
        assert found.value == round(before[root].value + shift, 2)  # exactly the file's value
    rows = settlements.read(parity_store)  # the estimates stay, ranked below
    assert rows.select("root", "source").rows() == [
        ("SPX", "official"),
        ("SPX", "parity_estimate"),
        ("SPXW", "official"),
        ("SPXW", "parity_estimate"),
    ]
    path = layout.partition_file(parity_store, "settlements", "SPX", DAY)
    man = st.read_manifest(parity_store).filter(pl.col("table") == "settlements")
    assert man["file_sha256"].to_list() == [st.sha256_file(path)]
    first = path.read_bytes()
    code, out = _run("import-settlements", str(good), "--store", str(parity_store))
    assert code == 0 and "(0 new, 0 changed, 2 unchanged)" in out
    assert path.read_bytes() == first  # importing again rewrites the same bytes


BAD = {
    "value": (
        "root,expiry,value\nSPXW,2024-03-15,5100.5\nSPX,2024-03-15,5101\nSPXW,2024-03-14,n/a\n",
        ["row 3 (line 4)", "column 'value'", "'n/a'"],
    ),
    "root": ("root,expiry,value\nSPXW,2024-03-15,1\nNDX,2024-03-15,2\n", ["row 2", "'NDX'"]),
    "weekend": ("root,expiry,value\nSPXW,2024-03-16,1\n", ["row 1", "'expiry'", "session"]),
    "repeat": (
        "root,expiry,value\nSPXW,2024-03-15,1\n\nSPXW,2024-03-15,2\n",
        ["row 3 (line 4) repeats SPXW 2024-03-15 (first on row 1 (line 2))"],
    ),
    "extra column": ("root,expiry,value,price\nSPXW,2024-03-15,1,2\n", ["unknown column 'price'"]),
    "no value column": ("root,expiry\nSPXW,2024-03-15\n", ["missing column 'value'"]),
    "header only": ("root,expiry,value\n", ["no rows"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_import_settlements_bad_file_changes_nothing(
    case: str, parity_store: Path, tmp_path: Path
) -> None:
    text, expected = BAD[case]
    part = layout.partition_file(parity_store, "settlements", "SPX", DAY).read_bytes()
    files = _files(parity_store)
    bad = _csv(tmp_path / "bad.csv", text)
    code, out = _run("import-settlements", str(bad), "--store", str(parity_store))
    assert code == 1 and "error:" in out and "bad.csv" in out
    for piece in expected:
        assert piece in out, (piece, out)
    assert layout.partition_file(parity_store, "settlements", "SPX", DAY).read_bytes() == part
    assert _files(parity_store) == files


def test_import_settlements_missing_file_and_help(tmp_path: Path) -> None:
    code, out = _run("import-settlements", str(tmp_path / "nope.csv"), "--store", str(tmp_path))
    assert code == 1 and "does not exist" in out
    assert not (tmp_path / "parquet").exists()
    code, out = _run("import-settlements", "--help")
    assert code == 0
    for column in ("root", "expiry", "value", "style", "note", "SPXW,2018-01-31,2823.81"):
        assert column in out


# ------------------------------------------------------------------ check


def test_check_lists_expiries_without_official_or_index_value(
    parity_store: Path, tmp_path: Path
) -> None:
    gaps = quality.settlement_gaps(parity_store)
    # the SPX monthly is no longer listed on its expiry day: its stored estimate puts it there
    assert gaps.select("root", "expiry", "style", "best_source").rows() == [
        ("SPX", DAY, "AM", "parity_estimate"),
        ("SPXW", DAY, "PM", "parity_estimate"),
    ]
    assert (gaps["std_error"] > 0).all() and (gaps["n_pairs"] >= 1).all()
    for r in gaps.iter_rows(named=True):
        assert r["stored"].startswith(f"parity_estimate {r['value']:.2f} ±{r['std_error']:.2f} (")
    code, out = _run("check", "--store", str(parity_store))
    assert code == 0, out
    assert "settlement values: 2 expiries without an official or index value" in out
    for r in gaps.iter_rows(named=True):
        assert f"{r['value']:.2f}" in out and f"{r['std_error']:.2f}" in out
    assert out.count("parity_estimate") >= 4  # best source and stored source of each expiry

    official = _csv(tmp_path / "o.csv", f"root,expiry,value\nSPXW,{DAY},5000.25\n")
    settlements.import_csv(parity_store, official)
    assert quality.settlement_gaps(parity_store)["root"].to_list() == ["SPX"]
    code, out = _run("check", "--store", str(parity_store), "--date", DAY.isoformat())
    assert code == 0 and "1 expiry without an official or index value" in out
    assert quality.settlement_gaps(parity_store, day=DAY - dt.timedelta(days=1)).height == 0


def test_check_is_clean_with_index_values(stores: dict[str, Path]) -> None:
    assert quality.settlement_gaps(stores["synth"]).height == 0
    code, out = _run("check", "--store", str(stores["synth"]))
    assert code == 0 and "every expiry in the store has an official or index value" in out
