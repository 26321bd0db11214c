"""Bring your own env, end to end: a gymnasium env the project has never seen (a module in a
temporary folder outside the package, 4-D actions, 5-D state, no `distance`) through `wm envs
check`, `collect`, `pretrain`, `cache`, `train` and `eval` with `import=`; then a fresh process
evaluates the run without `import=` (the run's config.yaml names the module), and `Agent.from_run`
imports it the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from envs.registration import make_env
from tests.conftest import REPO_ROOT, TINY_AC, TINY_MODEL
from tests.envs.user_point_env import BROKEN_ENV_ID, POINT_ENV_ID, write_point_env_module
from worldmodel.evaluation.agent import Agent

# Each test module imports its own copy of the user module, which registers the same ids again.
pytestmark = pytest.mark.filterwarnings("ignore:.*Overriding environment")

MODULE = "pipeline_test_point_envs"  # imported by no other test (modules stay loaded in a session)


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The eval table's cells by row name (`│ task │ row │ encoder │ success │ final dist │ ...`)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 8 and cells[0] == POINT_ENV_ID.split("/")[-1]:
            rows[cells[1]] = cells
    return rows


def test_a_user_env_runs_the_whole_pipeline(wm, tmp_path, monkeypatch) -> None:
    envs_dir = tmp_path / "my_code"
    envs_dir.mkdir()
    write_point_env_module(envs_dir, MODULE)
    monkeypatch.syspath_prepend(str(envs_dir))
    data, runs = tmp_path / "point.h5", tmp_path / "runs"
    common = [f"import={MODULE}", f"run.root={runs}", "run.name=point", "threads=1"]

    check = wm("envs", "check", POINT_ENV_ID, f"import={MODULE}")
    assert check.returncode == 0, check.stderr
    assert (
        "ok  info['distance']: not given" in check.stdout
        and "follows the goal-image protocol" in check.stdout
    )
    broken = wm("envs", "check", BROKEN_ENV_ID, f"import={MODULE}")
    assert broken.returncode == 2
    assert broken.stderr.splitlines() == [
        f"{BROKEN_ENV_ID}: reset: info['goal_pixels']: expected uint8 [64, 64, 3] (the observation's shape), "
        "got uint8 [32, 32, 3]",
        f"{BROKEN_ENV_ID}: reset: info['is_success']: expected a bool, got int",
    ]

    stages = [
        ["collect", f"env={POINT_ENV_ID}", "episodes=4", "steps=10", "workers=1", f"out={data}"],
        ["pretrain", f"data={data}", "max_steps=2", "batch_size=4", *TINY_MODEL],
        ["cache", f"data={data}", f"encoder={runs / 'pretrain' / 'point'}", *TINY_AC],
        [
            "train",
            f"data={data}",
            f"encoder={runs / 'pretrain' / 'point'}",
            "max_steps=2",
            "batch_size=4",
            *TINY_AC,
        ],
    ]
    for args in stages:
        result = wm(*args, *common)
        assert result.returncode == 0, f"{args[0]}: {result.stderr}"
        if args[0] == "collect":  # no scripted play on this env: said once, random smooth actions
            assert result.stdout.startswith(f"policy play: {POINT_ENV_ID} has no scripted play motions")
    for stage in ("pretrain", "ac"):
        saved = yaml.safe_load((runs / stage / "point" / "config.yaml").read_text())
        assert saved["env"]["user_module"] == MODULE, stage

    evaluation = [
        f"tasks=[{POINT_ENV_ID}]",
        "episodes=2",
        "budget=2",
        "plan.samples=8",
        "plan.iterations=1",
        "latent_grid=2",
        f"world_model={runs / 'ac' / 'point'}",
    ]
    result = wm("eval", "rows=[random,learned,shooting]", *evaluation, *common)
    assert result.returncode == 0, result.stderr
    assert "zero-shot goal-image success (split —, 2 steps)" in result.stdout
    rows = table_rows(result.stdout)
    assert set(rows) == {"random", "learned", "shooting"}
    assert all(cells[4] == "—" for cells in rows.values())  # no info["distance"]: no distance
    payload = json.loads((runs / "eval" / "eval" / "results.json").read_text())
    assert {r["row"]: r["mean_final_distance_cm"] for r in payload["results"]} == {
        "random": None,
        "learned": None,
        "shooting": None,
    }
    assert yaml.safe_load(payload["config"])["env"]["user_module"] == MODULE
    assert "<dt>split</dt><dd>—</dd>" in (runs / "eval" / "eval" / "report.html").read_text()

    # A fresh process knows nothing of the module but where to find it: the run's config names it.
    fresh = subprocess.run(
        [sys.executable, "-m", "worldmodel.cli.main", "eval", "rows=[random,learned]", *evaluation,
         f"run.root={runs}", "eval.name=again", "threads=1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(envs_dir)},
    )  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    assert set(table_rows(fresh.stdout)) == {"random", "learned"}
    assert (
        yaml.safe_load(json.loads((runs / "eval" / "again" / "results.json").read_text())["config"])["env"][
            "user_module"
        ]
        == MODULE
    )

    # `Agent.from_run` imports the module the run names too (dropped here to see it come back).
    sys.modules.pop(MODULE)
    agent = Agent.from_run(runs / "ac" / "point", samples=4, iterations=1)
    assert MODULE in sys.modules
    env = make_env(POINT_ENV_ID)
    observation, info = env.reset(seed=0)
    agent.set_goal(info["goal_pixels"])
    assert agent.act(observation).shape == (4,)
    env.close()


@pytest.mark.parametrize("command", ["probe", "energy", "rollout-report"])
def test_option_commands_take_import(wm, command) -> None:
    args = {"probe": ["pixels"], "energy": ["runs/x", "d.h5"], "rollout-report": ["runs/x", "d.h5"]}[command]
    result = wm(command, *args, "--import", "no_such_user_env_module")
    assert result.returncode == 2 and "import 'no_such_user_env_module'" in result.stderr
