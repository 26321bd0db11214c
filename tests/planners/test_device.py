"""Planners on the inputs' device: nothing made elsewhere, no host syncs in the loop, CPU plans as before.

Runs on the CPU everywhere; where CUDA is available the same tests also run on it, and the
iteration loop runs under `torch.cuda.set_sync_debug_mode("error")`.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from planner_toys import StatefulToyWorldModel, ToyWorldModel, problem
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import planners.rollouts
from planners import ActionBounds, make_planner, shift_plan
from planners.rollouts import rows_per_call

NAMES = ("cem", "mppi", "gradient", "random")
TOY = {"horizon": 5, "energy": "last_frame_l1"}
SMALL = {
    "cem": {"samples": 32, "iterations": 3},
    "mppi": {"samples": 32, "iterations": 3},
    "gradient": {"samples": 4, "iterations": 4},
    "random": {"samples": 32, "iterations": 2},
}
LOW = [-0.1, -0.05, 0.0, -0.2, -0.2, -0.2, -1.0]
HIGH = [0.1, 0.02, 0.08, 0.2, 0.2, 0.2, 0.5]
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
# Host reads: each waits for the device. Patched to raise around a whole plan call...
HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__")
# ...and, inside the iteration loop (`optimise`), also Python branches on a tensor's value.
LOOP_HOST_READS = (*HOST_READS, "__bool__", "__int__")


def bounds() -> ActionBounds:
    return ActionBounds(LOW, HIGH, fixed_dims=[3, 4, 5], gripper_dim=6)


class DeviceToy(StatefulToyWorldModel):
    """The toy world model with its tensors on `device` and no row check (which reads values)."""

    def __init__(self, device: str, seed: int = 0) -> None:
        super().__init__(seed)
        self.embed, self.bias = self.embed.to(device), self.bias.to(device)
        self.dynamics = self.dynamics.to(device)

    def check_rows(self, z0, state0, actions) -> None:
        assert z0.shape[0] == state0.shape[0] == actions.shape[0]


def inputs(wm: ToyWorldModel, episodes: int, device: str, dtype: torch.dtype = torch.float32):
    start, _, goal, _ = problem(ToyWorldModel(), episodes, seed=3)
    start, goal = start.to(device, dtype), goal.to(device, dtype)
    return start, wm.latent(start), goal, wm.latent(goal)


class DeviceRecorder(TorchDispatchMode):
    """Every device an op's tensor output lands on."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: set[torch.device] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.devices.update(t.device for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        return out


@contextmanager
def patched(monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]):
    """Within the block, the named torch.Tensor methods raise."""

    def forbid(name):
        def raises(*args, **kwargs):
            raise AssertionError(f"host sync in the planner: Tensor.{name}")

        return raises

    with monkeypatch.context() as patch:
        for name in names:
            patch.setattr(torch.Tensor, name, forbid(name))
        yield


def around_optimise(planner, monkeypatch: pytest.MonkeyPatch, recorder: DeviceRecorder | None = None):
    """Wrap the planner's `optimise` (its iteration loop) in the loop's checks."""
    optimise = planner.optimise

    def checked(call):
        with patched(monkeypatch, LOOP_HOST_READS), recorder or DeviceRecorder():
            if call.mean.device.type != "cuda":
                return optimise(call)
            previous = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error")
            try:
                return optimise(call)
            finally:
                torch.cuda.set_sync_debug_mode(previous)

    planner.optimise = checked


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_plans_stay_on_the_inputs_device_and_dtype(
    name: str, dtype: torch.dtype, device: str, monkeypatch
) -> None:
    wm = DeviceToy(device)
    start, z0, goal, z_goal = inputs(wm, 2, device, dtype)
    planner = make_planner(name, bounds=bounds(), proprio_weight=0.5, **{**TOY, **SMALL[name]})
    recorder = DeviceRecorder()
    around_optimise(planner, monkeypatch, recorder)
    for _ in range(2):  # the second plan starts from the first (warm start)
        result = planner.plan(wm, z0, start, z_goal, goal_state=goal)
    assert recorder.devices == {z0.device}
    for tensor in (result.actions, result.best_actions, result.best_energy, result.energy_history):
        assert tensor.device == z0.device and tensor.dtype == dtype
    assert all(g.device == z0.device for g in planner._generators)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("max_batch", [0, -1, 5])
def test_plan_loop_never_reads_the_device_from_the_host(
    name: str, max_batch: int, device: str, monkeypatch
) -> None:
    """No .item() / .tolist() / .cpu() / .numpy() / float() in a plan call, nor a branch on a
    tensor value in its loop: on an accelerator the loop is queued without waiting."""
    wm = DeviceToy(device)
    start, z0, goal, z_goal = inputs(wm, 3, device)
    settings = {**TOY, **SMALL[name], "max_batch": max_batch, "proprio_weight": 0.5}
    if name == "cem":
        settings["init_std_per_dim"] = [0.05] * 7
    planner = make_planner(name, bounds=bounds(), **settings)
    around_optimise(planner, monkeypatch)
    with patched(monkeypatch, HOST_READS):
        first = planner.plan(wm, z0, start, z_goal, goal_state=goal)
        planner.reset([1])
        second = planner.plan(wm, z0, start, z_goal, goal_state=goal)
    assert torch.isfinite(first.best_energy).all() and torch.isfinite(second.best_energy).all()


# First actions (free dims 0, 1, 2, 6) and best energies of two toy episodes, as planned on the
# CPU before the planners moved to the inputs' device: CPU plans must not change.
EXPECTED = {
    "cem": ([[0.03834, -0.01623, 0.01718, -0.259652], [-0.076524, 0.009448, 0.006012, -0.223577]], [0.097998, 0.09542]),
    "mppi": ([[0.083521, -0.005358, 0.000475, 0.079608], [0.060853, 0.008638, 0.010548, 0.078315]], [0.075883, 0.151245]),
    "gradient": ([[0.01, 0.0035, 0.004, -0.075], [0.038009, -0.004643, 0.015487, -0.075842]], [0.126433, 0.089176]),
    "random": ([[-0.057965, -0.0242, 0.006568, 0.347881], [-0.063777, -0.035404, 0.025802, 0.214611]], [0.231518, 0.162437]),
}  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_cpu_plans_are_unchanged(name: str) -> None:
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm, 2, seed=3)
    box = ActionBounds(LOW, HIGH, fixed_dims=[3, 4, 5])
    result = make_planner(name, bounds=box, **{**TOY, **SMALL[name]}).plan(wm, z0, start, z_goal)
    first, energy = EXPECTED[name]
    torch.testing.assert_close(result.actions[:, 0][:, [0, 1, 2, 6]], torch.tensor(first), rtol=0, atol=2e-6)
    torch.testing.assert_close(result.best_energy, torch.tensor(energy), rtol=0, atol=2e-6)


@pytest.mark.parametrize("name", NAMES)
def test_auto_chunking_plans_like_one_call_and_like_lone_episodes(name: str, monkeypatch) -> None:
    """With a small CPU_TOKEN_ROWS, auto splits the rows; the plans are those of one call, and
    episode e of the batch still plans like a lone run seeded seed + e."""
    monkeypatch.setattr(planners.rollouts, "CPU_TOKEN_ROWS", 40)  # 4 tokens: at most 10 rows a call
    start, z0, _, z_goal = problem(ToyWorldModel(), 3, seed=3)
    results, calls = {}, {}
    for max_batch in (0, -1):
        wm = ToyWorldModel()
        config = {**TOY, **SMALL[name], "max_batch": max_batch}
        results[max_batch] = make_planner(name, bounds=bounds(), **config).plan(wm, z0, start, z_goal)
        calls[max_batch] = wm.calls
    rows = 3 * SMALL[name]["samples"]
    assert set(calls[-1]) == {rows} and max(calls[0]) <= 10 and sum(calls[0]) == sum(calls[-1])
    torch.testing.assert_close(results[0].actions, results[-1].actions, rtol=0, atol=1e-6)
    torch.testing.assert_close(results[0].energy_history, results[-1].energy_history, rtol=0, atol=1e-6)
    for e in range(3):
        config = {**TOY, **SMALL[name], "seed": e}
        alone = make_planner(name, bounds=bounds(), **config).plan(
            ToyWorldModel(), z0[e], start[e], z_goal[e]
        )
        torch.testing.assert_close(alone.actions[0], results[0].actions[e], rtol=0, atol=1e-6)


def test_rows_per_call() -> None:
    def z(tokens: int, device: str = "cpu") -> torch.Tensor:
        return torch.empty(1, tokens, 8, device=device)

    cap = planners.rollouts.CPU_TOKEN_ROWS
    # the tiny demo: 1 token per frame, 10 episodes x 128 samples go in one call
    assert rows_per_call(0, z(1), 10 * 128) == 0
    assert rows_per_call(0, z(64), 16 * 64) == cap // 64
    assert rows_per_call(0, z(4), 4 * cap) == cap // 4
    assert rows_per_call(0, z(1), cap + 2) == cap // 2 + 1  # evened out: two calls of half
    assert rows_per_call(0, z(64, "meta"), 50 * 256) == 0  # off the CPU: one call
    assert rows_per_call(-1, z(64), 50 * 256) == 0
    assert rows_per_call(7, z(64, "meta"), 100) == 7


def test_max_batch_below_minus_one_is_a_one_line_error() -> None:
    with pytest.raises(
        ValueError, match=r"'plan.max_batch': expected an integer >= -1 \(0 = auto, -1 = one call\)"
    ):
        make_planner("cem", max_batch=-2)


def test_bounds_copies_are_made_once_per_device_and_dtype() -> None:
    box = bounds()
    assert box.to("cpu") is box and box.to(torch.device("cpu"), torch.float32) is box
    wide = box.to("cpu", torch.float64)
    assert wide is box.to("cpu", torch.float64) and wide.to("cpu") is box
    assert wide.low.dtype == wide.fixed_values.dtype == torch.float64 and wide.gripper_dim == 6
    actions = torch.full((2, 7), 5.0, dtype=torch.float64)
    clipped = box.clip(actions)
    assert clipped.dtype == torch.float64 and torch.equal(clipped[0], wide.high.where(~wide.fixed_mask, 0.0))
    torch.testing.assert_close(wide.half_range, box.half_range.double())
    torch.testing.assert_close(wide.center, box.center.double())


def test_shift_plan_keeps_dtype_and_device() -> None:
    plan = torch.ones(1, 3, 2, dtype=torch.float64)
    shifted = shift_plan(plan, pad=0.5)
    assert shifted.dtype == torch.float64 and shifted[0, -1].tolist() == [0.5, 0.5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_generators_follow_the_device() -> None:
    """CPU -> CUDA -> CPU: new generators on each device change, seeded as before."""
    settings = {**TOY, **SMALL["cem"], "warm_start": False}
    planner = make_planner("cem", bounds=bounds(), **settings)
    fresh = make_planner("cem", bounds=bounds(), **settings)
    plans = []
    for device in ("cpu", "cuda", "cpu"):
        wm = DeviceToy(device)
        start, z0, _, z_goal = inputs(wm, 2, device)
        plans.append(planner.plan(wm, z0, start, z_goal).actions)
        assert planner._generators[0].device.type == device and plans[-1].device.type == device
    wm = DeviceToy("cpu")
    start, z0, _, z_goal = inputs(wm, 2, "cpu")
    assert torch.equal(plans[0], plans[2]) and torch.equal(
        plans[2], fresh.plan(wm, z0, start, z_goal).actions
    )
