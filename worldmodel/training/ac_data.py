"""What the AC predictor trains on: windows of `clip_len` steps, and the sizes the data implies.

Windows come from the embedding cache (latents) or, with `train.from_cache=false`, straight from
the dataset (raw frames the module encodes per batch): same windows, same order. The predictor's
data-dependent sizes (token width, action and state dims) are returned, never written back into
the config, and turned into the predictor's config by `predictor_config`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from data.cache import CacheKey, check_cache, read_cache
from data.episodes import EpisodeReader
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config
from worldmodel.models.ac_predictor import ACPredictorConfig
from worldmodel.models.readout import KeypointReadout
from worldmodel.models.vit import VisionTransformer

Episode = tuple[np.ndarray, np.ndarray, np.ndarray]  # (latents [T+1,N,D], states [T+1,S], actions [T,A])


class StepWindows(Dataset):
    """Every window of `clip_len` consecutive steps: `{key: [clip_len, ...], "states": [clip_len, S],
    "actions": [clip_len - 1, A]}`; subclasses say where the per-step observations come from."""

    key = ""

    def __init__(
        self,
        lengths: list[int],
        states: list[np.ndarray],
        actions: list[np.ndarray],
        clip_len: int,
        what: str,
    ) -> None:
        self.states, self.actions, self.clip_len = states, actions, clip_len
        self.index = [(e, s) for e, length in enumerate(lengths) for s in range(length - clip_len + 1)]
        if not self.index:
            raise UserError(f"config key 'train.clip_len': no {what} has {clip_len} frames")

    def observations(self, episode: int, steps: slice) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        e, s = self.index[item]
        end = s + self.clip_len
        return {
            self.key: torch.from_numpy(self.observations(e, slice(s, end))),
            "states": torch.from_numpy(self.states[e][s:end]),
            "actions": torch.from_numpy(self.actions[e][s : end - 1]),
        }


class LatentWindows(StepWindows):
    """Windows of cached latents (`z`). Indexed with a list of windows, it returns their whole batch
    (three gathers from episode-concatenated arrays, built on first use) instead of one Python call
    per window, so feeding a GPU costs microseconds per batch (`batch_loader`); the batches equal
    those of a per-window DataLoader."""

    key = "z"

    def __init__(self, episodes: list[Episode], clip_len: int) -> None:
        self.episodes = episodes
        states, actions = [s for _, s, _ in episodes], [a for _, _, a in episodes]
        super().__init__([len(z) for z, _, _ in episodes], states, actions, clip_len, "cached episode")
        self._flat: tuple[torch.Tensor, ...] | None = None

    def observations(self, episode: int, steps: slice) -> np.ndarray:
        return self.episodes[episode][0][steps]

    def _flat_arrays(self) -> tuple[torch.Tensor, ...]:
        """(z, states, actions) of all episodes end to end, and each window's first frame and action."""
        if self._flat is None:
            frame_start = np.cumsum([0] + [len(z) for z, _, _ in self.episodes[:-1]])
            action_start = np.cumsum([0] + [len(a) for _, _, a in self.episodes[:-1]])
            e, s = np.asarray(self.index).T
            self._flat = (
                torch.from_numpy(np.concatenate([z for z, _, _ in self.episodes])),
                torch.from_numpy(np.concatenate(self.states)),
                torch.from_numpy(np.concatenate(self.actions)),
                torch.from_numpy(frame_start[e] + s),
                torch.from_numpy(action_start[e] + s),
            )
        return self._flat

    def __getitem__(self, item: int | list[int]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        if isinstance(item, int | np.integer):
            return super().__getitem__(int(item))
        z, states, actions, first_frame, first_action = self._flat_arrays()
        rows = torch.as_tensor(item)
        frames = first_frame[rows, None] + torch.arange(self.clip_len)
        steps = first_action[rows, None] + torch.arange(self.clip_len - 1)
        return {self.key: z[frames], "states": states[frames], "actions": actions[steps]}


def batch_loader(
    windows: StepWindows, batch_size: int, generator: torch.Generator, pin_memory: bool = False
) -> DataLoader:
    """Shuffled batches (last partial one dropped), in the order `DataLoader(windows, batch_size,
    shuffle=True, drop_last=True, generator=generator)` gives; latent windows are fetched a whole
    batch at a time, frame windows one by one."""
    if not isinstance(windows, LatentWindows):
        return DataLoader(
            windows,
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            generator=generator,
            pin_memory=pin_memory,
        )
    batches = BatchSampler(RandomSampler(windows, generator=generator), batch_size, drop_last=True)
    # The loader draws its worker seed from `generator` first, as a shuffling DataLoader does.
    return DataLoader(windows, batch_size=None, sampler=batches, generator=generator, pin_memory=pin_memory)


class FrameWindows(StepWindows):
    """The same windows as `LatentWindows`, but raw uint8 `frames` read from the dataset (for
    `train.from_cache=false`). States and actions are held in memory."""

    key = "frames"

    def __init__(self, reader: EpisodeReader, clip_len: int) -> None:
        self.reader = reader
        states = [reader.read_states(e) for e in range(len(reader))]
        actions = [reader.read_actions(e) for e in range(len(reader))]
        super().__init__([len(s) for s in states], states, actions, clip_len, "episode")

    def observations(self, episode: int, steps: slice) -> np.ndarray:
        return self.reader.read_frames(episode, steps)


@dataclass(frozen=True)
class DataSizes:
    """The AC predictor's sizes that come from the data, not the config."""

    embed_dim: int  # width of a latent token (the encoder's)
    action_dim: int
    state_dim: int


def training_windows(
    config: Config, encoder: VisionTransformer, key: CacheKey
) -> tuple[StepWindows, DataSizes]:
    """The windows to train on (cached latents, or raw frames for `train.from_cache=false`) and the
    sizes they imply."""
    t, ac = config.train, config.ac
    keypoints = config.readout.kind == "keypoints"
    if keypoints and not t.from_cache:
        raise UserError(
            "config key 'train.from_cache': readout.kind=keypoints trains on the cached token grid; "
            "expected true, got false"
        )
    dataset: StepWindows
    if t.from_cache:
        check_cache(t.cache_path, key)
        # The keypoint readout reads whole token grids: keep them float16 until it has run.
        episodes = read_cache(t.cache_path, dtype=np.float16 if keypoints else np.float32)
        if not episodes:
            raise UserError(f"cache {t.cache_path}: no episodes (rebuild it with `wm cache`)")
        z, states, actions = episodes[0]
        tokens = key.latent_pool**2 if keypoints else ac.grid_h * ac.grid_w
        if z.shape[1] != tokens:
            raise UserError(
                f"cache {t.cache_path}: {z.shape[1]} tokens per frame, expected {tokens} "
                f"({'the whole encoder grid' if keypoints else f'ac grid {ac.grid_h}x{ac.grid_w}'})"
            )
        embed_dim, dataset = int(z.shape[-1]), LatentWindows(episodes, t.clip_len)
    else:
        reader = EpisodeReader(t.data)
        grid = (reader.meta.image_size if reader.meta else 0) // encoder.cfg.patch_size
        if not ac.grid_h == ac.grid_w <= grid:
            raise UserError(
                f"config key 'ac.grid_h': expected a square grid of at most the encoder's {grid}x{grid} "
                f"tokens, got {ac.grid_h}x{ac.grid_w}"
            )
        states, actions = reader.read_states(0), reader.read_actions(0)
        embed_dim, dataset = encoder.embed_dim, FrameWindows(reader, t.clip_len)
    if len(dataset) < t.batch_size:  # drop_last would leave no batch: nothing would be trained
        raise UserError(
            f"config key 'train.batch_size': expected at most {len(dataset)} (the number of "
            f"{t.clip_len}-frame training windows), got {t.batch_size}"
        )
    return dataset, DataSizes(embed_dim, int(actions.shape[-1]), int(states.shape[-1]))


def predictor_config(config: Config, sizes: DataSizes) -> ACPredictorConfig:
    """`config.ac` with the data's sizes and room for a whole `train.clip_len` window (a copy)."""
    ac = config.ac
    return replace(
        ac,
        embed_dim=sizes.embed_dim,
        action_dim=sizes.action_dim,
        state_dim=sizes.state_dim,
        max_frames=max(ac.max_frames, config.train.clip_len),
    )


def readout_predictor_config(
    ac: ACPredictorConfig, readout: KeypointReadout, extra: int = 0
) -> ACPredictorConfig:
    """The predictor of keypoint latents: one token of 2K coordinates per frame (+ `extra` dims the
    frames add: a pixel state estimate, the object's (x, y)), not layer-normed."""
    width = readout.latent_dim + extra
    return replace(ac, embed_dim=width, grid_h=1, grid_w=1, layer_norm_latents=False)


def with_frame_features(
    episodes: list[Episode], data: str, features: Sequence[Callable[[torch.Tensor], torch.Tensor]]
) -> list[Episode]:
    """Each cache entry's keypoint latents `[T+1, 1, L]` with each of `features(frames)` `[T+1, F_k]`
    joined in order (what `WorldModel.encode` adds: a pixel state estimate, the object's weighted
    (x, y)). The cache holds tokens, not pixels, so the dataset's frames are read here, once; entry
    c * n + i is copy c of episode i (`train.augment_copies` recolour, they move nothing), so every
    copy takes the recorded frames' features."""
    reader = EpisodeReader(data)
    n = len(reader)
    if not n or len(episodes) % n:
        raise UserError(
            f"{data}: {n} episodes, its embedding cache {len(episodes)} entries (rebuild it with `wm cache`)"
        )
    joined = []
    for index in range(n):
        frames = torch.from_numpy(reader.read_frames(index))
        if len(frames) != len(episodes[index][0]):
            raise UserError(
                f"{data}: episode {index} has {len(frames)} frames, its cache entry {len(episodes[index][0])} "
                "(rebuild the cache with `wm cache`)"
            )
        with torch.no_grad():
            joined.append(torch.cat([f(frames).cpu() for f in features], -1)[:, None].numpy())  # [T+1, 1, F]
    return [
        (np.concatenate([z, joined[i % n].astype(z.dtype)], axis=-1), states, actions)
        for i, (z, states, actions) in enumerate(episodes)
    ]
