"""``quantlab train CONFIG``: tune, fit, evaluate and register the meta-labeler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def evaluation_table(ev: Any, title: str) -> Any:
    """A rich table of :func:`quantlab.ml.train.evaluate_strategy`'s rows, values as they are."""
    from rich.table import Table

    table = Table(title=title)
    for col in ev.columns:
        table.add_column(col, justify="left" if col == "variant" else "right")
    for row in ev.iter_rows():
        table.add_row(*[f"{v:,.4g}" if isinstance(v, float) else str(v) for v in row])
    return table


def train_cmd(
    config: Annotated[Path, typer.Argument(help="Training YAML (pipelines/train_seed.yaml).")],
    store: Annotated[str | None, typer.Option("--store", help="Data store folder.")] = None,
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Do not log or register in MLflow.")
    ] = False,
) -> None:
    """Train the meta-labeler: purged-CV Optuna tuning, held-out test, filtered vs unfiltered."""
    from rich.console import Console

    from quantlab.errors import QuantlabError
    from quantlab.ml.train import load_train_config, train

    con = Console()
    try:
        cfg = load_train_config(config, store=store)
        res = train(cfg, mlflow_log=not no_mlflow, progress=True)
    except QuantlabError as exc:
        con.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    m = res.test_metrics
    con.print(f"study {res.study_name}: {res.n_trials} trials; best params {res.best_params}")
    con.print(
        f"CV (training period) mean AUC {res.cv['mean']['auc']:.4f}, "
        f"OOF AUC {res.cv['oof_auc']:.4f}; threshold {res.threshold:.4f}"
    )
    con.print(
        f"test: n={int(m['n_test'])} AUC {m['auc']:.4f} log loss {m['log_loss']:.4f} "
        f"Brier {m['brier']:.4f} precision {m['precision']:.4f} recall {m['recall']:.4f} "
        f"F1 {m['f1']:.4f}"
    )
    con.print(evaluation_table(res.evaluation, "held-out test period: filtered vs unfiltered"))
    if res.run_id:
        con.print(
            f"MLflow run {res.run_id}; model {cfg.model_name} v{res.model_version} (alias champion)"
        )
