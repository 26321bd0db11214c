"""Eval on an env it has never seen: success-only envs (no `distance`), the random row without a
world model, "—" for splits and distances, and env modules found again from a run's config.yaml."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from data.collect import collect
from data.episodes import EpisodeReader, dataset_user_module
from envs.registration import import_user_module, make_env
from tests.envs.user_point_env import POINT_ENV_ID, write_point_env_module
from tests.worldmodel.evaluation.test_report import fake_result, parse_report
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config, load_config, save_config
from worldmodel.config.user_envs import adopt_user_modules, recorded_user_module
from worldmodel.evaluation.evaluate import mean_distance_cm
from worldmodel.evaluation.mpc import run_mpc
from worldmodel.evaluation.report import ReferenceRow, build_report, distance_text
from worldmodel.evaluation.rows import (
    NoWorldModel,
    build_planner,
    build_world_model,
    env_kwargs_for,
    split_text,
)
from worldmodel.evaluation.simulator import OracleWorldModel

# Each test module imports its own copy of the user module, which registers the same ids again.
pytestmark = pytest.mark.filterwarnings("ignore:.*Overriding environment")


@pytest.fixture(scope="module")
def point_env(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("user_envs")
    write_point_env_module(folder, "eval_test_point_envs")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        import_user_module("eval_test_point_envs")
    return POINT_ENV_ID


def random_row(config: Config, env_id: str):
    probe = make_env(env_id, **env_kwargs_for(env_id, config))
    planner = build_planner(config, probe, "random")
    wm = build_world_model("random", env_id, env_kwargs_for(env_id, config), config, probe.action_space)
    probe.close()
    return planner, wm


def test_random_row_runs_on_a_success_only_env(point_env) -> None:
    config = load_config()
    planner, wm = random_row(config, point_env)
    assert isinstance(wm, NoWorldModel)
    result = run_mpc(point_env, wm, planner, [1, 2], budget=4, record=True)
    for outcome in result.outcomes:
        assert math.isnan(outcome.final_distance) and len(outcome.distances) == 4
        assert len(outcome.frames) == 5 and outcome.goal.shape == (64, 64, 3)
    assert mean_distance_cm([o.final_distance for o in result.outcomes]) is None


def test_random_row_draws_the_actions_it_drew_with_the_oracle_model() -> None:
    """The random row's stand-in changes nothing on our arm: same seeds, same actions, same ends."""
    config = load_config(["eval.split=train"])
    env_id = "jepa_wm/Reach-v0"
    planner, wm = random_row(config, env_id)
    new = run_mpc(env_id, wm, planner, [5], budget=3, env_kwargs=env_kwargs_for(env_id, config))
    planner, _ = random_row(config, env_id)
    old = run_mpc(env_id, OracleWorldModel(env_id, {"split": "train"}), planner, [5], 3, {"split": "train"})
    assert new.outcomes[0].final_distance == pytest.approx(old.outcomes[0].final_distance, abs=1e-9)


def test_simulator_rows_refuse_a_user_env_in_one_line(point_env) -> None:
    config = load_config()
    probe = make_env(point_env)
    for row in ("oracle", "simulator"):
        with pytest.raises(UserError, match=f"eval row '{row}': needs a jepa_wm arm env.*learned, random"):
            build_world_model(row, point_env, {}, config, probe.action_space)
    probe.close()


def test_distances_and_splits_the_env_lacks_show_a_dash(point_env) -> None:
    assert distance_text(None) == "—" and distance_text(float("nan")) == "—"
    assert distance_text(12.345) == "12.3 cm"
    assert mean_distance_cm([0.1, 0.2]) == pytest.approx(15.0) and mean_distance_cm([0.1, math.nan]) is None
    assert split_text([point_env], "heldout") == "—"
    assert split_text(["jepa_wm/Reach-v0"], "heldout") == "heldout"
    assert split_text(["jepa_wm/Reach-v0", point_env], "heldout").startswith("heldout (Reach-v0;")


def test_report_shows_a_dash_for_missing_distances_and_splits(tmp_path, point_env) -> None:
    result = fake_result("random")
    result.task, result.mean_final_distance_cm = point_env, None
    result.episode.final_distance_cm = float("nan")
    config = load_config([f"eval.tasks=[{point_env}]"])
    reference = ReferenceRow(point_env, "random", 4, 50, 0.0, 0.0, 0.5, None)
    page = build_report([result], config, {}, {}, [reference])
    path = tmp_path / "r.html"
    path.write_text(page, encoding="utf-8")
    rows = parse_report(path).body_rows
    assert [r[5] for r in rows] == ["—", "—"]
    assert "<dt>split</dt><dd>—</dd>" in page and "final distance —" in page


def test_a_run_records_the_env_module_and_later_commands_import_it(tmp_path, monkeypatch) -> None:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "recorded_env_module_a.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    run = tmp_path / "runs" / "ac" / "x"
    run.mkdir(parents=True)
    save_config(load_config(["import=recorded_env_module_a"]), run / "config.yaml")
    assert recorded_user_module(run) == "recorded_env_module_a"
    assert recorded_user_module(run / "predictor.safetensors") == ""  # no such file: not a run path
    assert recorded_user_module("pixels") == ""
    config = load_config()
    assert "recorded_env_module_a" not in sys.modules
    assert adopt_user_modules(config, [run]) == ["recorded_env_module_a"]
    assert "recorded_env_module_a" in sys.modules and config.env.user_module == "recorded_env_module_a"
    # given and recorded modules are both kept, the run's first
    (tmp_path / "mods" / "recorded_env_module_b.py").write_text("")
    config = load_config(["import=recorded_env_module_b"])
    assert adopt_user_modules(config, [run]) == ["recorded_env_module_a", "recorded_env_module_b"]
    assert config.env.user_module == "recorded_env_module_a,recorded_env_module_b"


def test_a_recorded_module_that_no_longer_imports_names_the_run(tmp_path) -> None:
    run = tmp_path / "ac" / "gone"
    run.mkdir(parents=True)
    save_config(load_config(["import=no_such_user_envs_module"]), run / "config.yaml")
    with pytest.raises(
        ValueError, match=r"import 'no_such_user_envs_module'.*recorded in .*gone/config\.yaml"
    ):
        adopt_user_modules(load_config(), [run])
    assert adopt_user_modules(load_config(), [run], load=False) == ["no_such_user_envs_module"]


def test_a_dataset_records_the_env_module_for_the_training_stages(tmp_path, point_env) -> None:
    """`wm collect import=M` writes M into the file; pretrain / cache / train adopt it from there."""
    out = tmp_path / "point.h5"
    collect(
        [point_env],
        episodes=2,
        steps=3,
        policy="random",
        out=out,
        user_module="eval_test_point_envs",
        progress=False,
    )
    assert EpisodeReader(out).meta.user_module == "eval_test_point_envs"
    assert dataset_user_module(out) == "eval_test_point_envs"
    config = load_config()
    assert adopt_user_modules(config, datasets=[out], load=False) == ["eval_test_point_envs"]
    assert config.env.user_module == "eval_test_point_envs"
    plain = tmp_path / "ours.h5"
    collect(["jepa_wm/Reach-v0"], episodes=1, steps=2, policy="random", out=plain, progress=False)
    assert dataset_user_module(plain) == "" and dataset_user_module(tmp_path / "missing.h5") == ""


def test_no_world_model_shapes() -> None:
    wm = NoWorldModel(action_dim=4, state_dim=5)
    z0 = wm.observe([None, None], [{}, {}])
    assert z0.shape == (2, 1, 1) and wm.goal_latents([None, None], None, False).shape == (2, 1, 1, 1)
    assert wm.rollout(z0, torch.zeros(2, 5), torch.zeros(2, 3, 4)).shape == (2, 3, 1, 1)
    assert np.all(wm.encode(torch.zeros(3, 8, 8, 3)).numpy() == 0)
