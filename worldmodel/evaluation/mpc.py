"""Receding-horizon control: encode, plan, execute the first action(s), repeat; many episodes at once.

Planning sees latents (`EpisodeLatents`: camera and goal images encoded by the world model, or
the simulator world models' own) and proprioception only. Success and distances are read from
the env's `info` after actions run, for the report, never for planning (`distance` is optional:
NaN without it). Episodes run side by side
so one planner call serves all of them (one batched rollout per CEM iteration).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from envs.protocol import info_distance
from envs.registration import make_env
from planners import Planner, PlanResult, WorldModel
from worldmodel.evaluation.episode_latents import episode_latents
from worldmodel.models.world_model import WorldModel as LearnedWorldModel


@dataclass
class EpisodeOutcome:
    env_id: str
    seed: int
    success: bool  # at the end of the step budget, judged by the env
    final_distance: float  # metres; NaN when the env gives no info["distance"]
    steps_to_success: int | None  # first step at which the env reported success
    energies: list[float] = field(default_factory=list)  # best planned energy at each MPC step
    frames: list[np.ndarray] = field(default_factory=list)  # only when recording
    states: list[np.ndarray] = field(default_factory=list)  # proprio state with each frame (recording)
    actions: list[np.ndarray] = field(default_factory=list)  # executed actions (recording)
    distances: list[float] = field(default_factory=list)  # env distance after each step (recording)
    goal: np.ndarray | None = None  # the goal image planning used (recording, non-oracle)


@dataclass
class ForecastCheck:
    """Does the learned model's forecast come true on the planner's own actions? Mean L1 of the
    latent it predicts after the executed actions, and of copying the latent before them, against
    the latent observed next. Play data can be forecast well while the argmin over hundreds of
    candidates picks the model's errors (benchmarks/experiments.md §57): ratio near 1 or above."""

    model_l1: float = 0.0
    copy_l1: float = 0.0
    steps: int = 0  # episode steps compared

    def add(self, forecast: torch.Tensor, before: torch.Tensor, after: torch.Tensor) -> None:
        """Latents `[E,N,D]`: predicted after the actions, observed before and after them."""
        forecast, before, after = forecast.float(), before.float(), after.float()
        self.model_l1 += float((forecast - after).abs().flatten(1).mean(1).sum())
        self.copy_l1 += float((before - after).abs().flatten(1).mean(1).sum())
        self.steps += len(after)

    @property
    def ratio(self) -> float | None:
        """Model / copy L1 (< 1: better than copying); None before any step or when nothing moved."""
        return self.model_l1 / self.copy_l1 if self.steps and self.copy_l1 > 0 else None


@dataclass
class MPCResult:
    outcomes: list[EpisodeOutcome]
    ms_per_action: float  # planning wall time per executed action, per episode batch
    plan_seconds: float
    forecast: ForecastCheck | None = None  # learned world models only

    @property
    def success_rate(self) -> float:
        return float(np.mean([o.success for o in self.outcomes]))


def run_mpc(
    env_id: str,
    wm: WorldModel,
    planner: Planner,
    seeds: list[int],
    budget: int,
    env_kwargs: dict | None = None,
    execute: int = 1,
    record: bool = False,
    goal_pixels: np.ndarray | None = None,
    on_step: Callable[[int, int, float, dict], None] | None = None,
    subgoals: bool = False,
) -> MPCResult:
    """Run len(seeds) episodes in parallel for `budget` steps each.

    `goal_pixels` (uint8 [H,W,3], the env's image size) replaces every episode's own goal image
    for planning; the env still judges success and distance against its own goal. `on_step`
    is called as `(episode, step, planned_energy, info)` after each executed action.
    `subgoals=True` plans towards the task's sub-goal images in turn (`subgoal_index`: equal
    shares of the budget, the goal image last); tasks without sub-goals just use their goal.
    """
    latents = episode_latents(wm)
    if goal_pixels is not None and not latents.plans_on_images:
        raise ValueError("this world model plans on true positions, not images: it cannot use a goal image")
    if goal_pixels is not None and subgoals:
        raise ValueError(
            "sub-goals come from the env's own scenes: they cannot be combined with a goal image"
        )
    envs = [make_env(env_id, **(env_kwargs or {})) for _ in seeds]
    observations, infos = zip(
        *(env.reset(seed=seed) for env, seed in zip(envs, seeds, strict=True)), strict=True
    )
    observations, infos = list(observations), list(infos)
    goals = None
    if latents.plans_on_images:
        goals = [info["goal_pixels"] if goal_pixels is None else goal_pixels for info in infos]
    z_goals = latents.goal_latents(envs, goals, subgoals)  # [E, n_subgoals, N, D]
    planner.reset()
    outcomes = [EpisodeOutcome(env_id, seed, False, float("nan"), None) for seed in seeds]
    if record and goals is not None:
        for outcome, goal in zip(outcomes, goals, strict=True):
            outcome.goal = np.asarray(goal).copy()
    plan_seconds, step = 0.0, 0
    forecast = ForecastCheck() if isinstance(wm, LearnedWorldModel) else None
    pending: tuple[torch.Tensor, torch.Tensor] | None = None  # (forecast, latents before the actions)
    while step < budget:
        z_obs = latents.observe(envs, observations)
        if forecast is not None and pending is not None:
            forecast.add(*pending, z_obs)
        states = torch.from_numpy(np.stack([o["state"] for o in observations])).to(z_obs.device)
        planned = plan_step(planner, wm, z_obs, states, z_goals, step, budget)
        plan_seconds += planned.seconds
        result, plan = planned.result, planned.actions
        executed = min(execute, budget - step, plan.shape[1])
        if forecast is not None and step + executed < budget:  # the last step's is never observed
            with torch.no_grad():
                actions = torch.from_numpy(plan[:, :executed]).to(states)
                pending = (wm.rollout(z_obs, states, actions)[:, -1], z_obs)
        for k in range(executed):
            for e, env in enumerate(envs):
                action = plan[e, k].astype(np.float32)
                if record:
                    outcomes[e].frames.append(observations[e]["pixels"])
                    outcomes[e].states.append(observations[e]["state"])
                    outcomes[e].actions.append(action)
                observations[e], _, _, _, infos[e] = env.step(action)
                if infos[e]["is_success"] and outcomes[e].steps_to_success is None:
                    outcomes[e].steps_to_success = step + 1
                if record:
                    outcomes[e].distances.append(info_distance(infos[e]))
                if on_step is not None:
                    on_step(e, step + 1, float(result.best_energy[e]), infos[e])
            step += 1
        for e in range(len(envs)):
            outcomes[e].energies.append(float(result.best_energy[e]))
    for e, env in enumerate(envs):
        outcomes[e].success = bool(infos[e]["is_success"])
        outcomes[e].final_distance = info_distance(infos[e])
        if record:
            outcomes[e].frames.append(observations[e]["pixels"])
            outcomes[e].states.append(observations[e]["state"])
        env.close()
    actions_taken = max(budget, 1)
    return MPCResult(outcomes, 1000 * plan_seconds / actions_taken, plan_seconds, forecast)


@dataclass
class PlanStep:
    """One planning call of the receding-horizon loop."""

    result: PlanResult
    actions: np.ndarray  # [E,H,A] the plans, as numpy: their first `execute` actions run next
    subgoal: int  # which sub-goal the plans aim at (the last one = the goal)
    seconds: float  # planning wall time


def plan_step(
    planner: Planner,
    wm: WorldModel,
    z_obs: torch.Tensor,
    states: torch.Tensor,
    z_goals: torch.Tensor,
    step: int,
    budget: int,
) -> PlanStep:
    """Plan from the current latents `z_obs [E,N,D]` and `states [E,S]` towards the sub-goal of
    `z_goals [E,n,N,D]` that step `step` of `budget` aims at (`subgoal_index`); `run_mpc` and
    `Agent.act` both plan through here."""
    start = time.perf_counter()
    subgoal = subgoal_index(step, budget, z_goals.shape[1])
    result = planner.plan(wm, z_obs, states, z_goals[:, subgoal])
    seconds = time.perf_counter() - start
    return PlanStep(result, result.actions.detach().cpu().numpy(), subgoal, seconds)


def subgoal_index(step: int, budget: int, count: int) -> int:
    """Which of `count` sub-goals step `step` (0-based) of `budget` aims at: equal shares, and the
    last step always aims at the last one (the goal), even when budget < count."""
    budget = max(budget, 1)
    return min(count - 1, max(0, -(-(step + 1) * count // budget) - 1))
