"""The cost curve: a config's total P&L, Sharpe and win rate as functions of the fill assumption.

Each point re-runs stage 2 (:func:`quantlab.backtest.stage2.run_stage2`) of the config on the
same stage-1 result with another fill model: ``mid_k`` with ``k`` from 0 (mid) to 0.5 (which
fills exactly at the bid or ask: natural) and a fixed extra ``slippage`` per share per leg
(:class:`quantlab.execution.FillModel`). Stage 1 is not rerun (candidates do not depend on
fills), and every fill-dependent decision is made again rather than scaled: the entry credit,
the entry filters that read it (``min_credit``), sizing on max loss, the take-profit and stop
levels (fractions of the filled credit), the exit fills, and the risk rules that follow from
which trades were open. Hence the curve of a managed strategy need not be monotone in ``k``;
:func:`break_even_k` states the first crossing and :func:`break_even_sentence` says when there
are more.

The config's own assumption is always on the curve (``is_spec``), computed with the spec
unchanged, so that row is the backtest to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from quantlab.backtest._report_plots import _fmt
from quantlab.errors import InputError
from quantlab.money import BP, CENTS_PER_DOLLAR, MILLICENTS_PER_DOLLAR, exact_units

if TYPE_CHECKING:
    from quantlab.backtest.stage1 import Stage1Result
    from quantlab.execution.fills import FillModel
    from quantlab.strategy.spec import StrategySpec

#: the default grid of ``k``: mid (0) to natural (0.5) in steps of 0.05
DEFAULT_KS = tuple(i / 20 for i in range(11))
#: ``k`` of ``mid_k`` that fills as each kind does (natural: exactly, for uncrossed quotes)
KIND_K = {"mid": 0.0, "natural": 0.5}
COST_CURVE_SCHEMA = {
    "k": pl.Float64(),
    "slippage": pl.Float64(),
    "trades": pl.Int64(),
    "total_pnl": pl.Float64(),
    "sharpe": pl.Float64(),
    "win_rate": pl.Float64(),
    "avg_credit_per_share": pl.Float64(),
    "max_drawdown": pl.Float64(),
    "is_spec": pl.Boolean(),
}


def _point(k: float, slippage: float) -> tuple[int, int]:
    """A curve point as exact integers: ``(k in basis points, slippage in cents)``."""
    if not 0.0 <= float(k) <= 1.0:
        raise InputError(f"cost curve k must be in [0, 1] (got {k!r}); 0 = mid, 0.5 = natural.")
    return (
        exact_units(k, BP, "cost curve k", "basis points"),
        exact_units(slippage, CENTS_PER_DOLLAR, "cost curve slippage", "cents"),
    )


def spec_point(fills: FillModel) -> tuple[int, int]:
    """The fill model's own point of the curve: ``(k in basis points, slippage in cents)``."""
    return _point(KIND_K.get(fills.kind, fills.k), fills.slippage)


def _grid(spec: StrategySpec, ks: Sequence[float], slippage: Sequence[float]) -> list[tuple]:
    if len(ks) == 0 or len(slippage) == 0:
        raise InputError(
            f"cost curve needs at least one k and one slippage (got ks={list(ks)}, "
            f"slippage={list(slippage)})."
        )
    pts = {_point(k, s) for k in ks for s in slippage}
    return sorted(pts | {spec_point(spec.fills)}, key=lambda p: (p[1], p[0]))


def _with_fills(spec: StrategySpec, k_bp: int, slip_c: int) -> StrategySpec:
    from quantlab.execution.fills import FillModel

    data = spec.fills.model_dump() | {
        "kind": "mid_k",
        "k": k_bp / BP,
        "slippage": slip_c / CENTS_PER_DOLLAR,
    }
    return spec.model_copy(update={"fills": FillModel.from_dict(data, source="cost curve")})


def curve_row(trades: pl.DataFrame, equity_daily: pl.DataFrame, capital: float) -> dict:
    """One point's figures from a stage-2 result: the total P&L summed in integer millicents
    (the backtest's own sum, to the cent), the rest from
    :func:`quantlab.backtest.analytics.config_metrics`."""
    from quantlab.backtest.analytics import config_metrics

    m = config_metrics(trades, equity_daily, capital)
    pnl_mc = np.rint(trades["pnl"].to_numpy() * MILLICENTS_PER_DOLLAR).astype(np.int64)
    return {
        "trades": int(trades.height),
        "total_pnl": int(pnl_mc.sum()) / MILLICENTS_PER_DOLLAR,
        "sharpe": m["sharpe_ratio"],
        "win_rate": m["win_rate"],
        "avg_credit_per_share": m["avg_credit_per_share"],
        "max_drawdown": m["max_drawdown"],
    }


def cost_curve(
    s1: Stage1Result,
    spec: StrategySpec,
    ks: Sequence[float] = DEFAULT_KS,
    slippage: Sequence[float] = (0.0,),
) -> pl.DataFrame:
    """Total P&L, Sharpe and win rate of ``spec`` for each fill assumption, from stage 1.

    Parameters
    ----------
    s1 : Stage1Result
        The stage-1 result the config's backtest ran on (it must hold the config's candidates).
    spec : StrategySpec
        The config; only its fill model changes from point to point.
    ks : sequence of float, default 0, 0.05, ..., 0.5
        ``k`` of the ``mid_k`` fill model (multiples of 0.0001 in [0, 1]).
    slippage : sequence of float, default (0.0,)
        Extra cost per share per leg in dollars (whole cents), every value with every ``k``.

    Returns
    -------
    polars.DataFrame
        One row per ``(k, slippage)`` (:data:`COST_CURVE_SCHEMA`), by slippage then ``k``:
        ``trades``, ``total_pnl`` (dollars), ``sharpe``, ``win_rate``,
        ``avg_credit_per_share``, ``max_drawdown`` (fraction) and ``is_spec``, the config's
        own fill assumption (added to the grid when it is not on it; a ``mid`` config sits at
        k = 0, a ``natural`` one at k = 0.5).
    """
    from quantlab.backtest.stage2 import run_stage2

    own = spec_point(spec.fills)
    rows = []
    for k_bp, slip_c in _grid(spec, ks, slippage):
        is_spec = (k_bp, slip_c) == own
        res = run_stage2(s1, spec if is_spec else _with_fills(spec, k_bp, slip_c))
        rows.append(
            {"k": k_bp / BP, "slippage": slip_c / CENTS_PER_DOLLAR}
            | curve_row(res.trades, res.equity_daily, res.capital)
            | {"is_spec": is_spec}
        )
    return pl.DataFrame(rows, schema=COST_CURVE_SCHEMA)


def _line(curve: pl.DataFrame, slippage: float | None) -> tuple[float, np.ndarray, np.ndarray]:
    """The slippage chosen (default: the smallest on the curve) and its ``k`` and P&L, by k."""
    if curve.height == 0:
        raise InputError("the cost curve is empty (no points).")
    s = float(curve["slippage"].min()) if slippage is None else float(slippage)  # type: ignore[arg-type]
    sub = curve.filter(pl.col("slippage") == s).sort("k")
    if sub.height == 0:
        have = sorted(set(curve["slippage"].to_list()))
        raise InputError(f"the cost curve has no points at slippage {s!r} (it has {have}).")
    return s, sub["k"].to_numpy(), sub["total_pnl"].to_numpy()


def _crossings(pnl: np.ndarray) -> np.ndarray:
    """Indices ``i`` where the P&L goes from positive at ``i`` to zero or less at ``i + 1``."""
    return np.flatnonzero((pnl[:-1] > 0) & (pnl[1:] <= 0))


def break_even_k(curve: pl.DataFrame, slippage: float | None = None) -> float | None:
    """The ``k`` at which total P&L first falls to zero, interpolated linearly between the two
    grid points around the crossing; None when the P&L is positive everywhere on the grid or
    already zero or less at its smallest ``k``.

    ``slippage`` picks the line of the curve (default: the smallest slippage on it).

    Examples
    --------
    >>> c = pl.DataFrame({"k": [0.0, 0.25, 0.5], "slippage": 0.0,
    ...                   "total_pnl": [300.0, 100.0, -100.0]})
    >>> break_even_k(c)
    0.375
    >>> break_even_k(c.with_columns(pl.col("total_pnl") + 200)) is None
    True
    """
    _s, k, pnl = _line(curve, slippage)
    hit = _crossings(pnl)
    if hit.size == 0 or pnl[0] <= 0:
        return None
    i = int(hit[0])
    return float(k[i] + (k[i + 1] - k[i]) * pnl[i] / (pnl[i] - pnl[i + 1]))


def break_even_sentence(
    curve: pl.DataFrame, slippage: float | None = None, name: str = "this strategy"
) -> str:
    """:func:`break_even_k` in words: "this strategy stops making money at k = 0.37 (...)",
    "... still makes money at k = 0.5 (natural) ..." or "... loses money even at mid ...".

    Examples
    --------
    >>> c = pl.DataFrame({"k": [0.0, 0.5], "slippage": 0.0, "total_pnl": [400.0, -100.0]})
    >>> break_even_sentence(c)
    'this strategy stops making money at k = 0.40 (total P&L $400 at k = 0.00, -$100 at k = 0.50).'
    """
    s, k, pnl = _line(curve, slippage)
    at = f" with {_fmt(s, 'usd')} slippage per share per leg" if s > 0 else ""
    be = break_even_k(curve, s)

    def kname(x: float) -> str:
        return f"k = {x:g}" + {0.0: " (mid)", 0.5: " (natural)"}.get(float(x), "")

    if be is not None:
        i = int(_crossings(pnl)[0])
        text = (
            f"{name} stops making money at k = {be:.2f}{at} (total P&L "
            f"{_fmt(pnl[i], 'usd0')} at k = {k[i]:.2f}, {_fmt(pnl[i + 1], 'usd0')} at "
            f"k = {k[i + 1]:.2f})."
        )
        n = _crossings(pnl).size
        if n > 1:
            text += (
                f" The curve is not monotone in k (exits and risk rules are re-evaluated at "
                f"each k): it falls to zero {n} times; this is the first."
            )
        return text
    if pnl[0] <= 0:
        verb = "loses money" if pnl[0] < 0 else "makes no money"
        return f"{name} {verb} even at {kname(k[0])}{at}: total P&L {_fmt(pnl[0], 'usd0')}."
    return f"{name} still makes money at {kname(k[-1])}{at}: total P&L {_fmt(pnl[-1], 'usd0')}."


__all__ = [
    "COST_CURVE_SCHEMA",
    "DEFAULT_KS",
    "break_even_k",
    "break_even_sentence",
    "cost_curve",
    "curve_row",
    "spec_point",
]
