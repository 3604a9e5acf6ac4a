"""The strategy spec: one strict, frozen object shared by the backtester and the live runner.

Structures are data: a structure name expands into legs, and any other defined-risk shape
(strangle, butterfly, debit spread) is a list of :class:`LegSpec` rows, not a new engine.

Example (``pipelines/seed_put_spread.yaml`` holds the full seed case)::

    name: spx-put-10d
    underlying: SPX
    roots: [SPXW]
    structure: put_credit_vertical
    dte: {target: 5, tolerance: 2}
    entry: {times: ["10:00"]}
    short_delta: 0.10
    width: 25
    management: {take_profit_pct: 50, stop_loss_pct: 100}

Conventions
-----------
- DTE counts calendar days from the entry's ET date to the expiry date. When no expiry is
  listed at exactly the target (weekend, holiday), the nearest listed expiry within
  ``tolerance`` days is taken; a tie goes to the shorter one (``tie_break: shorter``) or the
  longer (``longer``).
- Short legs are chosen by |delta| (quantlab's own Black-76 delta from each strike's
  out-of-the-money implied vol): ``nearest`` to the target, or the largest |delta| ``at_most``
  the target. The long leg is ``width`` points further out of the money (required for verticals:
  it sets credit and max loss), or by its own |delta|.
- Take profit at X% of max profit: close when the cost to close falls to (1 - X/100) x credit.
  Stop loss at Y% of max profit: close when the loss reaches Y/100 x credit, i.e. the cost to close
  rises to (1 + Y/100) x credit. Max profit is the credit actually filled.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from quantlab.config import StrictModel
from quantlab.execution import FeeSchedule, FillModel
from quantlab.money import BP, CENTS_PER_DOLLAR, exact_units

Structure = Literal["put_credit_vertical", "call_credit_vertical", "iron_condor", "custom"]


def _parse_hhmm(value: str | dt.time) -> dt.time:
    if isinstance(value, dt.time):
        return value
    try:
        parts = str(value).split(":")
        if len(parts) == 3 and int(parts[2]) == 0:  # 'HH:MM:SS' as JSON writes times
            parts = parts[:2]
        hh, mm = parts
        t = dt.time(int(hh), int(mm))
    except (ValueError, TypeError):
        raise ValueError(f"expected an ET time 'HH:MM' (got {value!r})") from None
    if not (dt.time(9, 30) <= t <= dt.time(16, 15)):
        raise ValueError(f"ET time must be within the session 09:30-16:15 (got {value!r})")
    return t


class LegSpec(StrictModel):
    """One leg: right, side and how its strike is chosen (by delta, or by width from another leg)."""

    right: Literal["C", "P"]
    side: Literal["sell", "buy"]
    quantity: int = Field(1, ge=1)
    delta: float | None = Field(None, gt=0.0, lt=1.0, description="|delta| target")
    width_from: int | None = Field(
        None, ge=0, description="index of the leg this one is measured from"
    )
    width: float | None = Field(
        None, gt=0.0, description="points further out of the money than width_from"
    )

    @model_validator(mode="after")
    def _one_rule(self) -> LegSpec:
        by_delta = self.delta is not None
        by_width = self.width is not None and self.width_from is not None
        if by_delta == by_width:
            raise ValueError(
                "a leg needs exactly one strike rule: 'delta', or 'width' with 'width_from'"
            )
        return self


class DTESpec(StrictModel):
    target: int = Field(..., ge=0, le=365, description="calendar days from entry date to expiry")
    tolerance: int = Field(2, ge=0, le=30)
    tie_break: Literal["shorter", "longer"] = "shorter"


class EntrySpec(StrictModel):
    times: tuple[dt.time, ...] = Field(..., min_length=1, description="ET entry times 'HH:MM'")
    mode: Literal["each", "first_valid"] = Field(
        "each",
        description="'each': every time is its own decision; 'first_valid': take the first time "
        "that yields a valid candidate, at most one per day",
    )

    @field_validator("times", mode="before")
    @classmethod
    def _times(cls, v: object) -> tuple[dt.time, ...]:
        items = v if isinstance(v, (list, tuple)) else [v]
        times = tuple(sorted(_parse_hhmm(x) for x in items))  # type: ignore[arg-type]
        if len(set(times)) != len(times):
            raise ValueError(f"entry times repeat: {[t.strftime('%H:%M') for t in times]}")
        return times


class FilterSpec(StrictModel):
    min_credit: float = Field(0.0, ge=0.0, description="minimum net credit per share")
    max_rel_spread: float = Field(1.0, gt=0.0, description="max (ask - bid) / mid per leg")
    min_bid: float = Field(0.05, ge=0.0, description="minimum bid of every leg")
    max_quote_age_s: float = Field(300.0, gt=0.0, description="older quotes are stale")
    skip_event_days: bool = Field(False, description="no entry on an event day (FOMC, CPI, ...)")
    events_file: str | None = Field(
        None, description="event calendar CSV; default: quantlab's events.csv"
    )
    vix_min: float | None = Field(
        None, ge=0.0, description="enter only if the 30-day index >= this"
    )
    vix_max: float | None = Field(
        None, ge=0.0, description="enter only if the 30-day index <= this"
    )

    @field_validator("min_credit", "min_bid")
    @classmethod
    def _whole_cents(cls, v: float, info: object) -> float:
        exact_units(v, CENTS_PER_DOLLAR, f"filters.{info.field_name}", "cents")  # type: ignore[attr-defined]
        return v


class ManagementSpec(StrictModel):
    take_profit_pct: float | None = Field(50.0, gt=0.0, le=100.0)
    stop_loss_pct: float | None = Field(100.0, gt=0.0)
    trigger_on: Literal["mid", "exit_fill"] = "mid"
    exit_time: dt.time | None = Field(None, description="close at this ET time of day (any day)")
    exit_days_before_expiry: int | None = Field(None, ge=0)
    hold_to_settlement: bool = True

    @field_validator("exit_time", mode="before")
    @classmethod
    def _exit_time(cls, v: object) -> dt.time | None:
        return None if v is None else _parse_hhmm(v)  # type: ignore[arg-type]

    @field_validator("take_profit_pct", "stop_loss_pct")
    @classmethod
    def _exact_pct(cls, v: float | None, info: object) -> float | None:
        if v is not None:  # levels are compared exactly, in basis points of the credit
            exact_units(v, BP // 100, f"management.{info.field_name}", "0.01 %")  # type: ignore[attr-defined]
        return v


class RiskSpec(StrictModel):
    """Risk rules on the book (:mod:`quantlab.strategy.book` gives their order).

    Account breakers read the realized equity (capital + P&L of trades exited at or before
    the decision): ``max_drawdown_pct`` stops new entries while it is that far below its
    running peak; ``weekly_loss_limit`` once the Monday-to-Sunday week's realized P&L reaches
    minus the limit; ``max_consecutive_losses`` losing exits in a row (exit order) pause
    entries for the rest of that day and the next ``loss_pause_days`` weekdays.

    Greek limits (:mod:`quantlab.risk`, dollars, on the book with the candidate added at its
    size; greeks are floats, the one place a rule compares floats): |delta| per SPX point or
    per 1 % move, |vega| per vol point, short gamma per 1 % squared, and the worst loss over
    the scenario grid (:data:`quantlab.risk.scenarios.SPOT_MOVES` x ``VOL_MOVES``).
    """

    max_open_trades: int = Field(1, ge=1)
    max_new_trades_per_day: int = Field(1, ge=1)
    no_new_after_stop: bool = True
    daily_loss_limit: float | None = Field(
        None, gt=0.0, description="dollars; no new trade once lost"
    )
    max_drawdown_pct: float | None = Field(
        None, gt=0.0, lt=100.0, description="% of the realized equity peak"
    )
    weekly_loss_limit: float | None = Field(None, gt=0.0, description="dollars per week")
    max_consecutive_losses: int | None = Field(None, ge=1)
    loss_pause_days: int = Field(1, ge=0, le=30, description="weekdays paused after a loss run")
    max_delta_per_point: float | None = Field(None, gt=0.0, description="|$ delta| per point")
    max_delta_per_pct: float | None = Field(None, gt=0.0, description="|$ delta| per 1 % move")
    max_vega: float | None = Field(None, gt=0.0, description="|$ vega| per vol point")
    max_short_gamma: float | None = Field(None, gt=0.0, description="$ short gamma per 1 %^2")
    max_scenario_loss: float | None = Field(
        None, gt=0.0, description="dollars: worst loss over the scenario grid"
    )

    @field_validator("daily_loss_limit", "weekly_loss_limit")
    @classmethod
    def _whole_cents(cls, v: float | None, info: object) -> float | None:
        if v is not None:
            exact_units(v, CENTS_PER_DOLLAR, f"risk.{info.field_name}", "cents")  # type: ignore[attr-defined]
        return v

    @field_validator("max_drawdown_pct")
    @classmethod
    def _exact_pct(cls, v: float | None) -> float | None:
        if v is not None:
            exact_units(v, BP // 100, "risk.max_drawdown_pct", "0.01 %")
        return v


class SizingSpec(StrictModel):
    mode: Literal["fixed", "risk_pct", "probability"] = Field(
        "fixed",
        description="fixed: `contracts`; risk_pct: floor(equity x risk_pct / max loss); "
        "probability: round(contracts x p) of the meta-label probability p",
    )
    contracts: int = Field(1, ge=1, description="contracts (fixed), or the most (probability)")
    risk_pct: float = Field(
        2.0, gt=0.0, le=100.0, description="max loss as % of equity (risk_pct mode)"
    )
    capital: float = Field(
        100_000.0, gt=0.0, description="starting account equity, the return base"
    )

    @field_validator("capital")
    @classmethod
    def _capital_cents(cls, v: float) -> float:
        exact_units(v, CENTS_PER_DOLLAR, "sizing.capital", "cents")
        return v

    @field_validator("risk_pct")
    @classmethod
    def _risk_bp(cls, v: float) -> float:
        exact_units(v, BP // 100, "sizing.risk_pct", "0.01 %")
        return v


def with_strategy(data: dict, path: Path | str) -> dict:
    """A config mapping whose ``strategy`` is inline, or a path relative to the config file
    ``path``: the latter is replaced by the loaded spec (the one rule every config file that
    embeds a strategy follows)."""
    strat = data.get("strategy")
    if isinstance(strat, str):
        return data | {"strategy": StrategySpec.from_yaml(Path(path).parent / strat).model_dump()}
    return data


class StrategySpec(StrictModel):
    name: str = Field(..., min_length=1)
    underlying: Literal["SPX"] = "SPX"
    roots: tuple[Literal["SPX", "SPXW"], ...] = ("SPXW",)
    structure: Structure = "put_credit_vertical"
    dte: DTESpec
    entry: EntrySpec
    short_delta: float | None = Field(None, gt=0.0, lt=1.0)
    delta_match: Literal["nearest", "at_most"] = "nearest"
    width: float | None = Field(None, gt=0.0, description="long leg distance in points")
    long_delta: float | None = Field(None, gt=0.0, lt=1.0)
    legs: tuple[LegSpec, ...] | None = None
    filters: FilterSpec = FilterSpec()
    management: ManagementSpec = ManagementSpec()
    risk: RiskSpec = RiskSpec()
    sizing: SizingSpec = SizingSpec()
    fills: FillModel = FillModel()
    fees: FeeSchedule = FeeSchedule()
    rate: float = Field(0.045, ge=-0.05, le=0.25, description="continuously compounded rate for df")

    @model_validator(mode="after")
    def _structure(self) -> StrategySpec:
        if self.structure == "custom":
            if not self.legs:
                raise ValueError("structure 'custom' needs 'legs'")
            return self
        if self.legs is not None:
            raise ValueError(
                f"'legs' is only for structure 'custom' (structure is {self.structure!r})"
            )
        if self.short_delta is None:
            raise ValueError(f"structure {self.structure!r} needs 'short_delta'")
        if (self.width is None) == (self.long_delta is None):
            raise ValueError("verticals need exactly one of 'width' (points) or 'long_delta'")
        return self

    def leg_specs(self) -> tuple[LegSpec, ...]:
        """The structure expanded into legs (short legs first)."""
        if self.legs is not None:
            return self.legs

        def wing(right: Literal["C", "P"], short_index: int) -> list[LegSpec]:
            short = LegSpec(right=right, side="sell", delta=self.short_delta)
            if self.width is not None:
                long = LegSpec(right=right, side="buy", width_from=short_index, width=self.width)
            else:
                long = LegSpec(right=right, side="buy", delta=self.long_delta)
            return [short, long]

        if self.structure == "put_credit_vertical":
            return tuple(wing("P", 0))
        if self.structure == "call_credit_vertical":
            return tuple(wing("C", 0))
        put, call = wing("P", 0), wing("C", 2)
        return (put[0], put[1], call[0], call[1])
