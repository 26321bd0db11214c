"""The plan-agreement study: near-goal states, replayed plans, and argmins on a real tiny AC run."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.plan_agreement import TASK, main, near_goal_state, summary, true_distances
from envs.registration import make_env
from tests.worldmodel.training.tiny_runs import make_tiny_run


def test_states_near_the_goal_and_plans_replayed_from_them() -> None:
    env = make_env(TASK, split="heldout", image_size=64)
    near_goal_state(env, 3, 0.06)
    arm_env = env.unwrapped
    arm_env.set_sim_state(arm_env.get_sim_state())  # kinematics of the current state (mj_step lags them)
    start_cm = 100 * np.linalg.norm(arm_env.ee_pos() - arm_env.goal.ee_pos)
    assert start_cm <= 6.0 + 1e-6
    still = np.zeros((1, 3, env.action_space.shape[0]), np.float32)
    towards = still.copy()
    towards[0, :, :3] = 0.3 * (arm_env.goal.ee_pos - arm_env.ee_pos())
    distances = 100 * true_distances(arm_env, np.concatenate([still, towards]))
    assert abs(distances[0] - start_cm) < 1.0 and distances[1] < distances[0]
    assert 100 * np.linalg.norm(arm_env.ee_pos() - arm_env.goal.ee_pos) == start_cm  # state restored


def test_summary_reads_each_energy_at_its_own_argmin() -> None:
    true_cm = np.array([5.0, 1.0, 9.0, 3.0])
    state = {"true_cm": true_cm, "run": {"learned": np.array([0.1, 0.4, 0.3, 0.2]),
             "simulator": true_cm / 10, "move_error": 0.5}}  # fmt: skip
    row = summary([state], "run")
    assert row["learned_argmin_cm"] == 5.0 and row["simulator_argmin_cm"] == 1.0
    assert row["best_cm"] == 1.0 and row["median_cm"] == 4.0 and row["move_error_ratio"] == 0.5
    assert row["rho_simulator_true"] == 1.0 and row["rho_learned_true"] < 0.5


def test_end_to_end_on_a_real_run(tiny_dataset, tmp_path) -> None:
    run = make_tiny_run(tmp_path, tiny_dataset)
    path = main(["--runs", str(run), "--samples", "4", "--states", "2", "--results-dir", str(tmp_path)])
    [row] = json.loads(path.read_text())["figures"]["rows"]
    assert row["samples"] == 4 and row["best_cm"] <= min(row["learned_argmin_cm"], row["simulator_argmin_cm"])
    assert row["median_cm"] >= row["best_cm"] and np.isfinite(row["move_error_ratio"])
