"""The one device rule: `run.device` resolved the same way by every stage."""

from __future__ import annotations

import pytest
import torch

from worldmodel.common.devices import describe_machine, is_cuda, resolve_device
from worldmodel.common.errors import UserError


def test_auto_is_cuda_only_when_torch_sees_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")


def test_cuda_without_a_gpu_and_bad_names_are_one_line_errors(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="run.device.*'cuda' requested but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="run.device.*expected auto, cpu, cuda or cuda:N, got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(UserError, match="got 'cuda:x'"):
        resolve_device("cuda:x")


def test_is_cuda_reads_the_device_type() -> None:
    assert not is_cuda("cpu") and is_cuda(torch.device("cuda", 0)) and is_cuda("cuda:1")


def test_the_machine_description_names_the_gpu_only_when_there_is_one(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = describe_machine()
    assert cpu["gpu"] is None and "no GPU" in cpu["description"] and torch.__version__ in cpu["description"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H200")
    assert describe_machine()["description"].startswith("NVIDIA H200 with")
