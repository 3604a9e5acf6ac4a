"""``quantlab live``: stop the runner, show its state, reconcile a day against the backtester.

* ``quantlab live stop [--config live/paper.yaml]`` creates the config's ``kill_file``: at its
  next minute the runner records the kill switch, takes no new entry for the rest of the session
  and cancels its own working ENTRY orders; open positions keep their take-profit, stop and time
  exits (closing orders keep working). The path is relative to the working directory, as the
  runner reads it; delete the file to allow entries again (from the next session or a restart).
* ``quantlab live status`` prints the open trades and the day's realized P&L from the journal.
* ``quantlab live reconcile --date YYYY-MM-DD`` re-runs the backtester on the day
  (:func:`quantlab.live.reconcile.reconcile_day`), writes ``reconcile-<journal>-<mode>-<date>.html``
  next to the journal and prints the tables; it exits 1 when parity is broken (for a cron job).
* ``quantlab live reconcile --since YYYY-MM-DD`` (without ``--date``) checks the fill model
  against the fills since that session (:mod:`quantlab.live.fill_k`): the ``k`` each filled
  order achieved against the quotes at its fill minute, by day, entry/exit, DTE, delta and hour,
  with a suggested ``fills.k`` and its interval; it writes ``fill-k-<journal>-<mode>-since-
  <date>.png`` and ``.parquet`` next to the journal.
* ``quantlab live flatten [--attempts 5] [--wait 3]`` closes every open position of the
  strategy now (:mod:`quantlab.live.flatten`): cancels its working orders, closes each open
  trade with a marketable limit (the fill model's exit price, one ``reprice_step`` more per
  re-price), journals it all (exit reason ``flatten``), prints what was closed and what is
  STILL OPEN; it exits 1 when anything is still open. Stop the runner first.

The journal is a DuckDB file that its runner holds open while it runs: ``status``,
``reconcile`` and ``flatten`` use it when the runner is not running (the evening, or after
``stop``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Live config YAML.")]
JournalOpt = Annotated[
    Path | None,
    typer.Option("--journal", help="Journal file (default: <store>/live/<account>.duckdb)."),
]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="shadow | paper | live (default: config's).")
]
DEFAULT_CONFIG = Path("live/paper.yaml")


def _fail(exc: BaseException) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _open_journal(path: Path) -> Any:
    import duckdb

    from quantlab.errors import DataError
    from quantlab.live.journal import Journal

    if not path.is_file():
        raise DataError(f"no live journal at {path}; run the live runner first (live/run.py).")
    try:
        return Journal(path)
    except duckdb.IOException as exc:
        raise DataError(
            f"journal {path} is held by a running runner ({exc}); read it once the runner stops."
        ) from None


@app.command("stop")
def stop_cmd(
    config: ConfigOpt = DEFAULT_CONFIG,
    kill_file: Annotated[
        Path | None, typer.Option("--kill-file", help="Default: the config's kill_file.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Written into the kill file.")] = "",
) -> None:
    """Create the kill file: no new entries, own entry orders cancelled (exits keep working)."""
    from quantlab.config import read_yaml
    from quantlab.errors import QuantlabError
    from quantlab.live.config import LiveConfig

    try:  # only the kill file is needed: a stop must work even if the rest of the file is off
        path = kill_file or Path(
            str(read_yaml(config).get("kill_file") or LiveConfig.model_fields["kill_file"].default)
        )
    except QuantlabError as exc:
        raise _fail(exc) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    path.write_text(f"{stamp} quantlab live stop{': ' + reason if reason else ''}\n")
    typer.echo(
        f"kill file created: {path.resolve()}\nthe runner stops new entries and cancels "
        "its own entry orders at its next minute; open positions keep their exits."
    )


@app.command("status")
def status_cmd(
    config: ConfigOpt = DEFAULT_CONFIG,
    journal: JournalOpt = None,
    mode: ModeOpt = None,
    date: Annotated[
        str | None, typer.Option("--date", help="Session (default: the journal's latest).")
    ] = None,
) -> None:
    """Open trades and the day's realized P&L, from the journal."""
    import polars as pl
    from rich.table import Table

    from quantlab import calendar
    from quantlab.console import wide_console
    from quantlab.errors import QuantlabError
    from quantlab.live.config import load_live_config
    from quantlab.live.journal import journal_path
    from quantlab.live.risk_view import last_record, print_risk

    try:
        cfg, _ = load_live_config(config, mode=mode)
        j = _open_journal(journal or journal_path(cfg.store, cfg.account, cfg.broker))
    except (QuantlabError, ValueError) as exc:
        raise _fail(exc) from None
    try:
        m = cfg.mode
        prog = j.table("progress", m)
        if date:
            day = dt.date.fromisoformat(date)
        elif prog.height:
            day = prog["day"].max()
        else:
            day = dt.datetime.now(dt.UTC).date()
        trades = j.table("trades", m).filter(pl.col("exit_date") == day)
        opened = j.open_states(m)
        dec = j.table("decisions", m).filter(pl.col("entry_date") == day)
        events = j.table("events", m)
        kills = events.filter(pl.col("kind") == "kill_switch")
        last = prog.filter(pl.col("day") == day)["last_ts"]
    finally:
        j.close()
    con = wide_console()
    taken = int((dec["decision"] == "taken").sum()) if dec.height else 0
    con.print(
        f"[bold]{cfg.account} [{m}] {day}[/bold]: realized P&L "
        f"{float(trades['pnl'].sum()) if trades.height else 0.0:,.2f} $ from "
        f"{trades.height} closed trade(s); {taken} of {dec.height} candidates taken; "
        f"{len(opened)} open",
        highlight=False,
    )
    if last.len():
        when = dt.datetime.fromtimestamp(int(last[0]) / 1e9, tz=calendar.ET)
        con.print(f"last minute processed: {when:%Y-%m-%d %H:%M} ET", highlight=False)
    for row in kills.iter_rows(named=True):
        con.print(f"[red]kill switch:[/red] {row['message']}", highlight=False)
    if opened:
        t = Table(title="Open trades", header_style="bold")
        for h in ("trade", "status", "entry", "expiry", "legs", "n", "credit"):
            t.add_column(h)
        for tid, s in opened.items():
            legs = " ".join(
                f"{lg['quantity']:+d} {lg['right']}{lg['strike']:g}" for lg in s["legs"]
            )
            credit = s.get("credit")
            t.add_row(
                tid,
                s["status"],
                f"{s['entry_date']} {s['entry_time']}",
                s["expiry"],
                legs,
                str(s["contracts"]),
                "" if credit is None or credit != credit else f"{credit:.2f}",
            )
        con.print(t)
        rec = last_record(events)
        if rec is not None:
            print_risk(con, *rec)
    if trades.height:
        t = Table(title=f"Closed {day}", header_style="bold")
        for h in ("trade", "entry", "exit reason", "n", "credit", "exit cost", "P&L"):
            t.add_column(h)
        for r in trades.sort("exit_ts").iter_rows(named=True):
            t.add_row(
                r["trade_id"],
                f"{r['entry_date']} {r['entry_time']}",
                r["exit_reason"],
                str(r["contracts"]),
                f"{r['credit_per_share']:.2f}",
                f"{r['exit_cost_per_share']:.2f}",
                f"{r['pnl']:,.2f}",
            )
        con.print(t)


@app.command("reconcile")
def reconcile_cmd(
    date: Annotated[
        str | None,
        typer.Option("--date", help="Session to reconcile against the backtester, YYYY-MM-DD."),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    journal: JournalOpt = None,
    store: Annotated[str | None, typer.Option("--store", help="Default: config's.")] = None,
    mode: ModeOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML path (default: next to the journal).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="With --date: first backtest session (default: the journal's first). Alone: "
            "the fill k achieved by every filled order since this session.",
        ),
    ] = None,
) -> None:
    """Compare a day of the journal with the backtester on the same data (exit 1: no parity);
    or, with --since and no --date, check the fill model against the fills since a date."""
    from rich.console import Console

    from quantlab.errors import QuantlabError
    from quantlab.live.config import load_live_config
    from quantlab.live.gate import MetaGate
    from quantlab.live.journal import journal_path
    from quantlab.live.reconcile import reconcile_day, report_path

    if date is None and since is None:
        raise _fail(ValueError("give --date (reconcile a day) or --since (the fill k report)."))
    if date is None:
        assert since is not None
        _fill_k(since, config, journal, store, mode)
        return
    try:
        day = dt.date.fromisoformat(date)
        cfg, spec = load_live_config(config, store=store, mode=mode)
        jp = journal or journal_path(cfg.store, cfg.account, cfg.broker)
        gate = MetaGate.load(cfg.meta_labeler) if cfg.meta_labeler is not None else None
        j = _open_journal(jp)
        try:
            rep = reconcile_day(
                j,
                cfg.store,
                spec,
                day,
                cfg.mode,
                gate=gate,
                workers=None,
                since=dt.date.fromisoformat(since) if since else None,
            )
        finally:
            j.close()
    except (QuantlabError, ValueError) as exc:
        raise _fail(exc) from None
    html = rep.to_html(out or report_path(jp, cfg.mode, day))
    rep.print(Console())
    typer.echo(f"report: {html}")
    if not rep.parity:
        raise typer.Exit(1)


def _fill_k(
    since: str, config: Path, journal: Path | None, store: str | None, mode: str | None
) -> None:
    """``reconcile --since``: the fill k report (:mod:`quantlab.live.fill_k`) printed, its
    histogram and per-fill table written next to the journal."""
    from quantlab.console import wide_console
    from quantlab.errors import QuantlabError
    from quantlab.live.config import load_live_config
    from quantlab.live.fill_k import fill_k_path, fill_k_report
    from quantlab.live.journal import journal_path

    try:
        first = dt.date.fromisoformat(since)
        cfg, spec = load_live_config(config, store=store, mode=mode)
        jp = journal or journal_path(cfg.store, cfg.account, cfg.broker)
        j = _open_journal(jp)
        try:
            rep = fill_k_report(
                j, cfg.store, cfg.mode, first, underlying=spec.underlying, fills=spec.fills
            )
        finally:
            j.close()
    except (QuantlabError, ValueError) as exc:
        raise _fail(exc) from None
    rep.print(wide_console())
    png = rep.plot(fill_k_path(jp, cfg.mode, first))
    rep.fills.write_parquet(png.with_suffix(".parquet"))
    typer.echo(f"histogram: {png}\nfills: {png.with_suffix('.parquet')}")


@app.command("flatten")
def flatten_cmd(
    config: ConfigOpt = DEFAULT_CONFIG,
    journal: JournalOpt = None,
    mode: ModeOpt = None,
    attempts: Annotated[
        int, typer.Option("--attempts", min=1, max=50, help="Orders per trade at most.")
    ] = 5,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0.0, help="Seconds an order works before it is re-priced."),
    ] = 3.0,
    live: Annotated[bool, typer.Option("--live", help="Required for mode live.")] = False,
) -> None:
    """Close every open position of the strategy now (exit 1: something is still open)."""
    from quantlab.console import wide_console
    from quantlab.errors import QuantlabError
    from quantlab.live.config import load_live_config
    from quantlab.live.flatten import run_flatten
    from quantlab.live.journal import journal_path

    try:
        cfg, spec = load_live_config(config, mode=mode)
        j = _open_journal(journal or journal_path(cfg.store, cfg.account, cfg.broker))
        try:
            rep = run_flatten(cfg, spec, j, live=live, attempts=attempts, wait_s=wait)
        finally:
            j.close()
    except (QuantlabError, ValueError) as exc:
        raise _fail(exc) from None
    rep.print(wide_console())
    if not rep.ok:
        raise typer.Exit(1)


__all__ = ["app"]
