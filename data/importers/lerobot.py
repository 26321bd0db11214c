"""LeRobot dataset folder -> jepa-wm episodes, for the layouts LeRobot writes today (codebase v2.x and
v3.0). Needs pyarrow and av (the `lerobot` extra), never the `lerobot` package itself, so our torch
pin stays.

Read from `meta/info.json`: `codebase_version`, `fps`, `robot_type`, `features`, `data_path`,
`video_path`, `chunks_size`.
- v2.x: one parquet per episode (`data/chunk-XXX/episode_XXXXXX.parquet`) and one MP4 per episode and
  camera (`videos/chunk-XXX/<camera>/episode_XXXXXX.mp4`); episodes listed in `meta/episodes.jsonl`.
- v3.0: parquet and MP4 files holding several episodes (`data/chunk-XXX/file-XXX.parquet`,
  `videos/<camera>/chunk-XXX/file-XXX.mp4`); `meta/episodes/chunk-XXX/file-XXX.parquet` has one row
  per episode: `length`, `data/chunk_index`, `data/file_index`, and per camera
  `videos/<camera>/chunk_index`, `file_index`, `from_timestamp` (where the episode starts in its MP4).
Rows of an episode are its `episode_index` rows sorted by `frame_index`; columns `observation.state`
and `action`. The camera is a `video` feature (decoded with PyAV: AV1, H.264, ...; frame i is the one
shown at `from_timestamp + timestamp[i]`, within half a frame period, as LeRobot itself looks it up)
or an `image` feature (PNG/JPEG bytes inside the parquet). LeRobot stores one action per frame; the
last frame's action is dropped so T actions sit between T+1 frames.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from data.episodes import DatasetError, Episode, FileMeta
from data.importers.common import resize_square, write_episodes

STATE_KEY, ACTION_KEY = "observation.state", "action"
UNKNOWN_ROBOT = "unknown"  # each episode's env_id when info.json's robot_type is null or absent
V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def _optional_imports():
    """The `lerobot` extra's modules, or one line saying how to install them."""
    try:
        import av  # deferred: optional extra
        import pyarrow.compute as pc  # deferred: optional extra
        import pyarrow.parquet as pq  # deferred: optional extra
    except ImportError:
        raise DatasetError("LeRobot import needs pyarrow and av: pip install 'jepa-wm[lerobot]'") from None
    return av, pc, pq


@dataclass
class _EpisodeRef:
    """Where one episode lives: its rows' parquet file and, for a video camera, its MP4 and start."""

    index: int
    data_file: Path
    video_file: Path | None = None
    from_timestamp: float = 0.0
    length: int | None = None  # as meta/ says, checked against the rows


@dataclass
class _Rows:
    states: np.ndarray  # float32 [T+1,S]
    actions: np.ndarray  # float32 [T+1,A] (the last one is dropped later)
    timestamps: np.ndarray  # seconds from the episode's start


def _read_info(source: Path) -> tuple[dict[str, Any], Path]:
    info_path = source / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetError(f"{source}: not a LeRobot dataset folder (meta/info.json is missing)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{info_path}: not valid JSON ({err})") from None
    if not isinstance(info, dict) or not isinstance(info.get("features", {}), dict):
        raise DatasetError(f"{info_path}: key features: expected an object of feature specs")
    return info, info_path


def cameras_of(info: dict[str, Any]) -> dict[str, str]:
    """Camera name -> "video" or "image", in info.json's order."""
    return {
        name: spec["dtype"]
        for name, spec in info.get("features", {}).items()
        if isinstance(spec, dict) and spec.get("dtype") in ("video", "image")
    }


def _pick_camera(info: dict[str, Any], info_path: Path, requested: str | None) -> tuple[str, str]:
    """The camera named, or the only one; otherwise one line listing the ones there are."""
    cameras = cameras_of(info)
    listed = ", ".join(cameras) or "none"
    if requested is not None:
        if requested not in cameras:
            raise DatasetError(
                f"{info_path}: camera '{requested}': not a video or image feature (cameras: {listed})"
            )
        return requested, cameras[requested]
    if not cameras:
        raise DatasetError(f"{info_path}: key features: no video or image feature to use as the camera")
    if len(cameras) > 1:
        raise DatasetError(f"{info_path}: several cameras ({listed}): choose one with --camera NAME")
    name = next(iter(cameras))
    return name, cameras[name]


def _template(info: dict[str, Any], key: str, default: str) -> str:
    value = info.get(key)
    return value if isinstance(value, str) and value else default


def _episodes_v2(source: Path, info: dict[str, Any], camera: str, is_video: bool) -> list[_EpisodeRef]:
    """v2.x: episodes from meta/episodes.jsonl (or, without it, the episode_*.parquet files there are)."""
    chunks_size = int(info.get("chunks_size") or 1000)
    data_path = _template(info, "data_path", V2_DATA_PATH)
    video_path = _template(info, "video_path", V2_VIDEO_PATH)
    listing = source / "meta" / "episodes.jsonl"
    lengths: dict[int, int | None] = {}
    if listing.is_file():
        for number, line in enumerate(listing.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                lengths[int(row["episode_index"])] = int(row["length"]) if "length" in row else None
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise DatasetError(f"{listing}: line {number}: expected {{episode_index, length}}") from None
    else:
        for path in source.glob("data/chunk-*/episode_*.parquet"):
            suffix = path.stem.split("_")[-1]
            if suffix.isdigit():
                lengths[int(suffix)] = None
    if not lengths:
        raise DatasetError(
            f"{source}: no episodes (no meta/episodes.jsonl, no data/chunk-*/episode_*.parquet)"
        )
    refs = []
    for index in sorted(lengths):
        keys = {"episode_chunk": index // chunks_size, "episode_index": index, "video_key": camera}
        refs.append(
            _EpisodeRef(
                index=index,
                data_file=source / data_path.format(**keys),
                video_file=source / video_path.format(**keys) if is_video else None,
                length=lengths[index],
            )
        )
    return refs


def _episodes_v3(source: Path, info: dict[str, Any], camera: str, is_video: bool, pq) -> list[_EpisodeRef]:
    """v3.0: one row per episode in meta/episodes/chunk-*/file-*.parquet says where its data and video are."""
    files = sorted(source.glob("meta/episodes/chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{source}: no meta/episodes/chunk-*/file-*.parquet (LeRobot v3.0 episode index)")
    columns = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    if is_video:
        columns += [f"videos/{camera}/{key}" for key in ("chunk_index", "file_index", "from_timestamp")]
    data_path = _template(info, "data_path", V3_DATA_PATH)
    video_path = _template(info, "video_path", V3_VIDEO_PATH)
    refs = []
    for file in files:
        try:
            names = set(pq.read_schema(file).names)
            missing = [c for c in columns if c not in names]
            if missing:
                raise DatasetError(f"{file}: column {missing[0]}: missing")
            rows = pq.read_table(file, columns=columns).to_pydict()
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise DatasetError(f"{file}: not a readable parquet file ({err})") from None
        for i, index in enumerate(rows["episode_index"]):
            data_keys = {"chunk_index": rows["data/chunk_index"][i], "file_index": rows["data/file_index"][i]}
            ref = _EpisodeRef(index=int(index), data_file=source / data_path.format(**data_keys))
            ref.length = int(rows["length"][i])
            if is_video:
                video_keys = {
                    "video_key": camera,
                    "chunk_index": rows[f"videos/{camera}/chunk_index"][i],
                    "file_index": rows[f"videos/{camera}/file_index"][i],
                }
                ref.video_file = source / video_path.format(**video_keys)
                ref.from_timestamp = float(rows[f"videos/{camera}/from_timestamp"][i])
            refs.append(ref)
    return sorted(refs, key=lambda ref: ref.index)


def _matrix(column, where: str, key: str) -> np.ndarray:
    """A list / fixed-size-list column of floats as float32 [rows, width], values unchanged."""
    values = column.to_pylist()
    try:
        matrix = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: column {key}: expected equal-length float vectors") from None
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2:
        raise DatasetError(f"{where}: column {key}: expected float vectors, got shape {matrix.shape}")
    return matrix


class _ParquetFiles:
    """Reads each data file once, however many episodes it holds (v3.0 files hold many)."""

    def __init__(self, pc, pq) -> None:
        self.pc, self.pq = pc, pq
        self.path: Path | None = None
        self.table = None

    def episode(self, ref: _EpisodeRef, columns: list[str]):
        """The episode's rows (sorted by frame_index) with these columns (plus frame_index)."""
        if self.path != ref.data_file or not set(columns) <= set(self.table.column_names):
            if not ref.data_file.is_file():
                raise DatasetError(f"{ref.data_file}: missing (data of episode {ref.index})")
            try:
                names = self.pq.read_schema(ref.data_file).names
                wanted = [c for c in ("episode_index", "frame_index", "timestamp", *columns) if c in names]
                for key in ("frame_index", *columns):
                    if key not in names:
                        raise DatasetError(f"{ref.data_file}: column {key}: missing")
                self.table = self.pq.read_table(ref.data_file, columns=list(dict.fromkeys(wanted)))
            except (OSError, ValueError) as err:
                raise DatasetError(f"{ref.data_file}: not a readable parquet file ({err})") from None
            self.path = ref.data_file
        table = self.table
        if "episode_index" in table.column_names:
            table = table.filter(self.pc.equal(table["episode_index"], ref.index))
        order = np.argsort(np.asarray(table["frame_index"].to_pylist()), kind="stable")
        return table.take(order)


def _read_rows(files: _ParquetFiles, ref: _EpisodeRef, fps: float) -> _Rows:
    table = files.episode(ref, [STATE_KEY, ACTION_KEY])
    where = f"{ref.data_file} (episode {ref.index})"
    if table.num_rows < 2:
        raise DatasetError(f"{where}: {table.num_rows} rows (expected at least 2 frames)")
    if ref.length is not None and table.num_rows != ref.length:
        raise DatasetError(f"{where}: {table.num_rows} rows, but meta/ gives length {ref.length}")
    if "timestamp" in table.column_names:
        timestamps = np.asarray(table["timestamp"].to_pylist(), dtype=np.float64)
    else:
        timestamps = np.asarray(table["frame_index"].to_pylist(), dtype=np.float64) / fps
    return _Rows(
        states=_matrix(table[STATE_KEY], where, STATE_KEY),
        actions=_matrix(table[ACTION_KEY], where, ACTION_KEY),
        timestamps=timestamps,
    )


def _decode_images(files: _ParquetFiles, ref: _EpisodeRef, camera: str) -> np.ndarray:
    """An `image` feature: each row's struct holds the encoded PNG/JPEG `bytes`."""
    cells = files.episode(ref, [camera])[camera].to_pylist()
    frames = []
    for frame_index, cell in enumerate(cells):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data:
            raise DatasetError(
                f"{ref.data_file}: column {camera}: episode {ref.index} frame {frame_index} has no image bytes"
            )
        try:
            frames.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise DatasetError(
                f"{ref.data_file}: column {camera}: episode {ref.index} frame {frame_index}: "
                f"not a readable image ({err})"
            ) from None
    return np.stack(frames)


def _decode_video(av, ref: _EpisodeRef, camera: str, timestamps: np.ndarray, fps: float) -> np.ndarray:
    """The frames shown at `from_timestamp + timestamps` (each within half a frame period)."""
    path = ref.video_file
    assert path is not None
    if not path.is_file():
        raise DatasetError(f"{path}: video missing (camera {camera}, episode {ref.index})")
    targets = ref.from_timestamp + timestamps
    tolerance = 0.5 / fps
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or fps)
            if targets[0] > tolerance and stream.time_base is not None:
                container.seek(int(targets[0] / stream.time_base), stream=stream, backward=True)
            for count, frame in enumerate(container.decode(stream)):
                time = frame.time if frame.time is not None else count / rate
                if time < targets[len(frames)] - tolerance:
                    continue  # before the episode (the seek lands on an earlier key frame)
                if time > targets[len(frames)] + tolerance:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == len(targets):
                    break
    except (OSError, av.error.FFmpegError) as err:
        raise DatasetError(f"{path}: cannot decode video ({err})") from None
    if len(frames) < len(targets):
        raise DatasetError(
            f"{path}: no frame at {targets[len(frames)]:.3f} s (camera {camera}, episode {ref.index}, "
            f"frame {len(frames)} of {len(targets)})"
        )
    return np.stack(frames)


def _action_names(info: dict[str, Any], width: int) -> list[str]:
    """info.json's names for the action vector when they are a flat list (v2 may nest them)."""
    spec = info.get("features", {}).get(ACTION_KEY)
    names = spec.get("names") if isinstance(spec, dict) else None
    if isinstance(names, dict) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        return names
    return []


def import_lerobot(
    source: str | Path,
    out: str | Path,
    camera: str | None = None,
    image_size: int = 64,
    control_hz: float | None = None,
) -> int:
    """Convert every episode of a local LeRobot dataset folder (v2.x or v3.0); returns the count.

    `camera`: a video or image feature of info.json (default: the only one). `control_hz`: overrides
    info.json's fps. Each episode's env_id is info.json's robot_type, or "unknown" when it is null."""
    av, pc, pq = _optional_imports()
    source = Path(source)
    info, info_path = _read_info(source)
    camera, dtype = _pick_camera(info, info_path, camera)
    fps = control_hz if control_hz is not None else info.get("fps")
    if not isinstance(fps, int | float) or fps <= 0:
        raise DatasetError(f"{info_path}: key fps: expected a positive number, got {fps!r}")
    is_video = dtype == "video"
    version = str(info.get("codebase_version") or "v2.x")
    if version.startswith("v3"):
        refs = _episodes_v3(source, info, camera, is_video, pq)
    else:
        refs = _episodes_v2(source, info, camera, is_video)
    files = _ParquetFiles(pc, pq)
    rows = [_read_rows(files, ref, float(fps)) for ref in refs]  # all tables first: fail before decoding
    for ref, row in zip(refs, rows, strict=True):
        for key, matrix, first in (
            (STATE_KEY, row.states, rows[0].states),
            (ACTION_KEY, row.actions, rows[0].actions),
        ):
            if matrix.shape[1] != first.shape[1]:
                raise DatasetError(
                    f"{ref.data_file} (episode {ref.index}): column {key}: width {matrix.shape[1]}, "
                    f"episode {refs[0].index} has {first.shape[1]}"
                )
    actions = np.concatenate([row.actions[:-1] for row in rows])
    robot_type = info.get("robot_type")
    env_id = robot_type if isinstance(robot_type, str) and robot_type.strip() else UNKNOWN_ROBOT
    meta = FileMeta(
        env_id=f"lerobot:{source.resolve().name}",
        control_hz=float(fps),
        action_dim=actions.shape[1],
        state_dim=rows[0].states.shape[1],
        action_low=actions.min(0).tolist(),
        action_high=actions.max(0).tolist(),
        action_names=_action_names(info, actions.shape[1]),
        camera=camera,
        image_size=image_size,
        created_by=f"jepa-wm import lerobot (codebase {version})",
    )

    def episodes() -> Iterator[Episode]:
        for ref, row in zip(refs, rows, strict=True):
            if is_video:
                frames = _decode_video(av, ref, camera, row.timestamps, float(fps))
            else:
                frames = _decode_images(files, ref, camera)
            yield Episode(
                pixels=resize_square(frames, image_size),
                states=row.states,
                actions=row.actions[:-1],
                seed=ref.index,
                policy="lerobot",
                env_id=env_id,
            )

    return write_episodes(out, meta, episodes())
