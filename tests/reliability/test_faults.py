"""Faults during training: a non-finite loss, and a second process in the same run folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from tests.conftest import REPO_ROOT, TINY_MODEL
from tests.reliability.helpers import run_main


def pretrain_args(data, root, *extra: object) -> list[str]:
    return [
        "pretrain", f"data={data}", f"run.root={root}", "batch_size=4", "log_every=1", *TINY_MODEL,
        *map(str, extra),
    ]  # fmt: skip


def one_error_line(out: str, err: str) -> str:
    """The one `error:` line; anything else on the streams is progress or Lightning's INFO lines."""
    text = out + err
    assert "Traceback" not in text, text
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, f"expected one error line, got:\n{text}"
    others = [line for line in text.splitlines() if "error" in line.lower() and line not in lines]
    assert not others, others
    return lines[0]


def test_non_finite_loss_stops_with_one_line_and_keeps_the_last_checkpoint(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "pretrain" / "tiny"
    capsys.readouterr()
    code = run_main(
        *pretrain_args(
            tiny_dataset, tmp_path, "max_steps=40", "checkpoint_every=1", "lr=1e30", "warmup_steps=0",
            "schedule=constant",
        )
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2, out + err
    line = one_error_line(out, err)
    assert "training loss became" in line and "last good checkpoint is intact" in line, line
    failed_at = int(line.split(" at step ")[1].split(":")[0])
    # the last checkpoint is whole and loadable, from before the failing step; nothing was exported
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert 1 <= checkpoint["global_step"] < failed_at
    weights = [v for v in checkpoint["state_dict"].values() if v.is_floating_point()]
    assert weights and all(torch.isfinite(v).all() for v in weights)
    assert not (run / "encoder.safetensors").exists()
    assert not list(run.rglob("*.tmp*"))


def test_second_process_in_the_same_run_folder_is_refused(tiny_dataset, tmp_path, capsys) -> None:
    run = tmp_path / "pretrain" / "tiny"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worldmodel.cli.main",
            *pretrain_args(tiny_dataset, tmp_path, "max_steps=100000"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "config.yaml").exists():  # written once the first process holds the lock
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.2)
        config_before = (run / "config.yaml").read_text()
        capsys.readouterr()
        code = run_main(*pretrain_args(tiny_dataset, tmp_path, "max_steps=3", "lr=1e-3"))
        out, err = capsys.readouterr()
        assert code == 2, out + err
        line = one_error_line(out, err)
        assert str(run) in line and "another process is training here" in line, line
        assert (run / "config.yaml").read_text() == config_before  # the first run's config is untouched
        assert first.poll() is None  # and the first run is still going
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
