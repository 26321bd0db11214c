"""The arm tasks: gymnasium compliance, determinism, goal images, bad kwargs, task table."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.goals import place_scene, render_goal
from envs.registration import ENV_IDS, list_tasks, make_env, render_preview

TASK_IDS = list(ENV_IDS.values())


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_check_env_passes(env_id: str) -> None:
    env = make_env(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_observation_follows_protocol(env_id: str) -> None:
    env = make_env(env_id, image_size=48)
    envs.check_protocol(env)
    obs, info = env.reset(seed=3)
    assert obs["pixels"].shape == (48, 48, 3) and obs["pixels"].dtype == np.uint8
    assert obs["state"].shape == (7,) and obs["state"].dtype == np.float32
    assert info["goal_pixels"].shape == (48, 48, 3) and info["goal_pixels"].dtype == np.uint8
    assert {"is_success", "distance", "ee_distance", "object_distance"} <= set(info)
    assert isinstance(info["is_success"], bool) and not info["is_success"]  # never starts solved
    task = env.unwrapped.task
    assert task.success_threshold == pytest.approx(0.05)
    goal = env.unwrapped.goal
    assert info["distance"] == pytest.approx(
        task.distance(env.unwrapped.ee_pos(), env.unwrapped.cube_pos(), goal)
    )
    assert set(env.unwrapped.goal_info()) == {"ee_pos", "cube_pos"}
    _, reward, terminated, truncated, _ = env.step(np.zeros(7, dtype=np.float32))
    assert reward <= 0 and not terminated and not truncated
    env.close()


def test_episodes_are_truncated_by_the_time_limit() -> None:
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    env.reset(seed=0)
    flags = [env.step(np.zeros(7, dtype=np.float32))[3] for _ in range(50)]
    assert flags == [False] * 49 + [True]


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_same_seed_same_frames_and_goal_other_seed_differs(env_id: str) -> None:
    def rollout(seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = make_env(env_id)
        obs, info = env.reset(seed=seed)
        frames = [obs["pixels"]]
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs, *_ = env.step(rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32))
            frames.append(obs["pixels"])
        env.close()
        return np.stack(frames), info["goal_pixels"]

    frames_a, goal_a = rollout(11)
    frames_b, goal_b = rollout(11)
    frames_c, goal_c = rollout(12)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(goal_a, goal_b)
    assert not np.array_equal(frames_a[0], frames_c[0])
    assert not np.array_equal(goal_a, goal_c)
    # The goal image shows a different configuration than the first frame.
    assert np.abs(goal_a.astype(int) - frames_a[0].astype(int)).mean() > 0.5


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_goal_rendering_leaves_no_trace(env_id: str) -> None:
    env = make_env(env_id).unwrapped
    env.reset(seed=5)
    before = env.get_sim_state()
    pixels_before = env.render()
    goal = render_goal(env.arm, env.goal.scene, 64)
    np.testing.assert_array_equal(goal, env.goal_pixels())  # re-rendering gives the same goal
    np.testing.assert_array_equal(env.get_sim_state(), before)
    np.testing.assert_array_equal(env.render(), pixels_before)
    env.close()


def _contacts(env, body_a: str, body_b: str) -> list[float]:
    model, data = env.arm.model, env.arm.data
    ids = {model.body(body_a).id, model.body(body_b).id}
    return [
        float(c.dist)
        for c in data.contact[: data.ncon]
        if {model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2]} == ids
    ]


def test_pickplace_goal_shows_the_cube_held_between_the_fingers() -> None:
    env = make_env("jepa_wm/PickPlace-v0", render_pixels=False).unwrapped
    for seed in range(5):
        env.reset(seed=seed)
        saved = env.get_sim_state()
        place_scene(env.arm, env.goal.scene)
        mujoco.mj_forward(env.arm.model, env.arm.data)
        np.testing.assert_allclose(env.cube_pos(), env.goal.cube_pos, atol=1e-9)
        for finger in ("left_finger", "right_finger"):
            gaps = _contacts(env, finger, "cube")
            assert gaps and min(gaps) > -0.003, f"seed {seed}: {finger} does not touch the cube"
        env.set_sim_state(saved)


def test_push_goal_rests_the_hand_beside_the_cube() -> None:
    env = make_env("jepa_wm/Push-v0", render_pixels=False).unwrapped
    for seed in range(5):
        env.reset(seed=seed)
        place_scene(env.arm, env.goal.scene)
        mujoco.mj_forward(env.arm.model, env.arm.data)
        assert np.linalg.norm(env.ee_pos()[:2] - env.goal.cube_pos[:2]) < 0.1
        for finger in ("left_finger", "right_finger"):
            assert all(gap > -0.002 for gap in _contacts(env, finger, "cube"))  # no overlap


def test_reach_has_no_target_marker_in_the_scene() -> None:
    env = make_env("jepa_wm/Reach-v0").unwrapped
    env.reset(seed=0)
    model = env.arm.model
    visible = [g for g in range(model.ngeom) if model.geom_rgba[g, 3] > 0]
    world = [model.geom(g).name for g in visible if model.geom_bodyid[g] == 0]
    assert sorted(world) == ["floor", "table"]  # the goal lives only in the goal image
    env.close()


@pytest.mark.parametrize("size", [16, 100, 256])
def test_any_image_size_up_to_256(size: int) -> None:
    env = make_env("jepa_wm/Push-v0", image_size=size)
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == info["goal_pixels"].shape == (size, size, 3)
    assert obs["pixels"].std() > 5  # a real picture, not a blank canvas
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"image_size": 8}, "image_size"),
        ({"image_size": 512}, "image_size"),
        ({"image_size": "big"}, "image_size"),
        ({"split": "test"}, "split"),
        ({"distractors": -1}, "distractors"),
        ({"distractors": 1.5}, "distractors"),
        ({"control_hz": 50}, "control_hz"),
        ({"render_pixels": "no"}, "render_pixels"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_kwargs_give_one_clear_line(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError) as info:
        make_env("jepa_wm/Reach-v0", **kwargs)
    message = str(info.value)
    assert f"'{key}'" in message and "expected" in message
    assert "\n" not in message


def test_unknown_kwarg_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"image_size \(an integer in 16\.\.256\).*split"):
        make_env("jepa_wm/Push-v0", colour="red")


def test_unknown_env_id_suggests_close_match() -> None:
    with pytest.raises(ValueError, match="did you mean jepa_wm/Reach-v0"):
        make_env("jepa_wm/Reach-v1")


def test_list_tasks_rows_come_from_the_env_spaces() -> None:
    rows = {row["id"]: row for row in list_tasks()}
    assert set(TASK_IDS) <= set(rows)
    for env_id in TASK_IDS:
        assert env_id in gym.registry
        row = rows[env_id]
        assert (row["action_dim"], row["state_dim"], row["max_steps"]) == (7, 7, 50)
        assert row["success_m"] == pytest.approx(0.05) and 4 <= row["control_hz"] <= 10
        assert row["description"]
    assert rows["jepa_wm/ReacherGoal-v0"]["action_dim"] == 2


def test_render_preview_puts_first_frame_and_goal_side_by_side() -> None:
    image = render_preview("jepa_wm/PickPlace-v0", seed=1, image_size=64, split="heldout")
    assert image.shape == (64, 128, 3) and image.dtype == np.uint8
    env = make_env("jepa_wm/PickPlace-v0", image_size=64, split="heldout")
    obs, info = env.reset(seed=1)
    np.testing.assert_array_equal(image[:, :64], obs["pixels"])
    np.testing.assert_array_equal(image[:, 64:], info["goal_pixels"])
    env.close()


def test_render_preview_unknown_id_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="env id 'jepa_wm/Nope-v0' is not registered"):
        render_preview("jepa_wm/Nope-v0")


def test_pickplace_subgoals_go_above_the_cube_then_grasp_it_then_the_goal() -> None:
    env = make_env("jepa_wm/PickPlace-v0")
    _, info = env.reset(seed=4)
    u = env.unwrapped
    cube = u.cube_pos()
    above, grasp, final = u.subgoal_scenes()
    np.testing.assert_allclose(final.cube_pos, u.goal.cube_pos)
    assert above.gripper == 1.0 and above.ee_pos[2] > cube[2] + 0.05
    np.testing.assert_allclose(above.ee_pos[:2], cube[:2], atol=1e-3)
    assert grasp.gripper < 1.0 and abs(grasp.ee_pos[2] - cube[2]) < 0.02
    np.testing.assert_allclose(grasp.cube_pos, cube, atol=1e-3)
    before = u.get_sim_state()
    images = u.subgoal_pixels()
    np.testing.assert_array_equal(u.get_sim_state(), before)  # rendering left no trace
    assert len(images) == 3 and np.array_equal(images[-1], info["goal_pixels"])
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])
    env.close()


def test_push_subgoal_puts_the_closed_hand_behind_the_cube() -> None:
    env = make_env("jepa_wm/Push-v0")
    _, info = env.reset(seed=2)
    u = env.unwrapped
    behind, final = u.subgoal_scenes()
    cube, goal = u.cube_pos(), u.goal.cube_pos
    push = (goal - cube)[:2] / np.linalg.norm((goal - cube)[:2])
    offset = behind.ee_pos[:2] - cube[:2]
    assert np.dot(offset, push) < -0.05  # opposite the push direction
    collinear = abs(offset[0] * push[1] - offset[1] * push[0]) < 1e-6  # 2-D cross product
    assert collinear and behind.gripper == 0.0 and behind.ee_pos[2] < 0.06
    images = u.subgoal_pixels()
    assert len(images) == 2 and np.array_equal(images[-1], info["goal_pixels"])
    env.close()


def test_reach_has_only_its_goal_as_subgoal() -> None:
    env = make_env("jepa_wm/Reach-v0")
    _, info = env.reset(seed=1)
    images = env.unwrapped.subgoal_pixels()
    assert len(images) == 1 and np.array_equal(images[0], info["goal_pixels"])
    env.close()
