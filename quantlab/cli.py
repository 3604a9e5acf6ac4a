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
    seed: int = typer.Option(7, help="Seed of the synthetic chain."),
) -> None:
    """Run the end-to-end demo on built-in synthetic data (pricing, market data, backtest)."""
    from quantlab.demo import run_demo

    run_demo(seed=seed)


def _register_groups() -> None:
    from quantlab.backtest.cli import backtest_cmd
    from quantlab.data.cli import app as data_app

    app.command("backtest")(backtest_cmd)
    from quantlab.sweep.cli import sweep_cmd

    app.command("sweep")(sweep_cmd)
    app.add_typer(data_app, name="data", help="Fetch, synthesize, ingest and inspect market data.")
    from quantlab.features.cli import app as features_app
    from quantlab.ml.cli import train_cmd

    app.command("train")(train_cmd)
    app.add_typer(features_app, name="features", help="Build point-in-time candidate features.")


_register_groups()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
