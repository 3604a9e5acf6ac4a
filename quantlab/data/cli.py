"""``quantlab data ...`` subcommands."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


# --- fetch / import-lean / import-eod (quantlab.data.fetch, quantlab.data.importers) -----------
@app.command("fetch")
def fetch_cmd(
    start: str = typer.Option(..., "--start", help="First ET session date, YYYY-MM-DD."),
    end: str = typer.Option(..., "--end", help="Last ET session date (inclusive)."),
    store: str = typer.Option("data", "--store", help="Data store folder."),
    max_cost: float = typer.Option(5.0, "--max-cost", help="US dollars spent without asking."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Spend above --max-cost without asking."),
    schemas: list[str] = typer.Option(
        ["definition", "cbbo-1m", "statistics"], "--schemas", help="Schemas (repeat or comma-list)."
    ),
    gateway: str = typer.Option("", "--gateway", hidden=True, help="API gateway (tests)."),
) -> None:
    """Download Databento OPRA.PILLAR SPX/SPXW options (key from DATABENTO_API_KEY)."""
    import sys

    from quantlab.data.fetch import fetch
    from quantlab.errors import QuantlabError

    names = [s.strip() for item in schemas for s in item.split(",") if s.strip()]

    def ask(cost: float) -> bool:
        if not sys.stdin.isatty():
            return False
        return typer.confirm(f"Estimated cost ${cost:,.2f} is above --max-cost; download anyway?")

    try:
        report = fetch(store, start, end, schemas=names, max_cost=max_cost, yes=yes, confirm=ask,
                       gateway=gateway or None, progress=typer.echo)
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"downloaded {len(report.downloaded)} file(s) ({report.bytes_written:,} bytes), "
               f"skipped {len(report.skipped)} already verified")


@app.command("import-lean")
def import_lean_cmd(
    paths: list[str] = typer.Argument(..., help="LEAN zips or folders holding them."),
    store: str = typer.Option("data", "--store", help="Data store folder."),
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
    file: str = typer.Argument(..., help="End-of-day chain CSV."),
    format: str = typer.Option(  # noqa: A002 - the option is called --format
        "auto", "--format", help="hod | datashop | wide | auto (detect from the header)."
    ),
    store: str = typer.Option("data", "--store", help="Data store folder."),
    root: str = typer.Option("", "--root", help="SPX or SPXW when the file has no root column."),
    duplicates: str = typer.Option(
        "quarantine", "--duplicates", help="Repeated contract blocks: quarantine | relabel."
    ),
) -> None:
    """Import an end-of-day SPX/SPXW chain CSV (HistoricalOptionData or Cboe DataShop)."""
    from quantlab.data.importers import import_eod
    from quantlab.errors import QuantlabError

    try:
        summary = import_eod(file, store, format=format, root=root or None, duplicates=duplicates)
    except QuantlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in summary.lines():
        typer.echo(line)
