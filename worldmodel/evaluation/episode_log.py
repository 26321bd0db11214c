"""`eval.save_episodes`: every episode a row plays, written as an episode store (frames, states,
executed actions), one file per task and row: `<folder>/<row>_<Task>.h5`.

The planner's own experience is the data a world model is least sure of where it matters: its
predictor can be retrained on play data plus these files (`wm cache` / `wm train` with a folder
holding both as `train.data`). Play them on the train split (`eval.split=train`), not the held-out one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data.collect import describe_envs
from data.episodes import Episode, EpisodeWriter
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config
from worldmodel.evaluation.mpc import EpisodeOutcome


def episode_file(folder: str | Path, env_id: str, row: str) -> Path:
    """Where the episodes of one (task, row) go."""
    return Path(folder) / f"{row}_{env_id.split('/')[-1]}.h5"


def check_free(config: Config) -> None:
    """Refuse before any planning when a file the run would write exists already (never append to or
    overwrite another run's episodes)."""
    ev = config.eval
    if not ev.save_episodes:
        return
    for env_id in ev.tasks:
        for row in ev.rows:
            path = episode_file(ev.save_episodes, env_id, row)
            if path.exists() or path.with_name(path.name + ".parts").exists():
                raise UserError(
                    f"config key 'eval.save_episodes': {path} exists already; expected a new folder "
                    "(or move that file away)"
                )


def save_episodes(
    outcomes: list[EpisodeOutcome], config: Config, env_id: str, env_kwargs: dict[str, Any], row: str
) -> Path:
    """Write the recorded outcomes of one (task, row) as an episode store; returns its path."""
    meta = describe_envs([env_id], [env_kwargs], config.env.user_module, config.env.image_size)
    path = episode_file(config.eval.save_episodes, env_id, row)
    path.parent.mkdir(parents=True, exist_ok=True)
    with EpisodeWriter(path, meta) as writer:
        for index, outcome in enumerate(outcomes):
            episode = Episode(
                pixels=np.stack(outcome.frames),
                states=np.stack(outcome.states).astype(np.float32),
                actions=np.stack(outcome.actions).astype(np.float32),
                seed=outcome.seed,
                policy=f"mpc:{row}",
                env_id=env_id,
                split=str(env_kwargs.get("split", "")),
                success=outcome.success,
            )
            writer.write(index, episode)
        return writer.finalize()
