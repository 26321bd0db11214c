"""Stage 2 for real: cache latents, refuse stale caches, train the AC predictor, plan with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from data.cache import read_cache
from data.episodes import EpisodeReader
from tests.conftest import TINY_AC, TINY_MODEL, run_wm
from tests.worldmodel.training.tiny_runs import make_tiny_run, tiny_train_config
from worldmodel.common.errors import ConfigError
from worldmodel.config.schema import load_config
from worldmodel.evaluation.evaluate import evaluate
from worldmodel.evaluation.rollout_report import rollout_report
from worldmodel.models.encoders import load_encoder
from worldmodel.models.world_model import WorldModel
from worldmodel.training.ac_data import FrameWindows, LatentWindows
from worldmodel.training.ac_module import ACModule
from worldmodel.training.ac_train import train
from worldmodel.training.embedding_cache import build_cache


@pytest.fixture(scope="module")
def pretrained(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("stage2")
    args = [
        "pretrain",
        f"data={tiny_dataset}",
        f"run.root={root}",
        "max_steps=1",
        "batch_size=4",
        *TINY_MODEL,
    ]
    result = run_wm(*args)
    assert result.returncode == 0, result.stderr
    return root


def common(tiny_dataset, root, cache):
    return [
        f"data={tiny_dataset}",
        f"encoder={root / 'pretrain' / 'tiny'}",
        f"cache={cache}",
        f"run.root={root}",
    ]


def test_cache_train_and_plan_with_the_learned_model(wm, tiny_dataset, pretrained, tmp_path) -> None:
    cache = tmp_path / "emb.h5"
    base = common(tiny_dataset, pretrained, cache)
    result = wm("cache", *base, *TINY_AC)
    assert result.returncode == 0, result.stderr and cache.exists()
    result = wm("train", *base, *TINY_AC, "max_steps=3", "batch_size=4", "log_every=1", "run.name=s2")
    assert result.returncode == 0, result.stderr
    run = pretrained / "ac" / "s2"
    assert (run / "predictor.safetensors").exists()
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "copy_loss" in header and "tf_loss" in header
    result = wm(
        "eval", "rows=[learned,shooting]", f"world_model={run}", "tasks=[jepa_wm/Reach-v0]", "episodes=1",
        "budget=2", "plan.samples=8", "plan.iterations=1", f"run.root={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads((tmp_path / "eval" / "eval" / "results.json").read_text())
    learned, shooting = payload["results"]
    assert learned["row"] == "learned" and learned["ms_per_action"] > 0
    assert shooting["row"] == "shooting" and shooting["planner"].startswith("random")


def test_stale_cache_is_refused(wm, tiny_dataset, pretrained, tmp_path) -> None:
    cache = tmp_path / "emb.h5"
    base = common(tiny_dataset, pretrained, cache)
    assert wm("cache", *base, *TINY_AC).returncode == 0
    other_pool = [*TINY_AC[:3], "ac.grid_h=1", "ac.grid_w=1", *TINY_AC[5:]]
    result = wm("train", *base, *other_pool, "max_steps=1", "run.name=stale")
    assert result.returncode == 2
    assert "stale embedding cache: 'latent_pool'" in result.stderr and "Traceback" not in result.stderr


def test_missing_cache_and_missing_encoder_are_one_line(wm, tiny_dataset, pretrained, tmp_path) -> None:
    result = wm("train", *common(tiny_dataset, pretrained, tmp_path / "none.h5"), "run.name=x")
    assert result.returncode == 2 and "run `wm cache` first" in result.stderr
    result = wm("cache", f"data={tiny_dataset}", f"encoder={tmp_path / 'nope'}")
    assert result.returncode == 2 and "run `wm pretrain` first" in result.stderr


def test_training_leaves_the_config_alone_and_records_the_data_sizes(tiny_dataset, tmp_path) -> None:
    """The data's sizes reach the predictor and the run's config.yaml, not the caller's config."""
    config = tiny_train_config(tmp_path, tiny_dataset, name="sizes")
    before = (config.ac.embed_dim, config.ac.action_dim, config.ac.state_dim, config.ac.max_frames)
    build_cache(config, progress=False)
    run = train(config)
    assert (config.ac.embed_dim, config.ac.action_dim, config.ac.state_dim, config.ac.max_frames) == before
    trained = WorldModel.from_run(run).predictor.cfg
    assert (trained.embed_dim, trained.action_dim, trained.state_dim) == (64, 7, 7)
    saved = yaml.safe_load((run / "config.yaml").read_text())["ac"]
    assert (saved["embed_dim"], saved["action_dim"], saved["state_dim"]) == (64, 7, 7)
    assert saved["max_frames"] == max(before[3], config.train.clip_len)


def test_on_the_fly_training_sees_the_cached_latents(tiny_dataset, tmp_path) -> None:
    """train.from_cache=false: same windows, latents encoded per batch == the cache's (float16)."""
    cached = make_tiny_run(tmp_path, tiny_dataset, name="cached")
    fly = make_tiny_run(tmp_path / "fly", tiny_dataset, "from_cache=false", "state_update=add", name="fly")
    assert not (tmp_path / "fly" / "emb.h5").exists()  # no cache was needed
    assert WorldModel.from_run(fly).predictor.cfg == WorldModel.from_run(cached).predictor.cfg
    assert (WorldModel.from_run(cached).state_update, WorldModel.from_run(fly).state_update) == (
        "compose",
        "add",
    )
    with pytest.raises(ConfigError, match="train.state_update"):
        load_config(["train.state_update=teleport"])
    frames = FrameWindows(EpisodeReader(tiny_dataset), 4)
    latents = LatentWindows(read_cache(tmp_path / "emb.h5"), 4)
    assert frames.index == latents.index
    encoder, _ = load_encoder(tmp_path / "pretrain" / "tiny")
    config = load_config([*TINY_AC, "ac.embed_dim=64"])
    module = ACModule(config.ac, config, encoder)
    batch = {k: torch.stack([frames[i][k] for i in (0, 7)]) for k in ("frames", "states", "actions")}
    expected = torch.stack([latents[i]["z"] for i in (0, 7)])
    torch.testing.assert_close(module.latents(batch), expected, atol=2e-2, rtol=1e-2)
    assert "_frozen" not in "".join(module.state_dict())  # the encoder is not checkpointed
    assert all(k.startswith("predictor.") for k in module.state_dict())


def test_keypoint_readout_with_augmented_copies_caches_trains_and_plans(tiny_dataset, tmp_path) -> None:
    """readout.kind=keypoints: the cache holds whole token grids for the recorded frames and one
    colour-augmented copy; `wm train` fits the readout, then the AC predictor on its keypoints;
    the run plans (learned row) and serves as the simulator row's encoder."""
    extra = ["readout.kind=keypoints", "readout.keypoints=4", "readout.steps=20", "train.augment_copies=1"]
    run = make_tiny_run(tmp_path, tiny_dataset, *extra, name="kp")
    reader = EpisodeReader(tiny_dataset)
    entries = read_cache(tmp_path / "emb.h5")
    n = len(reader)
    assert len(entries) == 2 * n and entries[0][0].shape[1:] == (64, 64)  # 8x8 tokens, 64 wide
    for i in range(n):  # copy 1 is the same trajectory in another appearance
        np.testing.assert_array_equal(entries[n + i][1], entries[i][1])
        assert np.abs(entries[n + i][0] - entries[i][0]).mean() > 0.05
    assert (run / "readout.safetensors").is_file()
    wm = WorldModel.from_run(run)
    assert (wm.predictor.cfg.embed_dim, wm.predictor.cfg.grid_h, wm.predictor.cfg.layer_norm_latents) == (
        8,
        1,
        False,
    )
    z = wm.encode(torch.from_numpy(reader.read_frames(0)[:5]))
    assert z.shape == (5, 1, 8) and bool((z.abs() <= 1).all())
    assert not torch.allclose(z[0], z[4])  # the arm moved, so do the keypoints
    cached = rollout_report(wm, run, tiny_dataset, horizon=2)  # the cache holds grids: read out
    encoded = rollout_report(wm, run, tiny_dataset, horizon=2, cache=tmp_path / "none.h5")
    assert cached.latents.startswith("cache ") and encoded.latents.startswith("encoded")
    for a, b in zip(cached.rows, encoded.rows, strict=True):
        assert a.copy_l1 == pytest.approx(b.copy_l1, rel=5e-2, abs=1e-3)
    config = load_config(
        [f"world_model={run}", f"encoder={run}", "rows=[learned,simulator]", "tasks=[jepa_wm/Reach-v0]",
         "episodes=1", "budget=2", "plan.samples=8", "plan.iterations=1", "sim_samples=4",
         "sim_iterations=1"],
        section="eval",
    )  # fmt: skip
    learned, simulator = evaluate(config, progress=False)
    assert (learned.row, simulator.row) == ("learned", "simulator")
    assert learned.ms_per_action > 0 and len(learned.energies[0]) == 2


def test_keypoint_readout_refuses_on_the_fly_frames(tiny_dataset, tmp_path) -> None:
    with pytest.raises(Exception, match="train.from_cache"):
        make_tiny_run(tmp_path, tiny_dataset, "readout.kind=keypoints", "from_cache=false", name="kp")
    assert not (tmp_path / "ac" / "kp").exists()
