"""``quantlab sweep CONFIG``: a grid or random search over strategy parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table


def sweep_cmd(
    config: Annotated[Path, typer.Argument(help="Sweep YAML (see pipelines/seed_grid.yaml).")],
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    out: Annotated[
        str | None, typer.Option("--out", help="Output folder (default out/sweeps/<name>).")
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", help="process (default) or ray.")
    ] = "process",
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel workers.")] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not log to MLflow.")] = False,
) -> None:
    """Run (or resume) a parameter sweep; prints the best configs, the deflated Sharpe and the PBO."""
    from rich.console import Console

    from quantlab.errors import QuantlabError
    from quantlab.sweep.config import load_sweep
    from quantlab.sweep.runner import run_sweep

    con = Console()
    try:
        cfg = load_sweep(config)
        res = run_sweep(cfg, store, out, executor=executor, workers=workers, mlflow=not no_mlflow)
    except QuantlabError as exc:
        con.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    con.print(sweep_table(res.summary, cfg.metric))
    con.print(f"outputs: {res.out}/ (sweep.duckdb, summary.json, heatmaps)")


def sweep_table(summary: dict, metric: str) -> Table:
    t = Table(
        title=f"sweep {summary['name']}: {summary['done']} done, {summary['failed']} failed, "
        f"{summary['sessions']} sessions"
    )
    for col in ("config", metric, "total_pnl", "n_trades", "win_rate", "max_drawdown"):
        t.add_column(col, justify="right" if col != "config" else "left")
    for r in summary.get("best", [])[:10]:
        params = ", ".join(f"{k[6:]}={v}" for k, v in r.items() if k.startswith("param."))

        def f(x: object, fmt: str = ".2f") -> str:
            return "-" if x is None or x != x else format(x, fmt)

        t.add_row(
            params,
            f(r.get(metric)),
            f(r.get("total_pnl"), ",.0f"),
            f(r.get("n_trades"), ".0f"),
            f(r.get("win_rate"), ".1%"),
            f(r.get("max_drawdown"), ".2%"),
        )
    if "deflated_sharpe" in summary:
        d = summary["deflated_sharpe"]
        t.caption = (
            f"deflated Sharpe ratio {d['dsr']:.3f} (best per-period SR {d['sr']:.3f} vs expected max "
            f"{d['sr_star']:.3f} over {d['n_trials']} trials)"
        )
    if "pbo" in summary:
        t.caption = (
            t.caption or ""
        ) + f"; PBO {summary['pbo']['pbo']:.2f} (CSCV, {summary['pbo']['n_splits']} blocks)"
    return t
