"""Set torch's thread count for a command, and say so when the CPU is already busy.

Why the warning: torch's worker threads spin while they wait, so on a 2-core machine two 2-thread
training jobs do not each run 2x slower than alone but 7-8x slower (`benchmarks/experiments.md`
§29: 1,460 s against about 200 s for `wm pretrain preset=tiny`). A user who starts a second job
deserves to hear that before the hour is gone.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

PROC_STAT = Path("/proc/stat")


def _cpu_times(stat: Path) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over all cores, or None where /proc/stat is missing (not Linux)."""
    try:
        fields = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user..steal; guest time is already counted in user
    return total - idle, total


def busy_cores(interval: float = 0.2, stat: Path = PROC_STAT) -> float | None:
    """How many cores other processes keep busy right now (sampled over `interval` seconds)."""
    before = _cpu_times(stat)
    if before is None:
        return None
    time.sleep(interval)
    after = _cpu_times(stat)
    if after is None or after[1] <= before[1]:
        return None
    busy_fraction = (after[0] - before[0]) / (after[1] - before[1])
    return busy_fraction * (os.cpu_count() or 1)


def contention_warning(threads: int, busy: float | None, cores: int) -> str | None:
    """The one-line warning when `threads` more threads would oversubscribe the cores, else None."""
    if busy is None or busy < 0.75 or busy + threads <= cores + 0.25:
        return None
    return (
        f"warning: {busy:.1f} of {cores} CPU cores are already busy and this command asks for "
        f"{threads} torch thread(s); spinning threads make both jobs several times slower "
        f"(7-8x measured for two 2-thread trainings on 2 cores). Run heavy jobs one at a time."
    )


def use_threads(threads: int) -> None:
    """`torch.set_num_threads(threads)`, warning on stderr first if the machine is oversubscribed."""
    message = contention_warning(threads, busy_cores(), os.cpu_count() or 1)
    if message:
        print(message, file=sys.stderr)
    torch.set_num_threads(threads)
