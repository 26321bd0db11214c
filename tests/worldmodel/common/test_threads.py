"""The CPU-contention warning: read /proc/stat right, warn only when threads would oversubscribe."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from worldmodel.common.threads import _cpu_times, busy_cores, contention_warning, use_threads


def test_cpu_times_reads_the_aggregate_line(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 5 20 800 50 3 2 0 7 0\ncpu0 50 2 10 400 25 1 1 0 3 0\n")
    busy, total = _cpu_times(stat)
    assert total == 100 + 5 + 20 + 800 + 50 + 3 + 2 + 0
    assert busy == total - 800 - 50


def test_missing_or_foreign_stat_file_gives_none(tmp_path: Path) -> None:
    assert _cpu_times(tmp_path / "absent") is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert _cpu_times(tmp_path / "odd") is None
    assert busy_cores(0.0, tmp_path / "absent") is None


@pytest.mark.parametrize(
    ("threads", "busy", "cores", "warns"),
    [
        (2, 0.1, 2, False),  # idle machine
        (2, 1.0, 2, True),  # one core taken, two threads asked for
        (1, 1.0, 2, False),  # one free core for one thread
        (1, 1.9, 2, True),
        (2, 1.0, 4, False),
        (2, None, 2, False),  # not Linux: no reading, no warning
    ],
)
def test_warning_only_when_oversubscribed(threads: int, busy: float | None, cores: int, warns: bool) -> None:
    message = contention_warning(threads, busy, cores)
    assert (message is not None) == warns
    if message:
        assert message.startswith("warning:") and "\n" not in message and f"{threads} torch thread" in message


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="/proc/stat exists on Linux only")
def test_busy_cores_sees_a_spinning_thread() -> None:
    stop = time.monotonic() + 0.6

    def spin() -> None:
        while time.monotonic() < stop:
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    busy = busy_cores(0.3)
    spinner.join()
    assert busy is not None and 0.5 <= busy <= (os.cpu_count() or 1) + 0.01


def test_use_threads_sets_torch_threads() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        use_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
