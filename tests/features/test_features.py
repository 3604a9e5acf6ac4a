"""Point-in-time feature store: hand-checked values, reference values and invariants.

The shared synthetic "test" week (2024-03-11 .. 03-15, "test" profile: SPXW 0-3 DTE plus the
30-day SPXW pair, through the real DBN writer and ingest; a private copy) is run through stage 1
once and shared.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab import calendar
from quantlab.backtest.stage1 import Stage1Result, run_stage1
from quantlab.data import read
from quantlab.data import store as st
from quantlab.errors import InputError
from quantlab.features import (
    DEFAULT,
    FEATURES,
    FeatureParams,
    FeatureSet,
    build_features,
    calendar_features,
    close_to_close_vol,
    features_file,
    load_features,
    realized_vol,
    spot_series,
)
from quantlab.features import build as fbuild
from quantlab.features.definitions import EVENTS_FILE
from quantlab.strategy import StrategySpec
from quantlab.volatility import cboe_index, cboe_variance
from tests.conftest import TEST_WEEK, SyntheticStore

START, END = dt.date(2024, 3, 11), dt.date(2024, 3, 15)  # TEST_WEEK
ET = calendar.ET
NS_MIN = 60_000_000_000


def _ns(day: dt.date, h: int, m: int) -> int:
    return calendar.to_ns(dt.datetime.combine(day, dt.time(h, m), tzinfo=ET))


@pytest.fixture(scope="session")
def week(
    synthetic_store: SyntheticStore, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Stage1Result]:
    """A private copy of the shared "test" week (the tests build features into it)."""
    root = synthetic_store(**TEST_WEEK, copy_to=tmp_path_factory.mktemp("features") / "store")
    spec = StrategySpec.from_dict(
        {
            "name": "feat",
            "dte": {"target": 2, "tolerance": 1},
            "entry": {"times": ["10:00", "14:00"]},
            "short_delta": 0.10,
            "width": 25,
            "filters": {"min_credit": 0.0},
        }
    )
    res = run_stage1(root, [spec], START, END)
    assert len(res) >= 6
    return root, res


@pytest.fixture(scope="session")
def feats(week: tuple[Path, Stage1Result]) -> pl.DataFrame:
    root, res = week
    return build_features(root, res)


def _subset(res: Stage1Result, keep: np.ndarray) -> Stage1Result:
    """A stage-1 result restricted to the candidates where ``keep`` is True."""
    idx = np.flatnonzero(keep)
    return dataclasses.replace(
        res,
        candidates=res.candidates[idx],
        qty=res.qty[idx],
        strike=res.strike[idx],
        is_call=res.is_call[idx],
        entry_bid=res.entry_bid[idx],
        entry_ask=res.entry_ask[idx],
    )


# --------------------------------------------------------------------------- calendar


def test_calendar_features_on_known_dates() -> None:
    events = calendar.load_events(EVENTS_FILE)
    days = [
        dt.date(2024, 3, 15),
        dt.date(2024, 3, 11),
        dt.date(2024, 3, 20),
        dt.date(2024, 3, 12),
        dt.date(2024, 3, 13),
        dt.date(2024, 12, 31),
    ]
    ts = np.array([_ns(d, 10, 0) for d in days[:-1]] + [_ns(days[-1], 15, 45)])
    f = calendar_features(ts, events)
    assert f["weekday"].tolist() == [4, 0, 2, 1, 2, 1]
    # 2024-03-15 is the March monthly; 2024-03-20 -> April 19; 2024-12-31 -> 2025-01-17
    assert f["days_to_monthly"].tolist() == [0, 4, 30, 3, 2, 17]
    assert f["minutes_since_open"].tolist() == [30.0] * 5 + [375.0]
    # 2024-03-12 CPI, 2024-03-20 FOMC; next after 03-13 is the FOMC of 03-20
    assert f["is_event_day"].tolist() == [0, 0, 1, 1, 0, 0]
    assert f["days_to_next_event"][:5].tolist() == [5.0, 1.0, 0.0, 0.0, 7.0]


def test_events_csv_is_sane() -> None:
    ev = pl.read_csv(EVENTS_FILE, comment_prefix="#")
    assert set(ev["event"].unique()) == {"FOMC", "CPI"}
    dates = [dt.date.fromisoformat(s) for s in ev["date"]]
    fomc = [
        d
        for d, e, n in zip(dates, ev["event"], ev["note"], strict=True)
        if e == "FOMC" and "unscheduled" not in n
    ]
    assert all(d.weekday() in (1, 2, 3) for d in fomc)  # statements on Tue-Thu
    assert sum(d.year == 2024 for d in fomc) == 8
    assert dt.date(2024, 3, 20) in dates and dt.date(2024, 3, 12) in dates
    assert calendar.load_events(EVENTS_FILE) == sorted(set(dates))


# --------------------------------------------------------------------------- spread


def test_spread_features_equal_hand_computation(
    week: tuple[Path, Stage1Result], feats: pl.DataFrame
) -> None:
    root, res = week
    by_id = {r["candidate_id"]: r for r in feats.iter_rows(named=True)}
    for cand in res.candidates.iter_rows(named=True):
        f = by_id[cand["candidate_id"]]
        dq = read.load_day(root, "SPX", cand["entry_date"])
        syms = dq.instruments["raw_symbol"].to_list()
        credit, widths, ages = 0.0, {}, []
        for j, leg in enumerate(cand["legs"]):
            pos = np.array([syms.index(leg["occ"])])
            q = dq.snapshot_arrays(cand["entry_ts"], pos)
            bid, ask = float(q["bid"][0]), float(q["ask"][0])
            credit -= leg["quantity"] * (bid + ask) / 2
            assert f[f"leg{j}_rel_spread"] == pytest.approx((ask - bid) / ((bid + ask) / 2))
            widths.setdefault(leg["right"], []).append(leg["strike"])
            ages.append(float(q["age_s"][0]))
        width = max(max(k) - min(k) for k in widths.values())
        assert f["credit_mid"] == pytest.approx(credit, abs=1e-9)
        assert f["width"] == width == 25.0
        assert f["credit_to_width"] == pytest.approx(credit / width)
        assert f["max_quote_age_s"] == max(ages)
        assert math.isnan(f["leg2_rel_spread"]) and math.isnan(f["leg3_rel_spread"])
        short = [abs(leg["delta"]) for leg in cand["legs"] if leg["quantity"] < 0]
        long_ = [abs(leg["delta"]) for leg in cand["legs"] if leg["quantity"] > 0]
        assert f["short_delta_abs"] == max(short) and f["long_delta_abs"] == max(long_)
        minutes = (calendar.settlement_ns(cand["root"], cand["expiry"]) - cand["entry_ts"]) / NS_MIN
        assert f["T"] == pytest.approx(minutes / 525_600) and f["dte"] == cand["dte"]


# --------------------------------------------------------------------------- underlying


def test_realized_vol_of_constructed_paths() -> None:
    # alternating +-0.1% log moves every 5 minutes over 30 minutes: 6 returns of 1e-3
    x = np.log(5000.0) + 0.001 * np.array([0, 1, 0, 1, 0, 1, 0])
    t = np.arange(0.0, 35.0, 5.0)
    expect = math.sqrt(6 * 1e-6 / 30.0 * 252 * 390)
    assert realized_vol(np.exp(x), t) == pytest.approx(expect, rel=1e-12)
    # a missing sample: the return spans the gap, time elapsed is unchanged
    p = np.exp(x)
    p[1] = np.nan
    # 0 -> (gap) -> 0 is one flat return, then four moves of 1e-3
    assert realized_vol(p, t) == pytest.approx(math.sqrt(4 * 1e-6 / 30 * 252 * 390), rel=1e-12)
    assert math.isnan(realized_vol(np.array([5000.0]), np.array([0.0])))
    closes = 5000 * np.exp(np.cumsum([0, 0.01, -0.01, 0.02]))
    assert close_to_close_vol(closes) == pytest.approx(math.sqrt(252 * 6e-4 / 3))
    assert math.isnan(close_to_close_vol(np.array([5000.0, np.nan, 5010.0])))


def test_spot_proxy_tracks_synthetic_truth(week: tuple[Path, Stage1Result]) -> None:
    root, _ = week
    dq = read.load_day(root, "SPX", dt.date(2024, 3, 12))
    minutes, S = spot_series(dq, 0.045, 300.0, 3)
    truth = pl.read_parquet(root / "raw" / "synth" / "SPX" / "2024-03-12" / "truth.parquet")
    spot = truth.group_by("ts_recv").agg(pl.col("spot").first()).sort("ts_recv")
    ref = dict(zip(spot["ts_recv"].to_list(), spot["spot"].to_list(), strict=True))
    rel = np.array([S[i] / ref[t] - 1 for i, t in enumerate(minutes) if t in ref])
    assert np.isfinite(rel).mean() > 0.95
    assert np.nanmedian(np.abs(rel)) < 2e-4


def test_underlying_features_use_the_spot_series(
    week: tuple[Path, Stage1Result], feats: pl.DataFrame
) -> None:
    root, _ = week
    day = dt.date(2024, 3, 13)
    minutes, S = spot_series(read.load_day(root, "SPX", day), 0.045, 300.0, 3)
    _, S_prev = spot_series(read.load_day(root, "SPX", dt.date(2024, 3, 12)), 0.045, 300.0, 3)
    tmin = (minutes - minutes[0]) / NS_MIN
    for f in feats.filter(pl.col("entry_date") == day).iter_rows(named=True):
        last = int(np.searchsorted(minutes, f["entry_ts"], side="right")) - 1
        w = np.arange(last, max(last - 30, 0) - 1, -5)[::-1]  # 5-min steps back from entry
        assert f["rv_30m"] == pytest.approx(realized_vol(S[w], tmin[w]))
        assert f["move_since_open"] == pytest.approx(math.log(S[last] / S[0]))
        prev_close = S_prev[np.isfinite(S_prev)][-1]
        assert f["overnight_gap"] == pytest.approx(math.log(S[0] / prev_close))
        assert math.isnan(f["rv_5d"])  # only 2 sessions before: the 5-session window is short
        assert f["iv_minus_rv5d"] is None or math.isnan(f["iv_minus_rv5d"])


# --------------------------------------------------------------------------- chain


def test_vix_feature_equals_cboe_on_the_same_snapshot(
    week: tuple[Path, Stage1Result], feats: pl.DataFrame
) -> None:
    root, _ = week
    f = feats.row(0, named=True)
    ts = f["entry_ts"]
    chain = read.load_day(root, "SPX", f["entry_date"]).snapshot(ts)
    terms = []
    for (r, e), g in chain.group_by(["root", "expiry"]):
        mins = (calendar.settlement_ns(r, e) - ts) / NS_MIN
        if 23 * 1440 < mins < 37 * 1440:
            terms.append((mins, g))
    assert len(terms) == 2  # the synthetic 30-day pair
    terms.sort(key=lambda x: x[0])
    out = []
    for mins, g in terms:
        c = g.filter(pl.col("right") == "C").sort("strike")
        p = g.filter(pl.col("right") == "P").sort("strike")
        assert c["strike"].to_list() == p["strike"].to_list()
        v = cboe_variance(
            c["strike"],
            c["bid"].fill_null(np.nan),
            c["ask"].fill_null(np.nan),
            p["bid"].fill_null(np.nan),
            p["ask"].fill_null(np.nan),
            T=mins / 525_600,
            R=0.045,
        )
        assert v.ok
        out.append((v.sigma2, mins))
    expect = cboe_index(out[0][0], out[0][1], out[1][0], out[1][1])
    assert f["vix30"] == pytest.approx(expect, rel=1e-12)
    assert 5 < expect < 60


def test_atm_iv_matches_synthetic_truth(
    week: tuple[Path, Stage1Result], feats: pl.DataFrame
) -> None:
    root, res = week
    c = res.candidates.join(feats, on="candidate_id")
    for r in c.iter_rows(named=True):
        truth = pl.read_parquet(layout_truth(root, r["entry_date"])).filter(
            (pl.col("ts_recv") == r["entry_ts"])
            & (pl.col("expiry") == r["expiry"])
            & (pl.col("root") == r["root"])
        )
        assert abs(r["atm_iv"] - truth["atm_vol"][0]) < 0.01
        assert 0.0 < r["put_skew_25d"] < 0.2  # a put skew: OTM puts richer than ATM
        assert math.isfinite(r["term_slope"])


def layout_truth(root: Path, day: dt.date) -> Path:
    from quantlab.data import layout

    return layout.truth_file(root, "SPX", day)


# --------------------------------------------------------------------------- store


def test_incremental_build_skips_done_days(
    week: tuple[Path, Stage1Result], feats: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, res = week
    fs = FeatureSet("incr")
    calls: list[dt.date] = []
    real = fbuild._compute_day

    def counting(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append(args[2])
        return real(*args, **kw)

    monkeypatch.setattr(fbuild, "_compute_day", counting)
    first_days = res.candidates["entry_date"] <= dt.date(2024, 3, 13)
    part = build_features(root, _subset(res, first_days.to_numpy()), fs)
    n_first = len(set(res.candidates.filter(first_days)["entry_date"]))
    assert len(calls) == n_first and part.height == int(first_days.sum())
    stamps = {d: features_file(root, fs, d).stat().st_mtime_ns for d in calls}
    calls.clear()
    full = build_features(root, res, fs)
    assert sorted(calls) == sorted(set(res.candidates["entry_date"]) - set(stamps))
    assert {d: features_file(root, fs, d).stat().st_mtime_ns for d in stamps} == stamps
    calls.clear()
    again = build_features(root, res, fs)
    assert calls == []
    assert_frame_equal(again, full)
    # same numbers as the default set (the name differs, the definitions do not)
    assert_frame_equal(full, feats)
    with duckdb.connect(str(root / "features.duckdb"), read_only=True) as con:
        n = con.execute(
            "SELECT count(*) FROM features WHERE feature_set_version = ?", [fs.version]
        ).fetchone()
    assert n is not None and n[0] == res.candidates["candidate_id"].n_unique()


def test_load_features_round_trip(week: tuple[Path, Stage1Result], feats: pl.DataFrame) -> None:
    root, _ = week
    back = load_features(root, DEFAULT)
    assert_frame_equal(back, feats.sort(["entry_ts", "candidate_id"]))
    ids = feats["candidate_id"][:2].to_list()
    assert sorted(load_features(root, DEFAULT, ids)["candidate_id"].to_list()) == sorted(ids)
    assert load_features(root, FeatureSet("never_built")).height == 0
    assert list(back.columns) == ["candidate_id", "entry_ts", "entry_date", *FEATURES]


def _perturb_after(store: Path, day: dt.date, cut: int, seed: int) -> None:
    """Scale every quote of ``day`` stamped after ``cut`` by a random factor (bid <= ask kept)."""
    rng = np.random.default_rng(seed)
    q = st.read_partition(store, "quotes", "SPX", day)
    assert q is not None
    after = (q["ts"] > cut).to_numpy()
    k = np.where(after, rng.uniform(0.5, 1.5, q.height), 1.0)
    q = q.with_columns(pl.col("bid") * pl.Series(k), pl.col("ask") * pl.Series(k))
    st.write_partition(store, "quotes", "SPX", day, q, source="perturbed", manifest=False)


def _copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src / "parquet", dst / "parquet")
    return dst


def test_point_in_time_quotes_after_entry_change_nothing(
    week: tuple[Path, Stage1Result], feats: pl.DataFrame, tmp_path: Path
) -> None:
    root, res = week
    day = dt.date(2024, 3, 13)
    cut = _ns(day, 10, 0)
    keep = (res.candidates["entry_ts"] <= cut).to_numpy()
    sub = _subset(res, keep)
    assert (sub.candidates["entry_ts"] == cut).any()
    other = _copy_store(root, tmp_path / "perturbed")
    for i, d in enumerate(calendar.sessions(day, END)):
        _perturb_after(other, d, cut if d == day else 0, seed=i)
    got = build_features(other, sub)
    expect = feats.filter(pl.col("candidate_id").is_in(sub.candidates["candidate_id"].to_list()))
    assert_frame_equal(got, expect)
    # the same perturbation one minute earlier does reach the 10:00 candidates
    moved = _copy_store(root, tmp_path / "moved")
    _perturb_after(moved, day, cut - 2 * NS_MIN, seed=0)
    at_cut = _subset(res, (res.candidates["entry_ts"] == cut).to_numpy())
    diff = build_features(moved, at_cut)
    base = feats.filter(pl.col("candidate_id").is_in(at_cut.candidates["candidate_id"].to_list()))
    changed = [
        c
        for c in ("atm_iv", "vix30", "rv_30m", "max_quote_age_s")
        if not np.allclose(diff[c].to_numpy(), base[c].to_numpy(), equal_nan=True)
    ]
    assert {"atm_iv", "vix30", "rv_30m"} <= set(changed)


# --------------------------------------------------------------------------- versions


def test_version_changes_with_definitions(tmp_path: Path) -> None:
    assert FeatureSet().version == DEFAULT.version == FeatureSet("core").version
    assert FeatureSet("core", FeatureParams(rv_window_min=60)).version != DEFAULT.version
    assert FeatureSet("core", FeatureParams(skew_delta=0.20)).version != DEFAULT.version
    assert FeatureSet("other").version != DEFAULT.version
    ev = tmp_path / "events.csv"
    ev.write_bytes(EVENTS_FILE.read_bytes())
    assert FeatureSet(events_file=ev).version == DEFAULT.version
    ev.write_text(ev.read_text() + "2026-12-31,CUSTOM,10:00,user event\n")
    assert FeatureSet(events_file=ev).version != DEFAULT.version
    assert DEFAULT.folder_name == f"core-{DEFAULT.version}"


def test_invalid_inputs_name_the_value() -> None:
    with pytest.raises(InputError, match="skew_delta"):
        FeatureParams(skew_delta=0.7)
    with pytest.raises(InputError, match="rv_window_min"):
        FeatureParams(rv_window_min=2, rv_step_min=5)
    with pytest.raises(InputError, match="name"):
        FeatureSet("a/b")
    with pytest.raises(InputError, match="Stage1Result"):
        build_features(".", object())
