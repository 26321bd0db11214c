"""The one rich console factory every command prints its lines and tables through.

A pipe or a file has no width of its own, so rich falls back to the terminal's (or 80 columns) and
cuts table cells to "…" in `wm demo | tee demo.log`. Piped output gets a generous fixed width
instead; a terminal keeps its own width, and a COLUMNS setting still wins.
"""

from __future__ import annotations

import os

from rich.console import Console

PIPED_WIDTH = 240  # wider than any table the commands print, so no cell is cut when piped


def make_console(stderr: bool = False) -> Console:
    """A console that never wraps plain lines and, when piped, renders tables at PIPED_WIDTH."""
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = PIPED_WIDTH
    return console
