"""The one device rule every stage follows: `run.device` (auto | cpu | cuda | cuda:N).

`auto` is CUDA when torch sees a GPU, else the CPU. Every command (collect aside, which renders on
the CPU side) puts its models, caches and planner tensors on `resolve_device(config.run.device)`,
so a config that names a device gets it everywhere, not only in the Lightning trainers.
"""

from __future__ import annotations

import os
import platform

import torch

from worldmodel.common.errors import UserError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
DEVICE_HELP = "Where the networks run: auto (CUDA when present), cpu, cuda or cuda:N."


def resolve_device(requested: str | torch.device = "auto") -> torch.device:
    """`run.device` as a torch device; a CUDA device without CUDA is one clear error."""
    name = str(requested)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise UserError(f"config key 'run.device': expected {DEVICE_CHOICES}, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"config key 'run.device': '{name}' requested but CUDA is not available")
    return torch.device(name)


def is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def describe_machine() -> dict[str, object]:
    """What a result was measured on: CPU cores, torch, and the GPU if torch sees one."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    cores = os.cpu_count()
    text = f"{gpu} with {cores} CPU cores" if gpu else f"{cores} CPU cores ({platform.machine()}), no GPU"
    return {
        "description": f"{text}, torch {torch.__version__}",
        "cpu_count": cores,
        "gpu": gpu,
        "torch": torch.__version__,
    }
