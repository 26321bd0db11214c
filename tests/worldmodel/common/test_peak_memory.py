"""Peak memory is measured per block: a later, smaller block does not inherit an earlier peak."""

from __future__ import annotations

import time

import numpy as np

from worldmodel.common.peak_memory import PeakMemory, resident_mb


def test_peak_is_per_block_not_a_running_maximum() -> None:
    base = resident_mb()
    assert base > 0
    with PeakMemory() as big:
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        time.sleep(0.05)
        del block
    with PeakMemory() as small:
        time.sleep(0.05)
    assert big.mb > base + 250
    assert small.mb < big.mb - 250  # ru_maxrss would report the first block's peak again
    assert big.source == "rss"
