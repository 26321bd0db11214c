"""`ForecastCheck`: the learned model's forecast of the executed actions against the next observed latent."""

from __future__ import annotations

import pytest
import torch

from envs.registration import make_env
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.config.schema import load_config
from worldmodel.evaluation import mpc
from worldmodel.evaluation.mpc import ForecastCheck
from worldmodel.evaluation.rows import build_planner, build_world_model, env_kwargs_for

ENV = "jepa_wm/Reach-v0"


def test_a_perfect_forecast_scores_zero_and_copying_scores_one() -> None:
    before, after = torch.zeros(3, 1, 4), torch.ones(3, 1, 4)
    perfect, copying = ForecastCheck(), ForecastCheck()
    perfect.add(after.clone(), before, after)
    copying.add(before.clone(), before, after)
    assert perfect.ratio == 0.0 and copying.ratio == 1.0
    assert perfect.steps == copying.steps == 3
    assert ForecastCheck().ratio is None  # nothing compared yet


def _row(row: str, *overrides: str):
    """The world model, planner and env kwargs `wm eval` builds for `row` on Reach."""
    config = load_config(["plan.samples=8", "plan.iterations=2", *overrides], section=("eval", "plan"))
    kwargs = env_kwargs_for(ENV, config)
    probe = make_env(ENV, **kwargs)
    planner = build_planner(config, probe, row)
    wm = build_world_model(row, ENV, kwargs, config, probe.action_space)
    probe.close()
    return wm, planner, kwargs


def test_run_mpc_pairs_each_forecast_with_the_next_observation(tiny_dataset, tmp_path, monkeypatch) -> None:
    """Recomputed from the loop's own latents and plans: forecast of step t against the latent of t + 1."""
    wm, planner, kwargs = _row("learned", f"world_model={make_tiny_run(tmp_path, tiny_dataset)}")
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    plan_step = mpc.plan_step

    def recording(planner, wm, z_obs, states, *rest):
        out = plan_step(planner, wm, z_obs, states, *rest)
        seen.append((z_obs.clone(), states.clone(), torch.from_numpy(out.actions[:, :1].copy())))
        return out

    monkeypatch.setattr(mpc, "plan_step", recording)
    budget, seeds = 4, [1_000_000, 1_000_001]
    result = mpc.run_mpc(ENV, wm, planner, seeds, budget, kwargs)
    check = result.forecast
    assert check is not None and check.steps == len(seeds) * (budget - 1)
    model = copy = 0.0
    with torch.no_grad():
        for (z, s, a), (z_next, _, _) in zip(seen[:-1], seen[1:], strict=True):
            predicted = wm.rollout(z, s, a)[:, -1]
            model += float((predicted - z_next).abs().flatten(1).mean(1).sum())
            copy += float((z - z_next).abs().flatten(1).mean(1).sum())
    assert check.model_l1 == pytest.approx(model, rel=1e-5)
    assert check.copy_l1 == pytest.approx(copy, rel=1e-5)
    assert check.ratio == pytest.approx(model / copy, rel=1e-5)


def test_simulator_rows_have_no_forecast_check() -> None:
    wm, planner, kwargs = _row("oracle")
    assert mpc.run_mpc(ENV, wm, planner, [1_000_000], 2, kwargs).forecast is None
