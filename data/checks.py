"""Look at a whole dataset: validate every episode, summarise it, draw a contact sheet of frames.

Built on the layout and per-array rules of data/episodes.py (which the writer also applies to each
episode it writes); this module adds the file-level pass that `wm data check` and `wm demo` run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from data.episodes import (
    EpisodeReader,
    FileMeta,
    array_problem,
    dataset_files,
    expected_arrays,
    open_episode_file,
    shape_problem,
)
from data.errors import H5_ERRORS, DatasetError, first_line


def validate(path: str | Path) -> list[str]:
    """Every problem in the dataset, at most one line per episode (the first found) or per file."""
    try:
        files = dataset_files(path)
    except DatasetError as err:
        return [str(err)]
    problems: list[str] = []
    for file in files:
        try:
            handle = open_episode_file(file)
        except DatasetError as err:
            problems.append(str(err))
            continue
        with handle:
            try:
                meta = FileMeta.from_attrs(handle.attrs, str(file))
            except H5_ERRORS as err:
                problems.append(f"{file}: root attributes are unreadable ({first_line(err)})")
                continue
            except DatasetError as err:
                problems.append(str(err))
                continue
            if "data" not in handle:
                problems.append(f"{file}: group 'data' is missing")
                continue
            try:
                names = sorted(handle["data"])
            except H5_ERRORS as err:
                problems.append(f"{file}: group 'data' is unreadable ({first_line(err)})")
                continue
            for name in names:
                try:
                    problem = _episode_problem(handle[f"data/{name}"], meta)
                except H5_ERRORS as err:
                    problem = f"unreadable ({first_line(err)})"
                if problem:
                    problems.append(f"{file}: episode {name}: {problem}")
    return problems


def _episode_problem(group: Any, meta: FileMeta) -> str | None:
    for key in ("obs/pixels", "obs/state", "actions"):
        if key not in group:
            return f"key {key}: missing"
    T = group["actions"].shape[0] if group["actions"].ndim >= 1 else -1
    if T == 0:
        return "key actions: episode has no steps (expected at least 1 action)"
    if "num_steps" in group.attrs and int(group.attrs["num_steps"]) != T:
        return f"attribute num_steps: expected {T} (the actions length), got {group.attrs['num_steps']}"
    for key, (dtype, shape) in expected_arrays(meta, T).items():
        dataset = group[key]
        problem = shape_problem(dataset.dtype, dataset.shape, dtype, shape)
        if problem is None:  # read everything: a damaged compressed chunk only shows when decoded
            try:
                problem = array_problem(dataset[()], dtype, shape)
            except H5_ERRORS as err:
                problem = f"unreadable data ({first_line(err)})"
        if problem:
            return f"key {key}: {problem}"
    return None


def info(path: str | Path) -> dict[str, Any]:
    """A summary for `wm data info`: counts, tasks, ranges, sizes."""
    reader = EpisodeReader(path)
    if len(reader) == 0:
        raise DatasetError(f"{path}: dataset has no episodes")
    actions = np.concatenate([reader.read_actions(i) for i in range(len(reader))])
    states = np.concatenate([reader.read_states(i) for i in range(len(reader))])
    successes = [a["success"] for a in reader.attrs if "success" in a]
    meta = reader.meta
    assert meta is not None
    return {
        "path": str(path),
        "episodes": len(reader),
        "steps": int(sum(reader.lengths)),
        "frames": int(sum(reader.lengths) + len(reader)),
        "env_ids": dict(Counter(str(a.get("env_id", meta.env_id)) for a in reader.attrs)),
        "splits": dict(Counter(str(a.get("split", "")) for a in reader.attrs)),
        "policies": dict(Counter(str(a.get("policy", "")) for a in reader.attrs)),
        "image_size": meta.image_size,
        "control_hz": meta.control_hz,
        "action_dim": meta.action_dim,
        "state_dim": meta.state_dim,
        "action_min": actions.min(0).astype(float).round(4).tolist(),
        "action_max": actions.max(0).astype(float).round(4).tolist(),
        "state_min": states.min(0).astype(float).round(4).tolist(),
        "state_max": states.max(0).astype(float).round(4).tolist(),
        "success_rate": float(np.mean(successes)) if successes else None,
        "bytes_on_disk": int(sum(f.stat().st_size for f in dataset_files(path))),
    }


def contact_sheet(path: str | Path, out_png: str | Path, n_episodes: int = 8, n_frames: int = 8) -> Path:
    """A PNG grid: one row per episode (evenly spread), columns evenly spaced in time."""
    reader = EpisodeReader(path)
    rows = []
    for index in np.linspace(0, len(reader) - 1, min(n_episodes, len(reader))).round().astype(int):
        steps = reader.num_steps(int(index))
        frame_ids = np.linspace(0, steps, min(n_frames, steps + 1)).round().astype(int)
        frames = reader.read_frames(int(index), sorted(set(frame_ids.tolist())))
        frames = np.concatenate([frames, np.zeros((n_frames - len(frames), *frames.shape[1:]), np.uint8)])
        rows.append(np.concatenate(list(frames), axis=1))
    sheet = np.concatenate(rows, axis=0)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    iio.imwrite(tmp, sheet)
    tmp.replace(out)
    return out
