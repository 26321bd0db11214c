"""`eval.first_episode`: a run of episodes i..j plays exactly episodes i..j of a longer run (their
env seeds and planner generators), which lets `wm bench planners --chunk` split a point."""

from __future__ import annotations

import pytest

from worldmodel.common.errors import ConfigError
from worldmodel.config.schema import load_config
from worldmodel.evaluation.evaluate import evaluate

# The oracle row: CEM (per-episode generators) with simulator dynamics, small enough for a test.
SETTINGS = [
    "preset=tiny", "eval.rows=[oracle]", "eval.tasks=[jepa_wm/Reach-v0]", "eval.budget=3",
    "eval.sim_samples=6", "eval.sim_iterations=2",
]  # fmt: skip


def played(first: int, episodes: int):
    config = load_config([*SETTINGS, f"eval.first_episode={first}", f"eval.episodes={episodes}"])
    [row] = evaluate(config, progress=False)
    return row


def test_episodes_played_alone_are_those_of_the_longer_run() -> None:
    both = played(0, 2)
    first, second = played(0, 1), played(1, 1)
    assert first.episode.seed + 1 == second.episode.seed == both.episode.seed + 1
    assert both.mean_final_distance_cm == pytest.approx(
        (first.mean_final_distance_cm + second.mean_final_distance_cm) / 2, abs=1e-9
    )
    assert both.success_rate * 2 == first.success_rate + second.success_rate
    # Not the same episode twice: the second's start and plans differ from the first's.
    assert first.mean_final_distance_cm != second.mean_final_distance_cm


def test_first_episode_must_not_be_negative() -> None:
    with pytest.raises(
        ConfigError, match=r"config key 'eval.first_episode': expected an integer >= 0, got -1"
    ):
        load_config([*SETTINGS, "eval.first_episode=-1"])
