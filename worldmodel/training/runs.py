"""Run directories and the Lightning trainer every training stage shares.

`runs/<stage>/<name>/` holds the resolved `config.yaml`, `metrics.csv`, TensorBoard event files under
`tensorboard/`, Lightning checkpoints under `checkpoints/` (`last.ckpt` is what `resume=true` continues
from) and exported `*.safetensors`. A run directory is locked while a process trains in it, so a second
process is refused. With `run.strategy=ddp run.devices=N` Lightning re-executes the command in N-1 more
processes: only global rank 0 owns the folder (lock, config, exports); the others just train.
A run that fails before its first checkpoint removes the folder it created; a later failure keeps
the checkpoint and says `resume=true`. One bar counts steps toward `max_steps` over the whole run.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from data.episodes import DatasetLock
from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.common.plots import writable_output
from worldmodel.common.progress import ProgressReport, ProgressTask
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
    loggers and `trainer.save_checkpoint` are rank-aware already). `path`: another folder than
    <run.root>/<stage>/<run.name> (an ensemble member's)."""

    def __init__(self, config: Config, stage: str, path: Path | None = None) -> None:
        self.path = path or Path(config.run.root) / stage / config.run.name
        self.stage = stage
        self.owner = is_rank_zero()
        self._lock = DatasetLock(self.path / "run")
        self._locked = False

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    @contextmanager
    def session(self, config: Config, resume: bool) -> Iterator[Path | None]:
        """`open`, yield the checkpoint to resume from, `close`. If the body fails, a folder this
        process created and that holds no checkpoint yet is removed (with the parents it created,
        when empty); one with a checkpoint is kept and the error says `resume=true`."""
        created = missing_folders(self.path)
        try:
            yield self.open(config, resume)
        except BaseException as err:
            if self._locked and self.last_checkpoint.exists():
                point_at_resume(err, self.path)
            elif self._locked and created:
                remove_folders(created)
            raise
        finally:
            self.close()

    def open(self, config: Config, resume: bool) -> Path | None:
        """Lock the folder and write the config (the owner only: the other ranks were launched by it,
        which holds the lock); returns the checkpoint to resume from, if any."""
        writable_output(self.path / "config.yaml")
        if self.owner:
            self._acquire()
        has_checkpoint = self.last_checkpoint.exists()
        if has_checkpoint and not resume:
            self.close()
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
        self._locked = True

    def close(self) -> None:
        self._lock.release()
        self._locked = False

    def export(self, filename: str, state_dict: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
        """Write `*.safetensors` via a temp file and a rename; other ranks hold the same weights and
        write nothing (the state dict is still built on every rank: FSDP gathers it collectively)."""
        path = self.path / filename
        if self.owner:
            save_safetensors(state_dict, path, metadata)
        return path


def missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_folders(created: list[Path]) -> None:
    """Remove the run folder (first) and then each parent in `created` that is left empty."""
    shutil.rmtree(created[0], ignore_errors=True)
    for parent in created[1:]:
        try:
            parent.rmdir()
        except OSError:  # not empty: another run lives there now
            return


def point_at_resume(err: BaseException, path: Path) -> None:
    """Make the failure's one line say how to continue (the CLI prints `str(err)`); an error without
    a message to extend (an interrupt) gets the advice as its own line on stderr."""
    hint = f"run folder '{path}' keeps its last checkpoint: continue it with resume=true"
    if "resume=true" in str(err):
        return
    if isinstance(err, OSError) and err.strerror:
        err.strerror = f"{err.strerror} ({hint})"
    elif type(err).__str__ is BaseException.__str__ and len(err.args) == 1 and isinstance(err.args[0], str):
        err.args = (f"{err.args[0]} ({hint})",)
    else:
        print(hint, file=sys.stderr, flush=True)


# On a GPU, reading a loss value waits for the whole step to finish, so the host cannot queue the
# next one: the callbacks read values only every SYNC_EVERY_CUDA steps there (every step on a CPU,
# where it costs nothing).
SYNC_EVERY_CUDA = 25


def host_sync_every(device: str) -> int:
    return SYNC_EVERY_CUDA if device.startswith("cuda") else 1


class StopOnNonFinite(Callback):
    """Stop at the first NaN/inf loss with a clear message; the last good checkpoint stays intact.

    The loss is read every `every` steps (and always before a checkpoint is written), so a NaN is
    caught at most `every - 1` steps late and never saved."""

    def __init__(self, every: int = 1, checkpoint_every: int = 0) -> None:
        super().__init__()
        self.every, self.checkpoint_every = max(every, 1), checkpoint_every

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, *args: Any
    ) -> None:
        step = trainer.global_step
        due = step % self.every == 0 or (self.checkpoint_every and step % self.checkpoint_every == 0)
        if not due and step < trainer.max_steps:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            raise UserError(
                f"training loss became {float(loss)} at step {trainer.global_step}: stopping; the last good "
                "checkpoint is intact (lower the learning rate, then resume=true)"
            )


class LogLastStep(Callback):
    """Log the last step's metrics when Lightning's every-`log_every`-steps rule skipped it, so a run
    shorter than `log_every` still writes the metrics.csv the commands announce (and a longer one
    records where it ended). A stop by `max_time` sets `should_stop`, and Lightning logs that step itself."""

    def __init__(self, log_every: int) -> None:
        super().__init__()
        self.log_every = max(log_every, 1)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        step = trainer.global_step
        if step == 0 or step % self.log_every == 0 or trainer.should_stop:
            return
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
        for logger in trainer.loggers if metrics else []:
            logger.log_metrics(metrics, step=step - 1)  # Lightning's rows count steps from 0
            logger.save()


class StepBar(ProgressBar):
    """One bar over the whole run toward `max_steps`, driven by `trainer.global_step`, with the
    progress-bar metrics (the loss first) beside it: it runs across epoch boundaries and a resumed
    run starts at its checkpoint's step. Plain lines instead when stderr is not a terminal."""

    def __init__(self, name: str, description: str, progress: bool | str = True, every: int = 1) -> None:
        super().__init__()
        self.name, self.description, self.progress = name, description, progress
        self.every = max(every, 1)  # metrics (a host sync on a GPU) are read every `every` steps
        self.enabled = True
        self.report: ProgressReport | None = None
        self.task: ProgressTask | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.enabled:
            return
        self.report = ProgressReport(self.name, self.progress).start()
        step, total = trainer.global_step, max(trainer.max_steps, 0)
        note = f"resuming at step {step} of {total}" if step else f"{total} steps"
        self.task = self.report.task(self.description, total, "steps", note=note, completed=step)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if self.task is None:
            return
        if trainer.global_step % self.every == 0:
            self.task.update(completed=trainer.global_step, status=self.metrics_text(trainer))
        else:
            self.task.update(completed=trainer.global_step)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.task is not None:
            self.task.update(completed=trainer.global_step, status=self.metrics_text(trainer))
            self.task.finish()
        self.stop()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self.stop()

    def teardown(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        self.stop()

    def stop(self) -> None:
        if self.report is not None:
            self.report.close()
        self.report = self.task = None

    @staticmethod
    def metrics_text(trainer: L.Trainer) -> str:
        """`loss 0.1234 target_std 0.2801`: what the module logs with prog_bar=True."""
        return "  ".join(f"{key} {float(value):.4g}" for key, value in trainer.progress_bar_metrics.items())


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
    """`run.device` resolved by the one rule (worldmodel/common/devices.py), as Lightning's string."""
    return str(resolve_device(requested))


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


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv when it starts; a resumed run appends to
    it instead, so the rows before the resume stay the run's history."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` writing through `AppendingWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


BAR_NAMES = {"ac": "train"}  # the bar is named after the command: `wm train` writes runs/ac/


def make_trainer(
    run: RunDir,
    config: Config,
    max_steps: int,
    checkpoint_every: int,
    log_every: int,
    unused_parameters: bool = False,
    max_minutes: float = 0.0,
) -> L.Trainer:
    """A Lightning Trainer logging to `<run>/metrics.csv` and TensorBoard event files in
    `<run>/tensorboard/`, checkpointing to `<run>/checkpoints/`, with `run.strategy` over `run.devices`
    processes (`unused_parameters`: the module has weights the loss never reaches), stopping at
    `max_steps` or after `max_minutes` of training (0: no cap). Fixed log folders (name="",
    version="") so resume=true appends where the run began."""
    quiet_lightning()
    device = pick_device(config.run.device)
    loggers = [
        ResumableCSVLogger(save_dir=str(run.path), name="", version=""),
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
        max_time=timedelta(minutes=max_minutes) if max_minutes > 0 else None,
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        strategy=lightning_strategy(config.run.strategy, device, unused_parameters),
        # cuda:N: that one GPU; otherwise `run.devices` of the accelerator's devices.
        devices=[index] if (index := torch.device(device).index) is not None else config.run.devices,
        precision=precision_for(device),
        logger=loggers,
        callbacks=[
            checkpoints,
            StopOnNonFinite(host_sync_every(device), checkpoint_every),
            LogLastStep(log_every),
            StepBar(BAR_NAMES.get(run.stage, run.stage), run.path.name, every=host_sync_every(device)),
        ],
        log_every_n_steps=log_every,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=True,
        deterministic=False,
    )
