"""The rich console every command and benchmark prints through."""

from __future__ import annotations

from typing import Any


def wide_console(width: int = 170) -> Any:
    """A rich ``Console``: the terminal's own width in a terminal, ``width`` columns when the
    output is a file or a pipe (so tables are not cut to 80 columns)."""
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=width)


__all__ = ["wide_console"]
