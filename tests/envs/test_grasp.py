"""Grasp: goals hold the cube above its start; success needs the cube lifted AND pinched."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from envs.goals import place_scene
from envs.registration import ENV_IDS, list_tasks, make_env
from envs.tasks import CUBE_HALF, GRASP_DEPTH, GRASP_LIFT, HOLD_OPENING, TASKS, GraspTask, Scene
from envs.variations import RANGES

GRASP_ID = "jepa_wm/Grasp-v0"


@pytest.fixture
def env():
    env = make_env(GRASP_ID, render_pixels=False)
    yield env.unwrapped
    env.close()


def judge(env, scene: Scene) -> dict:
    """Teleport into `scene` and read the env's verdict on it (contacts of that exact state)."""
    place_scene(env.arm, scene)
    return env._info()


def test_grasp_is_registered_and_listed() -> None:
    assert ENV_IDS["grasp"] == GRASP_ID and GRASP_ID in gym.registry
    assert TASKS["grasp"] is GraspTask
    env = make_env(GRASP_ID, image_size=32)
    assert env.unwrapped.task.name == "grasp" and env.spec.max_episode_steps == 50
    env.close()
    row = {r["id"]: r for r in list_tasks()}[GRASP_ID]
    assert (row["action_dim"], row["state_dim"]) == (7, 7) and "grasp" in row["description"]


def test_goals_hold_the_cube_above_its_start(env) -> None:
    lifts = []
    for seed in range(10):
        env.reset(seed=seed)
        start, goal = env.start.cube_pos, env.goal
        np.testing.assert_allclose(env.cube_pos(), start, atol=1e-9)
        np.testing.assert_allclose(goal.cube_pos[:2], start[:2])  # same xy
        lifts.append(goal.cube_pos[2] - start[2])
        assert start[2] == pytest.approx(CUBE_HALF)
        np.testing.assert_allclose(goal.ee_pos, goal.cube_pos + [0.0, 0.0, GRASP_DEPTH])
        assert goal.scene.gripper == HOLD_OPENING
    assert all(GRASP_LIFT[0] <= lift <= GRASP_LIFT[1] for lift in lifts)
    assert len(set(np.round(lifts, 6))) == len(lifts)  # drawn per episode


def test_task_samples_lifted_goals_from_its_rng() -> None:
    task, start = GraspTask(), Scene(np.array([0.5, 0.2, 0.15]), 1.0, np.array([0.5, 0.0, CUBE_HALF]))
    a, b = (task.sample_goal(np.random.default_rng(3), start) for _ in range(2))
    np.testing.assert_array_equal(a.cube_pos, b.cube_pos)
    assert a.cube_pos[2] - CUBE_HALF >= GRASP_LIFT[0] and a.cube_pos[2] - CUBE_HALF <= GRASP_LIFT[1]


def test_the_goal_scene_is_a_success_and_stays_one_when_squeezed(env) -> None:
    env.reset(seed=0)
    info = judge(env, env.goal.scene)
    assert info["cube_held"] and info["is_success"] and info["distance"] < 1e-6
    close = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float32)
    for _ in range(5):
        _, _, _, _, info = env.step(close)
    assert info["cube_held"] and info["is_success"]
    assert env.cube_pos()[2] - CUBE_HALF > 0.05 and info["distance"] < 0.02


def test_a_lifted_cube_that_is_not_pinched_fails(env) -> None:
    env.reset(seed=1)
    up = env.start.cube_pos + [0.0, 0.0, 0.1]
    open_hand = judge(env, Scene(up + [0.0, 0.0, GRASP_DEPTH], 1.0, up))
    assert not open_hand["cube_held"] and not open_hand["is_success"]
    # The closed fingertips pressing on top of a raised cube (as if it stood on a stack): both
    # fingers touch it, but from the same side, so it is not held.
    on_top = judge(env, Scene(up + [0.0, 0.0, 0.035], 0.0, up))
    assert all(_finger_contacts(env))
    assert not on_top["cube_held"] and not on_top["is_success"]
    one_finger = judge(env, Scene(up + [0.0, 0.01, GRASP_DEPTH], HOLD_OPENING, up))
    assert sum(map(bool, _finger_contacts(env))) == 1
    assert not one_finger["cube_held"] and not one_finger["is_success"]


def test_a_held_cube_below_the_lift_threshold_fails(env) -> None:
    env.reset(seed=2)
    cube = env.start.cube_pos
    on_table = judge(env, Scene(cube + [0.0, 0.0, GRASP_DEPTH], HOLD_OPENING, cube.copy()))
    assert on_table["cube_held"] and not on_table["is_success"]
    low = cube + [0.0, 0.0, 0.04]
    barely = judge(env, Scene(low + [0.0, 0.0, GRASP_DEPTH], HOLD_OPENING, low))
    assert barely["cube_held"] and not barely["is_success"]
    high = cube + [0.0, 0.0, 0.06]
    assert judge(env, Scene(high + [0.0, 0.0, GRASP_DEPTH], HOLD_OPENING, high))["is_success"]


def test_dropping_the_cube_ends_the_success(env) -> None:
    env.reset(seed=3)
    place_scene(env.arm, env.goal.scene)
    open_ = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)
    for _ in range(3):
        _, _, _, _, info = env.step(open_)
    assert not info["cube_held"] and not info["is_success"]
    assert env.cube_pos()[2] < CUBE_HALF + 0.01  # fell back to the table


def test_subgoals_open_above_then_closed_on_the_cube_then_the_goal() -> None:
    env = make_env(GRASP_ID, image_size=32)
    _, info = env.reset(seed=4)
    u = env.unwrapped
    cube = u.cube_pos()
    above, grasp, final = u.subgoal_scenes()
    assert above.gripper == 1.0 and above.ee_pos[2] > cube[2] + 0.05
    np.testing.assert_allclose(above.ee_pos[:2], cube[:2], atol=1e-3)
    assert grasp.gripper == HOLD_OPENING and abs(grasp.ee_pos[2] - cube[2]) < 0.02
    assert final is u.goal.scene
    images = u.subgoal_pixels()
    assert len(images) == 3 and np.array_equal(images[-1], info["goal_pixels"])
    env.close()


def test_splits_change_the_look_not_the_task() -> None:
    scenes = {}
    for split in ("train", "heldout"):
        env = make_env(GRASP_ID, image_size=32, split=split)
        obs, _ = env.reset(seed=6)
        u = env.unwrapped
        hue = u.variation.cube_hue
        assert any(lo <= hue <= hi for lo, hi in RANGES[split].cube_hues)
        scenes[split] = (obs["pixels"], u.cube_pos(), u.goal.cube_pos.copy())
        env.close()
    (pixels_a, *task_a), (pixels_b, *task_b) = scenes.values()
    assert not np.array_equal(pixels_a, pixels_b)
    for a, b in zip(task_a, task_b, strict=True):
        np.testing.assert_array_equal(a, b)


def _finger_contacts(env) -> list[int]:
    """How many contacts each finger has with the cube in the current simulator state."""
    model, data = env.arm.model, env.arm.data
    cube = model.geom("cube").id
    pairs = zip(data.contact.geom1[: data.ncon], data.contact.geom2[: data.ncon], strict=True)
    touching = [model.geom_bodyid[a if b == cube else b] for a, b in pairs if cube in (a, b)]
    return [touching.count(finger) for finger in env.arm.finger_bodies]
