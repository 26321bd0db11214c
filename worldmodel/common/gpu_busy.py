"""How busy the GPU was while a block of work ran: the share of time a kernel was executing.

Wall time alone cannot tell a GPU-bound stage from one starved by its host side (data loading,
per-batch Python, host syncs). `GpuBusy` samples the device's utilisation and memory from a
background thread while the block runs, through NVML (`pynvml`, package nvidia-ml-py), else
`torch.cuda.utilization`, else `nvidia-smi`; without CUDA it records nothing and says why.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

# One reading: (percent of the last sample period a kernel ran, 0..100; device memory used, MiB).
Reader = Callable[[], tuple[float, float]]


@dataclass(frozen=True)
class Sample:
    """One reading; `time` is `time.time()`, so it lines up with logged wall times."""

    time: float
    busy: float  # 0..1
    memory_mb: float
    mark: str


def _nvml_index(device: torch.device) -> int:
    """The NVML (physical) index of a torch CUDA device: `CUDA_VISIBLE_DEVICES` renumbers torch's."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible and all(v.isdigit() for v in visible) and index < len(visible):
        return int(visible[index])
    return index


def _nvml_reader(device: torch.device) -> Reader:
    import pynvml  # deferred: optional (nvidia-ml-py); only a CUDA machine has something to read

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(_nvml_index(device))

    def read() -> tuple[float, float]:
        busy = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        return float(busy), pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20

    return read


def _torch_reader(device: torch.device) -> Reader:
    def read() -> tuple[float, float]:
        free, total = torch.cuda.mem_get_info(device)
        return float(torch.cuda.utilization(device)), (total - free) / 2**20

    return read


def _smi_reader(device: torch.device) -> Reader:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise FileNotFoundError("nvidia-smi not on PATH")
    query = [smi, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
    command = [*query, "-i", str(_nvml_index(device))]

    def read() -> tuple[float, float]:
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=5).stdout
        busy, used = out.strip().splitlines()[0].split(",")
        return float(busy), float(used)

    return read


SOURCES: dict[str, Callable[[torch.device], Reader]] = {
    "nvml": _nvml_reader,
    "torch.cuda.utilization": _torch_reader,
    "nvidia-smi": _smi_reader,
}


def find_reader(device: str | torch.device | None = None) -> tuple[Reader | None, str]:
    """The first source that reads the device: `(reader, source name)`, or `(None, why none did)`."""
    if not torch.cuda.is_available():
        return None, "no CUDA device (torch.cuda.is_available() is False)"
    device = torch.device("cuda" if device is None else device)
    if device.type != "cuda":
        return None, f"device {device} is not a CUDA device"
    failures = []
    for name, make in SOURCES.items():
        try:
            reader = make(device)
            reader()  # a source that imports but cannot read (no driver access) is no source
            return reader, name
        except Exception as err:  # any failure means: try the next source
            failures.append(f"{name}: {type(err).__name__}: {err}".strip())
    return None, "no utilisation source: " + "; ".join(failures)


class GpuBusy:
    """`with GpuBusy() as gpu: ...` then `gpu.mean_busy` (0..1), `gpu.peak_memory_mb`, `gpu.samples`.

    A reading is taken every `interval` seconds and once more at exit; utilisation is what the
    driver reports for its last sample period (1/6 s to 1 s), so blocks much shorter than that
    are not measured well. `mark(name)` labels the readings that follow (`busy_by_mark`), and
    `busy_between(start, end)` averages a stretch given in `time.time()` seconds, so one sampler
    can cover a run and report its steady part only. Without a source, `available` is False and
    `reason` says why; every figure is then None. `reader` replaces the device (for tests).
    """

    def __init__(
        self, interval: float = 0.2, device: str | torch.device | None = None, reader: Reader | None = None
    ) -> None:
        self.interval = interval
        self.device = device
        self._reader = reader
        self.source = "injected reader" if reader is not None else ""
        self.available = reader is not None
        self.reason = ""
        self.samples: list[Sample] = []
        self._mark = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuBusy:
        if self._reader is None:
            self._reader, found = find_reader(self.device)
            self.available = self._reader is not None
            self.source, self.reason = (found, "") if self.available else ("", found)
        if self.available:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gpu-busy", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self._read_once()  # the stretch since the last reading belongs to the block too

    def mark(self, name: str) -> None:
        """Label the readings from now on (e.g. one stage of several inside one sampler)."""
        self._mark = name

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._read_once():
                return

    def _read_once(self) -> bool:
        """Take one reading; a source that fails mid-run stops sampling and says so in `reason`."""
        if self._reader is None:
            return False
        try:
            busy, memory_mb = self._reader()
        except Exception as err:  # a sampler must never break the work it watches
            self.reason = f"{self.source} stopped reading: {type(err).__name__}: {err}"
            self._reader = None  # no more readings, not even the one at exit
            return False
        self.samples.append(Sample(time.time(), min(max(busy / 100.0, 0.0), 1.0), memory_mb, self._mark))
        return True

    @property
    def mean_busy(self) -> float | None:
        return _mean(self.samples)

    @property
    def peak_memory_mb(self) -> float | None:
        return max((s.memory_mb for s in self.samples), default=None)

    @property
    def busy_by_mark(self) -> dict[str, float | None]:
        """Mean busy fraction of the readings under each `mark` name, in the order first seen."""
        names = dict.fromkeys(s.mark for s in self.samples)
        return {name: _mean([s for s in self.samples if s.mark == name]) for name in names}

    def busy_between(self, start: float, end: float) -> float | None:
        """Mean busy fraction of the readings taken in `[start, end]` (`time.time()` seconds)."""
        return _mean([s for s in self.samples if start <= s.time <= end])


def _mean(samples: list[Sample]) -> float | None:
    return statistics.fmean(s.busy for s in samples) if samples else None
