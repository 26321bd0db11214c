"""Run directories and the Lightning trainer every training stage shares.

`runs/<stage>/<name>/` holds the resolved `config.yaml`, `metrics.csv`, TensorBoard event files under
`tensorboard/`, Lightning checkpoints under `checkpoints/` (`last.ckpt` is what `resume=true` continues
from) and exported `*.safetensors`. A run directory is locked while a process trains in it, so a second
process is refused. With `run.strategy=ddp run.devices=N` Lightning re-executes the command in N-1 more
processes: only global rank 0 owns the folder (lock, config, exports); the others just train.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from data.episodes import DatasetLock
from worldmodel.common.errors import UserError
from worldmodel.common.plots import writable_output
from worldmodel.config.schema import Config, save_config
from worldmodel.models.checkpoints import save_safetensors


def is_rank_zero() -> bool:
    """Whether this process is global rank 0, from the variables the launchers set: torchrun's RANK, else
    Lightning's NODE_RANK and LOCAL_RANK (its `ddp` launcher sets them before re-executing the command;
    unset = a single process). Read from the environment because our own code runs before Lightning has
    set up the process group (so before `rank_zero_only.rank` knows about NODE_RANK)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    return int(os.environ.get("NODE_RANK", 0)) == 0 and int(os.environ.get("LOCAL_RANK", 0)) == 0


class RunDir:
    """One stage's output folder: lock, config, checkpoints, exports.

    `owner` is False in the extra processes of a multi-process run: they read the folder (to resume
    from the same checkpoint) but never lock or write it; rank 0 writes everything (Lightning's
    loggers and `trainer.save_checkpoint` are rank-aware already)."""

    def __init__(self, config: Config, stage: str) -> None:
        self.path = Path(config.run.root) / stage / config.run.name
        self.stage = stage
        self.owner = is_rank_zero()
        self._lock = DatasetLock(self.path / "run")

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    def open(self, config: Config, resume: bool) -> Path | None:
        """Lock the folder and write the config (the owner only: the other ranks were launched by it,
        which holds the lock); returns the checkpoint to resume from, if any."""
        writable_output(self.path / "config.yaml")
        if self.owner:
            self._acquire()
        has_checkpoint = self.last_checkpoint.exists()
        if has_checkpoint and not resume:
            self._lock.release()
            raise UserError(
                f"run folder '{self.path}' already has a checkpoint: pass resume=true to continue it, "
                "or choose another run.name"
            )
        if self.owner:
            save_config(config, self.path / "config.yaml")
        return self.last_checkpoint if has_checkpoint else None

    def _acquire(self) -> None:
        try:
            self._lock.acquire()
        except ValueError:
            raise UserError(f"run folder '{self.path}': another process is training here") from None

    def close(self) -> None:
        self._lock.release()

    def export(self, filename: str, state_dict: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
        """Write `*.safetensors` via a temp file and a rename; other ranks hold the same weights and
        write nothing (the state dict is still built on every rank: FSDP gathers it collectively)."""
        path = self.path / filename
        if self.owner:
            save_safetensors(state_dict, path, metadata)
        return path


class StopOnNonFinite(Callback):
    """Stop at the first NaN/inf loss with a clear message; the last good checkpoint stays intact."""

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, *args: Any
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            raise UserError(
                f"training loss became {float(loss)} at step {trainer.global_step}: stopping; the last good "
                "checkpoint is intact (lower the learning rate, then resume=true)"
            )


def git_commit() -> str | None:
    """The source checkout's commit, recorded in results so numbers can be traced; None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def precision_for(device: str) -> str:
    """bf16 only on CUDA: on an AVX2 CPU bf16 autocast is 20-30x slower than float32."""
    return "bf16-mixed" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "32-true"


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"config key 'run.device': '{requested}' requested but CUDA is not available")
    return requested


# Lightning's notices that say nothing about this run (device probes, an ad for a logging service,
# checkpoint-loading defaults for our own files, a val loader it is told to skip, a log folder
# that resume=true reuses on purpose, a deprecation inside Lightning itself).
_QUIET_MESSAGES = (
    ".*val_dataloader.*",
    ".*Experiment logs directory.*exists and is not empty.*",
    ".*isinstance\\(treespec, LeafSpec\\).*",
)


def quiet_lightning() -> None:
    """Keep progress bars and our own lines; drop Lightning's boilerplate (warnings stay on for the rest)."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in _QUIET_MESSAGES:
        warnings.filterwarnings("ignore", message=message)


def lightning_strategy(name: str, device: str, unused_parameters: bool) -> str:
    """`run.strategy` as Lightning names it: DDP stops at the first step on a parameter without a
    gradient unless told to look for them (which costs a graph walk per step, so only on request)."""
    if name == "fsdp" and not device.startswith("cuda"):
        raise UserError("config key 'run.strategy': fsdp needs CUDA in Lightning; on CPU use ddp")
    if unused_parameters and name in ("ddp", "ddp_spawn"):
        return f"{name}_find_unused_parameters_true"
    return name


def make_trainer(
    run: RunDir,
    config: Config,
    max_steps: int,
    checkpoint_every: int,
    log_every: int,
    unused_parameters: bool = False,
) -> L.Trainer:
    """A Lightning Trainer logging to `<run>/metrics.csv` and TensorBoard event files in
    `<run>/tensorboard/`, checkpointing to `<run>/checkpoints/`, with `run.strategy` over `run.devices`
    processes (`unused_parameters`: the module has weights the loss never reaches). Fixed log folders
    (name="", version="") so resume=true appends where the run began."""
    quiet_lightning()
    device = pick_device(config.run.device)
    loggers = [
        CSVLogger(save_dir=str(run.path), name="", version=""),
        TensorBoardLogger(
            save_dir=str(run.path / "tensorboard"),
            name="",
            version="",
            default_hp_metric=False,
            # Event files are named by the second and host only: a resume within the same second
            # would overwrite the first run's file. A per-start suffix keeps both.
            filename_suffix=f".{os.getpid()}.{time.time_ns()}",
        ),
    ]
    checkpoints = ModelCheckpoint(
        dirpath=run.path / "checkpoints",
        save_last=True,
        save_top_k=0,
        every_n_train_steps=checkpoint_every,
    )
    return L.Trainer(
        max_steps=max_steps,
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        strategy=lightning_strategy(config.run.strategy, device, unused_parameters),
        devices=config.run.devices,
        precision=precision_for(device),
        logger=loggers,
        callbacks=[checkpoints, StopOnNonFinite()],
        log_every_n_steps=log_every,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=True,
        deterministic=False,
    )
