"""Run the live runner: whole days offline (``--broker sim``) or today's session on IBKR.

python live/run.py --config live/paper.yaml --broker sim --date 2024-03-04 [--days 3] [--store DIR]
python live/run.py --config live/paper.yaml --broker ibkr            # today, TWS/IB Gateway paper
python live/run.py --config live/paper.yaml --broker ibkr --mode live --live   # real money
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING

from quantlab import calendar
from quantlab.errors import ConfigError, QuantlabError

if TYPE_CHECKING:
    from quantlab.brokers import Broker
    from quantlab.live import Journal, LiveConfig, MetaGate
    from quantlab.strategy import StrategySpec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    ap.add_argument("--config", default="live/paper.yaml")
    ap.add_argument("--broker", choices=["sim", "ibkr"], default=None)
    ap.add_argument("--mode", choices=["shadow", "paper", "live"], default=None)
    ap.add_argument("--date", default=None, help="first session, YYYY-MM-DD (ibkr: today only)")
    ap.add_argument("--days", type=int, default=1, help="consecutive sessions to run (sim)")
    ap.add_argument("--store", default=None)
    ap.add_argument(
        "--journal",
        default=None,
        help="default: <store>/live/<account>.duckdb (sim), <store>/live/ibkr.duckdb (ibkr)",
    )
    ap.add_argument("--live", action="store_true", help="required for mode live (real money)")
    ap.add_argument(
        "--no-reconcile",
        action="store_true",
        help="sim: skip the evening reconciliation against the backtester",
    )
    a = ap.parse_args(argv)
    from quantlab.live import Journal, LiveRunner, journal_path, load_live_config

    try:
        cfg, spec = load_live_config(a.config, broker=a.broker, mode=a.mode, store=a.store)
        if (cfg.mode == "live") != a.live:
            raise ConfigError(
                "mode 'live' trades real money and needs the explicit --live flag"
                if not a.live
                else "--live is only for mode live (--mode live)"
            )
        today = dt.datetime.now(calendar.ET).date()
        if a.date is None and cfg.broker == "sim":
            raise ConfigError("--date is required with --broker sim")
        day = dt.date.fromisoformat(a.date) if a.date else today
        if not calendar.is_session(day):
            raise ConfigError(f"--date {day} is not a trading session")
        days = [day]
        while len(days) < a.days:
            days.append(calendar.next_session(days[-1]))
        if cfg.broker == "ibkr":
            if days != [today]:
                raise ConfigError(
                    f"the IBKR broker runs the current session only (today is "
                    f"{today}; got --date {day} --days {a.days})"
                )
            from quantlab.brokers.ibkr import IBKRBroker

            broker: Broker = IBKRBroker.from_config(
                cfg.ibkr,
                account=None if cfg.account == "SIM" else cfg.account,
                live=a.live,
                spec=spec,
            )
            broker.connect()
        else:
            from quantlab.brokers.simulated import SimulatedBroker

            broker = SimulatedBroker(
                cfg.store,
                day,
                spec.fills,
                spec.fees,
                underlying=spec.underlying,
                capital=spec.sizing.capital,
                account=cfg.account,
                rate=spec.rate,
            )
        journal = Journal(a.journal or journal_path(cfg.store, cfg.account, cfg.broker))
        runner = LiveRunner(cfg, broker, journal, spec=spec)
        for d in days:
            runner.run_day(d)
        trades = journal.table("trades", cfg.mode)
        print(
            f"{len(trades)} trades, P&L {float(trades['pnl'].sum()):,.2f}; journal {journal.path}"
        )
        if cfg.broker == "sim" and not a.no_reconcile:
            evening_reports(journal, cfg, spec, days, runner.gate)
        elif cfg.broker == "ibkr":
            print(
                f"evening reconciliation, once the day's OPRA quotes are in {cfg.store}: "
                f"quantlab live reconcile --config {a.config} --date {day}"
            )
        journal.close()
        broker.disconnect()
    except (QuantlabError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def evening_reports(
    journal: Journal,
    cfg: LiveConfig,
    spec: StrategySpec,
    days: list[dt.date],
    gate: MetaGate | None,
) -> None:
    """Each day's reconciliation against the backtester (parity, slippage), as HTML beside the
    journal; the store already holds the replayed days."""
    from quantlab.live.reconcile import reconcile_day, report_path

    for d in days:
        rep = reconcile_day(journal, cfg.store, spec, d, cfg.mode, gate=gate)
        html = rep.to_html(report_path(journal.path, cfg.mode, d))
        print(f"{rep.summary()}; report {html}")


if __name__ == "__main__":
    sys.exit(main())
