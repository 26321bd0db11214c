"""`wm collect` for real: parallel workers, SIGKILL + resume, determinism, bad input."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np

from data.checks import validate
from data.collect import collect
from data.episodes import EpisodeReader
from tests.conftest import REPO_ROOT


def dataset_hash(path) -> str:
    reader = EpisodeReader(path)
    digest = hashlib.sha256()
    for index in range(len(reader)):
        episode = reader.read_episode(index)
        for array in (episode.pixels, episode.states, episode.actions):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_collect_cli_writes_a_valid_mixed_dataset(wm, tmp_path) -> None:
    out = tmp_path / "play.h5"
    result = wm("collect", "episodes=4", "steps=6", "workers=2", f"out={out}", "policy=play")
    assert result.returncode == 0, result.stderr
    assert validate(out) == []
    reader = EpisodeReader(out)
    assert len(reader) == 4
    assert {a["env_id"] for a in reader.attrs} == {"jepa_wm/Reach-v0", "jepa_wm/Push-v0"}
    assert all(length == 6 for length in reader.lengths)
    assert reader.meta.action_dim == 7 and reader.meta.image_size == 64


def test_same_seed_same_data_whatever_the_workers(tmp_path) -> None:
    kwargs = dict(episodes=3, steps=5, policy="play", seed=3, progress=False)
    collect(["jepa_wm/Push-v0"], out=tmp_path / "a.h5", workers=1, **kwargs)
    collect(["jepa_wm/Push-v0"], out=tmp_path / "b.h5", workers=2, **kwargs)
    collect(["jepa_wm/Push-v0"], out=tmp_path / "c.h5", workers=1, **{**kwargs, "seed": 4})
    assert dataset_hash(tmp_path / "a.h5") == dataset_hash(tmp_path / "b.h5")
    assert dataset_hash(tmp_path / "a.h5") != dataset_hash(tmp_path / "c.h5")


def test_sigkilled_collection_resumes_without_gaps_or_duplicates(tmp_path) -> None:
    out = tmp_path / "play.h5"
    args = [
        sys.executable,
        "-m",
        "worldmodel.cli.main",
        "collect",
        "env=jepa_wm/Reach-v0",
        "episodes=12",
        "steps=20",
    ]
    args += ["workers=1", f"out={out}"]
    process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = tmp_path / "play.h5.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("ep_*.h5"))) < 3:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(parts.glob("ep_*.h5")))
    assert 3 <= finished < 12
    assert validate(out) == []  # the unfinished collection is readable as it is
    result = subprocess.run(args + ["resume=true"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{12 - finished} new episodes ({finished} already there)" in result.stdout.replace("\n", " ")
    reader = EpisodeReader(out)
    assert [name for _, name in reader.entries] == [f"ep_{i:06d}" for i in range(12)]
    assert len({a["seed"] for a in reader.attrs}) == 12
    assert validate(out) == []


def test_collect_refuses_existing_output_without_resume(wm, tmp_path) -> None:
    out = tmp_path / "play.h5"
    assert wm("collect", "episodes=1", "steps=2", "workers=1", f"out={out}").returncode == 0
    result = wm("collect", "episodes=1", "steps=2", "workers=1", f"out={out}")
    assert result.returncode == 2
    assert "resume=true" in result.stderr and "Traceback" not in result.stderr


def test_collect_bad_inputs_are_one_line(wm, tmp_path) -> None:
    cases = [
        (["env=jepa_wm/Nope-v0"], "Nope-v0"),
        (["policy=greedy"], "greedy"),
        (["policy=oracle"], "oracle"),
        (["episodes=0"], "collect.episodes"),
        (["workers=abc"], "collect.workers"),
    ]
    for overrides, fragment in cases:
        result = wm("collect", "steps=2", f"out={tmp_path / 'x.h5'}", *overrides)
        assert result.returncode == 2, (overrides, result.stderr)
        assert fragment in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "x.h5").exists()


def test_random_policy_collects_from_an_adapted_gymnasium_env(tmp_path) -> None:
    result = collect(["jepa_wm/ReacherGoal-v0"], 2, 4, "random", tmp_path / "r.h5", progress=False)
    reader = EpisodeReader(result.path)
    assert reader.meta.action_dim == 2 and reader.meta.state_dim == 10
    assert validate(result.path) == []
