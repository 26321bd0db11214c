"""What every benchmark result records: the machine, the commit, the config, and the figures."""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from worldmodel.common.atomic import write_json_atomic
from worldmodel.common.errors import UserError
from worldmodel.training.runs import git_commit

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        **cpu_model(),
    }
    for module in ("torch", "mujoco", "numpy", "h5py"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    if info["torch"]:  # the kernel level torch chose (DEFAULT, AVX2, AVX512): results differ by it
        info["torch_cpu_capability"] = __import__("torch").backends.cpu.get_cpu_capability()
    return info


SIMD_FLAGS = ("avx512f", "avx2", "fma")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU's model name, vector extensions and a digest of all its flags (Linux only, else
    nothing): torch's CPU kernels differ by instruction set, so retrained weights and timings
    compare only where these agree."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {}
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    present = set(flags.group(1).split()) if flags else set()
    return {
        "cpu_model": model.group(1).strip() if model else None,
        "simd": [flag for flag in SIMD_FLAGS if flag in present],
        "cpu_flags_digest": hashlib.sha256(" ".join(sorted(present)).encode()).hexdigest()[:12],
    }


def write_result(
    name: str, config: dict[str, Any], figures: dict[str, Any], results_dir: Path = RESULTS_DIR
) -> Path:
    """Write <results_dir>/<name>.json (default benchmarks/results) atomically; return its path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine_info(),
        "git_commit": git_commit(),
        "config": config,
        "figures": figures,
    }
    return write_json_atomic(results_dir / f"{name}.json", payload)


def write_timing_result(
    name: str, config: dict[str, Any], figures: dict[str, Any], results_dir: Path = RESULTS_DIR
) -> Path:
    """`write_result` for a timing benchmark: the config also records the load average it finished
    under (other work on the 2 cores slows every figure); prints where the result went."""
    config = {**config, "load_avg_1min_after": os.getloadavg()[0]}
    path = write_result(name, config, figures, results_dir)
    print(f"wrote {path}")
    return path


REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# The full result tables; the README carries a short generated summary of them.
RESULTS_PAGE = REPO / "docs" / "results.md"


def replace_block(markdown: str, start: str, end: str, heading: str, page: Path = RESULTS_PAGE) -> None:
    """Put `markdown` between the `start` and `end` markers of `page` (appended under `heading` if absent)."""
    text = page.read_text()
    if start not in text or end not in text:
        text += f"\n## {heading}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    page.write_text(f"{head}{start}\n{markdown}\n{end}{tail}")


class StudyParser(argparse.ArgumentParser):
    """Options of a `wm bench <study>`: a bad one is one clear line through `wm`'s error handling
    (exit 2), not argparse's usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message} (see {self.prog} -h)")

    def add_encoder_options(self, mae_steps_help: str, probe_episodes_help: str) -> None:
        """The options of studies that pretrain an MAE baseline and probe every encoder."""
        self.add_argument("--mae-steps", type=positive, help=mae_steps_help)
        self.add_argument("--probe-episodes", type=positive, default=100, help=probe_episodes_help)

    def add_output_options(self, result: str, overrides_help: str) -> None:
        """The options every study ends with: where its result goes, the results-page switch, overrides."""
        self.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help=f"where {result}.json goes")
        self.add_argument(
            "--no-readme", action="store_true", help="do not rewrite the table in docs/results.md"
        )
        self.add_argument("overrides", nargs="*", help=overrides_help)


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def name_list(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """argparse type: comma-separated names, each from `allowed`, kept in the order given, no repeats."""

    def parse(text: str) -> list[str]:
        names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        unknown = [n for n in names if n not in allowed]
        if not names or unknown:
            got = unknown[0] if unknown else text
            raise argparse.ArgumentTypeError(f"expected names from {','.join(allowed)}, got {got!r}")
        return names

    return parse
