"""GpuBusy: nothing and a reason without a GPU; with a reader, a real thread samples at its interval."""

from __future__ import annotations

import statistics
import time

import pytest
import torch

import worldmodel.common.gpu_busy as gpu_busy
from worldmodel.common.gpu_busy import GpuBusy


class CountingReader:
    """Busy 10 %, 20 %, ... (wrapping at 100 %) and memory 1000 + call MiB; fails after `fail_after`."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self) -> tuple[float, float]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("driver went away")
        return float(10 * (self.calls % 10 + 1)), 1000.0 + self.calls


def wait_for(gpu: GpuBusy, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(gpu.samples) < count and time.monotonic() < deadline:
        time.sleep(0.005)


def test_without_cuda_it_records_nothing_and_says_why(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with GpuBusy(interval=0.01) as gpu:
        time.sleep(0.05)
    assert not gpu.available and "torch.cuda.is_available() is False" in gpu.reason
    assert gpu.samples == [] and gpu.mean_busy is None and gpu.peak_memory_mb is None
    assert gpu.busy_by_mark == {} and gpu.busy_between(0, time.time()) is None


def test_a_cpu_device_is_no_source_even_with_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reader, reason = gpu_busy.find_reader("cpu")
    assert reader is None and "not a CUDA device" in reason


def test_every_source_failing_names_each_failure(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def broken(device: torch.device):
        raise OSError(f"cannot open {device}")

    monkeypatch.setattr(gpu_busy, "SOURCES", {"nvml": broken, "nvidia-smi": broken})
    with GpuBusy(device="cuda:0") as gpu:
        pass
    assert not gpu.available and gpu.mean_busy is None
    assert "nvml: OSError: cannot open cuda:0" in gpu.reason and "nvidia-smi: OSError" in gpu.reason


def test_the_first_source_that_reads_is_used(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        gpu_busy,
        "SOURCES",
        {"nvml": lambda d: 1 / 0, "torch.cuda.utilization": lambda d: lambda: (40.0, 5.0)},
    )
    with GpuBusy(interval=0.01) as gpu:
        wait_for(gpu, 2)
    assert gpu.available and gpu.source == "torch.cuda.utilization" and gpu.mean_busy == pytest.approx(0.4)


def test_samples_on_a_thread_every_interval_and_averages_them() -> None:
    reader = CountingReader()
    start = time.time()
    with GpuBusy(interval=0.02, reader=reader) as gpu:
        wait_for(gpu, 3)
        gpu.mark("second")
        wait_for(gpu, 6)
    count = len(gpu.samples)
    time.sleep(0.1)
    assert len(gpu.samples) == count == reader.calls  # the thread stopped at exit
    assert count >= 7  # six while open, one at exit
    busy = [s.busy for s in gpu.samples]
    assert busy == [(10 * (k % 10 + 1)) / 100 for k in range(1, count + 1)]
    assert gpu.mean_busy == pytest.approx(statistics.fmean(busy))
    assert gpu.peak_memory_mb == 1000.0 + count
    gaps = [b.time - a.time for a, b in zip(gpu.samples[:-2], gpu.samples[1:-1], strict=True)]
    assert min(gaps) >= 0.015  # Event.wait(interval) between readings, not a busy loop
    marks = [s.mark for s in gpu.samples]
    assert marks[0] == "" and marks[-1] == "second" and marks == sorted(marks)
    by_mark = gpu.busy_by_mark
    assert list(by_mark) == ["", "second"]
    first = [s.busy for s in gpu.samples if s.mark == ""]
    assert by_mark[""] == pytest.approx(statistics.fmean(first))
    middle = gpu.samples[2:5]
    assert gpu.busy_between(middle[0].time, middle[-1].time) == pytest.approx(
        statistics.fmean(s.busy for s in middle)
    )
    assert gpu.busy_between(start - 10, start - 5) is None


def test_readings_are_clamped_to_a_fraction() -> None:
    with GpuBusy(interval=0.01, reader=lambda: (250.0, 1.0)) as gpu:
        wait_for(gpu, 2)
    assert gpu.mean_busy == 1.0


def test_a_reader_failing_mid_run_stops_sampling_without_raising() -> None:
    reader = CountingReader(fail_after=3)
    with GpuBusy(interval=0.01, reader=reader) as gpu:
        time.sleep(0.2)
    assert len(gpu.samples) == 3 and reader.calls == 4  # no reading at exit after the failure
    assert gpu.available and "stopped reading: RuntimeError: driver went away" in gpu.reason
    assert gpu.mean_busy == pytest.approx(statistics.fmean([0.2, 0.3, 0.4]))
