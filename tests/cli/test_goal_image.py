"""A newcomer's goal image: `wm envs goal` into `wm plan --goal-image` on the world model `wm train`
wrote, the same scene and split, and the shared keys of `wm plan` and `wm eval` (real CLI, MuJoCo)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from envs.registration import make_env
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.cli.plan import load_evaluation_config
from worldmodel.evaluation import plan_run

TINY_PLAN = ["eval.budget=1", "plan.samples=4", "plan.iterations=1", "sim_samples=4", "sim_iterations=1"]
ENV = "jepa_wm/Reach-v0"


@pytest.fixture(scope="module")
def tiny_root(tiny_dataset, tmp_path_factory):
    """A run root holding a real, barely trained AC run at <root>/ac/tiny (the tiny preset's run.name)."""
    root = tmp_path_factory.mktemp("goal_image")
    make_tiny_run(root, tiny_dataset)
    return root


@pytest.fixture
def mpc_calls(monkeypatch) -> list[dict]:
    """What `wm plan` hands the MPC loop: the goal image, seeds and env keywords of each call."""
    calls: list[dict] = []
    real = plan_run.run_mpc

    def spy(env_id, wm, planner, seeds, budget, env_kwargs=None, **kwargs):
        calls.append({"env_id": env_id, "seeds": list(seeds), "env_kwargs": dict(env_kwargs or {}), **kwargs})
        return real(env_id, wm, planner, seeds, budget, env_kwargs, **kwargs)

    monkeypatch.setattr(plan_run, "run_mpc", spy)
    return calls


def test_envs_goal_into_plan_plans_towards_exactly_that_image(wm, tiny_root, tmp_path, mpc_calls) -> None:
    goal = tmp_path / "goal.png"
    result = wm("envs", "goal", ENV, "--seed", "5", "--out", str(goal))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"wrote {goal}: goal image of {ENV}, seed 5, split heldout, 64x64 "
        f"(wm plan --env {ENV} --seed 5 --goal-image {goal})"
    ]
    written = np.asarray(Image.open(goal))
    env = make_env(ENV, split="heldout")  # what `wm plan` plans on (eval.split)
    try:
        assert np.array_equal(written, env.reset(seed=5)[1]["goal_pixels"])  # lossless, the env's own
    finally:
        env.close()

    video = tmp_path / "plan.mp4"
    result = wm(
        "plan", *TINY_PLAN, f"run.root={tiny_root}", "--env", ENV, "--seed", "5", "--goal-image", str(goal),
        "--video", str(video),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"[plan] world model {tiny_root / 'ac' / 'tiny'} for row learned (default")
    assert lines[1] == "[plan] goal image 64x64: used as is"
    assert "seed=5 split=heldout row=learned" in lines[2]
    assert "this episode's own goal (seed 5, split heldout)" in result.stdout
    [call] = mpc_calls
    assert call["seeds"] == [5] and call["env_kwargs"] == {"split": "heldout", "image_size": 64}
    assert np.array_equal(call["goal_pixels"], written)  # the planner got the PNG, bit for bit
    assert video.exists()


def test_plan_refuses_a_goal_image_far_from_square(wm, tmp_path, mpc_calls) -> None:
    figure = tmp_path / "scene.png"  # the size of a `wm envs show` figure
    Image.fromarray(np.full((307, 516, 3), 200, dtype=np.uint8)).save(figure)
    video = tmp_path / "out" / "plan.mp4"
    result = wm("plan", *TINY_PLAN, "--row", "simulator", "--goal-image", str(figure), "--video", str(video))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: goal image '{figure}' is 516x307: too far from the camera's 64x64 aspect to crop "
        "(long/short side 1.68 > 1.25); crop it yourself, or write the env's own goal image with `wm envs goal`"
    ]
    assert result.stdout == "" and not mpc_calls
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.png"]  # no video, no folder


def test_plan_and_eval_default_to_the_presets_world_model_and_say_so(wm, tiny_root, tmp_path) -> None:
    run = tiny_root / "ac" / "tiny"
    result = wm("plan", *TINY_PLAN, f"run.root={tiny_root}", "--video", str(tmp_path / "p.mp4"))
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"[plan] world model {run} for row learned (default: <run.root>/ac/<run.name>")
    assert "row=learned" in result.stdout

    result = wm(
        "eval", *TINY_PLAN, "tasks=[jepa_wm/Reach-v0]", "episodes=1", "rows=[learned]", f"run.root={tiny_root}",
        f"eval.name={tmp_path.name}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"[eval] world model {run} for row learned (default")


def test_a_given_world_model_wins_and_is_named(wm, tiny_root, tmp_path) -> None:
    run = tiny_root / "ac" / "tiny"
    result = wm("plan", *TINY_PLAN, f"world_model={run}", "--video", str(tmp_path / "p.mp4"))
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.splitlines()[0]
        == f"[plan] world model {run} for row learned (given as eval.world_model)"
    )


@pytest.mark.parametrize("key", ["encoder", "world_model", "split", "episodes", "lr", "name"])
def test_plan_and_eval_read_bare_keys_alike(key) -> None:
    value = {"split": "train", "episodes": "3", "lr": "0.5"}.get(key, "runs/ac/mine")
    config = load_evaluation_config([f"{key}={value}"])
    section = "plan" if key == "lr" else "eval"
    assert str(getattr(getattr(config, section), key)) == value


def test_plan_takes_encoder_as_eval_does(wm, tmp_path) -> None:
    result = wm(
        "plan", *TINY_PLAN, "encoder=pixels", f"run.root={tmp_path}", "--row", "simulator",
        "--video", str(tmp_path / "p.mp4"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr  # was: ambiguous key (eval.encoder, jepa.encoder, ...)
    assert "latent 'pixels' (eval.encoder)" in result.stdout.splitlines()[0]
