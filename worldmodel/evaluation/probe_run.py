"""`wm probe`: does an encoder's latent track the task? Compared with raw pixels and a random ViT.

Probe frames come straight from the simulator (held-out split, play policy), so the true
end-effector and cube positions are known for every frame without storing privileged data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from envs.policies import make_policy
from envs.registration import make_env
from worldmodel.common.atomic import write_json_atomic
from worldmodel.common.progress import ProgressReport, ProgressTask
from worldmodel.evaluation.probe import ProbeReport, cross_appearance_probe, probe_latents, state_reference
from worldmodel.models.encoders import EncodeFn
from worldmodel.models.world_model import is_ac_run, make_encode_fn

# How the R² folds split the frames. Rows without this key come from an older frame-split probe.
R2_FOLDS = "by episode"
# How pooled ViT latents are made (`encode_frames`). Rows without it were pooled without the final
# layer norm the planner applies, so their numbers differ and are not reused.
LATENTS = "layer-normed after pooling"
# Encoding in slices of the ViT encoders' own batch size gives the latents one call gives, bit for
# bit. Raw pixels run in one call: their latents are a strided view, and the probe's sums over a
# contiguous copy round differently in the last bits.
ENCODE_SLICE = 256
_FRAMES: dict[tuple, tuple[torch.Tensor, dict]] = {}  # probe_frames' cache: the last two frame sets


def probe_frames(
    env_id: str, episodes: int, steps: int, split: str, seed: int = 0, task: ProgressTask | None = None
) -> tuple[torch.Tensor, dict]:
    """Frames and true positions from play episodes (no goals seen). Seeded, so they are simulated
    once per process (`task` then counts the episodes): the ablation probes four latent spaces on
    the same frames. Do not mutate."""
    key = (env_id, episodes, steps, split, seed)
    if key not in _FRAMES:
        if len(_FRAMES) >= 2:
            del _FRAMES[next(iter(_FRAMES))]
        _FRAMES[key] = simulate_frames(env_id, episodes, steps, split, seed, task)
    elif task is not None:
        task.update(advance=episodes)
    return _FRAMES[key]


def simulate_frames(
    env_id: str, episodes: int, steps: int, split: str, seed: int, task: ProgressTask | None
) -> tuple[torch.Tensor, dict]:
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
        if task is not None:
            task.update(advance=1)
    env.close()
    targets = {"ee": np.stack(ee), "cube": np.stack(cube), "episode": np.array(episode_ids)}
    return torch.from_numpy(np.stack(images)), targets


def encode_counted(encode: EncodeFn, images: torch.Tensor, task: ProgressTask, size: int) -> torch.Tensor:
    """`encode(images)`, `size` frames at a time, counting the frames on `task`."""
    parts = []
    for part in images.split(max(size, 1)):
        parts.append(encode(part))
        task.update(advance=len(part))
    if not parts:  # no frames: whatever the encoder makes of none
        return encode(images)
    return parts[0] if len(parts) == 1 else torch.cat(parts)  # one part: as the encoder laid it out


def run_probe(
    encoders: list[str],
    grids: list[int],
    env_id: str,
    episodes: int,
    steps: int,
    split: str,
    cross_appearance: bool = True,
    progress: bool | str = True,
    device: torch.device | str = "cpu",
) -> list[dict]:
    """Probe numbers per encoder and grid on `split` frames; the cross-appearance probe is fitted on
    as many frames of the other split (other colours, lights, camera offsets). It doubles the
    frames to simulate and encode, so a caller that does not report it can switch it off.
    `progress` (worldmodel/common/progress.py): the episodes simulated, the frames each encoder encodes.
    Encoders run on `device`; the probes themselves fit on the CPU."""
    other = "train" if split == "heldout" else "heldout"
    splits = [split, other] if cross_appearance else [split]
    with ProgressReport("probe", progress) as report:
        simulating = report.task(
            f"simulate {env_id} ({' + '.join(splits)})", episodes * len(splits), "episodes"
        )
        images, targets = probe_frames(env_id, episodes, steps, split, task=simulating)
        fit = None
        if cross_appearance:
            fit = probe_frames(env_id, episodes, steps, other, seed=1, task=simulating)
        simulating.finish()
        rows = []
        for name in encoders:
            # An AC run is probed once, through its own pooling or keypoint readout.
            name_grids = grids[:1] if is_ac_run(name) else grids
            encoding = report.task(f"encode {name}", len(images) * len(splits) * len(name_grids), "frames")
            rows += [probe_encoder(name, grid, images, targets, fit, encoding, device) for grid in name_grids]
            encoding.finish()
    return rows


def probe_encoder(
    name: str,
    grid: int,
    images: torch.Tensor,
    targets: dict,
    fit: tuple[torch.Tensor, dict] | None,
    task: ProgressTask,
    device: torch.device | str = "cpu",
) -> dict:
    """One probe row: encoder `name` pooled to `grid`, probed on `images`; with `fit` (the other
    split's frames and targets), also the cross-appearance probe."""
    groups = targets["episode"]
    truth = {k: v for k, v in targets.items() if k != "episode"}
    on_device = make_encode_fn(name, grid, image_size=images.shape[1], device=device)

    def encode(frames: torch.Tensor) -> torch.Tensor:
        return on_device(frames).cpu()

    size = len(images) if name == "pixels" else ENCODE_SLICE
    latents = encode_counted(encode, images, task, size)
    # Within-episode pairs: same appearance, as when the planner compares frame and goal.
    probe: ProbeReport = probe_latents(latents, truth, groups=groups)
    cross = {}
    if fit is not None:
        fit_images, fit_targets = fit
        fit_latents = encode_counted(encode, fit_images, task, size)
        for key in ("ee", "cube"):
            r2, error = cross_appearance_probe(fit_latents, fit_targets[key], latents, truth[key])
            cross |= {f"cross_r2_{key}": r2, f"cross_error_cm_{key}": 100 * error}
    row = {
        "encoder": name,
        "grid": grid,
        "tokens": int(latents.shape[1]),
        "r2_folds": R2_FOLDS,
        "latents": LATENTS,
    }
    return row | probe.as_dict() | cross


def state_reference_line(env_id: str, episodes: int, steps: int, split: str) -> str:
    """The rank correlations of a perfect object-centric latent on the same frames (`state_reference`),
    as one line under the probe table, so a user can read the cube column against its ceiling."""
    _, truth = probe_frames(env_id, episodes, steps, split)
    scores = state_reference(truth["ee"], truth["cube"], truth["episode"], cube_weights=(1.0, 2.0, 3.0))
    parts = ", ".join(f"cube x{w:g}: EE {hand:.2f} / cube {cube:.2f}" for w, (hand, cube) in scores.items())
    return f"reference, the true positions (hand, w x cube) as the latent: {parts}"


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
