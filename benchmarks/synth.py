"""Throughput of the synthetic OPRA market (``quantlab.data.synth``).

Generates a few sessions per profile into a temporary store (after one warm-up day that pays
numba's compile/cache load and the calendar import) and prints seconds per day, quote records
per second, bytes per day, the year extrapolation (252 sessions) and the peak resident memory.

    .venv/bin/python benchmarks/synth.py [--days 10] [--profiles demo spxw10] [--start 2024-03-04]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time

from quantlab import calendar
from quantlab.data.synth import synthesize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--start", default="2024-03-04")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profiles", nargs="+", default=["test", "demo", "spxw10"])
    args = ap.parse_args()
    days = calendar.sessions(args.start, dt.date.fromisoformat(args.start) + dt.timedelta(days=60))
    days = days[: args.days + 1]
    print(f"{'profile':8} {'days':>4} {'s/day':>7} {'quotes/day':>11} {'quotes/s':>10} "
          f"{'MB/day':>7} {'inst/day':>8} {'year s':>7}")  # fmt: skip
    for prof in args.profiles:
        with tempfile.TemporaryDirectory() as store:
            synthesize(days[0], days[0], args.seed, store, profile=prof)  # warm-up
            t0 = time.perf_counter()
            rep = synthesize(days[1], days[-1], args.seed, store, profile=prof)
            sec = time.perf_counter() - t0
        n = len(rep.days)
        print(
            f"{prof:8} {n:4d} {sec / n:7.2f} {rep.n_quotes / n:11,.0f} {rep.n_quotes / sec:10,.0f} "
            f"{rep.bytes_written / n / 1e6:7.1f} {rep.n_instruments / n:8,.0f} {252 * sec / n:7.0f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
