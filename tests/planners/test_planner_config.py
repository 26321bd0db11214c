"""Configs: one-line ValueErrors naming the key, omegaconf structured-config compatibility, bounds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium import spaces
from omegaconf import OmegaConf
from planner_toys import ToyWorldModel, problem

from planners import PLANNERS, ActionBounds, CEMConfig, make_planner


@pytest.mark.parametrize(
    ("name", "config", "fragment"),
    [
        ("nope", {}, "unknown planner 'nope': expected one of cem, mppi, gradient, random"),
        ("cem", {"sample": 3}, "unknown config key 'sample' for planner 'cem'"),
        ("cem", {"samples": 0}, "'planner.samples': expected an integer >= 1"),
        ("cem", {"horizon": 0}, "'planner.horizon': expected an integer >= 1"),
        ("cem", {"samples": 8, "elites": 9}, "'planner.elites': expected an integer <= samples (8)"),
        ("cem", {"samples": "many"}, "'planner.samples': expected a int"),
        ("cem", {"momentum_mean": 1.0}, "'planner.momentum_mean': expected a number in [0, 1)"),
        ("cem", {"energy": "l2"}, "'planner.energy': expected last_frame_l1 or all_steps_l1"),
        ("cem", {"action_low": [1.0], "action_high": [0.0]}, "'planner.action_low[0]'"),
        ("cem", {"fixed_dims": [3], "fixed_values": [0.0, 1.0]}, "'planner.fixed_values'"),
        ("mppi", {"temperature": 0.0}, "'planner.temperature': expected a number > 0"),
        ("gradient", {"restarts": 0}, "'planner.restarts': expected an integer >= 1"),
        ("gradient", {"lr": -1.0}, "'planner.lr'"),
        ("random", {"iterations": 0}, "'planner.iterations': expected an integer >= 1"),
        ("random", {"warm_start": "yes"}, "'planner.warm_start': expected a bool"),
    ],
)
def test_bad_config_is_one_line_value_error(name: str, config: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        make_planner(name, **config)
    message = str(info.value)
    assert fragment in message and "\n" not in message


@pytest.mark.parametrize("name", list(PLANNERS))
def test_configs_are_omegaconf_structured(name: str) -> None:
    cls = PLANNERS[name][0]
    schema = OmegaConf.structured(cls)
    merged = OmegaConf.merge(schema, OmegaConf.from_dotlist(["horizon=3", "fixed_dims=[3,4,5]"]))
    config = OmegaConf.to_object(merged)
    config.validate()
    assert config.horizon == 3 and config.fixed_dims == [3, 4, 5]
    for f in dataclasses.fields(cls):
        assert f.type in ("int", "float", "bool", "str", "list[int]", "list[float]"), (f.name, f.type)
    planner = PLANNERS[name][1](config)
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm)
    assert (planner.plan(wm, z0, start, z_goal).actions[..., 3:6] == 0).all()


def test_ints_are_accepted_for_floats() -> None:
    config = CEMConfig(init_std=1, action_low=[-1, 0], action_high=[1, 1])
    config.validate()
    assert isinstance(config.init_std, float) and config.action_low == [-1.0, 0.0]


def test_action_bounds_validation_names_the_dim() -> None:
    with pytest.raises(ValueError, match="dim 1 needs low <= high, got low=0.5 high=0.1"):
        ActionBounds([0.0, 0.5], [1.0, 0.1])
    with pytest.raises(ValueError, match="dim 0 fixed to 2.0"):
        ActionBounds([0.0], [1.0], fixed_dims=[0], fixed_values=[2.0])
    with pytest.raises(ValueError, match="action dim 0 has infinite bounds"):
        make_planner("cem", bounds=ActionBounds([-np.inf], [np.inf])).bounds_for(1)


def test_action_bounds_from_gymnasium_box_clip_and_fix() -> None:
    box = spaces.Box(np.array([-1, -2, -3], np.float32), np.array([1, 2, 3], np.float32))
    bounds = ActionBounds.from_box(box, fixed_dims=[1])
    clipped = bounds.clip(torch.tensor([[5.0, 5.0, -5.0]]))
    assert clipped.tolist() == [[1.0, 0.0, -3.0]]
    assert bounds.half_range.tolist() == [1.0, 0.0, 3.0]


def test_bounds_must_match_the_world_model() -> None:
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm)
    with pytest.raises(ValueError, match="action bounds have 2 dims, the world model 7"):
        make_planner("cem", bounds=ActionBounds.symmetric(2)).plan(wm, z0, start, z_goal)
