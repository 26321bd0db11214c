"""Peak memory of one block of work (one eval row), not of the whole process so far.

`ru_maxrss` only ever grows, so after a big row every later row would report that row's peak.
`PeakMemory` samples the resident set size (Linux `/proc/self/statm`) from a background thread
while the block runs and keeps the maximum; on CUDA it also reads the allocator's peak. Where
`/proc` is missing it falls back to `ru_maxrss` (a running peak, said in `source`).
"""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import torch

STATM = Path("/proc/self/statm")
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_mb() -> float:
    """Current resident set size in MiB (0 when /proc is unavailable)."""
    try:
        return int(STATM.read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


class PeakMemory:
    """`with PeakMemory() as peak: ...` then `peak.mb`: the largest RSS seen inside the block."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.mb = 0.0
        self.cuda_mb = 0.0
        self.source = "rss" if STATM.exists() else "ru_maxrss"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.mb = max(self.mb, resident_mb())

    def __enter__(self) -> PeakMemory:
        self.mb = resident_mb()
        if self.source == "rss":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.mb = max(self.mb, resident_mb())
        if self.source != "rss":
            self.mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if torch.cuda.is_available():
            self.cuda_mb = torch.cuda.max_memory_allocated() / 2**20
