"""Each eval row's planner: the simulator rows take the `eval.sim_*` settings, the learned row `plan.*`
(the control cost included: the oracle's energy is in metres, a learned latent's is not)."""

from __future__ import annotations

import pytest

from envs.registration import make_env
from worldmodel.common.errors import ConfigError
from worldmodel.config.schema import load_config
from worldmodel.evaluation.rows import build_planner


@pytest.mark.parametrize(
    ("row", "samples", "action_cost"), [("learned", 40, 1.5), ("oracle", 6, 0.25), ("simulator", 6, 0.25)]
)
def test_the_control_cost_is_the_rows_own(row: str, samples: int, action_cost: float) -> None:
    config = load_config(
        [
            "preset=tiny",
            "plan.samples=40",
            "plan.action_cost=1.5",
            "eval.sim_samples=6",
            "eval.sim_action_cost=0.25",
        ]
    )
    env = make_env("jepa_wm/Reach-v0")
    planner = build_planner(config, env, row)
    env.close()
    assert planner.config.samples == samples
    assert planner.energy_fn.action_cost == action_cost


def test_the_simulator_rows_control_cost_must_not_be_negative() -> None:
    with pytest.raises(
        ConfigError, match=r"config key 'eval.sim_action_cost': expected a number >= 0, got -1"
    ):
        load_config(["preset=tiny", "eval.sim_action_cost=-1"])
