"""`wm pretrain` for real (tiny model, real Lightning, real data): outputs, resume, refusals."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest
import torch
from tensorboardX.proto.event_pb2 import Event

from tests.conftest import TINY_MODEL
from worldmodel.evaluation.probe_run import probe_is_current
from worldmodel.models.encoders import load_encoder
from worldmodel.models.world_model import make_encode_fn


def pretrain_args(data, root, *extra):
    return [
        "pretrain",
        f"data={data}",
        f"run.root={root}",
        "batch_size=4",
        "log_every=1",
        *TINY_MODEL,
        *extra,
    ]


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files directly in `folder`, by tag: parsed with tensorboardX's
    protobufs from TFRecord framing (u64 length, u32 crc, payload, u32 crc)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_pretrain_exports_encoder_and_logs_metrics(wm, tiny_dataset, tmp_path) -> None:
    result = wm(*pretrain_args(tiny_dataset, tmp_path, "max_steps=4", "checkpoint_every=2"))
    assert result.returncode == 0, result.stderr
    run = tmp_path / "pretrain" / "tiny"
    assert (run / "config.yaml").exists() and (run / "checkpoints" / "last.ckpt").exists()
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(r["loss"]) for r in rows if r.get("loss")]
    assert len(losses) >= 3 and all(0 < x < 10 for x in losses)
    assert any(r.get("target_std") for r in rows)
    logged = tensorboard_scalars(run / "tensorboard")  # the same losses, for TensorBoard
    assert [v for _, v in logged["loss"]] == pytest.approx(losses) and "target_std" in logged
    encoder, metadata = load_encoder(run)
    assert metadata["format"] == "jepa-wm.encoder" and len(metadata["weights_hash"]) == 16
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    latents = make_encode_fn(str(run), grid=2)(images)
    assert latents.shape == (2, 4, 64)


def test_pretrain_resume_continues_and_refuses_without_flag(wm, tiny_dataset, tmp_path) -> None:
    assert wm(*pretrain_args(tiny_dataset, tmp_path, "max_steps=2", "checkpoint_every=1")).returncode == 0
    again = wm(*pretrain_args(tiny_dataset, tmp_path, "max_steps=4", "checkpoint_every=1"))
    assert again.returncode == 2 and "resume=true" in again.stderr
    resumed = wm(
        *pretrain_args(tiny_dataset, tmp_path, "max_steps=4", "checkpoint_every=1", "resume=true", "lr=1e-6")
    )
    assert resumed.returncode == 0, resumed.stderr
    checkpoint = torch.load(tmp_path / "pretrain" / "tiny" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 4
    # the resumed run trains at the lr given now, not the checkpoint's
    assert set(checkpoint["lr_schedulers"][0]["base_lrs"]) == {1e-6}
    # and logs into the same TensorBoard folder (no version_1/), after the first run's steps
    board = tmp_path / "pretrain" / "tiny" / "tensorboard"
    assert not [p for p in board.iterdir() if p.is_dir()]
    assert [step for step, _ in tensorboard_scalars(board)["loss"]] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("max_steps=0", "pretrain.max_steps"),
        ("jepa.encoder.num_heads=5", "num_heads"),
        ("lr=-1", "pretrain.lr"),
    ],
)
def test_pretrain_bad_config_is_one_line(wm, tmp_path, override, fragment) -> None:
    result = wm("pretrain", override, f"run.root={tmp_path}")
    assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr


def test_pretrain_missing_data_is_one_line(wm, tmp_path) -> None:
    result = wm(*pretrain_args(tmp_path / "nope.h5", tmp_path, "max_steps=1"))
    assert result.returncode == 2 and "nope.h5" in result.stderr and "Traceback" not in result.stderr


def test_probe_cli_compares_with_baselines(wm, tiny_dataset, tmp_path) -> None:
    assert wm(*pretrain_args(tiny_dataset, tmp_path, "max_steps=1")).returncode == 0
    run = tmp_path / "pretrain" / "tiny"
    result = wm("probe", str(run), "--grids", "2", "--episodes", "3", "--steps", "10")
    assert result.returncode == 0, result.stderr
    rows = json.loads((run / "probe.json").read_text())
    assert [r["encoder"] for r in rows] == [str(run), "pixels", "random"]
    assert all(-1 <= r["rank_corr_ee"] <= 1 for r in rows)
    assert all(r["cross_error_cm_ee"] > 0 and r["cross_r2_ee"] <= 1 for r in rows)  # fitted on train frames
    printed = " ".join(result.stdout.split())  # the console wraps long lines
    assert "true positions (hand, w x cube)" in printed and "cube x2: EE" in printed

    assert probe_is_current(run / "probe.json")  # what the demo and the ablation reuse
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps([{k: v for k, v in r.items() if k != "r2_folds"} for r in rows]))
    assert not probe_is_current(stale)  # a frame-split probe of an older version is redone
    stale.write_text(json.dumps([{k: v for k, v in r.items() if k != "latents"} for r in rows]))
    assert not probe_is_current(stale)  # so is one pooled without the planner's final layer norm
    stale.write_text('[{"encoder": ')
    assert not probe_is_current(stale) and not probe_is_current(tmp_path / "missing.json")


def test_probe_cli_needs_two_episodes(wm) -> None:
    result = wm("probe", "pixels", "--episodes", "1")
    assert result.returncode == 2 and "--episodes" in result.stderr and "Traceback" not in result.stderr
