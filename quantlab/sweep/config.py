"""Sweep configuration (``pipelines/*.yaml``) and its expansion into strategy configs.

Example::

    name: seed-grid
    base: strategies/spxw_put_credit.yaml     # relative to this file, or an inline mapping
    start: 2024-01-02
    end: 2024-12-31
    search: grid                               # or random (n_samples draws, seeded)
    grid:                                      # dotted keys into the strategy spec
      dte.target: [3, 5, 7]
      short_delta: [0.10, 0.20]
      entry.times: [["10:00"], ["11:00"], ["12:00"]]
      width: [10, 25, 50]
    heatmaps: [[short_delta, dte.target], [width, entry.times]]

Any strategy field can be swept: DTE, deltas, width, entry times, take profit and stop levels,
the fill model (``fills.kind``, ``fills.k``), risk rules, sizing. A combination that is not a
valid strategy is kept as a failed config with the validation error, not dropped.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from quantlab.config import StrictModel, read_yaml
from quantlab.errors import ConfigError
from quantlab.strategy.spec import StrategySpec


class SweepConfig(StrictModel):
    name: str = Field(..., min_length=1)
    base: dict[str, Any]
    start: dt.date | None = None
    end: dt.date | None = None
    search: Literal["grid", "random"] = "grid"
    grid: dict[str, list[Any]] = Field(..., min_length=1)
    n_samples: int | None = Field(
        None, ge=1, description="random search: configs drawn from the grid"
    )
    seed: int = 0
    metric: str = "sharpe_ratio"
    heatmaps: tuple[tuple[str, str], ...] = ()
    pbo_splits: int = Field(16, ge=2)
    report_top: int = Field(5, ge=0, description="HTML reports for the best configs by metric")

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
        return v


def load_sweep(path: str | Path) -> SweepConfig:
    p = Path(path)
    data = read_yaml(p)
    base = data.get("base")
    if isinstance(base, str):
        bp = (p.parent / base).resolve()
        if not bp.is_file():
            raise ConfigError(f"{p}: base strategy file not found: {bp}")
        data = data | {"base": read_yaml(bp)}
    cfg = SweepConfig.from_dict(data, source=str(p))
    for a, b in cfg.heatmaps:
        for key in (a, b):
            if key not in cfg.grid:
                raise ConfigError(
                    f"{p}: heatmap axis {key!r} is not a grid key ({sorted(cfg.grid)})"
                )
    return cfg


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = d
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value


@dataclass(frozen=True)
class ConfigPoint:
    """One point of the sweep: its parameters and the strategy (or why it is invalid)."""

    index: int
    params: dict[str, Any]
    spec: StrategySpec | None
    error: str = ""

    @property
    def config_id(self) -> str:
        if self.spec is not None:
            return self.spec.config_hash()
        import hashlib

        return (
            "invalid-"
            + hashlib.sha1(
                json.dumps(self.params, sort_keys=True, default=str).encode()
            ).hexdigest()[:10]
        )


def expand(cfg: SweepConfig) -> list[ConfigPoint]:
    """The configs of a sweep, in a stable order (grid order; random draws seeded)."""
    keys = list(cfg.grid)
    combos = list(itertools.product(*(cfg.grid[k] for k in keys)))
    if cfg.search == "random":
        n = min(cfg.n_samples or len(combos), len(combos))
        rng = np.random.default_rng(cfg.seed)
        pick = np.sort(rng.choice(len(combos), size=n, replace=False))
        combos = [combos[i] for i in pick]
    out = []
    for i, combo in enumerate(combos):
        params = dict(zip(keys, combo, strict=True))
        data = copy.deepcopy(cfg.base)
        for key, value in params.items():
            _set(data, key, value)
        suffix = ",".join(
            f"{k}={v if not isinstance(v, list) else '|'.join(map(str, v))}"
            for k, v in params.items()
        )
        data["name"] = f"{cfg.base.get('name', cfg.name)}[{suffix}]"
        try:
            spec = StrategySpec.from_dict(data, source=f"{cfg.name} config {i}")
            out.append(ConfigPoint(i, params, spec))
        except ConfigError as exc:
            out.append(ConfigPoint(i, params, None, str(exc)))
    return out
