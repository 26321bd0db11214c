"""The goal-image protocol in code (envs/protocol.py): `check_env` findings, optional keys, and play
data on envs without our arm's scripted motions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from envs.policies import RandomPolicy, has_scripted_play, make_policy, play_fallback_note
from envs.protocol import GoalImageEnv, check_env, info_distance
from envs.registration import import_user_module, make_env
from tests.envs.user_point_env import BROKEN_ENV_ID, POINT_ENV_ID, write_point_env_module

# Each test module imports its own copy of the user module, which registers the same ids again.
pytestmark = pytest.mark.filterwarnings("ignore:.*Overriding environment")


@pytest.fixture(scope="module")
def point_envs(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("user_envs")
    write_point_env_module(folder, "protocol_test_point_envs")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        import_user_module("protocol_test_point_envs")
    return POINT_ENV_ID


def test_a_user_env_without_distance_follows_the_protocol(point_envs) -> None:
    findings = check_env(point_envs)
    assert all(f.ok for f in findings), [f.text for f in findings]
    lines = [f.text for f in findings]
    assert "observation['state']: float32 [5]" in lines and "action_space: Box [4], finite bounds" in lines
    assert any(line.startswith("info['distance']: not given") for line in lines)
    env = make_env(point_envs)
    assert isinstance(env, GoalImageEnv)
    _, info = env.reset(seed=0)
    assert np.isnan(info_distance(info))  # success-only env: NaN, never a KeyError


def test_each_problem_is_one_line_naming_the_key(point_envs) -> None:
    findings = check_env(BROKEN_ENV_ID, steps=3)
    problems = [f.text for f in findings if not f.ok]
    assert problems == [
        "reset: info['goal_pixels']: expected uint8 [64, 64, 3] (the observation's shape), got uint8 [32, 32, 3]",
        "reset: info['is_success']: expected a bool, got int",
    ]  # seen at reset and at every step, said once
    assert not any(
        f.ok and f.line.startswith(("info['goal_pixels']", "info['is_success']")) for f in findings
    )


def test_bad_spaces_and_a_failing_constructor_are_findings() -> None:
    class FloatPixels(gym.Env):
        observation_space = gym.spaces.Dict(
            {
                "pixels": gym.spaces.Box(0, 1, (8, 8, 3), dtype=np.float32),
                "state": gym.spaces.Box(-1, 1, (3,), dtype=np.float64),
            }
        )
        action_space = gym.spaces.Discrete(3)

    gym.register(id="protocol_test/FloatPixels-v0", entry_point=FloatPixels)
    problems = [f.text for f in check_env("protocol_test/FloatPixels-v0") if not f.ok]
    assert len(problems) == 3
    assert problems[0].startswith("observation_space['pixels']: expected a uint8 Box")
    assert problems[1].startswith("observation_space['state']: expected a float32 Box")
    assert problems[2].startswith("action_space: expected a 1-D Box")

    def explode() -> gym.Env:
        raise RuntimeError("no robot attached")

    gym.register(id="protocol_test/Explodes-v0", entry_point=explode)
    [finding] = check_env("protocol_test/Explodes-v0")
    assert finding.text == "make: RuntimeError: no robot attached"


def test_arm_envs_pass_the_check_with_their_optional_parts() -> None:
    findings = check_env("jepa_wm/Reach-v0", steps=1)
    assert all(f.ok for f in findings), [f.text for f in findings if not f.ok]
    lines = [f.text for f in findings]
    assert "info['distance']: metres to the goal" in lines and "subgoal_pixels(): 1 images" in lines


def test_play_falls_back_to_smooth_random_actions_on_other_envs(point_envs) -> None:
    env = make_env(point_envs)
    assert not has_scripted_play(env)
    policy = make_policy("play", env, 3)
    assert isinstance(policy, RandomPolicy)
    obs, info = env.reset(seed=0)
    policy.reset(obs, info)
    actions = np.stack([policy.act(obs, info) for _ in range(20)])
    assert actions.shape == (20, 4) and np.all(np.abs(actions) <= 1)
    assert np.abs(np.diff(actions, axis=0)).mean() < np.abs(actions).mean()  # smooth, not white noise
    note = play_fallback_note([point_envs], "play")
    assert note is not None and point_envs in note and "smooth random actions" in note
    assert play_fallback_note(["jepa_wm/Reach-v0"], "play") is None
    assert play_fallback_note([point_envs], "random") is None
    with pytest.raises(ValueError, match="need a jepa_wm arm env"):
        make_policy("scripted", env, 0)
