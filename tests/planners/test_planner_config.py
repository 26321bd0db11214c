"""The one planner config: one-line ValueErrors naming the key, omegaconf structured config, bounds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium import spaces
from omegaconf import OmegaConf
from planner_toys import ToyWorldModel, problem

from planners import PLANNERS, ActionBounds, PlannerConfig, make_planner, plan_config


@pytest.mark.parametrize(
    ("name", "config", "fragment"),
    [
        ("nope", {}, "unknown planner 'nope': expected one of cem, mppi, gradient, random"),
        ("cem", {"sample": 3}, "unknown config key 'sample' for the planner"),
        ("cem", {"samples": 0}, "'plan.samples': expected an integer >= 1"),
        ("cem", {"horizon": 0}, "'plan.horizon': expected an integer >= 1"),
        ("cem", {"horizon": 2, "execute": 3}, "'plan.execute': expected an integer in 1..2"),
        ("cem", {"samples": 8, "elites": 9}, "'plan.elites': expected an integer <= samples (8)"),
        ("cem", {"samples": 1}, "'plan.samples': expected at least 2 for elite_frac=0.05"),
        ("cem", {"samples": "many"}, "'plan.samples': expected a int"),
        ("cem", {"momentum_mean": 1.0}, "'plan.momentum_mean': expected a number in [0, 1)"),
        ("cem", {"energy": "l2"}, "'plan.energy': expected last_frame_l1 | all_steps_l1"),
        ("cem", {"output": "median"}, "'plan.output': expected mean | best"),
        ("cem", {"disagreement_weight": -1.0}, "'plan.disagreement_weight': expected a number >= 0"),
        ("mppi", {"temperature": 0.0}, "'plan.temperature': expected a number > 0"),
        ("gradient", {"samples": 0}, "'plan.samples': expected an integer >= 1"),
        ("gradient", {"lr": -1.0}, "'plan.lr'"),
        ("random", {"iterations": 0}, "'plan.iterations': expected an integer >= 1"),
        ("random", {"warm_start": "yes"}, "'plan.warm_start': expected a bool"),
    ],
)
def test_bad_config_is_one_line_value_error(name: str, config: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        make_planner(name, **config)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_knobs_of_other_planners_are_not_checked() -> None:
    """One sample is fine for random shooting although CEM would need two elites."""
    assert make_planner("random", samples=1).config.samples == 1
    with pytest.raises(ValueError, match="config planner 'cem' given to the mppi planner"):
        PLANNERS["mppi"](PlannerConfig())


@pytest.mark.parametrize("name", list(PLANNERS))
def test_config_is_omegaconf_structured(name: str) -> None:
    schema = OmegaConf.structured(PlannerConfig)
    merged = OmegaConf.merge(schema, OmegaConf.from_dotlist([f"planner={name}", "horizon=2", "samples=4"]))
    config = OmegaConf.to_object(merged)
    config.validate()
    assert config.horizon == 2 and config.planner == name
    for f in dataclasses.fields(PlannerConfig):
        assert f.type in ("int", "float", "bool", "str", "list[int]", "list[float]"), (f.name, f.type)
    bounds = ActionBounds.symmetric(7, fixed_dims=[3, 4, 5])
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm)
    assert (make_planner(config, bounds=bounds).plan(wm, z0, start, z_goal).actions[..., 3:6] == 0).all()


def test_plan_config_replaces_settings_on_a_base() -> None:
    base = PlannerConfig(samples=16)
    config = plan_config(base, planner="mppi", horizon=2)
    assert (config.planner, config.samples, config.horizon) == ("mppi", 16, 2) and base.planner == "cem"


def test_ints_are_accepted_for_floats() -> None:
    config = PlannerConfig(init_std=1, init_std_per_dim=[1, 0])
    config.validate()
    assert isinstance(config.init_std, float) and config.init_std_per_dim == [1.0, 0.0]


def test_action_bounds_validation_names_the_dim() -> None:
    with pytest.raises(ValueError, match="dim 1 needs low <= high, got low=0.5 high=0.1"):
        ActionBounds([0.0, 0.5], [1.0, 0.1])
    with pytest.raises(ValueError, match="dim 0 fixed to 2.0"):
        ActionBounds([0.0], [1.0], fixed_dims=[0], fixed_values=[2.0])
    with pytest.raises(ValueError, match="gripper dim 1 out of range for 1 action dims"):
        ActionBounds([0.0], [1.0], gripper_dim=1)
    with pytest.raises(ValueError, match="action dim 0 has infinite bounds"):
        make_planner("cem", bounds=ActionBounds([-np.inf], [np.inf])).bounds_for(1)


def test_action_bounds_from_gymnasium_box_clip_and_fix() -> None:
    box = spaces.Box(np.array([-1, -2, -3], np.float32), np.array([1, 2, 3], np.float32))
    bounds = ActionBounds.from_box(box, fixed_dims=[1], gripper_dim=2)
    clipped = bounds.clip(torch.tensor([[5.0, 5.0, -5.0]]))
    assert clipped.tolist() == [[1.0, 0.0, -3.0]]
    assert bounds.half_range.tolist() == [1.0, 0.0, 3.0] and bounds.gripper_dim == 2


def test_bounds_must_match_the_world_model() -> None:
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm)
    with pytest.raises(ValueError, match="action bounds have 2 dims, the world model 7"):
        make_planner("cem", bounds=ActionBounds.symmetric(2)).plan(wm, z0, start, z_goal)
