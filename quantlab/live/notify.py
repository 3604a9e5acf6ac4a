"""Notifications of the live runner: console lines and an optional JSON webhook."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

Notify = Callable[[str, str, dict[str, Any]], None]


class Notifier:
    """Console lines and, if configured, a JSON webhook POST per notification."""

    def __init__(
        self,
        console: bool = True,
        webhook_url: str | None = None,
        post: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.console, self.webhook_url = console, webhook_url
        self.post = post or _post_json

    def __call__(self, kind: str, message: str, data: dict[str, Any]) -> None:
        if self.console:
            print(f"[quantlab live] {kind}: {message}", file=sys.stderr)
        if self.webhook_url:
            body = json.dumps({"kind": kind, "message": message, "data": data}, default=str)
            try:
                self.post(self.webhook_url, body.encode())
            except OSError as exc:  # a notification failure never stops trading
                print(f"[quantlab live] webhook failed: {exc}", file=sys.stderr)


def _post_json(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5):
        pass


__all__ = ["Notifier", "Notify"]
