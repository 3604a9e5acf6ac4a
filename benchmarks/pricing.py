"""Pricing throughput and accuracy: quantlab vs QuantLib vs py_vollib, in one run.

    .venv/bin/python benchmarks/pricing.py [--n 4000000] [--peer-n 20000]

Prints options per second for Black-76 price + delta/gamma/vega, BSM price + five greeks and
Black-76 implied vol, and the max errors against the peers and against the true vol. Peers have
no vectorized API, so they are timed on a smaller sample (``--peer-n``) in a Python loop, the way
their users call them.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

import numpy as np
from rich.console import Console
from rich.table import Table


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def sample(n: int, seed: int = 0, domain: str = "full") -> dict[str, np.ndarray]:
    """``full``: the accuracy domain, |ln F/K| <= 1, T one minute .. 3 years, vol 1% .. 300%.
    ``spx``: what an SPX backtest prices, |ln F/K| <= 0.15, 0.5 .. 60 DTE, vol 8% .. 60%."""
    rng = np.random.default_rng(seed)
    F = rng.uniform(1000, 7000, n)
    if domain == "spx":
        K = F * np.exp(rng.uniform(-0.15, 0.15, n))
        T = rng.uniform(0.5, 60.0, n) / 365.0
        s = rng.uniform(0.08, 0.60, n)
    else:
        K = F * np.exp(rng.uniform(-1, 1, n))
        T = np.exp(rng.uniform(np.log(1 / 525_600), np.log(3.0), n))
        s = np.exp(rng.uniform(np.log(0.01), np.log(3.0), n))
    r = rng.uniform(0.0, 0.06, n)
    return {
        "F": F,
        "K": K,
        "T": T,
        "sigma": s,
        "r": r,
        "df": np.exp(-r * T),
        "q": rng.uniform(0, 0.03, n),
        "is_call": rng.random(n) < 0.5,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--peer-n", type=int, default=20_000)
    ap.add_argument(
        "--domain",
        choices=("full", "spx"),
        default="full",
        help="full: the whole accuracy domain; spx: SPX-like strikes, DTE and vols",
    )
    args = ap.parse_args()
    from quantlab.pricing import black76_greeks, black76_price, bsm_greeks, implied_vol

    con = Console()
    d = sample(args.n, domain=args.domain)
    F, K, T, s, df, r, q, c = (d[k] for k in ("F", "K", "T", "sigma", "df", "r", "q", "is_call"))
    # warm up (compile or load from the numba cache) before timing
    black76_greeks(F[:10], K[:10], T[:10], s[:10], df[:10], c[:10])
    black76_greeks(F[:30000], K[:30000], T[:30000], s[:30000], df[:30000], c[:30000])
    bsm_greeks(F[:30000], K[:30000], T[:30000], r[:30000], q[:30000], s[:30000], c[:30000])
    prices = black76_price(F, K, T, s, df, c)
    implied_vol(prices[:30000], F[:30000], K[:30000], T[:30000], df[:30000], c[:30000])

    rows: list[tuple[str, str, float, str]] = []
    t = _best(lambda: black76_greeks(F, K, T, s, df, c))
    rows.append(("Black-76 price+delta+gamma+vega", "quantlab", args.n / t, "new output arrays"))
    bufs = {k: np.empty(args.n) for k in ("price", "delta", "gamma", "vega", "theta", "rho")}
    t = _best(lambda: black76_greeks(F, K, T, s, df, c, out=bufs))
    rows.append(("Black-76 price+delta+gamma+vega", "quantlab", args.n / t, "out= buffers reused"))
    t = _best(lambda: bsm_greeks(F, K, T, r, q, s, c))
    rows.append(("BSM price+5 greeks", "quantlab", args.n / t, "new output arrays"))
    t = _best(lambda: bsm_greeks(F, K, T, r, q, s, c, out=bufs))
    rows.append(("BSM price+5 greeks", "quantlab", args.n / t, "out= buffers reused"))
    iv_bufs = (np.empty(args.n), np.empty(args.n, dtype=np.int8))
    t = _best(lambda: implied_vol(prices, F, K, T, df, c, return_status=True, out=iv_bufs))
    rows.append(("Black-76 implied vol", "quantlab", args.n / t, "out= buffers reused"))
    sol: dict[str, np.ndarray] = {}

    def iv() -> None:
        sol["v"], sol["st"] = implied_vol(prices, F, K, T, df, c, return_status=True)

    t = _best(iv)
    v, st = sol["v"], sol["st"]
    ok = st == 0
    # vol error where the option is reasonably conditioned: vega * 1e-8 above the price noise
    vega = black76_greeks(F, K, T, s, df, c)["vega"]
    tv = prices - df * np.maximum(np.where(c, F - K, K - F), 0.0)
    cond = ok & (vega * 1e-8 > 1e-14 * np.maximum(prices, 1e-300) * 4) & (tv > 1e-10 * F)
    err_vol = float(np.max(np.abs(v[cond] - s[cond]))) if cond.any() else math.nan
    rt = black76_price(F[ok], K[ok], T[ok], v[ok], df[ok], c[ok])
    big_tv = tv[ok] > 1e-12 * F[ok]
    err_rt = float(np.max(np.abs(rt[big_tv] / prices[ok][big_tv] - 1.0)))
    rows.append(
        (
            "Black-76 implied vol",
            "quantlab",
            args.n / t,
            f"vol err {err_vol:.1e} on {cond.mean():.1%} conditioned; price round-trip {err_rt:.1e}; "
            f"NaN {1 - ok.mean():.2%}",
        )
    )

    m = min(args.peer_n, args.n)
    try:
        import QuantLib as ql

        kinds = [ql.Option.Call if x else ql.Option.Put for x in c[:m]]
        sd = s[:m] * np.sqrt(T[:m])

        def ql_price() -> list[float]:
            return [ql.blackFormula(kinds[i], K[i], F[i], sd[i], df[i]) for i in range(m)]

        t = _best(ql_price, repeat=1)
        ref = np.array(ql_price())
        ours = black76_price(F[:m], K[:m], T[:m], s[:m], df[:m], c[:m])
        err = float(np.max(np.abs(ours - ref) / np.maximum(ref, 1e-12 * F[:m])))
        rows.append(
            (
                "Black-76 price only",
                "QuantLib blackFormula",
                m / t,
                f"max rel diff vs quantlab {err:.1e}",
            )
        )

        def ql_greeks() -> None:
            for i in range(m):
                bc = ql.BlackCalculator(ql.PlainVanillaPayoff(kinds[i], K[i]), F[i], sd[i], df[i])
                bc.value(), bc.delta(F[i]), bc.gamma(F[i]), bc.vega(T[i])

        t = _best(ql_greeks, repeat=1)
        rows.append(("Black-76 price+delta+gamma+vega", "QuantLib BlackCalculator", m / t, ""))

        def ql_iv() -> list[float]:
            out = []
            for i in range(m):
                try:
                    out.append(
                        ql.blackFormulaImpliedStdDev(kinds[i], K[i], F[i], prices[i], df[i])
                        / math.sqrt(T[i])
                    )
                except RuntimeError:
                    out.append(math.nan)
            return out

        t = _best(ql_iv, repeat=1)
        qv = np.array(ql_iv())
        cm = cond[:m] & np.isfinite(qv)
        rows.append(
            (
                "Black-76 implied vol",
                "QuantLib blackFormulaImpliedStdDev",
                m / t,
                f"vol err {np.max(np.abs(qv[cm] - s[:m][cm])):.1e}; failed {np.isnan(qv).mean():.1%}",
            )
        )
    except ImportError:
        con.print("QuantLib not installed: skipped")
    try:
        from py_vollib.black import black as pv_black
        from py_vollib.black.implied_volatility import implied_volatility as pv_iv

        flags = ["c" if x else "p" for x in c[:m]]
        rr = r[:m]

        def pv_price() -> list[float]:
            return [pv_black(flags[i], F[i], K[i], T[i], rr[i], s[i]) for i in range(m)]

        t = _best(pv_price, repeat=1)
        rows.append(("Black-76 price only", "py_vollib", m / t, ""))
        undisc = prices[:m]

        def pv_ivs() -> list[float]:
            out = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for i in range(m):
                    try:
                        out.append(pv_iv(undisc[i], F[i], K[i], rr[i], T[i], flags[i]))
                    except Exception:
                        out.append(math.nan)
            return out

        t = _best(pv_ivs, repeat=1)
        pv = np.array(pv_ivs(), dtype=float)
        cm = cond[:m] & np.isfinite(pv)
        rows.append(
            (
                "Black-76 implied vol",
                "py_vollib (LBR, python)",
                m / t,
                f"vol err {np.max(np.abs(pv[cm] - s[:m][cm])):.1e}",
            )
        )
    except ImportError:
        con.print("py_vollib not installed: skipped")

    load = os.getloadavg()[0]
    table = Table(
        title=f"Pricing on {os.cpu_count()} cores, {args.domain} domain "
        f"(quantlab n={args.n:,}, peers n={m:,}; load {load:.2f})"
    )
    for col in ("task", "library", "options/s", "notes"):
        table.add_column(col)
    for task, lib, rate, note in rows:
        table.add_row(task, lib, f"{rate / 1e6:,.3f} M" if rate >= 1e5 else f"{rate:,.0f}", note)
    con.print(table)


if __name__ == "__main__":
    main()
