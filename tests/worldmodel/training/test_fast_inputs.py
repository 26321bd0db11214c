"""The input pipeline that feeds a GPU: whole-batch window fetches, uint8 clips normalised on the
module's device, and cache encoding batches that span episodes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from data.clips import normalize_frames
from worldmodel.config.schema import PretrainConfig
from worldmodel.models.jepa import JEPAConfig
from worldmodel.models.vit import ViTConfig
from worldmodel.training.ac_data import LatentWindows, batch_loader
from worldmodel.training.embedding_cache import episode_groups
from worldmodel.training.pretrain import PretrainModule


def episodes(lengths: list[int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.normal(size=(n + 1, 4, 3)).astype(np.float32),
            rng.normal(size=(n + 1, 7)).astype(np.float32),
            rng.normal(size=(n, 7)).astype(np.float32),
        )
        for n in lengths
    ]


def test_whole_batch_fetch_equals_one_window_at_a_time() -> None:
    windows = LatentWindows(episodes([5, 3, 9]), clip_len=3)
    items = [0, len(windows) - 1, 4, 7, 2]
    batch = windows[items]
    for key in ("z", "states", "actions"):
        expected = torch.stack([windows[i][key] for i in items])
        assert torch.equal(batch[key], expected), key


def test_loader_batches_are_those_of_the_per_window_loader() -> None:
    windows = LatentWindows(episodes([6, 4, 8, 5]), clip_len=4)

    fast = list(batch_loader(windows, 4, torch.Generator().manual_seed(3)))
    per_window = list(
        DataLoader(
            [windows[i] for i in range(len(windows))],
            batch_size=4,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(3),
        )
    )
    assert len(fast) == len(per_window) > 1
    for a, b in zip(fast, per_window, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Lengths:
    """An EpisodeReader stand-in for `episode_groups`: only episode lengths."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = steps

    def num_steps(self, episode: int) -> int:
        return self.steps[episode]


def test_cache_batches_span_episodes_up_to_a_frame_budget() -> None:
    reader = Lengths([9, 9, 9, 30, 4])  # 10, 10, 10, 31, 5 frames
    todo = list(range(10))  # two copies of five episodes (entry c * 5 + i)
    assert episode_groups(todo, reader, 5, 0) == [[i] for i in todo]  # the CPU: one episode per call
    groups = episode_groups(todo, reader, 5, 25)
    assert [i for g in groups for i in g] == todo
    frames = [sum(reader.num_steps(i % 5) + 1 for i in g) for g in groups]
    assert all(f <= 25 or len(g) == 1 for f, g in zip(frames, groups, strict=True))
    assert groups[0] == [0, 1]


def test_uint8_clips_are_normalised_by_the_module_as_the_loader_would() -> None:
    jepa = JEPAConfig(encoder=ViTConfig(img_size=16, embed_dim=32, depth=1, num_heads=1, mlp_hidden=64))
    module = PretrainModule(jepa, PretrainConfig())
    clips = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(module.normalized(clips), normalize_frames(clips))
    floats = normalize_frames(clips)
    assert module.normalized(floats) is floats
