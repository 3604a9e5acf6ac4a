"""Every exception quantlab raises on bad input lives here.

Messages name the parameter, the value received, what was expected and, where it helps,
a hint: ``strike must be positive (got -5.0 at index 3). Strikes are in index points.``
"""

from __future__ import annotations


class QuantlabError(Exception):
    """Base class of quantlab's own errors."""


class InputError(QuantlabError, ValueError):
    """An argument has the wrong shape, type or value."""


class ConfigError(QuantlabError, ValueError):
    """A configuration file or object is invalid (unknown key, bad value)."""


class DataError(QuantlabError):
    """Stored or incoming market data is missing, corrupt or inconsistent."""


class BrokerError(QuantlabError):
    """The broker refused a request or did not answer it (the message says which and why)."""


class BrokerDisconnected(BrokerError):
    """Not connected to the broker (TWS / IB Gateway): nothing was sent."""


__all__ = [
    "BrokerDisconnected",
    "BrokerError",
    "ConfigError",
    "DataError",
    "InputError",
    "QuantlabError",
]


class DataWarning(UserWarning):
    """Something in the data makes a result likely not what was meant (e.g. no quotes at the
    decision times); the run goes on."""
