"""Training runs a newcomer can follow: one bar toward max_steps across epochs and resumes, and a
run that fails leaves no half-made folder (or, past its first checkpoint, says resume=true)."""

from __future__ import annotations

import copy
import csv
import signal

import pytest

from tests.conftest import TINY_MODEL
from tests.reliability.helpers import run_main
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.training.ac_module import ACModule
from worldmodel.training.pretrain import PretrainModule


def pretrain_args(data, root, *extra: object) -> list[str]:
    return [
        "pretrain",
        f"data={data}",
        f"run.root={root}",
        "batch_size=4",
        "log_every=1",
        *TINY_MODEL,
        *map(str, extra),
    ]


def fail_at(step: int, error: BaseException):
    """A training_step that raises `error` once the module reaches global step `step`."""

    def training_step(module, batch, batch_idx):
        if module.global_step >= step:
            raise error
        return original(module, batch, batch_idx)

    original = PretrainModule.training_step
    return training_step


def test_the_bar_counts_steps_across_epochs_and_from_the_resumed_step(tiny_dataset, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert run_main(*pretrain_args(tiny_dataset, tmp_path, "max_steps=18", "checkpoint_every=9")) == 0
    out, err = capsys.readouterr()
    assert "[pretrain] tiny: 18 steps ..." in out and "[pretrain] tiny: 18/18 steps, loss " in out, out
    assert "Epoch" not in out + err and len(out.strip().splitlines()) <= 3  # plain lines, never a flood
    with open(tmp_path / "pretrain" / "tiny" / "metrics.csv") as handle:
        assert max(int(row["epoch"]) for row in csv.DictReader(handle)) >= 1  # it crossed an epoch

    assert run_main(*pretrain_args(tiny_dataset, tmp_path, "max_steps=20", "resume=true")) == 0
    out, err = capsys.readouterr()
    assert "[pretrain] tiny: resuming at step 18 of 20 ..." in out and "tiny: 20/20 steps, loss " in out, out
    assert "Epoch" not in out + err
    with open(tmp_path / "pretrain" / "tiny" / "metrics.csv") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert min(steps) < 9 and max(steps) >= 18  # the resume appended: the first run's rows are kept


def test_a_pretrain_failing_before_its_first_checkpoint_leaves_no_folder(
    tiny_dataset, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(PretrainModule, "training_step", fail_at(1, RuntimeError("boom")))
    root = tmp_path / "fresh"
    capsys.readouterr()
    assert run_main(*pretrain_args(tiny_dataset, root, "max_steps=5", "checkpoint_every=3")) == 1
    _, err = capsys.readouterr()
    assert "boom" in err and "resume=true" not in err
    assert not root.exists()  # the run folder and the parents this run created are gone


def test_missing_data_leaves_no_folder(tmp_path, capsys) -> None:
    code = run_main(*pretrain_args(tmp_path / "nope.h5", tmp_path, "max_steps=1"))
    assert code == 2 and "nope.h5" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_was_there_before_is_kept(tiny_dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(PretrainModule, "training_step", fail_at(0, RuntimeError("boom")))
    notes = tmp_path / "pretrain" / "tiny" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("mine")
    assert run_main(*pretrain_args(tiny_dataset, tmp_path, "max_steps=3")) == 1
    assert notes.read_text() == "mine"


@pytest.mark.parametrize(
    ("error", "first_words"),
    [
        (RuntimeError("boom"), "internal error: RuntimeError: boom ("),
        (
            OSError(28, "No space left on device"),
            "internal error: OSError: [Errno 28] No space left on device (",
        ),
        (KeyboardInterrupt(), "run folder"),  # Lightning exits quietly: the advice is the only line
    ],
)
def test_a_failure_after_a_checkpoint_keeps_it_and_says_resume(
    tiny_dataset, tmp_path, capsys, monkeypatch, error, first_words
) -> None:
    monkeypatch.setattr(PretrainModule, "training_step", fail_at(3, copy.copy(error)))
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores Ctrl-C once it has seen one
    capsys.readouterr()
    try:
        assert run_main(*pretrain_args(tiny_dataset, tmp_path, "max_steps=6", "checkpoint_every=2")) == 1
    finally:
        signal.signal(signal.SIGINT, sigint)
    run = tmp_path / "pretrain" / "tiny"
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(first_words) and f"run folder '{run}' keeps its last checkpoint" in line
    assert "continue it with resume=true" in line
    assert (run / "checkpoints" / "last.ckpt").exists()
    monkeypatch.undo()
    assert run_main(*pretrain_args(tiny_dataset, tmp_path, "max_steps=6", "resume=true")) == 0


def test_a_failed_train_leaves_no_folder(tiny_dataset, tmp_path, monkeypatch) -> None:
    def fail(module, batch, batch_idx):
        raise RuntimeError("boom")

    monkeypatch.setattr(ACModule, "training_step", fail)
    with pytest.raises(RuntimeError, match="boom"):
        make_tiny_run(tmp_path, tiny_dataset)
    assert not (tmp_path / "ac").exists()
    assert (tmp_path / "pretrain" / "tiny" / "encoder.safetensors").exists()  # others' files are untouched
