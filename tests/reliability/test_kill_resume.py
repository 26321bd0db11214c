"""SIGKILL a real `wm train` and a real `wm cache` mid-way: `resume=true` finishes the job with
nothing finished lost, and the outputs validate (collection and pretraining: tests/data/test_collect.py,
tests/worldmodel/test_pretrain_mae.py)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, TINY_AC
from tests.reliability.helpers import run_main
from tests.worldmodel.training.tiny_runs import tiny_encoder


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, encoder run folder): 16 random 64x64 episodes of 120 steps and a random tiny encoder."""
    from data.episodes import EpisodeWriter
    from tests.data.helpers import make_episode, make_meta

    root = tmp_path_factory.mktemp("kill_resume")
    meta = make_meta(image_size=64)
    with EpisodeWriter(root / "data.h5", meta) as writer:
        for index in range(16):
            writer.write(index, make_episode(120, seed=index, meta=meta))
        writer.finalize()
    return root / "data.h5", tiny_encoder(root)


def start_wm(*args: object) -> subprocess.Popen:
    """A real `wm` in its own process group (so a SIGKILL takes any child with it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "worldmodel.cli.main", *map(str, args)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def kill_when(process: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    """SIGKILL the process group as soon as `ready()` holds; fail if the process ends first."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, f"exited before {what}: {process.stderr.read()}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.returncode


def test_sigkilled_training_resumes_from_its_last_checkpoint(synthetic, tmp_path, capsys) -> None:
    from data.cache import check_cache
    from worldmodel.config.schema import load_config
    from worldmodel.models.world_model import WorldModel
    from worldmodel.training.embedding_cache import build_cache, cache_key

    data, encoder = synthetic
    base = [f"data={data}", f"encoder={encoder}", f"cache={tmp_path / 'emb.h5'}", f"run.root={tmp_path}"]
    build_cache(load_config([*base, *TINY_AC], section="train"), progress=False)
    run = tmp_path / "ac" / "tiny"
    last = run / "checkpoints" / "last.ckpt"
    train = ["train", *base, *TINY_AC, "batch_size=4", "log_every=1", "checkpoint_every=2"]

    kill_when(start_wm(*train, "max_steps=100000"), last.exists, "checkpoint")
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert killed_at >= 2 and not (run / "predictor.safetensors").exists()

    max_steps = killed_at + 4
    capsys.readouterr()
    code = run_main(*train, f"max_steps={max_steps}", "resume=true")
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == max_steps
    with open(run / "metrics.csv") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle) if row.get("loss")]
    resumed = list(range(killed_at, max_steps))
    assert steps[-len(resumed) :] == resumed  # continued (0-based), not restarted
    assert steps[0] == 0 and len(steps) > len(resumed)  # and the killed run's rows are still there
    model = WorldModel.from_run(run)
    assert model.predictor.cfg.embed_dim == 64 and model.latent_pool == 2
    check_cache(tmp_path / "emb.h5", cache_key(load_config([*base, *TINY_AC], section="train")))


def cache_contents(path: Path) -> tuple[dict, dict]:
    """(root attributes, {episode: {key: array}}) of a finished cache, exactly as stored."""
    import h5py

    with h5py.File(path, "r") as handle:
        attrs = {k: v.item() if hasattr(v, "item") else v for k, v in handle.attrs.items()}
        episodes = {name: {key: group[key][()] for key in group} for name, group in handle.items()}
    return attrs, episodes


def test_sigkilled_cache_resumes_without_reencoding_and_matches_an_uninterrupted_one(
    synthetic, tmp_path, capsys, monkeypatch
) -> None:
    import numpy as np

    import worldmodel.training.embedding_cache as embedding_cache
    from data.cache import check_cache, read_cache
    from worldmodel.config.schema import load_config

    data, encoder = synthetic
    base = [f"data={data}", f"encoder={encoder}", *TINY_AC]
    reference = tmp_path / "ref" / "emb.h5"
    assert run_main("cache", *base, f"cache={reference}") == 0  # uninterrupted, 16 episodes

    cache = tmp_path / "emb.h5"
    parts = tmp_path / "emb.h5.parts"
    process = start_wm("cache", *base, f"cache={cache}")
    kill_when(process, lambda: any(parts.glob("ep_*.h5")), "shard")

    def stamps() -> dict[str, tuple[int, int]]:
        return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in parts.glob("ep_*.h5")}

    shards = stamps()
    assert 1 <= len(shards) < 16 and not cache.exists(), sorted(shards)
    (parts / "ep_000099.h5.tmp").write_bytes(b"half a shard")  # as a kill mid-write leaves it
    (tmp_path / ".emb.h5.tmp").write_bytes(b"half a merge")

    def refused(*args: str) -> str:
        capsys.readouterr()
        assert run_main("cache", *args) == 2
        out, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in out + err, out + err
        return lines[0]

    # without resume=true the unfinished cache is neither lost nor reused
    assert "pass resume=true" in refused(*base, f"cache={cache}")
    # shards of another pooling (another key) are never mixed in
    other = [f"data={data}", f"encoder={encoder}", *TINY_AC[:3], "ac.grid_h=1", "ac.grid_w=1", *TINY_AC[5:]]
    line = refused(*other, f"cache={cache}", "resume=true")
    assert "cannot resume" in line and "'latent_pool' is 2, expected 1" in line and str(parts) in line
    assert stamps() == shards  # the refused runs left every finished shard as it was

    encoded = []
    real_encode = embedding_cache.encode_frames
    monkeypatch.setattr(
        embedding_cache, "encode_frames", lambda *a, **k: encoded.append(1) or real_encode(*a, **k)
    )
    capsys.readouterr()
    assert run_main("cache", *base, f"cache={cache}", "resume=true") == 0, capsys.readouterr()
    assert len(encoded) == 16 - len(shards)  # the finished episodes were not encoded again
    assert not parts.exists() and not list(tmp_path.glob(".*.tmp"))

    want_attrs, want = cache_contents(reference)
    got_attrs, got = cache_contents(cache)
    assert got_attrs == want_attrs  # format, encoder hash, preprocessing, pooling, source, signature
    assert list(got) == list(want) == [f"ep_{i:06d}" for i in range(16)]
    for name in want:
        for key in ("latents", "states", "actions"):
            assert got[name][key].dtype == want[name][key].dtype
            np.testing.assert_array_equal(got[name][key], want[name][key], err_msg=f"{name}/{key}")
    check_cache(cache, embedding_cache.cache_key(load_config([*base, f"cache={cache}"], section="train")))
    assert len(read_cache(cache)) == 16
    assert run_main("cache", *base, f"cache={cache}", "resume=true") == 0  # finished: nothing to do
    assert len(encoded) == 16 - len(shards)
