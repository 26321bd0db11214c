"""LeRobot dataset folder (v2 layout) -> jepa-wm episodes. Needs the `lerobot` extra (pyarrow, av).

Layout read: `meta/info.json` (fps, features), `data/chunk-*/episode_*.parquet` with columns
`observation.state`, `action`, `episode_index`, `frame_index`, and one MP4 per episode and camera
under `videos/chunk-*/<camera>/episode_*.mp4`. LeRobot stores one action per frame; the action of
the last frame is dropped so T actions sit between T+1 frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from data.episodes import DatasetError, Episode, FileMeta
from data.importers.common import resize_square, write_episodes


def _optional_imports():
    """The `lerobot` extra's modules, or one line saying how to install them."""
    try:
        import av  # deferred: optional extra
        import pyarrow.parquet as pq  # deferred: optional extra
    except ImportError:
        raise DatasetError("LeRobot import needs pyarrow and av: pip install 'jepa-wm[lerobot]'") from None
    return av, pq


def _read_video(path: Path) -> np.ndarray:
    av, _ = _optional_imports()
    try:
        with av.open(str(path)) as container:
            return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    except (OSError, av.error.FFmpegError) as err:
        raise DatasetError(f"{path}: cannot decode video ({err})") from None


def import_lerobot(
    source: str | Path, out: str | Path, camera: str | None = None, image_size: int = 64
) -> int:
    """Convert every episode of a local LeRobot dataset folder; returns the count."""
    _, pq = _optional_imports()
    source = Path(source)
    info_path = source / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetError(f"{source}: not a LeRobot dataset folder (meta/info.json is missing)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{info_path}: not valid JSON ({err})") from None
    cameras = [k for k, v in info.get("features", {}).items() if v.get("dtype") == "video"]
    camera = camera or (cameras[0] if cameras else None)
    if camera is None:
        raise DatasetError(f"{info_path}: key features: no video feature to use as the camera")
    parquet_files = sorted(source.glob("data/chunk-*/episode_*.parquet"))
    if not parquet_files:
        raise DatasetError(f"{source}: no data/chunk-*/episode_*.parquet files")

    def load(parquet: Path) -> Episode:
        table = pq.read_table(parquet).to_pydict()
        for key in ("observation.state", "action", "frame_index"):
            if key not in table:
                raise DatasetError(f"{parquet}: column {key}: missing")
        order = np.argsort(table["frame_index"])
        states = np.asarray(table["observation.state"], dtype=np.float32)[order]
        actions = np.asarray(table["action"], dtype=np.float32)[order][:-1]
        video = next(iter(source.glob(f"videos/{parquet.parent.name}/{camera}/{parquet.stem}.mp4")), None)
        if video is None:
            raise DatasetError(f"{source}: video for {camera}/{parquet.stem} is missing")
        frames = _read_video(video)
        if len(frames) < len(states):
            raise DatasetError(f"{video}: {len(frames)} frames for {len(states)} parquet rows")
        return Episode(
            pixels=resize_square(frames[: len(states)], image_size),
            states=states,
            actions=actions,
            seed=int(parquet.stem.split("_")[-1]),
            policy="lerobot",
            env_id=str(info.get("robot_type", "lerobot")),
        )

    first = load(parquet_files[0])
    meta = FileMeta(
        env_id=f"lerobot:{source.name}",
        control_hz=float(info.get("fps", 0)),
        action_dim=first.actions.shape[1],
        state_dim=first.states.shape[1],
        action_low=first.actions.min(0).tolist(),
        action_high=first.actions.max(0).tolist(),
        camera=camera,
        image_size=image_size,
        created_by="jepa-wm import lerobot",
    )

    def episodes() -> Iterator[Episode]:
        yield first
        for parquet in parquet_files[1:]:
            yield load(parquet)

    return write_episodes(out, meta, episodes())
