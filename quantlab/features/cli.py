"""``quantlab features build CONFIG``: point-in-time features of a strategy's candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("build")
def build_cmd(
    config: Annotated[Path, typer.Argument(help="Training YAML, backtest YAML or strategy YAML.")],
    store: Annotated[str | None, typer.Option("--store", help="Data store folder.")] = None,
    feature_set: Annotated[
        str | None, typer.Option("--feature-set", help="Feature set name (default: config's).")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Stage-1 processes.")] = None,
) -> None:
    """Run stage 1 for the strategy and build (or reuse) its candidates' features."""
    from rich.console import Console

    from quantlab.config import read_yaml
    from quantlab.data import store as st
    from quantlab.errors import QuantlabError

    con = Console()
    try:
        from quantlab.backtest.engine import stage1
        from quantlab.features import FeatureSet, build_features, features_dir

        data = read_yaml(config)
        if "strategy" in data and set(data) - {"strategy", "start", "end"}:
            from quantlab.ml.train import load_train_config

            cfg = load_train_config(config, store=store)
            spec, root, a, b, name = cfg.strategy, cfg.store, cfg.start, cfg.end, cfg.feature_set
        else:
            from quantlab.backtest.engine import load_config

            bcfg = load_config(config)
            spec, root, a, b, name = bcfg.strategy, store or "data", bcfg.start, bcfg.end, "core"
        fs = FeatureSet(feature_set or name)
        days = st.list_days(root, "quotes", spec.underlying)
        if not days:
            con.print(f"[red]error:[/red] store {root} holds no {spec.underlying} quotes")
            raise typer.Exit(1)
        s1 = stage1(
            root,
            [spec],
            a or days[0],
            b or days[-1],
            underlying=spec.underlying,
            workers=workers,
            progress=True,
        )
        feats = build_features(root, s1, fs, underlying=spec.underlying, progress=True)
    except QuantlabError as exc:
        con.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    con.print(
        f"{feats.height} candidates, {len(fs.columns)} features, version {fs.version}: "
        f"{features_dir(root, fs)} and {st.store_root(root) / 'features.duckdb'}"
    )
