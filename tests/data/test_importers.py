"""Importers on small files the tests write: robomimic HDF5 and a LeRobot v2 folder."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data.checks import validate
from data.episodes import DatasetError, EpisodeReader
from data.importers import import_lerobot, import_robomimic, resize_square


def write_robomimic(path, demos=2, steps=6, with_next_obs=True):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift"})
        for d in range(demos):
            demo = data.create_group(f"demo_{d}")
            for group in ("obs", "next_obs") if with_next_obs else ("obs",):
                demo[f"{group}/agentview_image"] = rng.integers(0, 256, (steps, 84, 84, 3), dtype=np.uint8)
                demo[f"{group}/robot0_eef_pos"] = rng.normal(size=(steps, 3))
                demo[f"{group}/robot0_eef_quat"] = Rotation.random(steps, random_state=d).as_quat()
                demo[f"{group}/robot0_gripper_qpos"] = rng.uniform(0, 0.04, (steps, 2))
            demo["actions"] = rng.uniform(-1, 1, (steps, 7))
    return path


@pytest.mark.parametrize("with_next_obs", [True, False])
def test_robomimic_import(tmp_path, with_next_obs) -> None:
    source = write_robomimic(tmp_path / "lift.hdf5", with_next_obs=with_next_obs)
    out = tmp_path / "lift.h5"
    assert import_robomimic(source, out, image_size=32) == 2
    assert validate(out) == []
    reader = EpisodeReader(out)
    episode = reader.read_episode(1)
    steps = 6 if with_next_obs else 5
    assert episode.actions.shape == (steps, 7) and episode.pixels.shape == (steps + 1, 32, 32, 3)
    with h5py.File(source) as handle:
        demo = handle["data/demo_1"]
        np.testing.assert_allclose(episode.actions, demo["actions"][:steps], rtol=1e-6)
        np.testing.assert_allclose(episode.states[0, :3], demo["obs/robot0_eef_pos"][0], rtol=1e-6)
        gripper = demo["obs/robot0_gripper_qpos"][0].sum()
        assert episode.states[0, 6] == pytest.approx(gripper, rel=1e-5)


def test_robomimic_missing_key_is_one_line(tmp_path) -> None:
    source = write_robomimic(tmp_path / "lift.hdf5")
    with h5py.File(source, "a") as handle:
        del handle["data/demo_0/obs/robot0_eef_quat"]
    with pytest.raises(DatasetError, match="demo demo_0: key obs/robot0_eef_quat: missing"):
        import_robomimic(source, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def write_lerobot(root, episodes=2, frames=8):
    import av
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    camera = "observation.images.top"
    (root / "meta").mkdir(parents=True)
    info = {"fps": 10, "robot_type": "so100", "features": {camera: {"dtype": "video"}}}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    for e in range(episodes):
        table = pa.table(
            {
                "observation.state": rng.normal(size=(frames, 6)).astype(np.float32).tolist(),
                "action": rng.normal(size=(frames, 6)).astype(np.float32).tolist(),
                "episode_index": [e] * frames,
                "frame_index": list(range(frames)),
            }
        )
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "data" / "chunk-000" / f"episode_{e:06d}.parquet")
        video = root / "videos" / "chunk-000" / camera / f"episode_{e:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(video), "w") as container:
            stream = container.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for f in range(frames):
                image = np.full((48, 64, 3), 20 * f, dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return root


def test_lerobot_import(tmp_path) -> None:
    source = write_lerobot(tmp_path / "so100_pick")
    out = tmp_path / "so100.h5"
    assert import_lerobot(source, out, image_size=32) == 2
    assert validate(out) == []
    episode = EpisodeReader(out).read_episode(0)
    assert episode.pixels.shape == (8, 32, 32, 3) and episode.actions.shape == (7, 6)
    brightness = episode.pixels.reshape(8, -1).mean(axis=1)
    assert np.all(np.diff(brightness) > 5)  # frames decoded in order


def test_lerobot_without_info_is_one_line(tmp_path) -> None:
    with pytest.raises(DatasetError, match="meta/info.json is missing"):
        import_lerobot(tmp_path, tmp_path / "x.h5")


def test_resize_square_averages_areas() -> None:
    frames = np.zeros((1, 4, 6, 3), dtype=np.uint8)
    frames[:, :, 1:3] = 200  # left half of the centre crop (columns 1..4) bright
    small = resize_square(frames, 2)
    assert small.shape == (1, 2, 2, 3)
    assert small[0, :, 0, 0].tolist() == [200, 200] and small[0, :, 1, 0].tolist() == [0, 0]
