"""benchmarks/common.py: what a result records about the machine."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import cpu_model


def test_cpu_model_reads_the_model_name_and_vector_extensions(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu sse2 avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: Example CPU 9000\nflags\t\t: fpu sse2 avx2 fma\n"
    )
    assert cpu_model(cpuinfo) == {"cpu_model": "Example CPU 9000", "simd": ["avx2", "fma"]}


def test_cpu_model_is_empty_where_there_is_no_cpuinfo(tmp_path: Path) -> None:
    assert cpu_model(tmp_path / "missing") == {}
