"""`wm probe`: does an encoder's latent track the task? Compared with raw pixels and a random ViT.

Probe frames come straight from the simulator (held-out split, play policy), so the true
end-effector and cube positions are known for every frame without storing privileged data.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from envs.policies import make_policy
from envs.registration import make_env
from worldmodel.common.atomic import write_json_atomic
from worldmodel.evaluation.probe import ProbeReport, cross_appearance_probe, probe_latents
from worldmodel.models.world_model import is_ac_run, make_encode_fn

# How the R² folds split the frames. Rows without this key come from an older frame-split probe.
R2_FOLDS = "by episode"
# How pooled ViT latents are made (`encode_frames`). Rows without it were pooled without the final
# layer norm the planner applies, so their numbers differ and are not reused.
LATENTS = "layer-normed after pooling"


@lru_cache(maxsize=2)
def probe_frames(
    env_id: str, episodes: int, steps: int, split: str, seed: int = 0
) -> tuple[torch.Tensor, dict]:
    """Frames and true positions from play episodes (no goals seen). Seeded, so they are simulated
    once per process: the ablation probes four latent spaces on the same frames. Do not mutate."""
    env = make_env(env_id, split=split)
    images, ee, cube, episode_ids = [], [], [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=50_000 + seed * 1000 + episode)
        policy = make_policy("play", env, episode)
        policy.reset(obs, info)
        for _ in range(steps):
            obs, _, _, _, info = env.step(policy.act(obs, info))
            images.append(obs["pixels"])
            ee.append(env.unwrapped.ee_pos())
            cube.append(env.unwrapped.cube_pos())
            episode_ids.append(episode)
    env.close()
    targets = {"ee": np.stack(ee), "cube": np.stack(cube), "episode": np.array(episode_ids)}
    return torch.from_numpy(np.stack(images)), targets


def run_probe(
    encoders: list[str],
    grids: list[int],
    env_id: str,
    episodes: int,
    steps: int,
    split: str,
    cross_appearance: bool = True,
) -> list[dict]:
    """Probe numbers per encoder and grid on `split` frames; the cross-appearance probe is fitted on
    as many frames of the other split (other colours, lights, camera offsets). It doubles the
    frames to simulate and encode, so a caller that does not report it can switch it off."""
    images, targets = probe_frames(env_id, episodes, steps, split)
    if cross_appearance:
        other = "train" if split == "heldout" else "heldout"
        fit_images, fit_targets = probe_frames(env_id, episodes, steps, other, seed=1)
    groups = targets["episode"]
    targets = {k: v for k, v in targets.items() if k != "episode"}
    rows = []
    for name in encoders:
        # An AC run is probed once, through its own pooling or keypoint readout.
        for grid in grids[:1] if is_ac_run(name) else grids:
            encode = make_encode_fn(name, grid, image_size=images.shape[1])
            latents = encode(images)
            # Within-episode pairs: same appearance, as when the planner compares frame and goal.
            report: ProbeReport = probe_latents(latents, targets, groups=groups)
            cross = {}
            if cross_appearance:
                fit_latents = encode(fit_images)
                for key in ("ee", "cube"):
                    r2, error = cross_appearance_probe(fit_latents, fit_targets[key], latents, targets[key])
                    cross |= {f"cross_r2_{key}": r2, f"cross_error_cm_{key}": 100 * error}
            tokens = int(latents.shape[1])
            row = {"encoder": name, "grid": grid, "tokens": tokens, "r2_folds": R2_FOLDS, "latents": LATENTS}
            rows.append(row | report.as_dict() | cross)
    return rows


def write_probe(rows: list[dict], path: Path) -> Path:
    return write_json_atomic(path, rows)


def probe_is_current(path: Path) -> bool:
    """True if `path` holds probe rows of this version (R² folds by episode, the planner's latents), so
    a rerun may reuse it."""
    try:
        rows = json.loads(path.read_text())
        return bool(rows) and all(r.get("r2_folds") == R2_FOLDS and r.get("latents") == LATENTS for r in rows)
    except (OSError, ValueError, AttributeError):
        return False
