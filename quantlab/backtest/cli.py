"""``quantlab backtest CONFIG``: run a strategy over the store and write its outputs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer


def summary_table(summary: dict, title: str) -> Any:
    """A rich table of the headline numbers of :func:`quantlab.backtest.analytics.summarize`."""
    from rich.table import Table

    perf, tr, boot = summary["performance"], summary["trades"], summary["bootstrap"]
    table = Table(title=title, show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")

    def pct(x: float) -> str:
        return "-" if x != x else f"{100 * x:,.2f}%"

    def num(x: float, fmt: str = ",.2f") -> str:
        return "-" if x != x else format(x, fmt)

    lo, hi = boot.get("expectancy_ci", (float("nan"), float("nan")))
    rows = [
        ("trades", f"{tr['n_trades']:,}"),
        ("total return", pct(perf["total_return"])),
        ("CAGR", pct(perf["annualized_return"])),
        ("Sharpe / Sortino", f"{num(perf['sharpe_ratio'])} / {num(perf['sortino_ratio'])}"),
        ("max drawdown", pct(perf["max_drawdown"])),
        ("win rate", pct(tr["win_rate"])),
        ("profit factor", num(tr["profit_factor"])),
        ("expectancy $/trade (95% CI)", f"{num(tr['expectancy'])} ({num(lo)} .. {num(hi)})"),
        ("average credit $/share", num(tr["avg_credit_per_share"])),
        ("CVaR 5% $/trade", num(tr["cvar_5"])),
        ("fees $", num(tr["total_fees"])),
    ]
    st = summary.get("settlements")
    if st and st["n_settled"]:
        srcs = ", ".join(f"{n} {src}" for src, n in st["by_source"].items())
        est = (
            f"; {st['n_estimated']} on parity estimates (largest std error "
            f"{st['max_std_error']:.2f} pts)"
            if st["n_estimated"]
            else ""
        )
        rows.append(("settled at expiry", f"{st['n_settled']} ({srcs}){est}"))
    if st and st["n_end_of_data"]:
        rows.append(("open when the data ends", f"{st['n_end_of_data']} (end_of_data)"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def backtest_cmd(
    config: Annotated[
        Path, typer.Argument(help="Strategy YAML, or a backtest YAML with strategy/start/end.")
    ],
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    out: Annotated[
        str | None, typer.Option("--out", help="Output folder (default out/<name>).")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="First session, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last session, YYYY-MM-DD.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Stage-1 processes.")] = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip the HTML/PNG report.")
    ] = False,
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Do not log the run to MLflow.")
    ] = False,
) -> None:
    """Backtest a strategy on the store: trades, decisions, equity, analytics and a report."""
    from rich.console import Console

    from quantlab.backtest.analytics import config_metrics, summarize
    from quantlab.backtest.engine import backtest, load_config
    from quantlab.errors import QuantlabError

    con = Console()
    try:
        cfg = load_config(config)
        out_dir = Path(out) if out else Path("out") / cfg.strategy.name
        res = backtest(
            cfg,
            store,
            start=dt.date.fromisoformat(start) if start else None,
            end=dt.date.fromisoformat(end) if end else None,
            out=out_dir,
            workers=workers,
            progress=True,
            report=not no_report,
        )
    except QuantlabError as exc:
        con.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    r = res.results[0]
    summary = summarize(r.trades, r.equity_daily, r.capital, r.decisions, n_boot=500)
    con.print(
        summary_table(
            summary, f"{cfg.strategy.name}: {res.stage1.days[0]} .. {res.stage1.days[-1]}"
        )
    )
    be = None
    if res.cost_curve is not None:
        from quantlab.backtest.costs import break_even_k, break_even_sentence

        be = break_even_k(res.cost_curve)
        con.print(f"cost curve: {break_even_sentence(res.cost_curve)}")
    con.print(
        f"outputs: {out_dir}/ (trades.parquet, decisions.parquet, cost_curve.parquet, "
        f"results.duckdb{'' if no_report else ', report.html'})"
    )
    if not no_mlflow:
        from quantlab.tracking import log_backtest, tracking_uri

        metrics = config_metrics(r.trades, r.equity_daily, r.capital)
        if be is not None:
            metrics["break_even_k"] = be
        run = log_backtest(cfg.strategy, out_dir, metrics, res.stage1.data_checksum)
        con.print(f"MLflow run {run} in {tracking_uri()}")
