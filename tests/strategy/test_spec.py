"""The strategy spec: strict YAML, structures expand to legs, clear errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from quantlab.errors import ConfigError
from quantlab.strategy import StrategySpec

REPO = Path(__file__).resolve().parents[2]
BASE = {
    "name": "t",
    "dte": {"target": 5},
    "entry": {"times": ["10:00"]},
    "short_delta": 0.1,
    "width": 25,
}


def test_seed_yaml_loads() -> None:
    spec = StrategySpec.from_yaml(REPO / "pipelines" / "strategies" / "spxw_put_credit.yaml")
    assert spec.roots == ("SPXW",) and spec.entry.times == (dt.time(10, 0),)
    legs = spec.leg_specs()
    assert [(leg.right, leg.side) for leg in legs] == [("P", "sell"), ("P", "buy")]
    assert legs[1].width == 25 and legs[1].width_from == 0
    assert spec.fills.k == 0.30


def test_iron_condor_expands_to_four_legs() -> None:
    spec = StrategySpec.from_dict(BASE | {"structure": "iron_condor"})
    legs = spec.leg_specs()
    assert [(leg.right, leg.side) for leg in legs] == [
        ("P", "sell"),
        ("P", "buy"),
        ("C", "sell"),
        ("C", "buy"),
    ]
    assert legs[3].width_from == 2


def test_custom_legs_are_data() -> None:
    legs = [
        {"right": "P", "side": "sell", "delta": 0.2},
        {"right": "C", "side": "sell", "delta": 0.2},
    ]
    spec = StrategySpec.from_dict(
        {k: v for k, v in BASE.items() if k not in ("short_delta", "width")}
        | {"structure": "custom", "legs": legs}
    )
    assert len(spec.leg_specs()) == 2


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"management": {"take_profit": 50}}, "unknown key 'management.take_profit'"),
        ({"entry": {"times": ["9:00"]}}, "within the session"),
        ({"entry": {"times": ["10:00", "10:00"]}}, "repeat"),
        ({"width": None}, "exactly one of 'width'"),
        ({"short_delta": 1.5}, "short_delta"),
        ({"dte": {"target": -1}}, "dte.target"),
    ],
)
def test_bad_specs_name_the_problem(patch: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StrategySpec.from_dict(BASE | patch)


def test_hash_is_stable_and_sensitive() -> None:
    a = StrategySpec.from_dict(BASE)
    assert a.config_hash() == StrategySpec.from_dict(dict(BASE)).config_hash()
    assert a.config_hash() != StrategySpec.from_dict(BASE | {"width": 10}).config_hash()
