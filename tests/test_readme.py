"""The README is a user's first hour: short, links that stay inside the repository, a results table
generated from benchmarks/results/*.json, and every recipe command run here as written (with tiny
sizes appended), on the outputs of a tiny `wm demo` in a scratch folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from benchmarks.run_all import SUMMARY_END, SUMMARY_START, summary
from tests.conftest import REPO_ROOT, TINY_PIPELINE, run_wm
from tests.data.test_importers import write_robomimic

README = REPO_ROOT / "README.md"
TEXT = README.read_text()
# What each recipe command gets appended so it runs in seconds; the command itself is unchanged.
TINY = {
    ("wm", "plan"): ["eval.budget=2", "plan.samples=8", "plan.iterations=1"],
    ("wm", "collect"): ["steps=5", "episodes=3", "workers=1"],
    ("wm", "train"): [o for o in TINY_PIPELINE if o.startswith(("train.", "readout.", "ac."))],
}
MY_ENVS = 'import gymnasium as gym\n\ngym.register("MyGoalEnv-v0", entry_point="envs.adapters:make_reacher_goal_env")\n'


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.S)


def commands() -> list[list[str]]:
    """Every command line of the README's bash blocks, comments dropped."""
    lines = [line.split("#")[0].strip() for block in code_blocks("bash") for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line]


def test_readme_is_short_and_its_links_stay_inside_the_repository() -> None:
    assert len(TEXT.splitlines()) <= 150
    targets = re.findall(r"\]\(([^)]+)\)", TEXT)
    assert targets, "the README links its docs pages"
    for target in targets:
        assert not re.match(r"[a-z]+://", target), f"README links outside the repository: {target}"
        path = (README.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(REPO_ROOT) and path.exists(), f"README link to a missing file: {target}"
    assert "../" not in TEXT and "DESIGN" not in TEXT


def test_results_table_is_the_one_generated_from_the_result_files() -> None:
    block = TEXT.split(SUMMARY_START, 1)[1].split(SUMMARY_END, 1)[0]
    assert block.strip() == summary().strip()
    assert "Machines: 2 CPU cores" in block and "no GPU" in block  # each result names its machine


def test_the_two_commands_come_first_and_are_the_makefile_targets() -> None:
    assert commands()[:2] == [["make", "demo"], ["make", "test"]]
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert (
        "demo: setup\n\t$(BIN)/wm demo" in makefile and "test: setup\n\t$(BIN)/python -m pytest" in makefile
    )


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """What `make demo` leaves in a project folder (runs/pretrain/tiny, runs/ac/tiny), at tiny sizes."""
    root = tmp_path_factory.mktemp("readme")
    result = run_wm("demo", *TINY_PIPELINE, "eval.rows=[simulator]", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def test_every_recipe_command_runs_as_written(demo_folder: Path, monkeypatch) -> None:
    write_robomimic(demo_folder / "demo.hdf5", demos=3, steps=10)  # a user's robomimic log
    package = demo_folder / "my_pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "my_envs.py").write_text(MY_ENVS)  # a user's own env module
    monkeypatch.syspath_prepend(str(demo_folder))
    ran = []
    for argv in commands()[2:]:
        assert argv[0] == "wm", f"README command that is neither make nor wm: {argv}"
        result = run_wm(*argv[1:], *TINY.get(tuple(argv[:2]), []), cwd=demo_folder)
        assert result.returncode == 0, f"{shlex.join(argv)}:\n{result.stdout}\n{result.stderr}"
        ran.append(argv[1])
    assert {"envs", "plan", "data", "cache", "train", "collect"} <= set(ran)
    assert (demo_folder / "reach.mp4").stat().st_size > 1000
    assert (demo_folder / "runs" / "ac" / "mine" / "predictor.safetensors").is_file()


def test_the_agent_recipe_runs_on_the_demo_run(demo_folder: Path, monkeypatch, capsys) -> None:
    """The Python loop, as written, on the tiny demo's world model (runs/ac/tiny)."""
    snippet = next(block for block in code_blocks("python") if "Agent.from_run" in block)
    monkeypatch.chdir(demo_folder)
    capsys.readouterr()
    exec(snippet, {})  # noqa: S102 - the README's own code
    success, energy, ms = capsys.readouterr().out.split()
    assert success in ("True", "False") and float(energy) >= 0 and float(ms) >= 0
