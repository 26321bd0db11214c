"""Figures a person would rather look at than read. Matplotlib with the Agg backend, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from worldmodel.common.errors import UserError  # noqa: E402


def writable_output(path: Path) -> Path:
    """Create the parent folder, or fail with one line naming it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output folder '{path.parent}': {err.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"output folder '{path.parent}' is not writable")
    return path


def save_figure(fig: plt.Figure, path: Path, dpi: int = 100) -> None:
    """Save via a temp file and rename so a crash never leaves half an image."""
    path = writable_output(Path(path))
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def save_side_by_side(images: list[np.ndarray], labels: list[str], title: str, path: Path) -> None:
    """Images in one row with a label above each (e.g. observation | goal)."""
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.6))
    for ax, image, label in zip(np.atleast_1d(axes), images, labels, strict=True):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(label)
        ax.axis("off")
    fig.suptitle(title)
    save_figure(fig, path)


def plot_success(results: list, path: Path) -> Path:
    """Success rate with 95 % intervals, grouped by task, one bar per eval row."""
    tasks = list(dict.fromkeys(r.task for r in results))
    rows = list(dict.fromkeys(r.row for r in results))
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(tasks), 3.4))
    for j, row in enumerate(rows):
        for i, task in enumerate(tasks):
            match = [r for r in results if r.task == task and r.row == row]
            if not match:
                continue
            r = match[0]
            x = i + (j - (len(rows) - 1) / 2) * width
            ax.bar(x, r.success_rate, width, color=f"C{j}", label=row if i == 0 else None)
            ax.errorbar(
                x,
                r.success_rate,
                yerr=[[r.success_rate - r.ci_low], [r.ci_high - r.success_rate]],
                color="k",
                capsize=3,
            )
    ax.set_xticks(range(len(tasks)), [t.split("/")[-1] for t in tasks])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95 % CI)")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return path


def plot_energy_curves(results: list, path: Path) -> Path:
    """Best planned energy at each MPC step, mean over episodes, per task and row."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for k, r in enumerate(results):
        if not r.energies or not r.energies[0]:
            continue
        curves = np.array([e for e in r.energies if len(e) == len(r.energies[0])])
        scale = curves[:, :1].clip(min=1e-12)
        ax.plot((curves / scale).mean(0), color=f"C{k}", label=f"{r.task.split('/')[-1]} {r.row}")
    ax.set_xlabel("MPC step")
    ax.set_ylabel("planned energy / first step")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return path
