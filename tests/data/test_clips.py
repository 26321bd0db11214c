"""Clips: shapes, normalisation, summed actions with frame skip, deterministic splits, workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.clips import IMAGENET_MEAN, IMAGENET_STD, ClipConfig, ClipDataModule, ClipDataset, split_episodes
from data.episodes import DatasetError, EpisodeWriter
from tests.data.helpers import make_episode, make_meta


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "d.h5"
    with EpisodeWriter(path, make_meta()) as writer:
        for index, steps in enumerate([10, 12, 3, 9, 11, 10]):
            writer.write(index, make_episode(steps, seed=index))
        writer.finalize()
    return path


def test_clip_shapes_and_normalisation(dataset) -> None:
    clips = ClipDataset(dataset, ClipConfig(clip_len=4, stride=1))
    item = clips[0]
    assert item["frames"].shape == (4, 3, 16, 16) and item["frames"].dtype == torch.float32
    assert item["actions"].shape == (3, 7) and item["states"].shape == (4, 7)
    raw = torch.from_numpy(clips.reader.read_frames(0, [0])).permute(0, 3, 1, 2).float() / 255
    expected = (raw - IMAGENET_MEAN) / IMAGENET_STD
    torch.testing.assert_close(item["frames"][:1], expected)
    raw_clips = ClipDataset(dataset, ClipConfig(clip_len=4), normalize=False)
    assert raw_clips[0]["frames"].dtype == torch.uint8


def test_frame_skip_sums_actions_between_sampled_frames(dataset) -> None:
    clips = ClipDataset(dataset, ClipConfig(clip_len=3, frame_skip=2, stride=1))
    item = clips[1]
    episode, start = int(item["episode"]), int(item["start"])
    actions = clips.reader.read_actions(episode)
    np.testing.assert_allclose(item["actions"][0].numpy(), actions[start] + actions[start + 1], rtol=1e-6)
    states = clips.reader.read_states(episode)
    np.testing.assert_array_equal(item["states"].numpy(), states[[start, start + 2, start + 4]])


def test_short_episodes_are_skipped_and_counted(dataset) -> None:
    clips = ClipDataset(dataset, ClipConfig(clip_len=6, stride=1))
    assert clips.skipped == 1  # the 3-step episode
    assert all(episode != 2 for episode, _ in clips.index)
    with pytest.raises(DatasetError, match="needs 40 frames"):
        ClipDataset(dataset, ClipConfig(clip_len=40))


def test_split_is_deterministic_and_disjoint() -> None:
    train, val = split_episodes(20, 0.2, seed=1)
    assert (train, val) == split_episodes(20, 0.2, seed=1)
    assert not set(train) & set(val) and len(val) == 4 and len(train) == 16
    assert split_episodes(20, 0.2, seed=2)[1] != val


def test_bad_clip_config_is_one_line() -> None:
    with pytest.raises(ValueError, match="data.clip_len"):
        ClipConfig(clip_len=1).validate()
    with pytest.raises(ValueError, match="data.val_fraction"):
        ClipConfig(val_fraction=1.0).validate()


def test_datamodule_with_two_worker_processes(dataset) -> None:
    module = ClipDataModule(dataset, ClipConfig(clip_len=4, batch_size=4, num_workers=2, val_fraction=0.34))
    module.setup()
    train_eps = {e for e, _ in module.train_set.index}
    val_eps = {e for e, _ in module.val_set.index}
    assert train_eps and val_eps and not train_eps & val_eps
    batch = next(iter(module.train_dataloader()))
    assert batch["frames"].shape == (4, 4, 3, 16, 16)
    assert torch.isfinite(batch["frames"]).all()
