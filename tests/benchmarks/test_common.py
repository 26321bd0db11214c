"""benchmarks/common.py: what a result records about the machine."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import cpu_model, machine_info


def test_cpu_model_reads_the_model_name_and_vector_extensions(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu sse2 avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: Example CPU 9000\nflags\t\t: fpu sse2 avx2 fma\n"
    )
    model = cpu_model(cpuinfo)
    assert {k: model[k] for k in ("cpu_model", "simd")} == {
        "cpu_model": "Example CPU 9000",
        "simd": ["avx2", "fma"],
    }


def test_cpu_flags_digest_tells_instruction_sets_apart(tmp_path: Path) -> None:
    def digest(flags: str) -> str:
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Example\nflags\t\t: {flags}\n")
        return cpu_model(cpuinfo)["cpu_flags_digest"]

    assert digest("avx2 fma sse2") == digest("sse2 fma avx2")  # order does not matter
    assert digest("avx2 fma sse2") != digest("avx2 fma sse2 avx512_bf16")  # a flag outside `simd` does


def test_machine_info_names_the_torch_kernel_level() -> None:
    assert machine_info()["torch_cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "NO AVX", "ZVECTOR", "VSX"}


def test_cpu_model_is_empty_where_there_is_no_cpuinfo(tmp_path: Path) -> None:
    assert cpu_model(tmp_path / "missing") == {}
