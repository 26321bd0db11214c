"""Progress for long loops: a live `rich` bar on a terminal, a few plain lines anywhere else.

A `progress` argument is True (a bar when stderr is a terminal, else plain lines), "bar" or "lines"
to choose, or False for silence. The live bar draws on stderr; plain lines are part of the command's
log on stdout, like its other `[stage]` lines (stderr stays for the one error line): one when a task
starts, one when it ends and at most one per LINE_EVERY_S in between, so logs never flood.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from worldmodel.common.console import make_console

LINE_EVERY_S = 60.0  # plain-line mode: the longest silence while a task runs
MODES = ("bar", "lines", "off")


def progress_mode(progress: bool | str) -> str:
    """'bar', 'lines' or 'off' for a `progress` argument (see the module docstring)."""
    if progress is True:
        return "bar" if sys.stderr.isatty() else "lines"
    if progress is False:
        return "off"
    if progress in MODES:
        return str(progress)
    raise ValueError(f"progress: expected True, False, 'bar', 'lines' or 'off', got {progress!r}")


class ProgressReport:
    """The tasks of one command, labelled `[name]`: rows of one live bar display, or plain lines."""

    def __init__(self, name: str, progress: bool | str = True, console: Console | None = None) -> None:
        self.name = name
        self.mode = progress_mode(progress)
        self.console = console or make_console(stderr=self.mode == "bar")
        self.bars = Progress(
            TextColumn(f"[{name}] {{task.description}}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}", markup=False),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}", markup=False),
            console=self.console,
            disable=self.mode != "bar",
            refresh_per_second=4,
            # Output written to stdout while the bar runs stays on stdout unless both are the terminal.
            redirect_stdout=sys.stdout.isatty(),
        )

    def start(self) -> ProgressReport:
        self.bars.start()
        return self

    def close(self) -> None:
        """Stop refreshing; the bars stay on screen (a file gets their final state once)."""
        self.bars.stop()

    def __enter__(self) -> ProgressReport:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def task(
        self, description: str, total: int, unit: str, note: str = "", completed: int = 0
    ) -> ProgressTask:
        """A new bar; in line mode, announce it with `note` (default: its size)."""
        return ProgressTask(self, description, total, unit, note, completed)

    def say(self, text: str) -> None:
        """One plain line (line mode only)."""
        if self.mode == "lines":
            self.console.print(f"[{self.name}] {text}", markup=False, highlight=False)


class ProgressTask:
    """One bar (or its lines): `update` as work is done, `finish` once it is all done."""

    def __init__(
        self, report: ProgressReport, description: str, total: int, unit: str, note: str, completed: int
    ) -> None:
        self.report = report
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = completed
        self.status = ""
        self.started = self.last_line = time.monotonic()
        self.id = report.bars.add_task(description, total=total, completed=completed, unit=unit, status="")
        size = f"{completed}/{total}" if completed else str(total)
        report.say(f"{description}: {note or f'{size} {unit}'} ...")

    def update(self, *, advance: int = 0, completed: int | None = None, status: str | None = None) -> None:
        self.completed = (self.completed if completed is None else completed) + advance
        self.status = self.status if status is None else status
        self.report.bars.update(self.id, completed=self.completed, status=self.status)
        now = time.monotonic()
        if now - self.last_line >= LINE_EVERY_S and self.completed < self.total:
            self.last_line = now
            self.report.say(f"{self.description}: {self.progress_text()}")

    def finish(self, status: str | None = None) -> None:
        """Fill the bar (line mode: one closing line with the status and the time taken)."""
        self.update(completed=self.total, status=status)
        self.report.say(
            f"{self.description}: {self.progress_text()} in {time.monotonic() - self.started:.1f} s"
        )

    def progress_text(self) -> str:
        return ", ".join(filter(None, [f"{self.completed}/{self.total} {self.unit}", self.status]))
