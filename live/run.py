"""Run the live runner for whole trading days (offline with ``--broker sim``).

python live/run.py --config live/paper.yaml --broker sim --date 2024-03-04 [--days 3] [--store DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from quantlab import calendar
from quantlab.errors import ConfigError, QuantlabError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    ap.add_argument("--config", default="live/paper.yaml")
    ap.add_argument("--broker", choices=["sim", "ibkr"], default=None)
    ap.add_argument("--mode", choices=["shadow", "paper", "live"], default=None)
    ap.add_argument("--date", required=True, help="first session, YYYY-MM-DD")
    ap.add_argument("--days", type=int, default=1, help="consecutive sessions to run")
    ap.add_argument("--store", default=None)
    ap.add_argument("--journal", default=None, help="default: <store>/live/<account>.duckdb")
    a = ap.parse_args(argv)
    from quantlab.brokers.simulated import SimulatedBroker
    from quantlab.live import Journal, LiveRunner, journal_path, load_live_config

    try:
        cfg, spec = load_live_config(a.config, broker=a.broker, mode=a.mode, store=a.store)
        day = dt.date.fromisoformat(a.date)
        if not calendar.is_session(day):
            raise ConfigError(f"--date {a.date} is not a trading session")
        if cfg.broker != "sim":
            raise ConfigError("broker 'ibkr' is not available in this runner yet; use --broker sim")
        days = [day]
        while len(days) < a.days:
            days.append(calendar.next_session(days[-1]))
        broker = SimulatedBroker(cfg.store, day, spec.fills, spec.fees, underlying=spec.underlying,
                                 capital=spec.sizing.capital, account=cfg.account, rate=spec.rate)  # fmt: skip
        journal = Journal(a.journal or journal_path(cfg.store, cfg.account))
        runner = LiveRunner(cfg, broker, journal, spec=spec)
        for d in days:
            runner.run_day(d)
        trades = journal.table("trades", cfg.mode)
        print(
            f"{len(trades)} trades, P&L {float(trades['pnl'].sum()):,.2f}; journal {journal.path}"
        )
        journal.close()
    except (QuantlabError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
