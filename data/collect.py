"""`wm collect`: reward-free play data from any goal-image env, in parallel, crash-safe, resumable.

Episode `i` always uses env `envs[i % len(envs)]` and a seed derived from `(seed, i)` alone, so the
data are identical whatever the number of workers and however often a run was killed and resumed.
Workers (spawned processes, one torch/BLAS thread each) run whole episodes and send them back; the
parent writes each one durably as it arrives (crash safety: data/shards.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from data.episodes import Episode, EpisodeWriter, FileMeta
from data.errors import DatasetError
from envs.policies import make_policy
from envs.registration import ENV_IDS, NAMESPACE, check_protocol, import_user_module, make_env


@dataclass(frozen=True)
class CollectJob:
    index: int
    env_id: str
    seed: int
    policy: str
    steps: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    user_module: str = ""


@dataclass
class CollectResult:
    path: Path
    written: int
    skipped: int
    frames: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def episode_seed(base_seed: int, index: int) -> int:
    return int(np.random.SeedSequence([base_seed, index]).generate_state(1)[0])


def env_kwargs_for(env_id: str, image_size: int, split: str, distractors: int) -> dict[str, Any]:
    """Our arm tasks take split/distractors; our adapters take image_size; user envs take nothing."""
    if env_id in ENV_IDS.values():
        return {"image_size": image_size, "split": split, "distractors": distractors}
    if env_id.startswith(f"{NAMESPACE}/"):
        return {"image_size": image_size}
    return {}


_ENV_CACHE: dict[tuple[str, str], Any] = {}  # (env id, its kwargs): another size or split is another env


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


def run_episode(job: CollectJob) -> tuple[int, Episode]:
    """Run one whole episode (in a worker). Envs are cached per process and reused."""
    if job.user_module:
        import_user_module(job.user_module)
    key = (job.env_id, repr(sorted(job.env_kwargs.items())))
    env = _ENV_CACHE.get(key)
    if env is None:
        env = _ENV_CACHE[key] = make_env(job.env_id, **job.env_kwargs)
    obs, info = env.reset(seed=job.seed)
    policy = make_policy(job.policy, env, job.seed)
    policy.reset(obs, info)
    pixels, states, actions = [obs["pixels"]], [obs["state"]], []
    for _ in range(job.steps):
        action = np.asarray(policy.act(obs, info), dtype=np.float32)
        obs, _, terminated, _, info = env.step(action)
        pixels.append(obs["pixels"])
        states.append(obs["state"])
        actions.append(action)
        if terminated:
            break
    episode = Episode(
        pixels=np.stack(pixels),
        states=np.stack(states).astype(np.float32),
        actions=np.stack(actions).astype(np.float32),
        seed=job.seed,
        policy=job.policy,
        env_id=job.env_id,
        split=str(job.env_kwargs.get("split", "")),
        success=bool(info.get("is_success", False)),
    )
    return job.index, episode


def describe_envs(
    env_ids: list[str], kwargs: list[dict[str, Any]], user_module: str, image_size: int
) -> FileMeta:
    """Root metadata from the envs' own spaces; all envs in one file must agree on dimensions."""
    if user_module:
        import_user_module(user_module)
    metas = []
    for env_id, kw in zip(env_ids, kwargs, strict=True):
        env = make_env(env_id, **kw)
        check_protocol(env)
        space = env.action_space
        unwrapped = env.unwrapped
        metas.append(
            FileMeta(
                env_id=",".join(env_ids),
                control_hz=float(getattr(unwrapped, "control_hz", env.metadata.get("render_fps", 0)) or 0),
                action_dim=int(space.shape[0]),
                state_dim=int(env.observation_space["state"].shape[0]),
                action_low=space.low.tolist(),
                action_high=space.high.tolist(),
                action_names=list(getattr(unwrapped, "action_names", [])),
                image_size=int(env.observation_space["pixels"].shape[0]),
                user_module=user_module,
            )
        )
        env.close()
    first = metas[0]
    for env_id, meta in zip(env_ids, metas, strict=True):
        if (meta.action_dim, meta.state_dim, meta.image_size) != (
            first.action_dim,
            first.state_dim,
            image_size,
        ):
            raise DatasetError(
                f"collect.envs: '{env_id}' has action/state dims {meta.action_dim}/{meta.state_dim} and "
                f"{meta.image_size}px images; expected {first.action_dim}/{first.state_dim} and {image_size}px "
                "like the first env (collect such envs into separate files)"
            )
    return first


def collect(
    env_ids: list[str],
    episodes: int,
    steps: int,
    policy: str,
    out: str | Path,
    *,
    seed: int = 0,
    workers: int = 1,
    image_size: int = 64,
    split: str = "train",
    distractors: int = 0,
    user_module: str = "",
    resume: bool = False,
    progress: bool = True,
) -> CollectResult:
    """Collect `episodes` episodes into `out`; with `resume`, only the missing ones."""
    kwargs = [env_kwargs_for(e, image_size, split, distractors) for e in env_ids]
    meta = describe_envs(env_ids, kwargs, user_module, image_size)
    started = time.perf_counter()
    with EpisodeWriter(out, meta, resume=resume) as writer:
        done = writer.existing_indices()
        jobs = [
            CollectJob(
                i,
                env_ids[i % len(env_ids)],
                episode_seed(seed, i),
                policy,
                steps,
                kwargs[i % len(env_ids)],
                user_module,
            )
            for i in range(episodes)
            if i not in done
        ]
        frames = _run_jobs(
            jobs, writer, workers, progress, already=len(done & set(range(episodes))), total=episodes
        )
        path = writer.finalize()
    return CollectResult(path, len(jobs), episodes - len(jobs), frames, time.perf_counter() - started)


def _run_jobs(
    jobs: list[CollectJob], writer: EpisodeWriter, workers: int, show: bool, already: int, total: int
) -> int:
    frames = 0
    started = time.perf_counter()
    columns = [
        TextColumn("collect"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("episodes  {task.fields[fps]:>6.0f} frames/s"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not show, transient=False) as bar:
        task = bar.add_task("collect", total=total, completed=already, fps=0.0)
        if workers <= 1 or len(jobs) <= 1:
            results = map(run_episode, jobs)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(min(workers, len(jobs)), initializer=_worker_init)
            results = pool.imap_unordered(run_episode, jobs)
        try:
            for index, episode in results:
                writer.write(index, episode)
                frames += episode.num_steps + 1
                bar.update(task, advance=1, fps=frames / (time.perf_counter() - started))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    return frames
