"""``quantlab data ...`` subcommands."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


# --- fetch / import-* (quantlab.data.fetch, quantlab.data.importers, quantlab.data.settlements) ---
@app.command("fetch")
def fetch_cmd(
    start: Annotated[str, typer.Option("--start", help="First ET session date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last ET session date (inclusive).")],
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    max_cost: Annotated[
        float, typer.Option("--max-cost", help="US dollars spent without asking.")
    ] = 5.0,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Spend above --max-cost without asking.")
    ] = False,
    schemas: Annotated[
        list[str] | None,
        typer.Option("--schemas", help="definition, cbbo-1m, statistics (repeat or comma-list)."),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", help="Retries of a transient error (429/5xx/cut body).")
    ] = 4,
    backoff: Annotated[float, typer.Option("--backoff", hidden=True)] = 1.0,
    gateway: Annotated[str, typer.Option("--gateway", hidden=True)] = "",
) -> None:
    """Download Databento OPRA.PILLAR SPX/SPXW options (key from DATABENTO_API_KEY)."""
    import sys

    from quantlab.data.fetch import fetch
    from quantlab.data.layout import RAW_SCHEMAS
    from quantlab.errors import QuantlabError

    names = [s.strip() for item in schemas or RAW_SCHEMAS for s in item.split(",") if s.strip()]

    def ask(cost: float) -> bool:
        if not sys.stdin.isatty():
            return False
        return typer.confirm(f"Estimated cost ${cost:,.2f} is above --max-cost; download anyway?")

    try:
        report = fetch(
            store,
            start,
            end,
            schemas=names,
            max_cost=max_cost,
            yes=yes,
            confirm=ask,
            retries=retries,
            backoff=backoff,
            gateway=gateway or None,
            progress=typer.echo,
        )
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"downloaded {len(report.downloaded)} file(s) ({report.bytes_written:,} bytes), "
        f"skipped {len(report.skipped)} already verified"
    )


@app.command("import-lean")
def import_lean_cmd(
    paths: Annotated[list[str], typer.Argument(help="LEAN zips, or folders holding them.")],
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
) -> None:
    """Import LEAN minute option quotes, open interest and SPX index bars into the store."""
    from quantlab.data.importers import import_lean
    from quantlab.errors import QuantlabError

    try:
        summary = import_lean(paths, store)
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in summary.lines():
        typer.echo(line)


@app.command("import-eod")
def import_eod_cmd(
    file: Annotated[str, typer.Argument(help="End-of-day chain CSV.")],
    fmt: Annotated[
        str, typer.Option("--format", help="hod | datashop | wide | auto (from the header).")
    ] = "auto",
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    root: Annotated[
        str, typer.Option("--root", help="SPX or SPXW when the file has no root column.")
    ] = "",
    duplicates: Annotated[
        str, typer.Option("--duplicates", help="Repeated contract blocks: quarantine | relabel.")
    ] = "quarantine",
) -> None:
    """Import an end-of-day SPX/SPXW chain CSV (HistoricalOptionData or Cboe DataShop)."""
    from quantlab.data.importers import import_eod
    from quantlab.errors import QuantlabError

    try:
        summary = import_eod(file, store, format=fmt, root=root or None, duplicates=duplicates)
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in summary.lines():
        typer.echo(line)


_IMPORT_SETTLEMENTS_HELP = (
    "Import official SPX (AM) / SPXW (PM) settlement values from a CSV; they win over every "
    "other source (index bars, vendor prices, broker, parity estimates).\n\n"
    "Columns, named in a header row (any order, case-insensitive): root (SPX or SPXW), expiry "
    "(YYYY-MM-DD, a trading session), value (index points, > 0); optional: style (AM or PM; "
    "default AM for SPX, PM for SPXW) and note (free text). No other column is accepted.\n\n"
    "Example:\n\n"
    "    root,expiry,value,note\n"
    "    SPXW,2018-01-31,2823.81,Cboe SPX close\n"
    "    SPX,2018-02-16,2727.25,SET\n\n"
    "Every row is checked before anything is written: a bad row fails the import with an "
    "error naming the row (1 = first after the header), its file line and the column, and the "
    "store is left unchanged. Importing a corrected value replaces the previous official one."
)


@app.command("import-settlements", help=_IMPORT_SETTLEMENTS_HELP)
def import_settlements_cmd(
    file: Annotated[str, typer.Argument(help="CSV of official settlement values.")],
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
) -> None:
    """Import official settlement values (:func:`quantlab.data.settlements.import_csv`)."""
    from quantlab.data.settlements import import_csv
    from quantlab.errors import QuantlabError

    try:
        summary = import_csv(store, file)
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in summary.lines():
        typer.echo(line)


# --- ingest / check / sql (quantlab.data.ingest, quantlab.data.quality, quantlab.data.store) ---
@app.command("ingest")
def ingest_cmd(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="DBN files or folders (default: new files under <store>/raw/)."),
    ] = None,
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    force: Annotated[
        bool, typer.Option("--force", help="Re-ingest files the manifest already lists.")
    ] = False,
) -> None:
    """Ingest Databento DBN files (definition, cbbo-1m, statistics) into the Parquet store."""
    from quantlab.data.ingest import ingest
    from quantlab.errors import QuantlabError

    try:
        report = ingest(paths or None, store, force=force, progress=True)
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(report.summary())


@app.command("check")
def check_cmd(
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    date: Annotated[str, typer.Option("--date", help="One ET session, YYYY-MM-DD.")] = "",
    underlying: Annotated[str, typer.Option("--underlying", help="E.g. SPX.")] = "",
    stale_minutes: Annotated[
        int, typer.Option("--stale-minutes", help="Minutes without change that make stale.")
    ] = 30,
) -> None:
    """Quality report: crossed/locked/zero-bid/one-sided quotes, stale instruments, gaps; then
    the expiries without an official or index settlement value (with --date: expiring that day)
    and the sources they have instead."""
    from quantlab.data import quality
    from quantlab.data.store import list_underlyings
    from quantlab.errors import QuantlabError

    try:
        if date:
            unds = [underlying] if underlying else list_underlyings(store, "quotes")
            if not unds:
                typer.echo(f"no quote partitions in {store}", err=True)
                raise typer.Exit(1)
            for u in unds:
                quality.print_report(quality.check_day(store, u, date, stale_minutes=stale_minutes))
        else:
            quality.print_report(
                quality.check_days(store, underlying or None, stale_minutes=stale_minutes)
            )
        gaps = quality.settlement_gaps(store, underlying or None, day=date or None)
        quality.print_settlement_gaps(gaps)
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("sql")
def sql_cmd(
    query: Annotated[
        str,
        typer.Argument(
            help="SQL over views instruments, quotes, open_interest, underlying_bars, quarantine."
        ),
    ],
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    limit: Annotated[int, typer.Option("--limit", help="Rows printed at most.")] = 50,
) -> None:
    """Run a DuckDB query over the store's Parquet tables and print the result."""
    import duckdb
    import polars as pl

    from quantlab.data.store import connect

    con = connect(store)
    try:
        result = con.sql(query)
        if result is None:
            return
        df = result.pl()
    except duckdb.Error as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        con.close()
    with pl.Config(tbl_rows=limit, tbl_cols=-1, tbl_width_chars=200):
        typer.echo(df.head(limit) if df.height > limit else df)
    if df.height > limit:
        typer.echo(f"... {df.height - limit:,} more row(s)")


# --- synth (quantlab.data.synth) ----------------------------------------------------------------
@app.command("synth")
def synth_cmd(
    start: Annotated[str, typer.Option("--start", help="First ET session date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last ET session date (inclusive).")],
    seed: Annotated[int, typer.Option("--seed", help="Master seed (same seed = same files).")] = 7,
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    profile: Annotated[
        str,
        typer.Option("--profile", help="test | demo | full | spxw10 (see quantlab.data.synth)."),
    ] = "demo",
    dte_max: Annotated[
        int | None, typer.Option("--dte-max", help="Override the profile's max DTE (days).")
    ] = None,
    moneyness: Annotated[
        float | None, typer.Option("--moneyness", help="Override the 5-point band, e.g. 0.10.")
    ] = None,
) -> None:
    """Write a synthetic SPX/SPXW OPRA market as real DBN files (+ truth) into the store."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from quantlab import calendar
    from quantlab.data.synth import synthesize
    from quantlab.errors import QuantlabError

    try:
        n_days = len(calendar.sessions(start, end))
        with Progress(
            TextColumn("synth {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]}"),
        ) as bar:
            task = bar.add_task(start, total=n_days, rate="")
            seen = [0]

            def tick(res: object) -> None:
                seen[0] += getattr(res, "n_quotes", 0)
                rate = seen[0] / max(bar.tasks[0].elapsed or 1e-9, 1e-9)
                bar.update(
                    task,
                    advance=1,
                    description=str(getattr(res, "day", "")),
                    rate=f"{rate:,.0f} quotes/s",
                )

            rep = synthesize(
                start,
                end,
                seed,
                store,
                profile=profile,
                dte_max=dte_max,
                moneyness=moneyness,
                on_day=tick,
            )
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"wrote {len(rep.files)} file(s) for {len(rep.days)} session(s) into {store}: "
        f"{rep.n_quotes:,} quotes, {rep.n_instruments:,} instrument-days, "
        f"{rep.bytes_written:,} bytes in {rep.seconds:.1f} s ({rep.quotes_per_second:,.0f} quotes/s)"
    )


# --- day cache (quantlab.data.daycache) ----------------------------------------------------------
@app.command("cache")
def cache_cmd(
    store: Annotated[str, typer.Option("--store", help="Data store folder.")] = "data",
    clear: Annotated[bool, typer.Option("--clear", help="Delete every cached day.")] = False,
) -> None:
    """Show (or --clear) the backtester's day cache: derived arrays under <store>/cache, rebuilt
    on demand; set QUANTLAB_DAY_CACHE=0 to run without it."""
    from quantlab.data import daycache

    root = daycache.root_dir(store)
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    size = sum(p.stat().st_size for p in files)
    days = {p.parent for p in files}
    typer.echo(
        f"{root}: {len(days)} cached day folder(s), {size / 1e6:,.1f} MB"
        f"{'' if daycache.enabled() else ' (disabled by QUANTLAB_DAY_CACHE)'}"
    )
    if clear:
        daycache.clear(store)
        typer.echo(f"cleared {size / 1e6:,.1f} MB")
