"""`wm pretrain method=mae`, the collapse guard, and resuming after a SIGKILL (real CLI, tiny model)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.worldmodel.training.test_pretrain import pretrain_args
from worldmodel.common.errors import UserError
from worldmodel.config.schema import load_config, save_config
from worldmodel.models.encoders import load_encoder
from worldmodel.models.world_model import make_encode_fn
from worldmodel.training.pretrain import pretrain

TINY_DECODER = [
    "mae.decoder.embed_dim=32",
    "mae.decoder.depth=1",
    "mae.decoder.num_heads=1",
    "mae.decoder.mlp_hidden=64",
]


def metric_rows(run) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def test_mae_pretraining_exports_a_loadable_encoder(wm, tiny_dataset, tmp_path) -> None:
    args = pretrain_args(tiny_dataset, tmp_path, "method=mae", "max_steps=3", *TINY_DECODER)
    result = wm(*args)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "pretrain" / "tiny"
    rows = metric_rows(run)
    losses = [float(r["loss"]) for r in rows if r.get("loss")]
    assert len(losses) >= 2 and all(0 < x < 10 for x in losses)
    assert any(r.get("context_std") for r in rows) and "target_std" not in rows[0]
    encoder, metadata = load_encoder(run)
    assert metadata["format"] == "jepa-wm.encoder" and encoder.cfg.embed_dim == 64
    latents = make_encode_fn(str(run), grid=2)(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert latents.shape == (2, 4, 64) and torch.isfinite(latents).all()
    # The exported weights are the trained MAE encoder's, not the JEPA init: the checkpoint agrees.
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    trained = checkpoint["state_dict"]["model.encoder.blocks.0.attn.qkv.weight"]
    assert torch.equal(encoder.state_dict()["blocks.0.attn.qkv.weight"], trained)
    assert not any(k.startswith("model.target_encoder") for k in checkpoint["state_dict"])


def test_bad_method_is_one_line(wm, tmp_path) -> None:
    result = wm("pretrain", "method=byol", f"run.root={tmp_path}")
    assert result.returncode == 2 and "pretrain.method" in result.stderr and "jepa | mae" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_collapse_guard_stops_with_step_and_value(wm, tiny_dataset, tmp_path) -> None:
    args = pretrain_args(tiny_dataset, tmp_path, "max_steps=20", "warmup_steps=1", "min_target_std=1e6")
    result = wm(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "collapse at step 2" in line and "target_std" in line and "min_target_std=1e+06" in line
    assert not (tmp_path / "pretrain" / "tiny" / "encoder.safetensors").exists()


def test_collapse_guard_off_by_default_and_quiet_above_threshold(wm, tiny_dataset, tmp_path) -> None:
    args = pretrain_args(tiny_dataset, tmp_path, "max_steps=3", "warmup_steps=0", "min_target_std=1e-6")
    result = wm(*args)
    assert result.returncode == 0, result.stderr


def test_pretraining_resumes_after_sigkill(wm, tiny_dataset, tmp_path) -> None:
    run = tmp_path / "pretrain" / "tiny"
    last = run / "checkpoints" / "last.ckpt"
    args = pretrain_args(tiny_dataset, tmp_path, "max_steps=100000", "checkpoint_every=2")
    process = subprocess.Popen(
        [sys.executable, "-m", "worldmodel.cli.main", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 120
        while not last.exists():
            assert process.poll() is None, "pretraining exited before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed_at = torch.load(last, weights_only=False)["global_step"]
    assert killed_at >= 2 and not (run / "encoder.safetensors").exists()

    max_steps = killed_at + 3
    resumed = wm(
        *pretrain_args(tiny_dataset, tmp_path, f"max_steps={max_steps}", "checkpoint_every=2", "resume=true")
    )
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(last, weights_only=False)["global_step"] == max_steps
    encoder, metadata = load_encoder(run)
    assert metadata["format"] == "jepa-wm.encoder"
    latents = make_encode_fn(str(run), grid=2)(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert latents.shape == (2, 4, 64)


def test_resuming_with_the_other_method_is_refused(tmp_path) -> None:
    jepa_run = load_config([f"run.root={tmp_path}"])
    run = tmp_path / "pretrain" / "tiny"
    save_config(jepa_run, run / "config.yaml")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    config = load_config([f"run.root={tmp_path}", "pretrain.method=mae", "pretrain.resume=true"])
    with pytest.raises(UserError, match="pretrain.method=jepa"):
        pretrain(config)
