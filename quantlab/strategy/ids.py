"""Stable identifiers of decisions: selection rules, candidates, rejections and trades.

Every id is a short hash of what defines the thing, so the backtester, the live runner, the
feature store and the reconciliation agree on it without coordination, whatever process or
shard computed it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any


def _h(text: str, n: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def select_key(entry_time: dt.time, spec: Any) -> str:
    """Key of a selection rule: what stage 1 needs of a config to propose candidates (entry
    time, DTE rule, roots, legs, delta matching, rate, quote age). Configs that differ only in
    management, filters, fills or risk share it, and so share their stage-1 candidates."""
    blob = json.dumps(
        {
            "t": entry_time.strftime("%H:%M"),
            "dte": spec.dte.model_dump(),
            "roots": list(spec.roots),
            "legs": [leg.model_dump() for leg in spec.leg_specs()],
            "match": spec.delta_match,
            "rate": spec.rate,
            "age": spec.filters.max_quote_age_s,
        },
        sort_keys=True,
    )
    return _h(blob, 12)


def candidate_id(entry_ns: int, root: str, expiry: dt.date, legs: Iterable[tuple[str, int]]) -> str:
    """Id of a proposed structure: decision time, root, expiry and ``(occ, quantity)`` legs."""
    text = ",".join(f"{occ}:{q}" for occ, q in legs)
    return _h(f"{entry_ns}|{root}|{expiry}|{text}", 16)


def rejection_id(rule_key: str, entry_ns: int) -> str:
    """Id of a decision where the rule found no structure to propose."""
    return _h(f"{rule_key}|{entry_ns}", 16)


def trade_id(candidate: str, config_hash: str) -> str:
    """Id of a trade: its candidate under one config."""
    return f"{candidate}-{config_hash[:6]}"


__all__ = ["candidate_id", "rejection_id", "select_key", "trade_id"]
