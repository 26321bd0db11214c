"""Importers on files the real libraries wrote (tests/data/fixtures: LeRobot 0.4.4 v3.0 and 0.3.3 v2.1
folders, a robomimic 0.3.0 file from robosuite 1.4.1 rollouts) and on small files the tests write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data.checks import info, validate
from data.episodes import DatasetError, EpisodeReader
from data.importers import import_lerobot, import_robomimic, resize_square
from data.importers.robomimic import gripper_opening
from tests.conftest import TINY_MODEL
from tests.data.fixtures.make_fixtures import (
    EPISODES,
    FIXTURES,
    FPS,
    FRAMES,
    ROBOMIMIC_NAME,
    episode_vectors,
    frame_pixels,
)

FIXTURE_DIR = Path(__file__).parent / "fixtures"
ROBOMIMIC = FIXTURE_DIR / ROBOMIMIC_NAME
VIDEO_MEAN_ERROR = 4.0  # mean |decoded - drawn| per channel: 1.5-2.8 at lerobot's crf 30, off by a frame 3+


def write_robomimic(path, demos=2, steps=6, with_next_obs=True, env_args=None):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        args = {"env_name": "Lift", "env_kwargs": {"control_freq": 20}} if env_args is None else env_args
        data.attrs["env_args"] = json.dumps(args)
        for d in range(demos):
            demo = data.create_group(f"demo_{d}")
            for group in ("obs", "next_obs") if with_next_obs else ("obs",):
                demo[f"{group}/agentview_image"] = rng.integers(0, 256, (steps, 84, 84, 3), dtype=np.uint8)
                demo[f"{group}/robot0_eef_pos"] = rng.normal(size=(steps, 3))
                demo[f"{group}/robot0_eef_quat"] = Rotation.random(steps, random_state=d).as_quat()
                left = rng.uniform(0, 0.04, (steps, 1))
                demo[f"{group}/robot0_gripper_qpos"] = np.concatenate([left, -left], axis=1)
                demo[f"{group}/robot0_joint_pos"] = rng.normal(size=(steps, 7))
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
        left, right = demo["obs/robot0_gripper_qpos"][0]
        assert episode.states[0, 6] == pytest.approx((left - right) / 0.08, rel=1e-5)


def test_robomimic_options_pick_state_keys_camera_and_rate(tmp_path) -> None:
    source = write_robomimic(tmp_path / "lift.hdf5", env_args={"env_name": "Lift"})
    with pytest.raises(DatasetError, match="env_kwargs.control_freq.*--control-hz"):
        import_robomimic(source, tmp_path / "no_rate.h5")
    out = tmp_path / "joints.h5"
    keys = ["robot0_joint_pos", "robot0_gripper_qpos"]
    assert import_robomimic(source, out, camera="agentview", state_keys=keys, control_hz=15) == 2
    reader = EpisodeReader(out)
    assert reader.meta.state_dim == 8 and reader.meta.control_hz == 15.0
    with h5py.File(source) as handle:
        np.testing.assert_array_equal(
            reader.read_states(0)[:-1, :7], handle["data/demo_0/obs/robot0_joint_pos"][()].astype(np.float32)
        )
    with pytest.raises(DatasetError, match="key obs/wrist_image: missing.*agentview_image"):
        import_robomimic(source, tmp_path / "wrist.h5", camera="wrist", control_hz=15)


def test_gripper_opening_is_right_for_robosuites_panda() -> None:
    """Fingers at 0.04 / -0.04 m: fully open; both at 0: closed; the old sum is 0 in both cases."""
    qpos = np.array([[0.04, -0.04], [0.0, 0.0], [0.02, -0.02], [0.05, -0.05]])
    assert gripper_opening(qpos)[:, 0].tolist() == [1.0, 0.0, 0.5, 1.0]


def test_robomimic_missing_key_is_one_line(tmp_path) -> None:
    source = write_robomimic(tmp_path / "lift.hdf5")
    with h5py.File(source, "a") as handle:
        del handle["data/demo_0/obs/robot0_eef_quat"]
    with pytest.raises(DatasetError, match="demo demo_0: key obs/robot0_eef_quat: missing"):
        import_robomimic(source, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_robomimic_file_written_by_robomimic(tmp_path) -> None:
    """robomimic's dataset_states_to_obs output: 3 demos of 20 steps with next_obs, 32x32 agentview."""
    out = tmp_path / "lift.h5"
    assert import_robomimic(ROBOMIMIC, out) == EPISODES
    assert validate(out) == []
    reader = EpisodeReader(out)
    assert reader.meta.control_hz == 20.0 and reader.meta.camera == "agentview_image"
    assert reader.lengths == [FRAMES] * EPISODES
    with h5py.File(ROBOMIMIC) as handle:
        for index, name in enumerate(["demo_1", "demo_2", "demo_3"]):
            demo, episode = handle[f"data/{name}"], reader.read_episode(index)
            np.testing.assert_array_equal(episode.actions, demo["actions"][()].astype(np.float32))
            positions = np.concatenate([demo["obs/robot0_eef_pos"][()], demo["next_obs/robot0_eef_pos"][-1:]])
            np.testing.assert_array_equal(episode.states[:, :3], positions.astype(np.float32))
            quats = np.concatenate([demo["obs/robot0_eef_quat"][()], demo["next_obs/robot0_eef_quat"][-1:]])
            euler = Rotation.from_quat(quats).as_euler("xyz").astype(np.float32)
            np.testing.assert_array_equal(episode.states[:, 3:6], euler)
            fingers = np.concatenate(
                [demo["obs/robot0_gripper_qpos"][()], demo["next_obs/robot0_gripper_qpos"][-1:]]
            )
            opening = episode.states[:, 6]
            np.testing.assert_allclose(opening, (fingers[:, 0] - fingers[:, 1]) / 0.08, atol=1e-6)
            assert 0.4 < opening.max() <= 1.0 and opening.min() >= 0.0  # the sum would be ~0 throughout
            images = np.concatenate([demo["obs/agentview_image"][()], demo["next_obs/agentview_image"][-1:]])
            np.testing.assert_array_equal(episode.pixels, resize_square(images, 64))
    assert info(out)["env_ids"] == {"Lift": EPISODES}


# ------------------------------------------------------------------------------------------ LeRobot


def write_lerobot(root, episodes=2, frames=8):
    """An old-style v2 folder (no codebase_version, no data_path, no meta/episodes.jsonl), MPEG-4 video."""
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


def test_lerobot_import_old_v2_folder(tmp_path) -> None:
    source = write_lerobot(tmp_path / "so100_pick")
    out = tmp_path / "so100.h5"
    assert import_lerobot(source, out, image_size=32) == 2
    assert validate(out) == []
    episode = EpisodeReader(out).read_episode(0)
    assert episode.pixels.shape == (8, 32, 32, 3) and episode.actions.shape == (7, 6)
    brightness = episode.pixels.reshape(8, -1).mean(axis=1)
    assert np.all(np.diff(brightness) > 5)  # frames decoded in order
    assert info(out)["env_ids"] == {"so100": 2}


def test_lerobot_without_info_is_one_line(tmp_path) -> None:
    with pytest.raises(DatasetError, match="meta/info.json is missing"):
        import_lerobot(tmp_path, tmp_path / "x.h5")


def camera_index(name: str) -> int:
    return 1 if name.endswith("wrist") else 0


def assert_frames_match(pixels: np.ndarray, episode: int, camera: int, exact: bool) -> None:
    """Each frame is the one drawn for it: exactly (PNG), or within codec loss and nearer to its own
    drawing than to any other frame of any episode (video: no off-by-one, no episode mix-up)."""
    drawn = np.stack([frame_pixels(episode, t, camera) for t in range(FRAMES)]).astype(np.float32)
    if exact:
        np.testing.assert_array_equal(pixels, drawn.astype(np.uint8))
        return
    error = np.abs(pixels.astype(np.float32) - drawn).mean(axis=(1, 2, 3))
    assert error.max() < VIDEO_MEAN_ERROR, error
    everything = np.stack(
        [frame_pixels(e, t, camera) for e in range(EPISODES) for t in range(FRAMES)]
    ).astype(np.float32)
    for t, frame in enumerate(pixels.astype(np.float32)):
        nearest = int(np.abs(everything - frame).mean(axis=(1, 2, 3)).argmin())
        assert divmod(nearest, FRAMES) == (episode, t)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_lerobot_fixture_imports_exactly(tmp_path, name) -> None:
    """Both layouts, videos (AV1, H.264) and images, several files and chunk folders, 7-D and 8-D."""
    spec = FIXTURES[name]
    source = FIXTURE_DIR / name
    written_by = json.loads((source / "meta" / "written_by.json").read_text())["lerobot"]
    version = json.loads((source / "meta" / "info.json").read_text())["codebase_version"]
    assert (version, written_by[:3]) in {("v3.0", "0.4"), ("v2.1", "0.3")}
    for camera in spec.cameras:
        out = tmp_path / f"{camera}.h5"
        assert import_lerobot(source, out, camera=camera if len(spec.cameras) > 1 else None) == EPISODES
        assert validate(out) == []
        reader = EpisodeReader(out)
        assert reader.lengths == [FRAMES - 1] * EPISODES
        assert (reader.meta.action_dim, reader.meta.state_dim) == (spec.action_dim, spec.state_dim)
        assert reader.meta.control_hz == FPS and reader.meta.camera == camera
        for e in range(EPISODES):
            episode = reader.read_episode(e)
            states, actions = episode_vectors(spec.number, e, spec.state_dim, spec.action_dim)
            np.testing.assert_array_equal(episode.states, states)
            np.testing.assert_array_equal(episode.actions, actions[:-1])
            assert_frames_match(episode.pixels, e, camera_index(camera), exact=spec.camera_dtype == "image")
        summary = info(out)
        assert summary["env_ids"] == {spec.robot_type or "unknown": EPISODES}
        assert "None" not in str(summary["env_ids"])


def test_lerobot_with_several_cameras_names_them(tmp_path) -> None:
    source = FIXTURE_DIR / "lerobot_v30_two_cams_joints"
    with pytest.raises(
        DatasetError, match=r"several cameras \(observation.images.front, observation.images.wrist\)"
    ):
        import_lerobot(source, tmp_path / "x.h5")
    with pytest.raises(DatasetError, match="camera 'top': not a video or image feature.*images.wrist"):
        import_lerobot(source, tmp_path / "x.h5", camera="top")
    assert not (tmp_path / "x.h5").exists()


def test_lerobot_v30_episode_rows_and_video_are_checked(tmp_path) -> None:
    """A missing shared video and an episode index that disagrees with the rows are one line each."""
    import shutil

    source = tmp_path / "ds"
    shutil.copytree(FIXTURE_DIR / "lerobot_v30_video", source)
    (source / "videos" / "observation.images.front" / "chunk-000" / "file-000.mp4").unlink()
    with pytest.raises(DatasetError, match="file-000.mp4: video missing .*episode 0"):
        import_lerobot(source, tmp_path / "x.h5")
    shutil.rmtree(source / "meta" / "episodes")
    with pytest.raises(DatasetError, match="no meta/episodes/chunk-"):
        import_lerobot(source, tmp_path / "x.h5")


def test_resize_square_averages_areas() -> None:
    frames = np.zeros((1, 4, 6, 3), dtype=np.uint8)
    frames[:, :, 1:3] = 200  # left half of the centre crop (columns 1..4) bright
    small = resize_square(frames, 2)
    assert small.shape == (1, 2, 2, 3)
    assert small[0, :, 0, 0].tolist() == [200, 200] and small[0, :, 1, 0].tolist() == [0, 0]


# ---------------------------------------------------------------------------------- the commands


@pytest.mark.parametrize(
    "source, options",
    [
        ("lerobot_v30_video", ["--format", "lerobot"]),
        ("lerobot_v21_images", ["--format", "lerobot"]),
        (ROBOMIMIC_NAME, ["--format", "robomimic"]),
    ],
)
def test_import_check_info_and_pretrain(wm, tmp_path, source, options) -> None:
    """What a user runs on their own logs: import, check, info (no 'None'), a few training steps."""
    out = tmp_path / "mine.h5"
    result = wm("data", "import", *options, str(FIXTURE_DIR / source), str(out))
    assert result.returncode == 0, result.stderr
    assert wm("data", "check", str(out)).returncode == 0
    shown = wm("data", "info", str(out))
    assert shown.returncode == 0 and "None" not in shown.stdout, shown.stdout
    steps = ["max_steps=3", "batch_size=4", "clip_len=4", *TINY_MODEL]
    trained = wm("pretrain", f"data={out}", f"run.root={tmp_path}/runs", "run.name=mine", *steps)
    assert trained.returncode == 0, trained.stderr
    metrics = tmp_path / "runs" / "pretrain" / "mine" / "metrics.csv"
    assert str(metrics) in trained.stdout.replace("\n", "")
    with metrics.open() as handle:
        assert [row["step"] for row in csv.DictReader(handle)][-1] == "2"  # the last of 3 steps


def test_import_help_names_the_keys_read(wm) -> None:
    shown = wm("data", "import", "--help").stdout
    for words in (
        "agentview_image",
        "robot0_eef_quat",
        "robot0_gripper_qpos",
        "control_freq",
        "v3.0",
        "--camera",
    ):
        assert words in shown, words
