"""`wm bench plan_agreement`: does the learned world model pick the plans true dynamics would?

Planning success separates the latent (does it see the task?) from the predictor only coarsely. This
study asks the predictor's question directly, without an MPC loop: from held-out Reach states near
the goal, N random 3-step plans are scored by the goal energy twice, once through each AC run's
predictor and once through the simulator (the same latent, true dynamics), and each plan's true
final hand-to-goal distance is measured. Reported per run and N: where each argmin lands (cm from
the goal), the rank correlation of the two energies, and how well the predicted latent move
matches the true one. A predictor whose argmin gets worse as N grows, while the simulator's gets
better, is being exploited by the search: a bigger budget cannot help it (experiments §44).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.common import RESULTS_DIR, StudyParser, positive, write_result
from envs.registration import make_env
from worldmodel.common.threads import use_threads
from worldmodel.evaluation.demo import say
from worldmodel.evaluation.simulator import SimulatorWorldModel
from worldmodel.models.world_model import WorldModel

TASK = "jepa_wm/Reach-v0"
HORIZON = 3
FIRST_SEED = 5000  # held-out split; well away from eval's seeds


def near_goal_state(env, seed: int, distance: float) -> dict[str, Any]:
    """Reset to `seed`, then drive the hand straight at the goal until it is within `distance` m (or
    40 steps): the states where Reach is won or lost. Returns the last observation and info."""
    obs, info = env.reset(seed=seed)
    arm_env = env.unwrapped
    for _ in range(40):
        gap = arm_env.goal.ee_pos - arm_env.ee_pos()
        if np.linalg.norm(gap) <= distance:
            break
        action = np.zeros(env.action_space.shape, np.float32)
        action[:3] = 0.5 * gap
        obs, _, _, _, info = env.step(action)
    return {"obs": obs, "info": info}


def true_distances(arm_env, plans: np.ndarray) -> np.ndarray:
    """Each plan's final hand-to-goal distance (m), replayed from the current simulator state."""
    start = arm_env.get_sim_state()
    out = []
    for plan in plans:
        arm_env.set_sim_state(start)
        for action in plan:
            arm_env.arm.apply_action(action, arm_env.substeps)
        out.append(np.linalg.norm(arm_env.ee_pos() - arm_env.goal.ee_pos))
    arm_env.set_sim_state(start)
    return np.array(out)


def one_state(
    models: dict[str, tuple[WorldModel, SimulatorWorldModel]], seed: int, samples: int, distance: float
) -> dict[str, Any]:
    """Every model's energies of the same `samples` random plans from one near-goal state, through
    its predictor and through the simulator with its latent."""
    env = make_env(TASK, split="heldout", image_size=64)
    start = near_goal_state(env, seed, distance)
    arm_env = env.unwrapped
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    plans = rng.uniform(low, high, size=(samples, HORIZON, len(low))).astype(np.float32)
    plans[:, :, 3:6] = 0.0  # no wrist rotation, as the planners plan Reach (plan.fix_rotation)
    actions = torch.from_numpy(plans)
    true = true_distances(arm_env, plans)
    result: dict[str, Any] = {"true_cm": true * 100}
    for name, (wm, simulator) in models.items():
        with torch.no_grad():
            z0 = wm.encode(torch.from_numpy(start["obs"]["pixels"][None]))
            goal = wm.encode(torch.from_numpy(start["info"]["goal_pixels"][None]))
            state = torch.from_numpy(start["obs"]["state"][None]).float().expand(samples, -1)
            rows = z0.expand(samples, *z0.shape[1:])
            learned = wm.rollout(rows, state, actions)[:, -1]
            simulator.bind(z0, [arm_env.get_sim_state()], [arm_env.variation])
            real = simulator.rollout(rows, state, actions)[:, -1]
        result[name] = {
            "learned": (learned - goal).abs().mean(dim=(1, 2)).numpy(),
            "simulator": (real - goal).abs().mean(dim=(1, 2)).numpy(),
            "move_error": float((learned - real).abs().mean() / (real - z0).abs().mean().clamp_min(1e-9)),
        }
    env.close()
    return result


def summary(states: list[dict[str, Any]], name: str) -> dict[str, float]:
    """Means over states: the true distance at each energy's argmin, and their agreement."""
    rows = []
    for s in states:
        learned, real, true = s[name]["learned"], s[name]["simulator"], s["true_cm"]
        rows.append(
            [
                true[np.argmin(learned)],
                true[np.argmin(real)],
                true.min(),
                float(np.median(true)),
                spearmanr(learned, real)[0],
                spearmanr(learned, true)[0],
                spearmanr(real, true)[0],
                s[name]["move_error"],
            ]
        )
    mean = np.nanmean(np.array(rows), axis=0)
    keys = (
        "learned_argmin_cm",
        "simulator_argmin_cm",
        "best_cm",
        "median_cm",
        "rho_learned_simulator",
        "rho_learned_true",
        "rho_simulator_true",
        "move_error_ratio",
    )
    return {key: round(float(value), 3) for key, value in zip(keys, mean, strict=True)}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| run | plans | argmin, learned (cm) | argmin, simulator (cm) | best / median (cm) | rho learned-sim | move error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['samples']} | {r['learned_argmin_cm']:.1f} | {r['simulator_argmin_cm']:.1f} | "
            f"{r['best_cm']:.1f} / {r['median_cm']:.1f} | {r['rho_learned_simulator']:.2f} | "
            f"{r['move_error_ratio']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    parser = StudyParser(prog="wm bench plan_agreement", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=lambda t: [r for r in t.split(",") if r], default=["runs/ac/small"],
                        help="AC run folders, comma separated (default runs/ac/small)")  # fmt: skip
    parser.add_argument("--samples", type=lambda t: [positive(n) for n in t.split(",")], default=[128, 1024],
                        help="random plans per state, comma separated (default 128,1024)")  # fmt: skip
    parser.add_argument("--states", type=positive, default=10, help="held-out near-goal states (default 10)")
    parser.add_argument("--near", type=float, default=0.06, help="hand-to-goal distance of the states, m")
    parser.add_argument("--threads", type=positive, default=2, help="torch threads (default 2)")
    parser.add_argument("--name", default="plan_agreement", help="result file name (default plan_agreement)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where <name>.json goes")
    args = parser.parse_args(argv)
    use_threads(args.threads)
    models = {}
    for run in args.runs:
        wm = WorldModel.from_run(run).eval()
        models[run] = (wm, SimulatorWorldModel(TASK, {"split": "heldout", "image_size": 64}, wm.encode))
    rows = []
    for samples in args.samples:
        states = [one_state(models, FIRST_SEED + i, samples, args.near) for i in range(args.states)]
        for run in args.runs:
            rows.append({"run": run, "samples": samples, **summary(states, run)})
            say(f"[plan_agreement] {run}, {samples} plans: {rows[-1]}")
    print(table(rows))
    config = {"task": TASK, "split": "heldout", "horizon": HORIZON, "states": args.states, "near_m": args.near,
              "runs": args.runs, "samples": args.samples}  # fmt: skip
    return write_result(args.name, config, {"rows": rows}, args.results_dir)


if __name__ == "__main__":
    main()
