"""Scenario revaluation: a grid of forward moves x vol shifts, each leg repriced in full.

The grid (:data:`SPOT_MOVES` x :data:`VOL_MOVES`) moves the expiry's forward by -10 % .. +10 %
in 1 % steps and every leg's implied vol by -5 .. +30 vol points, at once (no time passes).
The smile is **sticky-strike**: each strike keeps its own vol plus the shift (floored at 1
vol point), so a put spread's skew between its legs is the one quoted now. Sticky-delta
would move each strike's vol along the smile with the forward; quantlab prices trades from
their legs' own quotes, which pin the vols of those strikes only, so it does not guess the
rest of the smile.
"""

from __future__ import annotations

import numpy as np
import polars as pl

#: forward moves, fractions (-10 % .. +10 %)
SPOT_MOVES = np.round(np.arange(-10, 11) / 100.0, 2)
#: vol shifts, in vol (-5 .. +30 points)
VOL_MOVES = np.array([-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]) / 100.0
#: the smile convention of the grid
SMILE = "sticky_strike"


def scenario_frame(values: np.ndarray) -> pl.DataFrame:
    """A ``[spot, vol]`` grid of P&L in dollars (flattened or not) as a long frame:
    ``spot_move_pct``, ``vol_move_pts``, ``pnl``."""
    v = np.asarray(values, np.float64).reshape(SPOT_MOVES.size, VOL_MOVES.size)
    return pl.DataFrame(
        {
            "spot_move_pct": np.repeat(np.round(SPOT_MOVES * 100, 6), VOL_MOVES.size),
            "vol_move_pts": np.tile(np.round(VOL_MOVES * 100, 6), SPOT_MOVES.size),
            "pnl": v.ravel(),
        }
    )


def worst(values: np.ndarray) -> tuple[float, float, float]:
    """``(loss, spot move %, vol move points)`` of the worst cell of a scenario grid (the loss
    as a positive number of dollars; 0 when no cell loses; NaN when the grid is unknown)."""
    v = np.asarray(values, np.float64).reshape(SPOT_MOVES.size, VOL_MOVES.size)
    if np.isnan(v).all():
        return float("nan"), float("nan"), float("nan")
    a, b = np.unravel_index(int(np.nanargmin(v)), v.shape)
    return max(-float(v[a, b]), 0.0), float(SPOT_MOVES[a] * 100), float(VOL_MOVES[b] * 100)


__all__ = ["SMILE", "SPOT_MOVES", "VOL_MOVES", "scenario_frame", "worst"]
