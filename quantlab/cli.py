"""The ``quantlab`` command line. Subcommand groups live beside the code they drive."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="quantlab",
    help="Backtest-first research for SPX/SPXW option structures.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def demo(
    seed: int = typer.Option(7, help="Seed of the synthetic market."),
    store: str = typer.Option("data/demo", help="Data store for the synthetic market."),
    out: str = typer.Option("out/demo", help="Output folder (reports, sweep, evaluation)."),
    start: str = typer.Option("2024-01-02", help="First session (YYYY-MM-DD)."),
    end: str = typer.Option("2024-03-28", help="Last session (YYYY-MM-DD)."),
    trials: int | None = typer.Option(None, help="Optuna trials (default: pipelines file)."),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="Do not log to MLflow."),
) -> None:
    """The research loop end to end on built-in synthetic data: market, seed grid with deflated
    Sharpe, backtest report, features and meta-labeler, all logged to MLflow."""
    from quantlab.demo import run_demo
    from quantlab.errors import QuantlabError

    try:
        run_demo(
            seed=seed,
            store=store,
            out=out,
            start=start,
            end=end,
            trials=trials,
            mlflow=not no_mlflow,
        )
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _register_groups() -> None:
    from quantlab.backtest.cli import backtest_cmd
    from quantlab.data.cli import app as data_app

    app.command("backtest")(backtest_cmd)
    from quantlab.sweep.cli import sweep_cmd

    app.command("sweep")(sweep_cmd)
    from quantlab.backtest.walkforward_cli import walkforward_cmd

    app.command("walkforward")(walkforward_cmd)
    app.add_typer(data_app, name="data", help="Fetch, synthesize, ingest and inspect market data.")
    from quantlab.features.cli import app as features_app
    from quantlab.ml.cli import train_cmd

    app.command("train")(train_cmd)
    app.add_typer(features_app, name="features", help="Build point-in-time candidate features.")
    from quantlab.live.cli import app as live_app

    app.add_typer(live_app, name="live", help="Live runner: stop, status, evening reconciliation.")


_register_groups()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
