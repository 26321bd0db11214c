"""Figures a person would rather look at than read. Matplotlib with the Agg backend, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from worldmodel.errors import UserError  # noqa: E402


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
