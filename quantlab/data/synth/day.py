"""Generate one session: quotes from the surface, then the three DBN files and the truth file."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from quantlab import calendar
from quantlab.data import layout
from quantlab.data.synth import dbn_writer as dbw
from quantlab.data.synth._kernels import (
    SIZE_N,
    SIZE_PX,
    WIDTH_PX,
    WIDTH_W,
    compact_kernel,
    quote_kernel,
)
from quantlab.data.synth.chain import Chain, Profile, build_chain
from quantlab.data.synth.market import (
    DayPath,
    MarketParams,
    Surface,
    business_time_to,
    day_path,
    skeleton,
    surface,
)

PARENT_SYMBOLS = ("SPX.OPT", "SPXW.OPT")
#: Venues that re-publish each open-interest record, as OPRA does for multi-listed names.
OI_PUBLISHERS = (22, 31, 37)
ITM_COEF = 0.0022
HYSTERESIS_TICKS = 0.1
SIZE_CHANGE_P = 0.3
PRE_OPEN_EMPTY_SHARE = 0.01
NS_MIN = calendar.NS_PER_MINUTE


SOURCE = "synth"


@dataclass(frozen=True)
class DayResult:
    day: dt.date
    n_instruments: int
    n_quotes: int
    n_stats: int
    bytes_written: int
    files: tuple[Path, ...]
    #: Parquet partitions written, for the manifest: ``(table, path, rows, source, checksum)``.
    partitions: tuple[tuple[str, Path, int, str, str], ...] = ()


def _key(seed: int, tag: int, day: dt.date) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), tag, day.toordinal()])


def _time_multipliers(
    path: DayPath, chain: Chain
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Width multiplier and crossed-quote probability per (minute, expiry) (Table 4b)."""
    n = len(path.ts)
    nr = path.n_regular
    m = np.arange(n)
    base = np.ones(n)
    base[m < 15] = 1.3
    base[(m >= 15) & (m < 90)] = 1.06
    base[(m >= nr - 120) & (m < nr - 30)] = 1.13
    base[(m >= nr - 30) & (m < nr)] = 1.2
    base[m >= nr] = 1.27
    n_exp = len(chain.expiries)
    tm = np.repeat(base[:, None], n_exp, axis=1)
    cp = np.zeros((n, n_exp))
    for j, e in enumerate(chain.expiries):
        dte = (e.date - path.day).days
        if e.root == "SPXW" and dte == 0:
            tm[(m >= nr - 120) & (m < nr - 30), j] = 1.4
            tm[(m >= nr - 30) & (m < nr), j] = 2.4
            cp[m >= nr - 60, j] = 0.004
        elif dte <= 3:
            cp[:, j] = 0.0003
    return tm, cp


def quotes(path: DayPath, chain: Chain, surf: Surface, seed: int) -> np.ndarray:
    """Run the quote kernel and return the day's cbbo-1m records (sorted by ts_recv, id)."""
    day = path.day
    n_min = len(path.ts)
    n = len(chain)
    n_live = np.full(n, n_min, dtype=np.int32)
    for j, e in enumerate(chain.expiries):
        if e.root == "SPXW" and e.date == day:
            n_live[chain.exp_idx == j] = path.n_regular
    g = np.random.default_rng(_key(seed, 0x3, day))
    wmult = np.exp(0.15 * g.standard_normal(n))
    smult = np.exp(0.5 * g.standard_normal(n))
    key = np.uint64(_key(seed, 0xC, day).generate_state(1, np.uint64)[0])
    tmult, cross_p = _time_multipliers(path, chain)
    shape = (n_min, n)
    bid = np.empty(shape, np.int32)
    ask = np.empty(shape, np.int32)
    bsz = np.empty(shape, np.uint32)
    asz = np.empty(shape, np.uint32)
    emit = np.zeros(shape, np.bool_)
    tpx = np.empty(shape, np.int32)
    tsz = np.empty(shape, np.uint32)
    tms = np.empty(shape, np.int32)
    quote_kernel(
        key,
        chain.strike,
        chain.is_call,
        chain.exp_idx,
        n_live,
        wmult,
        smult,
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
        WIDTH_PX,
        WIDTH_W,
        SIZE_PX,
        SIZE_N,
        ITM_COEF,
        HYSTERESIS_TICKS,
        SIZE_CHANGE_P,
        bid,
        ask,
        bsz,
        asz,
        emit,
        tpx,
        tsz,
        tms,
    )
    n_rec = int(np.count_nonzero(emit))
    # a few instruments carry an empty book snapshot before the open, as in the real files
    pre = np.flatnonzero(g.random(n) < PRE_OPEN_EMPTY_SHARE)
    pre_min = g.integers(1, 90, size=len(pre))
    n_pre = len(pre)
    open_ns = int(path.ts[0]) - NS_MIN
    words = np.empty((n_pre + n_rec, 10), dtype="<u8")
    head = np.uint64(
        (dbw.CBBO_DTYPE.itemsize // 4) | (dbw.RTYPE_CBBO_1M << 8) | (dbw.PUBLISHER_OPRA << 16)
    )
    w3 = np.uint64((ord("N") << 40) | (dbw.FLAGS_CBBO << 48))
    if n_pre:
        order = np.lexsort((chain.instrument_id[pre], -pre_min))
        pre, pre_min = pre[order], pre_min[order]
        words[:n_pre, 0] = head | (chain.instrument_id[pre].astype(np.uint64) << np.uint64(32))
        words[:n_pre, 1] = dbw.UNDEF_TIMESTAMP
        words[:n_pre, 2] = np.uint64(dbw.UNDEF_PRICE)
        words[:n_pre, 3] = w3
        words[:n_pre, 4] = (open_ns - pre_min.astype(np.int64) * NS_MIN).astype(np.uint64)
        words[:n_pre, 5] = 0
        words[:n_pre, 6] = np.uint64(dbw.UNDEF_PRICE)
        words[:n_pre, 7] = np.uint64(dbw.UNDEF_PRICE)
        words[:n_pre, 8] = 0
        words[:n_pre, 9] = 0
    compact_kernel(
        emit,
        bid,
        ask,
        bsz,
        asz,
        tpx,
        tsz,
        tms,
        path.ts,
        chain.instrument_id,
        open_ns,
        head,
        w3,
        dbw.UNDEF_PRICE,
        dbw.UNDEF_TIMESTAMP,
        dbw.PUBLISHER_XCBO,
        words,
        n_pre,
    )
    return words.view(dbw.CBBO_DTYPE).reshape(-1)


def definitions(day: dt.date, chain: Chain, seed: int) -> np.ndarray:
    """InstrumentDefMsg records published before the open (06:30 ET)."""
    n = len(chain)
    rec = dbw.empty_records(dbw.DEFINITION_DTYPE, n, dbw.DEFINITION_DEFAULTS)
    t0 = calendar.to_ns(dt.datetime.combine(day, dt.time(6, 30), tzinfo=calendar.ET))
    g = np.random.default_rng(_key(seed, 0xDE, day))
    ts = t0 + np.cumsum(g.integers(2_000, 40_000, size=n))
    rec["ts_recv"] = ts
    rec["ts_event"] = ts - g.integers(150_000, 250_000, size=n)
    rec["instrument_id"] = chain.instrument_id
    rec["raw_instrument_id"] = chain.instrument_id
    rec["raw_symbol"] = np.array(chain.raw_symbol, dtype="S71")
    rec["instrument_class"] = np.where(chain.is_call, b"C", b"P")
    rec["strike_price"] = np.round(chain.strike * 1e9).astype(np.int64)
    exp_ns = np.array(
        [
            calendar.to_ns(dt.datetime.combine(e.date, dt.time(0), tzinfo=calendar.UTC))
            for e in chain.expiries
        ],
        dtype=np.uint64,
    )
    rec["expiration"] = exp_ns[chain.exp_idx]
    roots = np.array([e.root.encode() for e in chain.expiries], dtype="S11")
    rec["asset"] = roots[chain.exp_idx]
    rec["underlying"] = b"SPX"
    return rec


def statistics(day: dt.date, chain: Chain, seed: int) -> np.ndarray:
    """Open-interest StatMsg records, each repeated once per publisher in ``OI_PUBLISHERS``."""
    n = len(chain)
    k = len(OI_PUBLISHERS)
    rec = dbw.empty_records(dbw.STAT_DTYPE, n * k)
    g = np.random.default_rng(_key(seed, 0x57, day))
    t0 = calendar.to_ns(dt.datetime.combine(day, dt.time(6, 30), tzinfo=calendar.ET))
    ts = t0 + 50_000_000 + np.cumsum(g.integers(2_000, 40_000, size=n))
    rec["rtype"] = dbw.RTYPE_STATISTICS
    rec["publisher_id"] = np.tile(np.array(OI_PUBLISHERS, dtype=np.uint16), n)
    rec["instrument_id"] = np.repeat(chain.instrument_id, k)
    rec["ts_recv"] = np.repeat(ts, k)
    rec["ts_event"] = np.repeat(ts - g.integers(150_000, 250_000, size=n), k)
    rec["ts_ref"] = dbw.UNDEF_TIMESTAMP
    rec["price"] = dbw.UNDEF_PRICE
    rec["quantity"] = np.repeat(chain.open_interest, k)
    rec["sequence"] = int(g.integers(10_000, 500_000)) + np.arange(n * k, dtype=np.uint32)
    rec["stat_type"] = dbw.STAT_OPEN_INTEREST
    rec["channel_id"] = 1
    rec["update_action"] = dbw.STAT_UPDATE_NEW
    return rec


def truth_frame(path: DayPath, chain: Chain, surf: Surface, tau: npt.NDArray[np.float64]) -> Any:
    """Truth table: one row per (minute, expiry) while the expiry is quoted (polars)."""
    import polars as pl

    n_min = len(path.ts)
    live = np.array(
        [
            path.n_regular if (e.root == "SPXW" and e.date == path.day) else n_min
            for e in chain.expiries
        ]
    )
    mm = np.concatenate([np.arange(n) for n in live])
    jj = np.repeat(np.arange(len(live)), live)
    settle = np.array(
        [
            float(path.spot[path.n_regular - 1])
            if (e.root == "SPXW" and e.date == path.day)
            else np.nan
            for e in chain.expiries
        ]
    )
    roots = np.array([e.root for e in chain.expiries])
    exps = np.array([e.date for e in chain.expiries], dtype="datetime64[D]")
    return pl.DataFrame(
        {
            "ts_recv": path.ts[mm].astype(np.int64),
            "root": roots[jj],
            "expiry": exps[jj],
            "spot": path.spot[mm],
            "forward": surf.forward[mm, jj],
            "df": surf.df[mm, jj],
            "T": surf.T[mm, jj],
            "tau": tau[mm, jj],
            "atm_vol": surf.atm[mm, jj],
            "smile_beta": surf.beta[mm, jj],
            "smile_rho": surf.rho[mm, jj],
            "smile_m": surf.m[mm, jj],
            "smile_delta": surf.delta[mm, jj],
            "sigma_now": path.sigma_now[mm],
            "sigma_real": path.sigma_real[mm],
            "cluster": path.cluster[mm],
            "vol_jump": path.vol_jump[mm],
            "settlement_value": settle[jj],
        }
    ).with_columns(pl.col("expiry").cast(pl.Date))


def index_bars(path: DayPath) -> Any:
    """The index minute bars of the day (``underlying_bars`` rows): one bar per regular minute,
    keyed on its END, ``close`` = the path's spot at that minute end, ``open`` = the previous
    close; the first bar opens at the special opening quotation (the model's opening value and
    AM settlement). The model has no path inside a minute: high/low = max/min of open, close."""
    import polars as pl

    n = path.n_regular
    close = path.spot[:n]
    open_ = np.concatenate([[path.soq], close[:-1]])
    return pl.DataFrame(
        {
            "ts": path.ts[:n].astype(np.int64),
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
        }
    )


def settlement_rows(bars: Any, day: dt.date, seed: int) -> Any:
    """``index`` settlement rows of the expiries settling on ``day`` (SPXW at the close, the SPX
    monthly at the open), read off the day's bars by the same function
    :func:`quantlab.data.settlements.lookup` uses."""
    from quantlab.data import settlements

    found = [settlements.index_settlement(bars, r, day) for r, _ in settlements.settling_on(day)]
    have = [f for f in found if f is not None]
    return settlements.to_frame(have, [f"synthetic market, seed {seed}"] * len(have))


@dataclass
class DayPayload:
    """Everything one day writes, computed but not yet compressed/written."""

    day: dt.date
    n_instruments: int
    raw: list[tuple[Path, bytes, np.ndarray]]  # (path, metadata, records)
    truth_path: Path
    truth: Any
    store: Path | None = None
    bars: Any = None
    settlements: Any = None
    seed: int = 0

    def write(self, zstd_level: int = 3) -> DayResult:
        """Compress and write the files; return what was written."""
        nbytes = 0
        for f, meta, rec in self.raw:
            nbytes += dbw.write_dbn_zst(f, meta, rec, level=zstd_level)
        self.truth_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.truth_path.with_name(self.truth_path.name + ".tmp")
        self.truth.write_parquet(tmp, compression="zstd", statistics=False)
        tmp.replace(self.truth_path)
        parts = self._write_store()
        files = (*tuple(f for f, _, _ in self.raw), self.truth_path, *(p[1] for p in parts))
        n_quotes = len(self.raw[1][2])
        n_stats = len(self.raw[2][2])
        return DayResult(self.day, self.n_instruments, n_quotes, n_stats, nbytes, files, parts)

    def _write_store(self) -> tuple[tuple[str, Path, int, str, str], ...]:
        """The index bars and settlement values, into the Parquet store (manifest: caller)."""
        from quantlab.data import settlements
        from quantlab.data import store as st

        if self.store is None or self.bars is None:
            return ()
        sums = f"seed={self.seed}"
        path = st.write_partition(
            self.store,
            "underlying_bars",
            "SPX",
            self.day,
            self.bars,
            source=SOURCE,
            checksum=sums,
            manifest=False,
        )
        out = [("underlying_bars", path, self.bars.height, SOURCE, sums)]
        if self.settlements is not None and self.settlements.height:
            for _, p, n, src in settlements.merge(self.store, self.settlements, manifest=False):
                out.append(("settlements", p, n, src, ""))
        return tuple(out)


def build_day(
    day: dt.date, *, seed: int, store: Path, profile: Profile, params: MarketParams
) -> DayPayload:
    """Simulate ``day`` and build its definition, cbbo-1m, statistics records and truth."""
    import polars as pl

    sk = skeleton(seed, day, params)
    path = day_path(seed, day, params)
    chain = build_chain(day, profile, sk, params, seed)
    exp_keys = [(e.root, e.date) for e in chain.expiries]
    surf = surface(path, exp_keys, params)
    tau = business_time_to(path, exp_keys, params)
    cbbo = quotes(path, chain, surf, seed)
    defs = definitions(day, chain, seed)
    stats = statistics(day, chain, seed)
    start_ns = calendar.to_ns(dt.datetime.combine(day, dt.time(0), tzinfo=calendar.UTC))
    end_ns = start_ns + 86_400 * 1_000_000_000
    raw = []
    maps = dbw.symbol_mappings(day, chain.raw_symbol, chain.instrument_id)
    for schema, rec in (("definition", defs), ("cbbo-1m", cbbo), ("statistics", stats)):
        meta = dbw.encode_metadata(
            schema=schema,
            start_ns=start_ns,
            end_ns=end_ns,
            symbols=PARENT_SYMBOLS,
            day=day,
            mappings=maps,
        )
        raw.append((layout.raw_file(store, "SPX", day, schema), meta, rec))
    truth = truth_frame(path, chain, surf, tau)
    if calendar.monthly_expiry(day.year, day.month) == day:
        soq = float(sk.soq[sk.index(day)])
        row: dict[str, list[Any]] = {c: [float("nan")] for c in truth.columns}
        row.update(
            ts_recv=[calendar.settlement_ns("SPX", day)],
            root=["SPX"],
            expiry=[day],
            spot=[path.s_open],
            forward=[soq],
            df=[1.0],
            T=[0.0],
            tau=[0.0],
            settlement_value=[soq],
        )
        truth = pl.concat([pl.DataFrame(row, schema=truth.schema), truth])
    bars = index_bars(path)
    return DayPayload(
        day,
        len(chain),
        raw,
        layout.truth_file(store, "SPX", day),
        truth,
        store,
        bars,
        settlement_rows(bars, day, seed),
        seed,
    )


def generate_day(
    day: dt.date,
    *,
    seed: int,
    store: Path,
    profile: Profile,
    params: MarketParams,
    zstd_level: int = 3,
) -> DayResult:
    """Generate and write the definition, cbbo-1m, statistics and truth files of ``day``."""
    payload = build_day(day, seed=seed, store=store, profile=profile, params=params)
    return payload.write(zstd_level)
