"""`wm energy`: the one-step energy landscape over candidate actions for one held-out transition.

A planner can only find the right action if the energy is lowest near it. For (frame t, true action,
frame t+1) this evaluates E(a) = mean |predict(z_t, s_t, a) - z_{t+1}| through the `WorldModel`
facade on a G x G grid of two action dims (default dx, dy; the others the true action's). The
copy-last-frame baseline's energy is flat, so the argmin's fair comparison is chance: the mean
distance of a grid candidate to the true action.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.episodes import EpisodeReader
from worldmodel.common.errors import UserError
from worldmodel.common.plots import plt, save_figure
from worldmodel.models.world_model import WorldModel


@dataclass
class EnergyMap:
    """The energy grid and the numbers the CLI prints. `energy[i, j]` is at (dy[i], dx[j])."""

    episode: int
    step: int
    dims: tuple[int, int]
    names: tuple[str, str]
    xs: np.ndarray  # candidate values of dims[0]
    ys: np.ndarray  # candidate values of dims[1]
    energy: np.ndarray  # [len(ys), len(xs)]
    true_action: np.ndarray  # [A]
    true_energy: float
    copy_energy: float

    @property
    def true_xy(self) -> np.ndarray:
        return self.true_action[list(self.dims)]

    @property
    def argmin_xy(self) -> np.ndarray:
        i, j = np.unravel_index(int(np.argmin(self.energy)), self.energy.shape)
        return np.array([self.xs[j], self.ys[i]])

    @property
    def argmin_energy(self) -> float:
        return float(self.energy.min())

    @property
    def argmin_distance(self) -> float:
        """Euclidean distance (action units) from the energy's argmin to the true action."""
        return float(np.linalg.norm(self.argmin_xy - self.true_xy))

    @property
    def chance_distance(self) -> float:
        """Mean distance of a grid candidate to the true action: what a flat energy (the copy
        baseline) or a random pick achieves on average."""
        gx, gy = np.meshgrid(self.xs, self.ys)
        return float(np.hypot(gx - self.true_xy[0], gy - self.true_xy[1]).mean())

    @property
    def grid_step(self) -> float:
        return float(max(np.diff(self.xs).max(initial=0.0), np.diff(self.ys).max(initial=0.0)))

    @property
    def lower_fraction(self) -> float:
        """Fraction of candidates with lower energy than the true action (0 = the true action wins)."""
        return float((self.energy < self.true_energy).mean())

    def summary(self) -> dict:
        return {
            "episode": self.episode,
            "step": self.step,
            "dims": list(self.names),
            "true_action": self.true_xy.tolist(),
            "true_energy": self.true_energy,
            "argmin": self.argmin_xy.tolist(),
            "argmin_energy": self.argmin_energy,
            "argmin_distance": self.argmin_distance,
            "grid_step": self.grid_step,
            "lower_fraction": self.lower_fraction,
            "copy_energy": self.copy_energy,
            "chance_distance": self.chance_distance,
        }


def action_bounds(reader: EpisodeReader) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's recorded action space; its observed action range if none was recorded."""
    meta = reader.meta
    if meta is not None and len(meta.action_low) == len(meta.action_high) == meta.action_dim:
        return np.asarray(meta.action_low, dtype=np.float32), np.asarray(meta.action_high, dtype=np.float32)
    actions = np.concatenate([reader.read_actions(i) for i in range(len(reader))])
    return actions.min(0), actions.max(0)


@torch.no_grad()
def energy_map(
    wm: WorldModel,
    reader: EpisodeReader,
    episode: int,
    step: int,
    grid: int = 21,
    dims: tuple[int, int] = (0, 1),
    batch_size: int = 256,
) -> EnergyMap:
    """Evaluate the one-step energy of `grid x grid` candidate actions for transition `step` of
    `episode` (see the module doc)."""
    if not 0 <= episode < len(reader):
        raise UserError(f"option --episode: expected 0..{len(reader) - 1}, got {episode}")
    steps = reader.num_steps(episode)
    if not 0 <= step < steps:
        raise UserError(f"option --step: episode {episode} has steps 0..{steps - 1}, got {step}")
    if grid < 2:
        raise UserError(f"option --grid: expected an integer >= 2, got {grid}")
    if len(set(dims)) != 2 or not all(0 <= d < wm.action_dim for d in dims):
        raise UserError(f"action dims {dims}: expected two different dims in 0..{wm.action_dim - 1}")
    low, high = action_bounds(reader)
    xs = np.linspace(low[dims[0]], high[dims[0]], grid, dtype=np.float32)
    ys = np.linspace(low[dims[1]], high[dims[1]], grid, dtype=np.float32)
    true_action = reader.read_actions(episode)[step].astype(np.float32)
    state = torch.from_numpy(reader.read_states(episode)[step]).float()
    z = wm.encode(torch.from_numpy(reader.read_frames(episode, slice(step, step + 2))))
    z_now, z_next = z[0], z[1]

    gx, gy = np.meshgrid(xs, ys)  # [grid(y), grid(x)]
    candidates = np.repeat(true_action[None], grid * grid, axis=0)
    candidates[:, dims[0]], candidates[:, dims[1]] = gx.ravel(), gy.ravel()
    candidates = np.concatenate([candidates, true_action[None]])  # last row: the true action itself
    energies = []
    device = wm.device
    for chunk in torch.from_numpy(candidates).split(batch_size):
        b = len(chunk)
        pred, _ = wm.predict(
            z_now.expand(b, 1, *z_now.shape),
            chunk[:, None].to(device),
            state.expand(b, 1, len(state)).to(device),
        )
        energies.append((pred - z_next).abs().mean((-1, -2)).cpu())
    energy = torch.cat(energies).numpy().astype(np.float64)
    names = reader.meta.action_names if reader.meta and reader.meta.action_names else []
    label = tuple(names[d] if d < len(names) else f"action[{d}]" for d in dims)
    return EnergyMap(
        episode=episode,
        step=step,
        dims=dims,
        names=label,  # type: ignore[arg-type]
        xs=xs,
        ys=ys,
        energy=energy[:-1].reshape(grid, grid),
        true_action=true_action,
        true_energy=float(energy[-1]),
        copy_energy=float((z_now - z_next).abs().mean()),
    )


def save_heatmap(result: EnergyMap, path: str | Path, title: str = "") -> Path:
    """Heatmap PNG (Agg) of the energy with the true action (white x) and the argmin (red o)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    step_x = (result.xs[1] - result.xs[0]) / 2
    step_y = (result.ys[1] - result.ys[0]) / 2
    extent = (result.xs[0] - step_x, result.xs[-1] + step_x, result.ys[0] - step_y, result.ys[-1] + step_y)
    image = ax.imshow(result.energy, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label="one-step energy (mean L1 to the true next latent)")
    tx, ty = result.true_xy
    mx, my = result.argmin_xy
    ax.plot([tx], [ty], "wx", markersize=11, markeredgewidth=2.5, label="true action")
    ax.plot([mx], [my], "o", markersize=10, markerfacecolor="none", markeredgecolor="red",
            markeredgewidth=2, label="argmin")  # fmt: skip
    ax.set_xlabel(result.names[0])
    ax.set_ylabel(result.names[1])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    ax.set_title(
        title
        or f"episode {result.episode}, step {result.step}\n"
        f"copy-last-frame energy {result.copy_energy:.4f} (flat)",
        fontsize=9,
    )
    save_figure(fig, Path(path))
    return Path(path)
