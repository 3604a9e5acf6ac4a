"""The thin live runner: config, journal and the minute loop (logic shared with the backtester)."""

from quantlab.live.config import LiveConfig, NotifyConfig, load_live_config
from quantlab.live.journal import Journal, journal_path
from quantlab.live.loop import LiveRunner, Notifier, entry_filter_reason

__all__ = [
    "Journal",
    "LiveConfig",
    "LiveRunner",
    "Notifier",
    "NotifyConfig",
    "entry_filter_reason",
    "journal_path",
    "load_live_config",
]
