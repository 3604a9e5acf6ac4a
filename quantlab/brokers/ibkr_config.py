"""The ``ibkr:`` section of a live config: where TWS / IB Gateway listens and how the adapter
behaves. It lives with the brokers (the adapter reads it); the live config embeds it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from quantlab.config import StrictModel


class IBKRConfig(StrictModel):
    """The ``ibkr:`` section: where TWS / IB Gateway listens and how the adapter behaves
    (:class:`quantlab.brokers.ibkr.IBKRBroker`). The account id is not here: it is the top-level
    ``account`` or the environment variable ``account_env``."""

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(7497, ge=1, le=65535, description="7497 TWS paper, 4002 IB Gateway paper")
    client_id: int = Field(1, ge=0, le=2_147_483_647)
    connect_timeout: float = Field(10.0, gt=0.0, le=300.0, description="seconds")
    request_timeout: float = Field(15.0, gt=0.0, le=300.0, description="seconds")
    market_data_type: Literal[1, 2, 3, 4] = Field(
        1, description="1 live, 2 frozen, 3 delayed, 4 delayed-frozen (live falls back to 3)"
    )
    pacing_per_s: float = Field(45.0, ge=1.0, le=50.0, description="API messages per second")
    max_market_data_lines: int = Field(90, ge=1, le=10_000)
    strike_window: float = Field(200.0, gt=0.0, description="chain scan: points around the index")
    max_expiries: int = Field(2, ge=1, le=20, description="chain scan: expiries per snapshot")
    reconnect_attempts: int = Field(6, ge=1, le=1000)
    reconnect_backoff_s: float = Field(1.0, gt=0.0, le=300.0)
    reconnect_backoff_max_s: float = Field(30.0, gt=0.0, le=3600.0)
    account_env: str = Field("IBKR_ACCOUNT", min_length=1, description="env var with the account")

    @model_validator(mode="after")
    def _backoff(self) -> IBKRConfig:
        if self.reconnect_backoff_max_s < self.reconnect_backoff_s:
            raise ValueError("reconnect_backoff_max_s must be >= reconnect_backoff_s")
        return self


__all__ = ["IBKRConfig"]
