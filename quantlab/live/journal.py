"""The live runner's journal: one DuckDB file, every event committed as it happens.

Tables (each row carries the runner's ``mode``): ``decisions`` (DECISION_SCHEMA and ``meta_p``,
the meta-labeler's probability), ``orders``, ``fills``, ``open_trades`` (the runner's state of
each trade not closed yet, as JSON), ``trades`` (TRADE_SCHEMA, written when a trade closes, in
the same transaction that removes it from ``open_trades``), ``events`` (notifications, kill
switch) and ``progress`` (last minute fully processed per day). A crash leaves a consistent
record; a restarted runner resumes from it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from quantlab.backtest.records import DECISION_SCHEMA, TRADE_SCHEMA
from quantlab.data import store as st

_DDL = (
    "CREATE TABLE IF NOT EXISTS orders (order_ref VARCHAR PRIMARY KEY, order_id VARCHAR, "
    "trade_id VARCHAR, purpose VARCHAR, ts BIGINT, quantity INTEGER, limit_price DOUBLE, "
    "legs VARCHAR, status VARCHAR, mode VARCHAR)",
    "CREATE TABLE IF NOT EXISTS fills (exec_id VARCHAR PRIMARY KEY, order_ref VARCHAR, "
    "order_id VARCHAR, ts BIGINT, quantity INTEGER, price DOUBLE, leg_prices VARCHAR, "
    "fees DOUBLE, mode VARCHAR)",
    "CREATE TABLE IF NOT EXISTS open_trades (trade_id VARCHAR PRIMARY KEY, state VARCHAR, "
    "mode VARCHAR)",
    "CREATE TABLE IF NOT EXISTS events (ts BIGINT, kind VARCHAR, message VARCHAR, "
    "data VARCHAR, mode VARCHAR)",
    "CREATE TABLE IF NOT EXISTS progress (mode VARCHAR, day DATE, last_ts BIGINT, "
    "PRIMARY KEY (mode, day))",
)


def journal_path(store: st.StoreLike, account: str = "SIM", broker: str = "sim") -> Path:
    """Default journal file: ``<store>/live/<account>.duckdb`` for the simulated broker,
    ``<store>/live/ibkr.duckdb`` for Interactive Brokers. Replays and broker sessions never
    share a journal (their P&L, open trades and risk state must not mix), and no IB account id
    appears in a file name."""
    if broker == "sim":
        return Path(st.store_root(store)) / "live" / f"{account}.duckdb"
    return Path(st.store_root(store)) / "live" / f"{broker}.duckdb"


class Journal:
    """Append-as-it-happens record of a live runner (one writer at a time)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path))
        self.writes = 0  # event writes so far (the runner checkpoints its progress after them)
        for ddl in _DDL:
            self.con.execute(ddl)
        for name, schema in (("decisions", DECISION_SCHEMA), ("trades", TRADE_SCHEMA)):
            empty = pl.DataFrame(schema=schema).with_columns(pl.lit("").alias("mode"))
            self.con.register("_rows", empty.to_arrow())
            try:
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM _rows")
            finally:
                self.con.unregister("_rows")
        # the meta-labeler's P(take) of the candidate (NULL when no gate is configured)
        self.con.execute("ALTER TABLE decisions ADD COLUMN IF NOT EXISTS meta_p DOUBLE")

    def _insert(self, table: str, df: pl.DataFrame) -> None:
        self.con.register("_rows", df.to_arrow())
        try:
            self.con.execute(f"INSERT INTO {table} SELECT * FROM _rows")
        finally:
            self.con.unregister("_rows")

    def close(self) -> None:
        self.con.close()

    # -- writes (each one committed) --------------------------------------------------------
    def decision(self, row: dict[str, Any], mode: str) -> None:
        """Record a decision once per (candidate_id, mode); ``row`` may carry ``meta_p``."""
        self.writes += 1
        hit = self.con.execute(
            "SELECT 1 FROM decisions WHERE candidate_id = ? AND mode = ?",
            [row["candidate_id"], mode],
        ).fetchone()
        if hit is None:
            p = row.get("meta_p")
            df = pl.DataFrame([{k: row[k] for k in DECISION_SCHEMA}], schema=DECISION_SCHEMA)
            df = df.with_columns(pl.lit(mode).alias("mode"), pl.lit(p, pl.Float64).alias("meta_p"))
            self._insert("decisions", df)

    def order(
        self,
        ref: str,
        order_id: str,
        trade_id: str,
        purpose: str,
        ts: int,
        quantity: int,
        limit_price: float,
        legs: Any,
        status: str,
        mode: str,
    ) -> None:
        self.writes += 1
        self.con.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_ref) "
            "DO UPDATE SET status = excluded.status",
            [
                ref,
                order_id,
                trade_id,
                purpose,
                ts,
                quantity,
                limit_price,
                json.dumps([[leg.occ, leg.ratio] for leg in legs]),
                status,
                mode,
            ],
        )

    def order_status(self, ref: str, status: str) -> None:
        self.writes += 1
        self.con.execute("UPDATE orders SET status = ? WHERE order_ref = ?", [status, ref])

    def fill(self, f: Any, mode: str) -> None:
        self.writes += 1
        self.con.execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                f.exec_id,
                f.order_ref,
                f.order_id,
                f.ts,
                f.quantity,
                f.price,
                json.dumps(list(f.leg_prices)),
                f.fees,
                mode,
            ],
        )

    def save_open(self, trade_id: str, state: dict[str, Any], mode: str) -> None:
        self.writes += 1
        self.con.execute(
            "INSERT INTO open_trades VALUES (?, ?, ?) ON CONFLICT (trade_id) "
            "DO UPDATE SET state = excluded.state",
            [trade_id, json.dumps(state, default=str), mode],
        )

    def drop_open(self, trade_id: str) -> None:
        self.writes += 1
        self.con.execute("DELETE FROM open_trades WHERE trade_id = ?", [trade_id])

    def close_trade(self, row: dict[str, Any], mode: str) -> None:
        """Write the finished trade and remove it from ``open_trades`` in one transaction."""
        self.writes += 1
        df = pl.DataFrame([row], schema=TRADE_SCHEMA).with_columns(pl.lit(mode).alias("mode"))
        self.con.execute("BEGIN TRANSACTION")
        try:
            self._insert("trades", df)
            self.con.execute("DELETE FROM open_trades WHERE trade_id = ?", [row["trade_id"]])
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def event(self, ts: int, kind: str, message: str, data: dict[str, Any], mode: str) -> None:
        self.writes += 1
        self.con.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
            [ts, kind, message, json.dumps(data, default=str), mode],
        )

    def progress(self, mode: str, day: dt.date, ts: int) -> None:
        self.con.execute(
            "INSERT INTO progress VALUES (?, ?, ?) ON CONFLICT (mode, day) "
            "DO UPDATE SET last_ts = excluded.last_ts",
            [mode, day, ts],
        )

    # -- reads ------------------------------------------------------------------------------
    def table(self, name: str, mode: str | None = None) -> pl.DataFrame:
        """A whole table (optionally one mode's rows) as polars."""
        if name not in {
            "decisions",
            "orders",
            "fills",
            "open_trades",
            "trades",
            "events",
            "progress",
        }:
            raise ValueError(f"no journal table {name!r}")
        if mode is None:
            return _pl(self.con.execute(f"SELECT * FROM {name}"))
        return _pl(self.con.execute(f"SELECT * FROM {name} WHERE mode = ?", [mode]))

    def open_states(self, mode: str) -> dict[str, dict[str, Any]]:
        rows = self.con.execute(
            "SELECT trade_id, state FROM open_trades WHERE mode = ? ORDER BY trade_id", [mode]
        ).fetchall()
        return {tid: json.loads(state) for tid, state in rows}

    def last_ts(self, mode: str, day: dt.date) -> int | None:
        hit = self.con.execute(
            "SELECT last_ts FROM progress WHERE mode = ? AND day = ?", [mode, day]
        ).fetchone()
        return None if hit is None else int(hit[0])

    def decision_of(self, candidate_id: str, mode: str) -> str | None:
        hit = self.con.execute(
            "SELECT decision FROM decisions WHERE candidate_id = ? AND mode = ?",
            [candidate_id, mode],
        ).fetchone()
        return None if hit is None else str(hit[0])

    def has_trade(self, trade_id: str, mode: str) -> bool:
        q = "SELECT 1 FROM trades WHERE trade_id = ? AND mode = ?"
        return self.con.execute(q, [trade_id, mode]).fetchone() is not None

    def has_event(self, kind: str, message: str, mode: str) -> bool:
        return (
            self.con.execute(
                "SELECT 1 FROM events WHERE kind = ? AND message = ? AND mode = ?",
                [kind, message, mode],
            ).fetchone()
            is not None
        )


def _pl(cur: Any) -> pl.DataFrame:
    import warnings

    with warnings.catch_warnings():  # the extra copy is negligible at journal sizes
        warnings.simplefilter("ignore", UserWarning)
        out = pl.from_arrow(cur.to_arrow_table())
    assert isinstance(out, pl.DataFrame)
    return out
