"""Strict, frozen configuration objects loadable from YAML.

One config class per pluggable model (fill model, fee schedule, strategy spec, risk rules);
backtest and live consume the same object. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from quantlab.errors import ConfigError

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    """Base of every quantlab config: frozen, unknown keys rejected, values validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any], *, source: str = "config") -> M:
        """Validate ``data``; errors name the offending key path and the value received."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source)) from None

    @classmethod
    def from_yaml(cls: type[M], path: str | Path) -> M:
        """Load and validate a YAML file."""
        return cls.from_dict(read_yaml(path), source=str(path))

    def config_hash(self) -> str:
        """Stable short hash of the validated content (recorded with every run)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level (got {type(data).__name__}).")
    return data


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key '{loc}'")
        else:
            lines.append(f"'{loc}': {err['msg']} (got {err.get('input')!r})")
    return f"{source}: " + "; ".join(lines)


__all__ = ["StrictModel", "format_validation_error", "read_yaml"]
