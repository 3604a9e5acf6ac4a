"""``quantlab walkforward CONFIG``: walk-forward optimisation of a sweep's configs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.table import Table


def walkforward_cmd(
    config: Annotated[
        Path, typer.Argument(help="Walk-forward YAML (see pipelines/walkforward_seed.yaml).")
    ],
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    out: Annotated[
        str | None, typer.Option("--out", help="Output folder (default out/walkforward/<name>).")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Stage-1 processes.")] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not log to MLflow.")] = False,
) -> None:
    """Re-choose the sweep's best config on each train window and trade it on the next test
    window; prints the windows, the stitched out-of-sample figures and the look-ahead ones."""
    from quantlab.backtest._walkforward_report import short_name
    from quantlab.backtest.walkforward_run import walkforward
    from quantlab.console import wide_console
    from quantlab.errors import QuantlabError

    con = wide_console()
    try:
        run = walkforward(config, store, out, workers=workers, mlflow=not no_mlflow)
    except QuantlabError as exc:
        con.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    con.print(windows_table(run.result.windows))
    s = run.result.summary
    d = s["deflated_sharpe"]
    con.print(
        f"out of sample: P&L ${s['oos_total_pnl']:,.0f}, Sharpe {s['oos_sharpe']:.2f}, "
        f"{s['oos_n_trades']} trades; deflated Sharpe {d['dsr']:.3g} over {d['n_trials']:.0f} configs"
    )
    con.print(
        f"look-ahead ({short_name(s['lookahead_config'])}): P&L ${s['lookahead_total_pnl']:,.0f}, "
        f"Sharpe {s['lookahead_sharpe']:.2f}, {s['lookahead_n_trades']} trades"
    )
    con.print(f"outputs: {run.out}/ (walkforward.html, windows.parquet, trades.parquet)")


def windows_table(windows: pl.DataFrame) -> Table:
    """The windows as a rich table: dates, chosen config, IS and OOS Sharpe, trades, P&L."""
    from quantlab.backtest._walkforward_report import short_name

    t = Table(title="walk-forward windows")
    cols = ("window", "train", "test", "config", "IS Sharpe", "OOS Sharpe", "trades", "P&L")
    for c in cols:
        t.add_column(c, justify="left" if c in ("train", "test", "config") else "right")
    for w in windows.to_dicts():
        t.add_row(
            str(w["window"]),
            f"{w['train_start']}..{w['train_end']}",
            f"{w['test_start']}..{w['test_end']}",
            short_name(w["config"]),
            f"{w['is_sharpe']:.2f}",
            f"{w['oos_sharpe']:.2f}",
            str(w["n_trades"]),
            f"{w['pnl']:,.0f}",
        )
    return t
