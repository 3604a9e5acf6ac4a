"""Meta-labels of stage-1 candidates: did the trade hit its take-profit before its stop?

Each candidate's *own* outcome is read off a stage-2 pass over all candidates with the
strategy's entry filters, fill model, fees and management rules (take profit, stop, time exit,
settlement) but **no risk rules** (:func:`outcome_spec`: unlimited open trades and new trades
per day, no "no new trade after a stop", no daily loss limit, one contract, every entry time its
own decision). A candidate the entry filters reject (no credit, min credit, wide spread, event
day, index range) is never traded, so it has no label.

Labels (:func:`labels_from_trades`)
-----------------------------------
* ``take_profit`` -> 1, ``stop_loss`` -> 0;
* ``time_exit``, ``settlement`` and ``end_of_data`` (the data ended with the trade open) depend on
  ``time_exit_label``: ``"pnl_sign"`` (default) -> 1 when the trade's P&L after fees is > 0,
  else 0; ``"zero"`` -> 0 (only a take-profit counts as success); ``"drop"`` -> no label.

Every label carries ``t0`` (the decision time: ``entry_ts``) and ``t1`` (when its outcome was
known: the exit time stamp), int64 UTC nanoseconds, for purged cross-validation.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from quantlab.errors import InputError

TimeExitLabel = Literal["pnl_sign", "zero", "drop"]
TIME_EXIT_LABELS: tuple[str, ...] = ("pnl_sign", "zero", "drop")
UNLIMITED = 1_000_000_000
LABEL_SCHEMA = {
    "candidate_id": pl.Utf8,
    "t0": pl.Int64,
    "t1": pl.Int64,
    "label": pl.Int8,
    "exit_reason": pl.Utf8,
    "pnl": pl.Float64,
    "credit_per_share": pl.Float64,
    "max_loss": pl.Float64,
}


def outcome_spec(spec: object) -> object:
    """A copy of ``spec`` that trades every candidate its filters accept, one contract each.

    Risk rules are lifted (``max_open_trades`` and ``max_new_trades_per_day`` unlimited,
    ``no_new_after_stop`` off, no daily loss limit), sizing is fixed at 1 contract and the entry
    mode is ``each`` (so a later entry window is not skipped because an earlier one traded).
    Management, fills, fees and filters are unchanged.
    """
    from quantlab.strategy.spec import StrategySpec

    if not isinstance(spec, StrategySpec):
        raise InputError(f"spec must be a StrategySpec (got {type(spec).__name__}).")
    risk = spec.risk.model_copy(
        update={
            "max_open_trades": UNLIMITED,
            "max_new_trades_per_day": UNLIMITED,
            "no_new_after_stop": False,
            "daily_loss_limit": None,
        }
    )
    sizing = spec.sizing.model_copy(update={"mode": "fixed", "contracts": 1})
    entry = spec.entry.model_copy(update={"mode": "each"})
    return spec.model_copy(update={"risk": risk, "sizing": sizing, "entry": entry})


def labels_from_trades(
    trades: pl.DataFrame, *, time_exit_label: TimeExitLabel = "pnl_sign"
) -> pl.DataFrame:
    """Meta-labels from trade records (one trade per candidate, see the module notes).

    Parameters
    ----------
    trades : polars.DataFrame
        Trade records with ``candidate_id``, ``entry_ts``, ``exit_ts``, ``exit_reason`` and
        ``pnl`` (``credit_per_share`` and ``max_loss`` are carried along when present).
    time_exit_label : {'pnl_sign', 'zero', 'drop'}
        Label of exits other than take profit / stop loss.

    Returns
    -------
    polars.DataFrame
        ``candidate_id, t0, t1, label, exit_reason, pnl, credit_per_share, max_loss`` sorted by
        ``(t0, candidate_id)``.

    Examples
    --------
    >>> tr = pl.DataFrame({"candidate_id": ["a", "b", "c"], "entry_ts": [1, 2, 3],
    ...                    "exit_ts": [5, 6, 9], "exit_reason": ["take_profit", "stop_loss",
    ...                    "settlement"], "pnl": [40.0, -80.0, 12.0]})
    >>> labels_from_trades(tr)["label"].to_list()
    [1, 0, 1]
    """
    if time_exit_label not in TIME_EXIT_LABELS:
        raise InputError(
            f"time_exit_label must be one of {TIME_EXIT_LABELS} (got {time_exit_label!r})."
        )
    need = ("candidate_id", "entry_ts", "exit_ts", "exit_reason", "pnl")
    missing = [c for c in need if c not in trades.columns]
    if missing:
        raise InputError(f"trades lack columns {missing} (have {trades.columns}).")
    dup = trades["candidate_id"].is_duplicated()
    if dup.any():
        raise InputError(
            f"trades hold a candidate more than once (e.g. {trades['candidate_id'].filter(dup)[0]!r});"
            " labels need one outcome per candidate (run stage 2 with outcome_spec)."
        )
    df = trades.select(
        pl.col("candidate_id").cast(pl.Utf8),
        pl.col("entry_ts").cast(pl.Int64).alias("t0"),
        pl.col("exit_ts").cast(pl.Int64).alias("t1"),
        pl.col("exit_reason").cast(pl.Utf8),
        pl.col("pnl").cast(pl.Float64),
        (pl.col("credit_per_share") if "credit_per_share" in trades.columns else pl.lit(None))
        .cast(pl.Float64)
        .alias("credit_per_share"),
        (pl.col("max_loss") if "max_loss" in trades.columns else pl.lit(None))
        .cast(pl.Float64)
        .alias("max_loss"),
    )
    other = pl.col("exit_reason").is_in(["take_profit", "stop_loss"]).not_()
    if time_exit_label == "drop":
        df = df.filter(~other)
    fallback = (pl.col("pnl") > 0) if time_exit_label == "pnl_sign" else pl.lit(False)
    label = (
        pl.when(pl.col("exit_reason") == "take_profit")
        .then(pl.lit(True))
        .when(pl.col("exit_reason") == "stop_loss")
        .then(pl.lit(False))
        .otherwise(fallback)
        .cast(pl.Int8)
        .alias("label")
    )
    bad = df.filter(pl.col("t1") < pl.col("t0"))
    if bad.height:
        raise InputError(
            f"candidate {bad['candidate_id'][0]!r} exits before it enters "
            f"(entry_ts={bad['t0'][0]}, exit_ts={bad['t1'][0]})."
        )
    return df.with_columns(label).select(list(LABEL_SCHEMA)).sort(["t0", "candidate_id"])


def candidate_outcomes(s1: object, spec: object) -> pl.DataFrame:
    """Each candidate's own trade under ``spec``'s management and no risk rules (stage 2)."""
    from quantlab.backtest.stage2 import run_stage2

    return run_stage2(s1, outcome_spec(spec)).trades  # type: ignore[arg-type]


def make_labels(
    s1: object, spec: object, *, time_exit_label: TimeExitLabel = "pnl_sign"
) -> pl.DataFrame:
    """Meta-labels of the candidates of a stage-1 result under one strategy spec.

    Parameters
    ----------
    s1 : quantlab.backtest.stage1.Stage1Result
    spec : quantlab.strategy.spec.StrategySpec
    time_exit_label : {'pnl_sign', 'zero', 'drop'}

    Returns
    -------
    polars.DataFrame
        As :func:`labels_from_trades`.
    """
    return labels_from_trades(candidate_outcomes(s1, spec), time_exit_label=time_exit_label)


__all__ = [
    "LABEL_SCHEMA",
    "TIME_EXIT_LABELS",
    "TimeExitLabel",
    "candidate_outcomes",
    "labels_from_trades",
    "make_labels",
    "outcome_spec",
]
