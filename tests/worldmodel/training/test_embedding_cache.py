"""The embedding cache holds exactly what the planner's world model encodes (one encoding path)."""

from __future__ import annotations

import numpy as np
import torch

from data.cache import read_cache
from data.episodes import EpisodeReader
from tests.worldmodel.training.tiny_runs import make_tiny_run, tiny_encoder, tiny_train_config
from worldmodel.models.encoders import encode_frames, load_encoder
from worldmodel.models.world_model import WorldModel, make_encode_fn
from worldmodel.training.embedding_cache import augmented_frames, build_cache


def test_cached_latents_are_what_the_world_model_encodes_at_plan_time(tiny_dataset, tmp_path) -> None:
    run = make_tiny_run(tmp_path, tiny_dataset)  # 8x8 encoder tokens pooled to the AC's 2x2
    wm = WorldModel.from_run(run)
    reader = EpisodeReader(tiny_dataset)
    cached = read_cache(tmp_path / "emb.h5", dtype=np.float16)
    probe = make_encode_fn(str(tiny_encoder(tmp_path)), grid=2)  # probes and the simulator row
    for episode in range(len(reader)):
        frames = torch.from_numpy(reader.read_frames(episode))
        planned = wm.encode(frames)
        assert planned.shape[1:] == (4, 64)
        np.testing.assert_array_equal(cached[episode][0], planned.numpy().astype(np.float16))
        torch.testing.assert_close(probe(frames), planned, atol=0, rtol=0)


def test_keypoint_caches_hold_the_planners_unpooled_token_grid(tiny_dataset, tmp_path) -> None:
    """readout.kind=keypoints: the cache holds the token grid `WorldModel.encode` feeds its readout,
    for the recorded frames and each colour-augmented copy."""
    config = tiny_train_config(tmp_path, tiny_dataset, "readout.kind=keypoints", "train.augment_copies=1")
    build_cache(config, progress=False)
    encoder, _ = load_encoder(config.train.encoder)
    reader = EpisodeReader(tiny_dataset)
    cached = read_cache(tmp_path / "emb.h5", dtype=np.float16)
    n = len(reader)
    for copy, episode in ((0, 0), (1, n - 1)):
        frames = augmented_frames(reader.read_frames(episode), copy, episode, config.train.augment_strength)
        grid = encode_frames(encoder, frames, pool=None)
        assert grid.shape[1:] == (64, 64)
        np.testing.assert_array_equal(cached[copy * n + episode][0], grid.numpy().astype(np.float16))
