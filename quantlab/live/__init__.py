"""The thin live runner: config, journal, the minute loop (logic shared with the backtester),
the evening reconciliation against the backtester, and the ``quantlab live`` commands."""

from quantlab.live.config import LiveConfig, MetaLabelerConfig, NotifyConfig, load_live_config
from quantlab.live.gate import MetaGate
from quantlab.live.journal import Journal, journal_path
from quantlab.live.loop import LiveRunner
from quantlab.live.notify import Notifier
from quantlab.live.reconcile import ReconcileReport, reconcile_day
from quantlab.strategy.rules import entry_filter_reason

__all__ = [
    "Journal",
    "LiveConfig",
    "LiveRunner",
    "MetaGate",
    "MetaLabelerConfig",
    "Notifier",
    "NotifyConfig",
    "ReconcileReport",
    "entry_filter_reason",
    "journal_path",
    "load_live_config",
    "reconcile_day",
]
