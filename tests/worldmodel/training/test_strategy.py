"""Scale-out through Lightning strategies: a real 2-process DDP pretraining on CPU (gloo), rank 0 alone
owning the run folder, and the `run.strategy` / `run.devices` config checks."""

from __future__ import annotations

import csv

import pytest
import torch

from tests.conftest import run_wm_subprocess
from tests.worldmodel.training.test_pretrain import pretrain_args
from worldmodel.common.errors import UserError
from worldmodel.config.schema import load_config
from worldmodel.models.encoders import load_encoder
from worldmodel.training.runs import RunDir, is_rank_zero, lightning_strategy


def test_ddp_pretraining_on_two_cpu_processes(tiny_dataset, tmp_path) -> None:
    # A real process: Lightning's ddp launcher re-executes this command line for rank 1.
    args = pretrain_args(tiny_dataset, tmp_path, "run.strategy=ddp", "run.devices=2", "max_steps=2")
    result = run_wm_subprocess(*args, "run.num_threads=1", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "another process" not in result.stderr  # rank 1 did not try the run folder's lock
    assert result.stdout.count("encoder:") == 2  # both ranks ran the command to its end
    run = tmp_path / "pretrain" / "tiny"
    encoder, metadata = load_encoder(run)
    assert metadata["format"] == "jepa-wm.encoder"
    with open(run / "metrics.csv") as handle:
        steps = [int(r["step"]) for r in csv.DictReader(handle) if r.get("loss")]
    assert steps == [0, 1]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


def test_other_ranks_neither_lock_nor_write_the_run_folder(tmp_path, monkeypatch) -> None:
    config = load_config([f"run.root={tmp_path}"])
    owner = RunDir(config, "pretrain")
    owner.open(config, resume=False)  # rank 0 holds the lock while rank 1 starts
    try:
        monkeypatch.setenv("LOCAL_RANK", "1")
        other = RunDir(config, "pretrain")
        (owner.path / "config.yaml").unlink()
        assert not other.owner and other.open(config, resume=False) is None
        path = other.export("encoder.safetensors", {"w": torch.zeros(2)}, {})
        assert not path.exists() and not (other.path / "config.yaml").exists()
        other.close()
    finally:
        owner.close()


@pytest.mark.parametrize(
    ("env", "rank_zero"),
    [
        ({}, True),
        ({"LOCAL_RANK": "1"}, False),
        ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, False),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3", "LOCAL_RANK": "1"}, False),
    ],
)
def test_is_rank_zero_reads_the_launchers_variables(monkeypatch, env, rank_zero) -> None:
    for name in ("RANK", "NODE_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_rank_zero() is rank_zero


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("run.strategy=horovod", "config key 'run.strategy': expected auto | ddp | ddp_spawn | fsdp"),
        ("run.devices=0", "config key 'run.devices': expected an integer >= 1"),
    ],
)
def test_bad_strategy_or_devices_is_one_line(wm, tmp_path, override, fragment) -> None:
    result = wm("pretrain", override, f"run.root={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_lightning_strategy_names() -> None:
    assert lightning_strategy("auto", "cpu", unused_parameters=True) == "auto"
    assert lightning_strategy("ddp", "cpu", unused_parameters=False) == "ddp"
    assert lightning_strategy("ddp", "cpu", unused_parameters=True) == "ddp_find_unused_parameters_true"
    assert lightning_strategy("fsdp", "cuda", unused_parameters=True) == "fsdp"
    with pytest.raises(UserError, match="config key 'run.strategy': fsdp needs CUDA"):
        lightning_strategy("fsdp", "cpu", unused_parameters=False)
