"""The live runner's config (``live/paper.yaml``): strict, validated before anything connects.

Example::

    strategy: ../pipelines/strategies/spxw_put_credit.yaml   # relative to this file
    broker: sim            # sim | ibkr
    account: SIM
    mode: paper            # shadow (decisions only) | paper | live
    max_daily_loss: 2000   # dollars, realized + open mark-to-market today: kill switch
    reprice_attempts: 3
    reprice_step: 0.05
    risk_every_min: 30     # journal the book's greeks and scenario grid (quantlab live status)
    kill_file: live/KILL   # its existence stops new entries and cancels own orders
    notify: {console: true, webhook_url: null}
    store: data
    meta_labeler: {model: spxw-metalabeler}   # optional: gate entries on the champion model
    ibkr: {host: 127.0.0.1, port: 7497, client_id: 1}   # broker ibkr (TWS / IB Gateway)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from quantlab.brokers.ibkr_config import IBKRConfig
from quantlab.config import StrictModel, read_yaml
from quantlab.errors import ConfigError
from quantlab.strategy.spec import StrategySpec


class NotifyConfig(StrictModel):
    console: bool = True
    webhook_url: str | None = Field(None, description="POSTed a JSON body per notification")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"webhook_url must start with http:// or https:// (got {v!r})")
        return v


class MetaLabelerConfig(StrictModel):
    """The champion gate: entries whose P(take-profit first) is below ``threshold`` are skipped."""

    model: str = Field(..., min_length=1, description="registered MLflow model name")
    alias: str = Field("champion", min_length=1)
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="default: the threshold logged when the model was trained"
    )
    tracking_uri: str | None = Field(None, description="default: quantlab.tracking.tracking_uri()")


class LiveConfig(StrictModel):
    """What the live runner needs besides the strategy spec it loads from ``strategy``."""

    strategy: str = Field(..., min_length=1, description="strategy YAML path")
    broker: Literal["sim", "ibkr"] = "sim"
    account: str = Field("SIM", min_length=1)
    mode: Literal["shadow", "paper", "live"] = "paper"
    max_daily_loss: float | None = Field(None, gt=0.0, description="dollars; kill switch")
    reprice_attempts: int = Field(3, ge=0, le=20)
    reprice_step: float = Field(0.05, gt=0.0, le=5.0, description="per share, per attempt")
    reprice_every_min: int = Field(1, ge=1, le=30, description="minutes between re-prices")
    risk_every_min: int = Field(
        30, ge=0, le=390, description="minutes between book greeks/scenario records (0: never)"
    )
    kill_file: str = "live/KILL"
    notify: NotifyConfig = NotifyConfig()
    equity_milestones: tuple[float, ...] = Field(
        (2.0,), description="notify when equity first reaches these multiples of capital"
    )
    store: str = "data"
    meta_labeler: MetaLabelerConfig | None = None
    ibkr: IBKRConfig = IBKRConfig()

    @model_validator(mode="after")
    def _consistent(self) -> LiveConfig:
        if self.mode == "live" and self.broker == "sim":
            raise ValueError("mode 'live' needs broker 'ibkr' (the simulated broker is paper only)")
        if any(m <= 0 for m in self.equity_milestones):
            raise ValueError(f"equity_milestones must be positive (got {self.equity_milestones})")
        return self

    def spec(self) -> StrategySpec:
        """Load and validate the strategy file (ConfigError naming the file if bad)."""
        return StrategySpec.from_yaml(self.strategy)


def load_live_config(path: str | Path, **overrides: object) -> tuple[LiveConfig, StrategySpec]:
    """Read ``path`` (with command-line ``overrides`` of top-level keys, None = not given),
    resolve the strategy path relative to the file, validate both. Nothing connects here."""
    p = Path(path)
    data = read_yaml(p)
    data |= {k: v for k, v in overrides.items() if v is not None}
    strat = data.get("strategy")
    if isinstance(strat, str) and not Path(strat).is_absolute():
        data["strategy"] = str((p.parent / strat).resolve())
    cfg = LiveConfig.from_dict(data, source=str(p))
    if not Path(cfg.strategy).is_file():
        raise ConfigError(f"{p}: 'strategy' file not found: {cfg.strategy}")
    return cfg, cfg.spec()
